"""The chain itself: hashing, appending events and releases, publishing digests (see pledges.ledger)."""

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models.functions import Now

from pledges.counting import COUNTER_STATE_PK, NATION_CODE
from pledges.enums import PledgeEventKind, TerritoryLevel
from pledges.models import Campaign, CounterState, LedgerDigest, LedgerEntry, Letter, PledgeEvent, Release
from territories.models import Department

logger = logging.getLogger("pledges.ledger")

GENESIS_HASH = "0" * 64
# b"deconvlg" read as a signed 64-bit integer; counting uses b"deconvct".
LEDGER_LOCK_KEY = 0x6465636F6E766C67
# How late a commit the counting tick still appends; later ones wait for ledger_append_missing.
LATE_COMMIT_GRACE = timedelta(seconds=30)
MAX_ENTRIES_PER_RUN = 5000
RELEASE_KIND = "letters_released"
EVENT_KINDS = tuple(PledgeEventKind.values)
EVENTS_UNTIL_KEY = "events_until"
# Receipt ids per anti-join query, rows per INSERT.
_LOOKUP_CHUNK = 1000
_INSERT_BATCH = 1000


class JournalEvent(NamedTuple):
    """A PledgeEvent as the ledger reads it: with its department code and receipt id."""

    id: int
    campaign_id: int
    kind: str
    delta: int
    occurred_at: datetime
    department_code: str
    receipt_id: str  # "" when the pledge row was deleted


_EVENT_FIELDS = (
    "id",
    "campaign_id",
    "kind",
    "delta",
    "occurred_at",
    "department__code",
    "pledge__receipt_id",
)


def journal_events(queryset) -> Iterator[JournalEvent]:
    """The queryset's PledgeEvent rows as JournalEvent, read in chunks, in the queryset's order."""
    for row in queryset.values_list(*_EVENT_FIELDS).iterator(chunk_size=_LOOKUP_CHUNK):
        receipt = row[6]
        yield JournalEvent(*row[:6], receipt_id=str(receipt) if receipt is not None else "")


@dataclass(frozen=True)
class LedgerAppendResult:
    entries: int
    campaigns: int
    skipped: bool


# --- Hashing ----------------------------------------------------------------------------------


def canonical_json(value) -> str:
    """The one serialisation that is hashed: sorted keys, no spaces, non-ASCII kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def ledger_time(value: datetime) -> str:
    """2024-03-13T09:30:15.123456Z: UTC, always with microseconds, as hashed and exported."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash_compute(
    *,
    campaign_id: int,
    sequence: int,
    kind: str,
    receipt_id: str,
    department_code: str,
    payload: dict,
    occurred_at: datetime | str,
    previous_hash: str,
) -> str:
    document = {
        "campaign": campaign_id,
        "sequence": sequence,
        "kind": kind,
        "receipt_id": receipt_id,
        "department_code": department_code,
        "payload": payload,
        "occurred_at": occurred_at if isinstance(occurred_at, str) else ledger_time(occurred_at),
        "previous_hash": previous_hash,
    }
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


def _entry_build(*, campaign_id: int, sequence: int, previous_hash: str, **fields) -> LedgerEntry:
    entry_hash = entry_hash_compute(
        campaign_id=campaign_id, sequence=sequence, previous_hash=previous_hash, **fields
    )
    return LedgerEntry(
        campaign_id=campaign_id,
        sequence=sequence,
        previous_hash=previous_hash,
        entry_hash=entry_hash,
        **fields,
    )


# --- Appending --------------------------------------------------------------------------------


def ledger_append_pending(
    *,
    max_entries: int = MAX_ENTRIES_PER_RUN,
    grace: timedelta = LATE_COMMIT_GRACE,
    use_lock: bool = True,
    after_heads_read: Callable[[], None] | None = None,
) -> LedgerAppendResult:
    """Append the counted events not yet in the ledger and publish digests (module docstring, 1).

    `use_lock=False` and `after_heads_read` (called once the chain heads are read) exist for the
    control test that shows two unguarded appenders colliding.
    """
    with transaction.atomic():
        if use_lock and not _ledger_lock(wait=False):
            return LedgerAppendResult(entries=0, campaigns=0, skipped=True)
        state = (
            CounterState.objects.filter(pk=COUNTER_STATE_PK)
            .annotate(db_now=Now())
            .values("counted_until", "db_now")
            .first()
        )
        if state is None or state["counted_until"] is None:
            return LedgerAppendResult(entries=0, campaigns=0, skipped=False)
        until = state["counted_until"]
        bookmark = ledger_bookmark()

        candidates = PledgeEvent.objects.filter(occurred_at__lte=until)
        if bookmark is not None:
            candidates = candidates.filter(occurred_at__gt=bookmark - grace)
        events = _events_not_in_ledger(
            journal_events(candidates.order_by("occurred_at", "id")), limit=max_entries
        )
        if not events:
            return LedgerAppendResult(entries=0, campaigns=0, skipped=False)
        # A capped run vouches only for what it reached; the next run goes on from there.
        events_until = until if len(events) < max_entries else events[-1].occurred_at
        if bookmark is not None:
            events_until = max(events_until, bookmark)
        campaigns = _events_append(
            events=events, events_until=events_until, published_at=state["db_now"], hook=after_heads_read
        )
    return LedgerAppendResult(entries=len(events), campaigns=campaigns, skipped=False)


def ledger_append_missing() -> LedgerAppendResult:
    """Append every counted event the ledger lacks, however late it was committed.

    The repair for what `ledger_append_pending`'s grace window cannot see (a transaction open
    longer than the grace, back-dated events). It reads every event id in the ledger, so it
    costs what the ledger holds: run it hourly, not every tick. Waits for the ledger lock.
    """
    with transaction.atomic():
        _ledger_lock(wait=True)
        state = (
            CounterState.objects.filter(pk=COUNTER_STATE_PK)
            .annotate(db_now=Now())
            .values("counted_until", "db_now")
            .first()
        )
        if state is None or state["counted_until"] is None:
            return LedgerAppendResult(entries=0, campaigns=0, skipped=False)
        in_ledger = set(
            LedgerEntry.objects.filter(kind__in=EVENT_KINDS).values_list("payload__event_id", flat=True)
        )
        counted = PledgeEvent.objects.filter(occurred_at__lte=state["counted_until"])
        events = [
            event
            for event in journal_events(counted.order_by("occurred_at", "id"))
            if event.id not in in_ledger
        ]
        if not events:
            return LedgerAppendResult(entries=0, campaigns=0, skipped=False)
        bookmark = ledger_bookmark()
        events_until = max(state["counted_until"], bookmark) if bookmark else state["counted_until"]
        campaigns = _events_append(events=events, events_until=events_until, published_at=state["db_now"])
    logger.warning("ledger repaired: %s late events appended", len(events))
    return LedgerAppendResult(entries=len(events), campaigns=campaigns, skipped=False)


def ledger_append_release(*, release: Release) -> LedgerEntry | None:
    """Record the SHA-256 of each letter of a release; call it once all its letters are generated.

    Side effects: one "letters_released" entry on the campaign's chain (payload {"release_id",
    "level", "code", "letters": [[receipt_id, letter_sha256], ...]} sorted by receipt id) and a
    digest for the new head. Idempotent: a release already recorded returns its entry. Returns
    None, appending nothing, while the release has no letter. Waits for the ledger lock.
    """
    with transaction.atomic():
        _ledger_lock(wait=True)
        existing = LedgerEntry.objects.filter(
            campaign_id=release.campaign_id, kind=RELEASE_KIND, payload__release_id=release.pk
        ).first()
        if existing is not None:
            return existing
        letters = sorted(
            [str(receipt), sha256]
            for receipt, sha256 in Letter.objects.filter(release=release).values_list(
                "pledge__receipt_id", "sha256"
            )
        )
        if not letters:
            return None
        now = (
            Campaign.objects.annotate(db_now=Now())
            .values_list("db_now", flat=True)
            .get(pk=release.campaign_id)
        )
        sequence, previous_hash = _chain_head(campaign_id=release.campaign_id)
        entry = _entry_build(
            campaign_id=release.campaign_id,
            sequence=sequence + 1,
            previous_hash=previous_hash,
            kind=RELEASE_KIND,
            receipt_id="",
            department_code=release.code if release.level == TerritoryLevel.DEPARTMENT else "",
            payload={
                "release_id": release.pk,
                "level": release.level,
                "code": release.code,
                "letters": letters,
            },
            occurred_at=now,
        )
        entry.save(force_insert=True)
        _digests_publish(campaign_ids=[release.campaign_id], events_until=ledger_bookmark(), published_at=now)
    return entry


def _ledger_lock(*, wait: bool) -> bool:
    """Take the transaction-level ledger lock; False when `wait` is off and someone holds it."""
    if connection.vendor != "postgresql":
        # SQLite: transactions open with BEGIN IMMEDIATE, so ledger writers are serialised.
        return True
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LEDGER_LOCK_KEY])
            return True
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [LEDGER_LOCK_KEY])
        return bool(cursor.fetchone()[0])


def ledger_bookmark() -> datetime | None:
    """`events_until` of the latest digest of any campaign: every run covers every campaign."""
    counts = LedgerDigest.objects.order_by("-id").values_list("counts", flat=True).first()
    return _time_parse(counts.get(EVENTS_UNTIL_KEY)) if isinstance(counts, dict) else None


def _time_parse(value) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _events_not_in_ledger(events: Iterable[JournalEvent], *, limit: int) -> list[JournalEvent]:
    """The events whose id no ledger entry carries yet, at most `limit`, in the given order."""
    found: list[JournalEvent] = []
    for chunk in _chunks(events, _LOOKUP_CHUNK):
        known = _event_ids_in_ledger(chunk)
        for event in chunk:
            if event.id not in known:
                found.append(event)
                if len(found) >= limit:
                    return found
    return found


def _event_ids_in_ledger(events: list[JournalEvent]) -> set[int]:
    receipts = {event.receipt_id for event in events if event.receipt_id}
    orphans = [event for event in events if not event.receipt_id]
    known: set[int] = set()
    if receipts:
        known.update(
            LedgerEntry.objects.filter(receipt_id__in=receipts, kind__in=EVENT_KINDS).values_list(
                "payload__event_id", flat=True
            )
        )
    if orphans:
        # The pledge row was deleted (only an admin can): its entry, if any, still carries the
        # receipt we can no longer read. A scan of the campaign's entries, for this rare case.
        known.update(
            LedgerEntry.objects.filter(
                campaign_id__in={event.campaign_id for event in orphans},
                kind__in=EVENT_KINDS,
                payload__event_id__in=[event.id for event in orphans],
            ).values_list("payload__event_id", flat=True)
        )
    return known


def _chain_head(*, campaign_id: int) -> tuple[int, str]:
    """(sequence, entry_hash) of the campaign's last entry; (0, genesis) for an empty chain."""
    head = (
        LedgerEntry.objects.filter(campaign_id=campaign_id)
        .order_by("-sequence")
        .values_list("sequence", "entry_hash")
        .first()
    )
    return head if head is not None else (0, GENESIS_HASH)


def _events_append(
    *,
    events: list[JournalEvent],
    events_until: datetime,
    published_at: datetime,
    hook: Callable[[], None] | None = None,
) -> int:
    """Chain the events per campaign in the given order, insert them, publish digests."""
    by_campaign: dict[int, list[JournalEvent]] = defaultdict(list)
    for event in events:
        by_campaign[event.campaign_id].append(event)
    heads = {campaign_id: _chain_head(campaign_id=campaign_id) for campaign_id in by_campaign}
    if hook is not None:
        hook()
    entries = []
    for campaign_id, campaign_events in sorted(by_campaign.items()):
        sequence, previous_hash = heads[campaign_id]
        for event in campaign_events:
            sequence += 1
            entry = _entry_build(
                campaign_id=campaign_id,
                sequence=sequence,
                previous_hash=previous_hash,
                kind=event.kind,
                receipt_id=event.receipt_id,
                department_code=event.department_code,
                payload={"event_id": event.id, "delta": event.delta},
                occurred_at=event.occurred_at,
            )
            previous_hash = entry.entry_hash
            entries.append(entry)
    LedgerEntry.objects.bulk_create(entries, batch_size=_INSERT_BATCH)
    _digests_publish(campaign_ids=by_campaign, events_until=events_until, published_at=published_at)
    return len(by_campaign)


# --- Digests and counts -------------------------------------------------------------------------


def region_codes() -> dict[str, str]:
    return dict(Department.objects.values_list("code", "region__code"))


def counts_document(*, departments: dict[str, int], region_of: dict[str, str]) -> dict[str, dict[str, int]]:
    """{"department": {...}, "region": {...}, "nation": {"FR": n}} from department tallies; no zeros."""
    regions: dict[str, int] = defaultdict(int)
    for code, value in departments.items():
        if code in region_of:
            regions[region_of[code]] += value
    total = sum(departments.values())
    return {
        TerritoryLevel.DEPARTMENT.value: {
            code: value for code, value in sorted(departments.items()) if value
        },
        TerritoryLevel.REGION.value: {code: value for code, value in sorted(regions.items()) if value},
        TerritoryLevel.NATION.value: {NATION_CODE: total} if total else {},
    }


def _digests_publish(
    *, campaign_ids: Iterable[int], events_until: datetime | None, published_at: datetime
) -> list[LedgerDigest]:
    """One digest per campaign: its chain head and the counts the chain gives up to it.

    Counts = the previous digest's department counts + the deltas of the entries after it, read
    back from the ledger: constant cost per entry, and right even if a digest is missing (the
    previous one, or none at all, is then the base). A tampered digest would carry its error
    into the next ones; verify_ledger checks every digest against the chain and names them.
    """
    region_of = region_codes()
    digests = []
    for campaign_id in sorted(campaign_ids):
        sequence, head_hash = _chain_head(campaign_id=campaign_id)
        previous = (
            LedgerDigest.objects.filter(campaign_id=campaign_id)
            .order_by("-published_at", "-id")
            .values("sequence", "counts")
            .first()
        )
        departments: dict[str, int] = defaultdict(int)
        after = 0
        if previous is not None and previous["sequence"] <= sequence:
            departments.update(counts_normal(previous["counts"]).get(TerritoryLevel.DEPARTMENT.value, {}))
            after = previous["sequence"]
        for code, payload in LedgerEntry.objects.filter(
            campaign_id=campaign_id, sequence__gt=after, kind__in=EVENT_KINDS
        ).values_list("department_code", "payload"):
            departments[code] += entry_delta(payload)
        counts = counts_document(departments=departments, region_of=region_of)
        counts[EVENTS_UNTIL_KEY] = ledger_time(events_until) if events_until is not None else None
        digests.append(
            LedgerDigest(
                campaign_id=campaign_id,
                sequence=sequence,
                head_hash=head_hash,
                counts=counts,
                published_at=published_at,
            )
        )
    LedgerDigest.objects.bulk_create(digests)
    return digests


def ledger_counts(
    *, campaign: Campaign, occurred_until: datetime | None = None
) -> dict[tuple[str, str], int]:
    """(level, code) -> count recomputed from the campaign's ledger alone (no zeros)."""
    departments: dict[str, int] = defaultdict(int)
    entries = LedgerEntry.objects.filter(campaign=campaign, kind__in=EVENT_KINDS)
    if occurred_until is not None:
        entries = entries.filter(occurred_at__lte=occurred_until)
    for code, payload in entries.values_list("department_code", "payload").iterator(chunk_size=2000):
        departments[code] += entry_delta(payload)
    document = counts_document(departments=departments, region_of=region_codes())
    return {(level, code): value for level, values in document.items() for code, value in values.items()}


def digest_events_until(digest: LedgerDigest) -> datetime | None:
    return _time_parse(digest.counts.get(EVENTS_UNTIL_KEY)) if isinstance(digest.counts, dict) else None


def counts_normal(counts) -> dict[str, dict[str, int]]:
    """A digest's counts per level without zeros, whatever was stored (tolerant of tampering)."""
    if not isinstance(counts, dict):
        return {}
    normal = {}
    for level in TerritoryLevel.values:
        values = counts.get(level) or {}
        if not isinstance(values, dict):
            values = {}
        normal[level] = {
            str(code): value
            for code, value in values.items()
            if isinstance(value, int) and not isinstance(value, bool) and value
        }
    return normal


def entry_delta(payload) -> int:
    """An event entry's delta; 0 for a payload the ledger did not write (verify_ledger reports it)."""
    delta = payload.get("delta") if isinstance(payload, dict) else None
    return delta if isinstance(delta, int) and not isinstance(delta, bool) and delta in (-1, 0, 1) else 0
