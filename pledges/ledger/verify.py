"""verify_ledger: recompute the chains, and compare them with the digests, the journal and the counts."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from django.db import connection, transaction

from pledges.counting import COUNTER_STATE_PK
from pledges.enums import TerritoryLevel
from pledges.ledger.chain import (
    EVENT_KINDS,
    GENESIS_HASH,
    LATE_COMMIT_GRACE,
    RELEASE_KIND,
    counts_document,
    counts_normal,
    entry_hash_compute,
    journal_events,
    ledger_bookmark,
    ledger_time,
    region_codes,
)
from pledges.models import Campaign, CounterState, LedgerDigest, LedgerEntry, PledgeEvent, TerritoryCount


@dataclass(frozen=True)
class LedgerProblem:
    campaign: str
    sequence: int | None
    message: str

    def __str__(self) -> str:
        where = f"sequence {self.sequence}: " if self.sequence is not None else ""
        return f"[{self.campaign}] {where}{self.message}"


@dataclass
class CampaignVerification:
    slug: str
    entries: int = 0
    head_sequence: int = 0
    head_hash: str = GENESIS_HASH
    digests: int = 0
    latest_digest_sequence: int | None = None
    events: int = 0
    pending_events: int = 0
    problems: list[LedgerProblem] = field(default_factory=list)

    def problem(self, message: str, *, sequence: int | None = None) -> None:
        self.problems.append(LedgerProblem(campaign=self.slug, sequence=sequence, message=message))


@dataclass
class LedgerVerification:
    counted_until: datetime | None
    campaigns: list[CampaignVerification] = field(default_factory=list)

    @property
    def problems(self) -> list[LedgerProblem]:
        return [problem for campaign in self.campaigns for problem in campaign.problems]

    @property
    def ok(self) -> bool:
        return not self.problems


def ledger_verify(
    *, campaign: Campaign | None = None, grace: timedelta = LATE_COMMIT_GRACE
) -> LedgerVerification:
    """Check the chains, digests, journal and counts; read only.

    On PostgreSQL everything is read in one REPEATABLE READ snapshot (when not already inside a
    transaction), so that counts, bookmark, ledger and journal agree without taking any lock:
    counting and appending go on meanwhile. Steps per campaign:
    1. Read the published counts and counted_until first, then the digests, then the entries,
       then the journal: each later read sees at least what the earlier one implied.
    2. Walk the entries by sequence: a gap names deleted rows, a previous_hash that is not the
       prior entry's hash a broken link, a recomputed hash that differs a modified row. Each
       digest must name an existing sequence, its hash, and the counts summed up to it.
    3. Every journal event must be in the ledger once, with the same kind, delta, department,
       receipt and time; an entry whose event is not in the journal, or is twice in the
       ledger, was inserted. An event missing from the ledger is a problem when it is older than
       the bookmark minus the grace; younger, it is pending (the next tick appends it).
    4. The ledger's counts up to counted_until, plus the pending events, must equal TerritoryCount.
    """
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            return _ledger_verify(campaign=campaign, grace=grace)
    return _ledger_verify(campaign=campaign, grace=grace)


def _ledger_verify(*, campaign: Campaign | None, grace: timedelta) -> LedgerVerification:
    counted_until = (
        CounterState.objects.filter(pk=COUNTER_STATE_PK).values_list("counted_until", flat=True).first()
    )
    campaigns = [campaign] if campaign is not None else list(Campaign.objects.order_by("pk"))
    published: dict[int, dict[tuple[str, str], int]] = defaultdict(dict)
    for campaign_id, level, code, pledges in TerritoryCount.objects.filter(
        campaign__in=campaigns
    ).values_list("campaign_id", "level", "code", "pledges"):
        if pledges:
            published[campaign_id][(level, code)] = pledges
    bookmark = ledger_bookmark()
    region_of = region_codes()
    result = LedgerVerification(counted_until=counted_until)
    for item in campaigns:
        check = CampaignVerification(slug=item.slug)
        _campaign_verify(
            check=check,
            campaign=item,
            counted_until=counted_until,
            published=published[item.pk],
            bookmark=bookmark,
            grace=grace,
            region_of=region_of,
        )
        result.campaigns.append(check)
    return result


class _Seen(NamedTuple):
    sequence: int
    kind: str
    delta: int
    department_code: str
    receipt_id: str
    occurred_at: datetime


def _campaign_verify(
    *,
    check: CampaignVerification,
    campaign: Campaign,
    counted_until: datetime | None,
    published: dict[tuple[str, str], int],
    bookmark: datetime | None,
    grace: timedelta,
    region_of: dict[str, str],
) -> None:
    digests = list(
        LedgerDigest.objects.filter(campaign=campaign)
        .order_by("sequence", "id")
        .values_list("sequence", "head_hash", "counts")
    )
    check.digests = len(digests)
    if digests:
        check.latest_digest_sequence = max(sequence for sequence, _, _ in digests)
    next_digest = 0

    running: dict[str, int] = defaultdict(int)  # department -> sum of deltas so far
    up_to_counted: dict[str, int] = defaultdict(int)  # the same, for occurred_at <= counted_until
    seen: dict[int, list[_Seen]] = defaultdict(list)  # event id -> its entries
    last_event_at: datetime | None = None
    previous_sequence, previous_hash = 0, GENESIS_HASH
    entries = (
        LedgerEntry.objects.filter(campaign=campaign)
        .order_by("sequence")
        .values_list(
            "sequence",
            "kind",
            "receipt_id",
            "department_code",
            "payload",
            "occurred_at",
            "previous_hash",
            "entry_hash",
        )
    )
    for row in entries.iterator(chunk_size=2000):
        sequence, kind, receipt_id, department_code, payload, occurred_at, stored_previous, entry_hash = row
        check.entries += 1
        if sequence != previous_sequence + 1:
            missing = (
                f"sequence {previous_sequence + 1} is missing"
                if sequence == previous_sequence + 2
                else f"sequences {previous_sequence + 1} to {sequence - 1} are missing"
            )
            check.problem(f"gap in the chain: {missing} (deleted rows)", sequence=sequence)
        if stored_previous != previous_hash:
            check.problem(
                f"broken link: previous_hash is not the hash of sequence {previous_sequence} "
                "(a row was deleted, inserted or rewritten)",
                sequence=sequence,
            )
        recomputed = entry_hash_compute(
            campaign_id=campaign.pk,
            sequence=sequence,
            kind=kind,
            receipt_id=receipt_id,
            department_code=department_code,
            payload=payload,
            occurred_at=occurred_at,
            previous_hash=stored_previous,
        )
        if recomputed != entry_hash:
            check.problem("hash mismatch: the row was modified after it was written", sequence=sequence)
        # Link the next entry to the stored hash: one modified row is one problem, not a cascade.
        previous_sequence, previous_hash = sequence, entry_hash

        if kind in EVENT_KINDS:
            event_id = payload.get("event_id") if isinstance(payload, dict) else None
            delta = payload.get("delta", 0) if isinstance(payload, dict) else 0
            if not isinstance(event_id, int) or delta not in (-1, 0, 1):
                check.problem("event entry without a valid event_id and delta", sequence=sequence)
            else:
                seen[event_id].append(_Seen(sequence, kind, delta, department_code, receipt_id, occurred_at))
                running[department_code] += delta
                if counted_until is not None and occurred_at <= counted_until:
                    up_to_counted[department_code] += delta
                if last_event_at is None or occurred_at > last_event_at:
                    last_event_at = occurred_at
        elif kind != RELEASE_KIND:
            check.problem(f"unknown kind {kind!r}", sequence=sequence)

        while next_digest < len(digests) and digests[next_digest][0] <= sequence:
            digest_sequence, head_hash, counts = digests[next_digest]
            next_digest += 1
            if digest_sequence < sequence:
                check.problem(
                    "a digest names this sequence, which is not in the chain", sequence=digest_sequence
                )
                continue
            if head_hash != entry_hash:
                check.problem("the digest's head hash is not this entry's hash", sequence=sequence)
            expected = counts_document(departments=running, region_of=region_of)
            if not _counts_equal(counts, expected):
                check.problem(
                    f"the digest's counts differ from the ledger's: {_counts_diff(counts, expected)}",
                    sequence=sequence,
                )
    check.head_sequence, check.head_hash = previous_sequence, previous_hash
    for digest_sequence, _, _ in digests[next_digest:]:
        check.problem(
            f"a digest was published at this sequence but the chain ends at {previous_sequence} "
            "(the last rows were deleted)",
            sequence=digest_sequence,
        )

    _journal_verify(
        check=check,
        campaign=campaign,
        seen=seen,
        up_to_counted=up_to_counted,
        counted_until=counted_until,
        bookmark=max(filter(None, [bookmark, last_event_at]), default=None),
        grace=grace,
    )

    if counted_until is not None:
        expected = counts_document(departments=up_to_counted, region_of=region_of)
        from_ledger = {
            (level, code): value for level, values in expected.items() for code, value in values.items()
        }
        for key in sorted(from_ledger.keys() | published.keys()):
            if from_ledger.get(key, 0) != published.get(key, 0):
                check.problem(
                    f"published count for {key[0]} {key[1]} is {published.get(key, 0)}, "
                    f"the ledger gives {from_ledger.get(key, 0)} (counts_reconcile repairs a published count)"
                )


def _journal_verify(
    *,
    check: CampaignVerification,
    campaign: Campaign,
    seen: dict[int, list[_Seen]],
    up_to_counted: dict[str, int],
    counted_until: datetime | None,
    bookmark: datetime | None,
    grace: timedelta,
) -> None:
    """Every journal event in the ledger exactly once and as recorded; adds pending events' deltas."""
    remaining = dict(seen)
    for event in journal_events(PledgeEvent.objects.filter(campaign=campaign).order_by("id")):
        check.events += 1
        found = remaining.pop(event.id, None)
        if not found:
            if bookmark is not None and event.occurred_at <= bookmark - grace:
                check.problem(
                    f"journal event {event.id} ({ledger_time(event.occurred_at)}) is missing from the "
                    "ledger (a row was deleted, or a late commit awaits ledger_append_missing)"
                )
            else:
                check.pending_events += 1
            if counted_until is not None and event.occurred_at <= counted_until:
                up_to_counted[event.department_code] += event.delta
            continue
        if len(found) > 1:
            sequences = ", ".join(str(entry.sequence) for entry in found)
            check.problem(
                f"journal event {event.id} is in the ledger {len(found)} times, at sequences {sequences} "
                "(an inserted row)",
                sequence=found[1].sequence,
            )
        entry = found[0]
        differences = [
            name
            for name, recorded, actual in (
                ("kind", entry.kind, event.kind),
                ("delta", entry.delta, event.delta),
                ("department", entry.department_code, event.department_code),
                ("occurred_at", ledger_time(entry.occurred_at), ledger_time(event.occurred_at)),
                # A deleted pledge row leaves the event without its receipt: nothing to compare.
                ("receipt", entry.receipt_id, event.receipt_id or entry.receipt_id),
            )
            if recorded != actual
        ]
        if differences:
            check.problem(
                f"the entry differs from journal event {event.id} in: {', '.join(differences)}",
                sequence=entry.sequence,
            )
    for event_id, found in sorted(remaining.items(), key=lambda item: item[1][0].sequence):
        check.problem(
            f"the entry names journal event {event_id}, which does not exist in this campaign (an inserted row)",
            sequence=found[0].sequence,
        )


def _counts_equal(stored, expected: dict[str, dict[str, int]]) -> bool:
    return counts_normal(stored) == counts_normal(expected)


def _counts_diff(stored, expected: dict[str, dict[str, int]], limit: int = 5) -> str:
    stored, expected = counts_normal(stored), counts_normal(expected)
    differences = []
    for level in TerritoryLevel.values:
        for code in sorted(stored.get(level, {}).keys() | expected.get(level, {}).keys()):
            was, should_be = stored.get(level, {}).get(code, 0), expected.get(level, {}).get(code, 0)
            if was != should_be:
                differences.append(f"{level} {code}: digest {was}, ledger {should_be}")
    more = f" and {len(differences) - limit} more" if len(differences) > limit else ""
    return "; ".join(differences[:limit]) + more
