"""Reading the ledger: digests for the public, receipt lookups, the export anyone can recompute."""

import uuid
from dataclasses import dataclass
from datetime import datetime

from pledges.counting import NATION_CODE
from pledges.enums import PledgeEventKind, TerritoryLevel
from pledges.ledger.chain import RELEASE_KIND, counts_normal, ledger_time
from pledges.models import Campaign, LedgerDigest, LedgerEntry
from pledges.selectors import NATION_NAME, public_count
from territories.models import Department


def ledger_digest_latest(*, campaign: Campaign) -> LedgerDigest | None:
    return LedgerDigest.objects.filter(campaign=campaign).order_by("-published_at", "-id").first()


def ledger_digests_recent(*, campaign: Campaign, limit: int = 20) -> list[LedgerDigest]:
    return list(LedgerDigest.objects.filter(campaign=campaign).order_by("-published_at", "-id")[:limit])


def ledger_digest_public_counts(*, digest: LedgerDigest) -> dict:
    """The digest's counts as the public may see them: names, and 1 to 4 suppressed (public_count).

    {"nation": entry, "regions": [...], "departments": [...]}, each entry {"code", "name",
    "pledges" (None when suppressed), "suppressed"}; territories at 0 are left out.
    """
    counts = counts_normal(digest.counts)

    def entry(*, code: str, name: str, value: int) -> dict:
        shown = public_count(value)
        return {"code": code, "name": name, "pledges": shown, "suppressed": shown is None}

    departments = list(Department.objects.select_related("region").order_by("position"))
    regions = {department.region.code: department.region.name for department in departments}
    department_counts = counts.get(TerritoryLevel.DEPARTMENT.value, {})
    region_counts = counts.get(TerritoryLevel.REGION.value, {})
    return {
        "nation": entry(
            code=NATION_CODE,
            name=NATION_NAME,
            value=counts.get(TerritoryLevel.NATION.value, {}).get(NATION_CODE, 0),
        ),
        "regions": [
            entry(code=code, name=regions.get(code, code), value=value)
            for code, value in sorted(region_counts.items())
        ],
        "departments": [
            entry(code=department.code, name=department.name, value=department_counts[department.code])
            for department in departments
            if department.code in department_counts
        ],
    }


# --- Receipts -----------------------------------------------------------------------------------


def receipt_normalize(value: str) -> str | None:
    """The canonical text of a receipt id (lower case, with dashes), or None if it is not one."""
    try:
        return str(uuid.UUID(value.strip()))
    except (AttributeError, ValueError):
        return None


@dataclass(frozen=True)
class ReceiptEntry:
    sequence: int
    kind: str
    entry_hash: str
    occurred_at: datetime


@dataclass(frozen=True)
class ReceiptStatus:
    receipt_id: str
    included: bool
    # The "pledged" entry (the first entry when there is none): the receipt's hash.
    sequence: int | None = None
    entry_hash: str | None = None
    entries: tuple[ReceiptEntry, ...] = ()
    # The first published digest whose head covers the entry, and the latest digest.
    digest: LedgerDigest | None = None
    latest_digest: LedgerDigest | None = None
    letter_sha256: str | None = None

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(entry.kind for entry in self.entries)

    @property
    def included_in_digest(self) -> bool:
        return (
            self.sequence is not None
            and self.latest_digest is not None
            and self.latest_digest.sequence >= self.sequence
        )


def ledger_receipt_lookup(*, campaign: Campaign, receipt_id: str) -> ReceiptStatus:
    """Where a receipt stands in a campaign's ledger; not included when it is not a receipt id."""
    receipt = receipt_normalize(receipt_id)
    if receipt is None:
        return ReceiptStatus(receipt_id=str(receipt_id)[:36], included=False)
    entries = [
        ReceiptEntry(*row)
        for row in LedgerEntry.objects.filter(campaign=campaign, receipt_id=receipt)
        .order_by("sequence")
        .values_list("sequence", "kind", "entry_hash", "occurred_at")
    ]
    letter_sha256 = None
    if any(entry.kind == PledgeEventKind.RELEASED for entry in entries):
        # Only released signers pay for reading the release entries (one per territory).
        for sequence, entry_hash, occurred_at, payload in LedgerEntry.objects.filter(
            campaign=campaign, kind=RELEASE_KIND
        ).values_list("sequence", "entry_hash", "occurred_at", "payload"):
            letters = payload.get("letters") if isinstance(payload, dict) else None
            for letter in letters if isinstance(letters, list) else []:
                if isinstance(letter, list) and len(letter) == 2 and letter[0] == receipt:
                    letter_sha256 = letter[1]
                    entries.append(ReceiptEntry(sequence, RELEASE_KIND, entry_hash, occurred_at))
        entries.sort(key=lambda entry: entry.sequence)
    if not entries:
        return ReceiptStatus(receipt_id=receipt, included=False)
    main = next((entry for entry in entries if entry.kind == PledgeEventKind.PLEDGED), entries[0])
    # Digests are published after their entries: start the index scan at the entry's time.
    digest = (
        LedgerDigest.objects.filter(
            campaign=campaign, sequence__gte=main.sequence, published_at__gte=main.occurred_at
        )
        .order_by("published_at", "id")
        .first()
    )
    return ReceiptStatus(
        receipt_id=receipt,
        included=True,
        sequence=main.sequence,
        entry_hash=main.entry_hash,
        entries=tuple(entries),
        digest=digest,
        latest_digest=ledger_digest_latest(campaign=campaign),
        letter_sha256=letter_sha256,
    )


# --- Export -------------------------------------------------------------------------------------


def ledger_entries_page(*, campaign: Campaign, after: int, limit: int) -> list[dict]:
    """Entries with sequence > after, as exported: exactly the fields the hash covers, and the hash."""
    return [
        {
            "sequence": sequence,
            "kind": kind,
            "receipt_id": receipt_id,
            "department_code": department_code,
            "payload": payload,
            "occurred_at": ledger_time(occurred_at),
            "previous_hash": previous_hash,
            "entry_hash": entry_hash,
        }
        for sequence, kind, receipt_id, department_code, payload, occurred_at, previous_hash, entry_hash in (
            LedgerEntry.objects.filter(campaign=campaign, sequence__gt=after)
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
            )[:limit]
        )
    ]
