"""Counts anyone can verify: a tamper-evident hash chain of pledge events, receipts and digests.

Each campaign has one chain of `LedgerEntry` rows numbered 1, 2, 3... Entry N states one fact
(a pledge event, or the letters of a release) and carries the hash of entry N-1, so changing,
deleting or inserting a row breaks every later link. No personal data goes in: a pledge appears
only through its random receipt id, which only the signer knows to be theirs.

1. Appending happens off the request path: appending on each signature would serialise every
   signer on the chain head, the hot row the counting design avoids (pledges.counting). The
   counting tick calls `ledger_append_pending` right after `counts_update`:
   a. Open a transaction and take the ledger advisory lock without waiting (PostgreSQL; SQLite
      writers are serialised by BEGIN IMMEDIATE). Another runner holds it: return `skipped`.
      A separate lock from counting's, so that appending never delays a count.
   b. Read `CounterState.counted_until` (the ledger never gets ahead of the published counts)
      and the bookmark: `events_until` of the latest digest, the moment up to which the ledger
      held every committed event when that digest was published.
   c. Candidates = events with occurred_at in (bookmark - LATE_COMMIT_GRACE, counted_until], in
      (occurred_at, id) order. The grace overlap re-reads recent events so that a transaction
      that committed after a run had passed its occurred_at is still appended by a later run.
   d. Anti-join: drop the candidates whose event id is already in the ledger (payload
      "event_id"), found through the indexed receipt id, a few entries per pledge. Why not a
      bare bookmark: event ids and occurred_at are assigned before commit, so neither is
      monotonic in commit order, and a bookmark alone would skip late commits. Why not the
      whole ledger: that costs what the ledger holds, at every tick. Each event is read by at
      most (grace + interval) / interval runs: the cost per event stays constant.
   e. Per campaign, number the new events from the chain head, hash each entry over the
      previous one, bulk-insert them (MAX_ENTRIES_PER_RUN per run bounds a backlog).
   f. Publish one `LedgerDigest` per campaign that got entries: head sequence and hash, counts
      per department, region and nation recomputed from the ledger (the previous digest's
      counts plus the deltas of the entries after it), and `events_until`.
   A late commit older than the grace (a transaction open for more than 30 s, or back-dated
   demo data) is left to `ledger_append_missing`, the hourly repair: a full anti-join, like
   `counts_reconcile` for counts. The unique (campaign, sequence) constraint means that even
   without the lock, two appenders could not fork a chain: one would fail.
2. Hashing: entry_hash = SHA-256 of the UTF-8 canonical JSON (keys sorted, separators "," and
   ":", non-ASCII kept) of {"campaign": campaign id, "sequence", "kind", "receipt_id",
   "department_code", "payload", "occurred_at": ISO-8601 UTC with microseconds and "Z",
   "previous_hash"}. The genesis previous_hash is 64 zeros. The campaign id, not its slug: an
   organizer can rename a slug, and that must not break the chain.
3. Receipts: a signer's receipt is (receipt_id, entry_hash of their "pledged" entry).
   `ledger_receipt_lookup` says whether it is in the chain and whether a published digest
   covers it (the latest digest's sequence >= the entry's sequence).
4. Releases: `ledger_append_release` appends one "letters_released" entry per release with the
   SHA-256 of each released letter under its receipt id, so a signer can check that the letter
   sent is the one generated; idempotent.
5. `ledger_verify` (command `verify_ledger`) recomputes every hash and link, checks each digest
   against the chain, checks that every journal event up to the bookmark is in the ledger
   exactly once and matches it, and compares the ledger's counts with TerritoryCount.

Modules: chain (hashing, appending, digests), reading (receipts, public digests, export),
verify (verification). Import from pledges.ledger.
"""

from pledges.ledger.chain import (
    EVENT_KINDS,
    GENESIS_HASH,
    LATE_COMMIT_GRACE,
    LEDGER_LOCK_KEY,
    MAX_ENTRIES_PER_RUN,
    RELEASE_KIND,
    LedgerAppendResult,
    canonical_json,
    counts_document,
    counts_normal,
    digest_events_until,
    entry_hash_compute,
    ledger_append_missing,
    ledger_append_pending,
    ledger_append_release,
    ledger_counts,
    ledger_time,
)
from pledges.ledger.reading import (
    ReceiptEntry,
    ReceiptStatus,
    ledger_digest_latest,
    ledger_digest_public_counts,
    ledger_digests_recent,
    ledger_entries_page,
    ledger_receipt_lookup,
    receipt_normalize,
)
from pledges.ledger.verify import CampaignVerification, LedgerProblem, LedgerVerification, ledger_verify

__all__ = [
    "EVENT_KINDS",
    "GENESIS_HASH",
    "LATE_COMMIT_GRACE",
    "LEDGER_LOCK_KEY",
    "MAX_ENTRIES_PER_RUN",
    "RELEASE_KIND",
    "CampaignVerification",
    "LedgerAppendResult",
    "LedgerProblem",
    "LedgerVerification",
    "ReceiptEntry",
    "ReceiptStatus",
    "canonical_json",
    "counts_document",
    "counts_normal",
    "digest_events_until",
    "entry_hash_compute",
    "ledger_append_missing",
    "ledger_append_pending",
    "ledger_append_release",
    "ledger_counts",
    "ledger_digest_latest",
    "ledger_digest_public_counts",
    "ledger_digests_recent",
    "ledger_entries_page",
    "ledger_receipt_lookup",
    "ledger_time",
    "ledger_verify",
    "receipt_normalize",
]
