"""The public ledger: a valid chain after each count, every event once, tampering detected, receipts, pages."""

import hashlib
import io
import itertools
import json
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from pledges.counting import counts_reconcile, counts_update
from pledges.enums import CampaignStatus, PledgeEventKind, PledgeStatus
from pledges.events import pledge_event_record, pledge_move_record
from pledges.ledger import (
    GENESIS_HASH,
    RELEASE_KIND,
    entry_hash_compute,
    ledger_append_missing,
    ledger_append_pending,
    ledger_append_release,
    ledger_counts,
    ledger_receipt_lookup,
    ledger_time,
    ledger_verify,
)
from pledges.models import (
    CounterState,
    LedgerDigest,
    LedgerEntry,
    Letter,
    Pledge,
    PledgeEvent,
    Release,
    TerritoryCount,
)
from pledges.tasks import counts_tick
from territories.models import Department, Region
from tests.pledges.counting_support import (
    counter_settings,
    pledge_sign,
    pledge_withdraw,
    published,
    run_in_threads,
    surge_signer,
)
from tests.pledges.factories import CampaignFactory, LetterVersionFactory, UserFactory

# A signer whose details must never reach a public page.
DISTINCTIVE = {
    "first_name": "Zéphyrine",
    "last_name": "Quenouille-Bartholdi",
    "rpps": "12345678903",
    "city": "Saint-Glinglin-sur-Vire",
}


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture
def departments(db):
    ara = Region.objects.create(code="84", name="Auvergne-Rhône-Alpes")
    idf = Region.objects.create(code="11", name="Île-de-France")
    return {
        "01": Department.objects.create(code="01", name="Ain", region=ara, position=1),
        "03": Department.objects.create(code="03", name="Allier", region=ara, position=3),
        "75": Department.objects.create(code="75", name="Paris", region=idf, position=76),
    }


@pytest.fixture
def campaign_with_letter(db):
    campaign = CampaignFactory()
    LetterVersionFactory(campaign=campaign)
    return campaign


def tick() -> int:
    """A counting tick: count, then append what was counted; returns the entries appended."""
    counts_update()
    return ledger_append_pending().entries


def chain(campaign) -> list[LedgerEntry]:
    return list(LedgerEntry.objects.filter(campaign=campaign).order_by("sequence"))


def verify_output(**options) -> tuple[bool, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_ledger", stdout=out, stderr=err, **options)
    except CommandError as error:
        return False, out.getvalue(), err.getvalue() + str(error)
    return True, out.getvalue(), err.getvalue()


def recompute_from_export(client, campaign) -> str:
    """What an outsider does with the JSON export (the page's Python program); returns the head."""
    url = reverse("pledges:ledger_export", kwargs={"slug": campaign.slug})
    previous = "0" * 64
    while url:
        page = client.get(url).json()
        for entry in page["entries"]:
            document = {
                "campaign": page["campaign"]["id"],
                "sequence": entry["sequence"],
                "kind": entry["kind"],
                "receipt_id": entry["receipt_id"],
                "department_code": entry["department_code"],
                "payload": entry["payload"],
                "occurred_at": entry["occurred_at"],
                "previous_hash": previous,
            }
            text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            assert entry["previous_hash"] == previous, entry["sequence"]
            assert hashlib.sha256(text.encode()).hexdigest() == entry["entry_hash"], entry["sequence"]
            previous = entry["entry_hash"]
        url = page["next"] and page["next"].removeprefix("http://testserver")
    return previous


@pytest.fixture
def signed(departments, campaign_with_letter):
    """Four signatures in 01, 01, 03, 75, the first withdrawn; counted and appended (5 entries)."""
    counter_settings(lag_seconds=0)
    pledges = [
        pledge_sign(campaign=campaign_with_letter, department=departments[code])
        for code in ("01", "01", "03", "75")
    ]
    pledge_withdraw(pledge_id=pledges[0].pk)
    assert tick() == 5
    return pledges


# --- appending ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_appending_after_counting_chains_each_counted_event_with_its_receipt(signed, campaign_with_letter):
    entries = chain(campaign_with_letter)
    events = list(PledgeEvent.objects.order_by("occurred_at", "id"))

    assert [entry.sequence for entry in entries] == [1, 2, 3, 4, 5]
    assert [entry.kind for entry in entries] == ["pledged"] * 4 + ["withdrawn"]
    assert [entry.payload for entry in entries] == [{"event_id": e.pk, "delta": e.delta} for e in events]
    assert [entry.department_code for entry in entries] == ["01", "01", "03", "75", "01"]
    assert entries[0].receipt_id == entries[4].receipt_id == str(signed[0].receipt_id)
    assert entries[0].previous_hash == GENESIS_HASH
    for previous, entry in itertools.pairwise(entries):
        assert entry.previous_hash == previous.entry_hash
    for entry in entries:
        assert entry.entry_hash == entry_hash_compute(
            campaign_id=campaign_with_letter.pk,
            sequence=entry.sequence,
            kind=entry.kind,
            receipt_id=entry.receipt_id,
            department_code=entry.department_code,
            payload=entry.payload,
            occurred_at=entry.occurred_at,
            previous_hash=entry.previous_hash,
        )


@pytest.mark.django_db
def test_each_run_publishes_a_digest_of_the_head_and_the_counts_from_the_ledger(signed, campaign_with_letter):
    digest = LedgerDigest.objects.get(campaign=campaign_with_letter)
    head = chain(campaign_with_letter)[-1]

    assert (digest.sequence, digest.head_hash) == (5, head.entry_hash)
    assert digest.counts["department"] == {"01": 1, "03": 1, "75": 1}
    assert digest.counts["region"] == {"84": 2, "11": 1}
    assert digest.counts["nation"] == {"FR": 3}
    assert digest.counts["events_until"] == ledger_time(CounterState.objects.get().counted_until)


@pytest.mark.django_db
def test_a_second_run_appends_nothing_and_publishes_no_digest(signed, campaign_with_letter):
    assert tick() == 0
    assert ledger_append_pending().entries == 0

    assert len(chain(campaign_with_letter)) == 5
    assert LedgerDigest.objects.count() == 1


@pytest.mark.django_db
def test_the_ledger_never_gets_ahead_of_the_published_counts(departments, campaign_with_letter):
    counter_settings(lag_seconds=3600)
    pledge_sign(campaign=campaign_with_letter, department=departments["01"])

    assert tick() == 0
    assert chain(campaign_with_letter) == []

    counter_settings(lag_seconds=0)
    assert tick() == 1


@pytest.mark.django_db
def test_later_runs_continue_the_chain_and_digests_add_up(signed, departments, campaign_with_letter):
    pledge_sign(campaign=campaign_with_letter, department=departments["75"])
    pledge_withdraw(pledge_id=signed[3].pk)
    assert tick() == 2

    entries = chain(campaign_with_letter)
    latest = LedgerDigest.objects.filter(campaign=campaign_with_letter).latest("id")
    assert [entry.sequence for entry in entries] == [1, 2, 3, 4, 5, 6, 7]
    assert entries[5].previous_hash == entries[4].entry_hash
    assert (latest.sequence, latest.head_hash) == (7, entries[6].entry_hash)
    assert latest.counts["department"] == {"01": 1, "03": 1, "75": 1}
    assert ledger_counts(campaign=campaign_with_letter) == published(campaign_with_letter)


@pytest.mark.django_db
def test_a_move_is_two_entries_and_the_counts_follow(signed, departments, campaign_with_letter):
    pledge = signed[1]
    with transaction.atomic():
        Pledge.objects.filter(pk=pledge.pk).update(department=departments["75"])
        pledge.refresh_from_db()
        pledge_move_record(pledge=pledge, old_department_id=departments["01"].pk)
    assert tick() == 2

    moves = [entry for entry in chain(campaign_with_letter) if entry.kind == "moved"]
    assert [(entry.department_code, entry.payload["delta"]) for entry in moves] == [("01", -1), ("75", 1)]
    assert ledger_counts(campaign=campaign_with_letter) == published(campaign_with_letter)
    assert ledger_counts(campaign=campaign_with_letter)[("department", "75")] == 2


@pytest.mark.django_db
def test_each_campaign_has_its_own_chain(signed, departments, campaign_with_letter):
    other = CampaignFactory()
    LetterVersionFactory(campaign=other)
    pledge_sign(campaign=other, department=departments["03"])
    pledge_sign(campaign=campaign_with_letter, department=departments["03"])
    assert tick() == 2

    assert [entry.sequence for entry in chain(other)] == [1]
    assert chain(other)[0].previous_hash == GENESIS_HASH
    assert [entry.sequence for entry in chain(campaign_with_letter)] == [1, 2, 3, 4, 5, 6]
    assert ledger_verify().ok


@pytest.mark.django_db
def test_a_backlog_is_appended_in_bounded_runs_without_skipping(departments, campaign_with_letter):
    counter_settings(lag_seconds=0)
    for index in range(7):
        pledge_sign(campaign=campaign_with_letter, department=departments[("01", "75")[index % 2]])
    counts_update()

    runs = [ledger_append_pending(max_entries=3).entries for _ in range(4)]

    assert runs == [3, 3, 1, 0]
    assert sorted(entry.payload["event_id"] for entry in chain(campaign_with_letter)) == sorted(
        PledgeEvent.objects.values_list("id", flat=True)
    )
    assert ledger_verify().ok


@pytest.mark.django_db
def test_counts_tick_appends_to_the_ledger_after_counting(departments, campaign_with_letter):
    counter_settings(lag_seconds=0)
    pledge_sign(campaign=campaign_with_letter, department=departments["01"])

    assert counts_tick()["events"] == 1

    assert [entry.kind for entry in chain(campaign_with_letter)] == ["pledged"]


@pytest.mark.django_db
def test_an_event_older_than_the_grace_waits_for_the_repair(signed, departments, campaign_with_letter):
    # A transaction that stayed open for minutes: its event is far behind the ledger's bookmark.
    late = pledge_sign(campaign=campaign_with_letter, department=departments["03"])
    PledgeEvent.objects.filter(pledge=late).update(occurred_at=timezone.now() - timedelta(minutes=10))

    assert tick() == 0
    ok, _, err = verify_output()
    assert not ok
    event_id = PledgeEvent.objects.get(pledge=late).pk
    assert f"journal event {event_id} " in err and "is missing from the ledger" in err

    assert ledger_append_missing().entries == 1
    assert ledger_append_missing().entries == 0
    counts_reconcile()  # the count missed it too
    assert chain(campaign_with_letter)[-1].payload["event_id"] == event_id
    assert verify_output()[0]


# --- verification -------------------------------------------------------------------------


@pytest.mark.django_db
def test_verify_ledger_passes_on_an_untouched_ledger(signed, campaign_with_letter):
    ok, out, err = verify_output()

    assert ok, err
    assert f"{campaign_with_letter.slug}: 5 entries, head 5" in out
    assert "0 problems" in out
    assert "The ledger verifies." in out
    assert verify_output(campaign=campaign_with_letter.slug)[0]


@pytest.mark.django_db
def test_verify_ledger_rejects_an_unknown_campaign():
    with pytest.raises(CommandError, match="No campaign"):
        call_command("verify_ledger", campaign="nope", stdout=io.StringIO())


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change",
    [{"payload": {"event_id": 0, "delta": 1}}, {"department_code": "75"}, {"kind": "reinstated"}],
    ids=["payload", "department", "kind"],
)
def test_verify_ledger_names_a_modified_row(signed, campaign_with_letter, change):
    entry = chain(campaign_with_letter)[1]
    if "payload" in change:
        change = {"payload": {"event_id": entry.payload["event_id"], "delta": -1}}
    LedgerEntry.objects.filter(pk=entry.pk).update(**change)

    ok, _, err = verify_output()

    assert not ok
    assert "sequence 2: hash mismatch: the row was modified" in err
    assert "The ledger does not verify" in err


@pytest.mark.django_db
def test_verify_ledger_names_a_modified_row_even_when_its_hash_was_recomputed(signed, campaign_with_letter):
    entry = chain(campaign_with_letter)[1]
    forged = entry_hash_compute(
        campaign_id=campaign_with_letter.pk,
        sequence=2,
        kind=entry.kind,
        receipt_id=entry.receipt_id,
        department_code="75",
        payload=entry.payload,
        occurred_at=entry.occurred_at,
        previous_hash=entry.previous_hash,
    )
    LedgerEntry.objects.filter(pk=entry.pk).update(department_code="75", entry_hash=forged)

    ok, _, err = verify_output()

    assert not ok
    assert "sequence 3: broken link: previous_hash is not the hash of sequence 2" in err
    assert (
        f"sequence 2: the entry differs from journal event {entry.payload['event_id']} in: department" in err
    )


@pytest.mark.django_db
def test_verify_ledger_names_a_deleted_row(signed, campaign_with_letter):
    deleted = chain(campaign_with_letter)[2]
    LedgerEntry.objects.filter(pk=deleted.pk).delete()

    ok, _, err = verify_output(grace=0)  # strict: a young event could otherwise be a late commit

    assert not ok
    assert "sequence 4: gap in the chain: sequence 3 is missing (deleted rows)" in err
    assert "sequence 4: broken link" in err
    assert f"journal event {deleted.payload['event_id']} " in err


@pytest.mark.django_db
def test_verify_ledger_names_deleted_last_rows_from_the_digest(signed, campaign_with_letter):
    LedgerEntry.objects.filter(campaign=campaign_with_letter, sequence=5).delete()

    ok, _, err = verify_output()

    assert not ok
    assert "sequence 5: a digest was published at this sequence but the chain ends at 4" in err


@pytest.mark.django_db
def test_verify_ledger_names_an_inserted_row(signed, campaign_with_letter):
    # Make room after sequence 2 (one row at a time, from the end: the sequence is unique).
    for entry in reversed(chain(campaign_with_letter)[2:]):
        LedgerEntry.objects.filter(pk=entry.pk).update(sequence=entry.sequence + 1)
    second = chain(campaign_with_letter)[1]
    fields = {
        "kind": "pledged",
        "receipt_id": "00000000-0000-4000-8000-000000000000",
        "department_code": "75",
        "payload": {"event_id": 999_999, "delta": 1},
        "occurred_at": second.occurred_at,
    }
    LedgerEntry.objects.create(
        campaign=campaign_with_letter,
        sequence=3,
        previous_hash=second.entry_hash,
        entry_hash=entry_hash_compute(
            campaign_id=campaign_with_letter.pk, sequence=3, previous_hash=second.entry_hash, **fields
        ),
        **fields,
    )

    ok, _, err = verify_output()

    assert not ok
    assert "sequence 4: broken link: previous_hash is not the hash of sequence 3" in err
    assert "sequence 3: the entry names journal event 999999, which does not exist" in err


@pytest.mark.django_db
def test_verify_ledger_names_a_duplicated_event_appended_with_a_valid_hash(signed, campaign_with_letter):
    head = chain(campaign_with_letter)[-1]
    copied = chain(campaign_with_letter)[1]
    fields = {
        "kind": copied.kind,
        "receipt_id": copied.receipt_id,
        "department_code": copied.department_code,
        "payload": copied.payload,
        "occurred_at": copied.occurred_at,
    }
    LedgerEntry.objects.create(
        campaign=campaign_with_letter,
        sequence=6,
        previous_hash=head.entry_hash,
        entry_hash=entry_hash_compute(
            campaign_id=campaign_with_letter.pk, sequence=6, previous_hash=head.entry_hash, **fields
        ),
        **fields,
    )

    ok, _, err = verify_output()

    assert not ok
    assert (
        f"sequence 6: journal event {copied.payload['event_id']} is in the ledger 2 times, at sequences 2, 6"
        in err
    )


@pytest.mark.django_db
def test_verify_ledger_names_a_tampered_digest_and_a_drifted_count(signed, campaign_with_letter):
    LedgerDigest.objects.update(counts={"department": {"01": 9}, "region": {}, "nation": {}})
    TerritoryCount.objects.filter(campaign=campaign_with_letter, level="nation").update(pledges=40)

    ok, _, err = verify_output()

    assert not ok
    assert (
        "sequence 5: the digest's counts differ from the ledger's: department 01: digest 9, ledger 1" in err
    )
    assert "published count for nation FR is 40, the ledger gives 3" in err


@pytest.mark.django_db
def test_a_tampered_digest_never_stops_appending_and_is_named(signed, departments, campaign_with_letter):
    LedgerDigest.objects.update(counts={"department": {"01": "many"}, "nation": None})
    pledge_sign(campaign=campaign_with_letter, department=departments["75"])

    assert tick() == 1

    ok, _, err = verify_output()
    assert not ok
    assert "sequence 5: the digest's counts differ from the ledger's" in err


def test_the_ledger_repair_task_is_registered_by_name():
    from deconv.celery import app

    app.loader.import_default_modules()

    assert "pledges.ledger_repair" in app.tasks


@pytest.mark.django_db
def test_counts_from_the_ledger_equal_the_published_counts(signed, departments, campaign_with_letter):
    for index in range(12):
        pledge_sign(campaign=campaign_with_letter, department=departments[("01", "03", "75")[index % 3]])
    tick()

    assert ledger_counts(campaign=campaign_with_letter) == published(campaign_with_letter)
    assert published(campaign_with_letter)[("nation", "FR")] == 15


@pytest.mark.django_db
def test_events_counted_but_not_yet_appended_are_pending_not_problems(
    signed, departments, campaign_with_letter
):
    pledge_sign(campaign=campaign_with_letter, department=departments["01"])
    counts_update()  # the ledger's turn has not come yet

    result = ledger_verify()

    assert result.ok, result.problems
    assert result.campaigns[0].pending_events == 1


# --- releases -----------------------------------------------------------------------------


def _release_with_letters(*, campaign, pledges) -> Release:
    release = Release.objects.create(
        campaign=campaign,
        level="department",
        code="01",
        released_at=timezone.now(),
        pledge_count=len(pledges),
    )
    for index, pledge in enumerate(pledges):
        Letter.objects.create(
            pledge=pledge,
            release=release,
            file_name=f"letter-{index}.pdf",
            sha256=f"{index:x}" * 64,
            inputs_sha256="0" * 64,
            size_bytes=1000,
            generated_at=timezone.now(),
        )
    return release


@pytest.mark.django_db
def test_ledger_append_release_records_each_letter_hash_once(signed, departments, campaign_with_letter):
    released = [signed[1], pledge_sign(campaign=campaign_with_letter, department=departments["01"])]
    tick()
    for pledge in released:
        with transaction.atomic():
            Pledge.objects.filter(pk=pledge.pk).update(status=PledgeStatus.RELEASED)
            pledge_event_record(pledge=pledge, kind=PledgeEventKind.RELEASED)
    tick()
    release = _release_with_letters(campaign=campaign_with_letter, pledges=released)

    first = ledger_append_release(release=release)
    again = ledger_append_release(release=release)

    assert again.pk == first.pk
    assert LedgerEntry.objects.filter(kind=RELEASE_KIND).count() == 1
    assert (first.sequence, first.previous_hash) == (9, chain(campaign_with_letter)[7].entry_hash)
    assert first.payload["letters"] == sorted(
        [str(p.receipt_id), f"{i:x}" * 64] for i, p in enumerate(released)
    )
    assert LedgerDigest.objects.filter(campaign=campaign_with_letter).latest("id").sequence == 9
    status = ledger_receipt_lookup(campaign=campaign_with_letter, receipt_id=str(released[1].receipt_id))
    assert status.letter_sha256 == "1" * 64
    assert status.kinds == ("pledged", "released", RELEASE_KIND)
    assert ledger_verify().ok


@pytest.mark.django_db
def test_ledger_append_release_waits_for_letters(signed, campaign_with_letter):
    release = _release_with_letters(campaign=campaign_with_letter, pledges=[])

    assert ledger_append_release(release=release) is None
    assert not LedgerEntry.objects.filter(kind=RELEASE_KIND).exists()


# --- receipts -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_receipt_lookup_finds_an_included_receipt_and_its_digest(signed, campaign_with_letter):
    pledge = signed[0]
    entries = chain(campaign_with_letter)

    status = ledger_receipt_lookup(campaign=campaign_with_letter, receipt_id=str(pledge.receipt_id).upper())

    assert status.included
    assert (status.sequence, status.entry_hash) == (1, entries[0].entry_hash)
    assert status.kinds == ("pledged", "withdrawn")
    assert status.included_in_digest
    assert status.digest.sequence == 5


@pytest.mark.django_db
@pytest.mark.parametrize("receipt", ["6f1c2f9e-1b7a-4c8e-9d3f-2a5b7c9e1f00", "not-a-receipt", ""])
def test_receipt_lookup_does_not_include_an_unknown_or_malformed_receipt(
    signed, campaign_with_letter, receipt
):
    status = ledger_receipt_lookup(campaign=campaign_with_letter, receipt_id=receipt)

    assert not status.included
    assert (status.sequence, status.entry_hash, status.kinds) == (None, None, ())
    assert not status.included_in_digest


@pytest.mark.django_db
def test_a_receipt_of_another_campaign_is_not_included(signed, campaign_with_letter):
    other = CampaignFactory()

    assert not ledger_receipt_lookup(campaign=other, receipt_id=str(signed[1].receipt_id)).included


@pytest.mark.django_db
def test_receipt_signed_after_the_latest_digest_is_not_yet_included(
    signed, departments, campaign_with_letter
):
    pledge = pledge_sign(campaign=campaign_with_letter, department=departments["75"])

    assert not ledger_receipt_lookup(
        campaign=campaign_with_letter, receipt_id=str(pledge.receipt_id)
    ).included
    tick()
    assert ledger_receipt_lookup(campaign=campaign_with_letter, receipt_id=str(pledge.receipt_id)).included


# --- pages --------------------------------------------------------------------------------


@pytest.fixture
def distinctive(departments, campaign_with_letter):
    """A signer with details that must never be published, counted and appended."""
    counter_settings(lag_seconds=0)
    user = UserFactory(email="zephyrine.quenouille@example.org")
    pledge = pledge_sign(
        campaign=campaign_with_letter, department=departments["03"], user=user, **DISTINCTIVE
    )
    for _ in range(5):
        pledge_sign(campaign=campaign_with_letter, department=departments["75"])
    tick()
    return pledge


def _assert_no_personal_data(content: bytes) -> None:
    text = content.decode()
    for value in [*DISTINCTIVE.values(), "zephyrine.quenouille", "Quenouille"]:
        assert value not in text


@pytest.mark.django_db
def test_ledger_page_shows_the_latest_digest_in_french_without_personal_data(client, distinctive):
    campaign = distinctive.campaign
    digest = LedgerDigest.objects.get(campaign=campaign)

    response = client.get(reverse("pledges:ledger", kwargs={"slug": campaign.slug}))

    assert response.status_code == 200
    content = response.content.decode()
    assert '<html lang="fr">' in content
    assert digest.head_hash in content
    assert f"{reverse('pledges:ledger_export', kwargs={'slug': campaign.slug})}" in content
    # Paris has 5: shown; Allier has 1: suppressed, never printed as a number.
    assert response.context["counts"]["departments"] == [
        {"code": "03", "name": "Allier", "pledges": None, "suppressed": True},
        {"code": "75", "name": "Paris", "pledges": 5, "suppressed": False},
    ]
    assert response.context["counts"]["nation"]["pledges"] == 6
    _assert_no_personal_data(response.content)


@pytest.mark.django_db
def test_ledger_page_before_any_entry_says_so(client, campaign_with_letter):
    response = client.get(reverse("pledges:ledger", kwargs={"slug": campaign_with_letter.slug}))

    assert response.status_code == 200
    assert response.context["latest"] is None and response.context["digests"] == []


@pytest.mark.django_db
def test_ledger_pages_of_a_draft_campaign_are_not_found(client, campaign_with_letter):
    campaign_with_letter.status = CampaignStatus.DRAFT
    campaign_with_letter.save()
    slug = campaign_with_letter.slug

    assert client.get(reverse("pledges:ledger", kwargs={"slug": slug})).status_code == 404
    assert client.get(reverse("pledges:ledger_verify", kwargs={"slug": slug})).status_code == 404
    response = client.get(reverse("pledges:ledger_export", kwargs={"slug": slug}))
    assert (response.status_code, response.json()) == (404, {"error": "campaign not found"})


@pytest.mark.django_db
def test_verify_page_says_a_receipt_is_included_and_in_which_digest(client, distinctive):
    campaign = distinctive.campaign
    status = ledger_receipt_lookup(campaign=campaign, receipt_id=str(distinctive.receipt_id))

    response = client.get(
        reverse("pledges:ledger_verify", kwargs={"slug": campaign.slug}),
        {"receipt": str(distinctive.receipt_id)},
    )

    assert response.status_code == 200
    assert response.context["status"].included
    content = response.content.decode()
    assert status.entry_hash in content
    assert status.digest.head_hash in content
    assert '<html lang="fr">' in content
    _assert_no_personal_data(response.content)


@pytest.mark.django_db
def test_verify_page_handles_unknown_and_malformed_receipts_without_error(client, distinctive):
    url = reverse("pledges:ledger_verify", kwargs={"slug": distinctive.campaign.slug})

    unknown = client.get(url, {"receipt": "6f1c2f9e-1b7a-4c8e-9d3f-2a5b7c9e1f00"})
    malformed = client.get(url, {"receipt": "<script>" + "x" * 500})
    empty = client.get(url)

    assert unknown.status_code == malformed.status_code == empty.status_code == 200
    assert not unknown.context["status"].included
    assert malformed.context["invalid"] and malformed.context["status"] is None
    assert b'aria-invalid="true"' in malformed.content
    assert b"<script>" not in malformed.content
    assert empty.context["status"] is None and not empty.context["invalid"]


@pytest.mark.django_db
def test_verify_page_is_rate_limited_per_ip(client, distinctive, settings):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ledger"}
    }
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "ledger_verify": {"per_ip": "2/m"}}
    url = reverse("pledges:ledger_verify", kwargs={"slug": distinctive.campaign.slug})

    statuses = [client.get(url, {"receipt": str(distinctive.receipt_id)}).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]


@pytest.mark.django_db
def test_ledger_export_lets_anyone_recompute_the_chain_without_personal_data(client, distinctive):
    campaign = distinctive.campaign

    response = client.get(reverse("pledges:ledger_export", kwargs={"slug": campaign.slug}))

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    body = response.json()
    assert set(body["entries"][0]) == {
        "sequence",
        "kind",
        "receipt_id",
        "department_code",
        "payload",
        "occurred_at",
        "previous_hash",
        "entry_hash",
    }
    assert body["next"] is None
    assert recompute_from_export(client, campaign) == LedgerDigest.objects.get(campaign=campaign).head_hash
    _assert_no_personal_data(response.content)


@pytest.mark.django_db
def test_ledger_export_pages_follow_next(client, distinctive, monkeypatch):
    monkeypatch.setattr("pledges.views.ledger.EXPORT_PAGE_SIZE", 4)
    campaign = distinctive.campaign
    url = reverse("pledges:ledger_export", kwargs={"slug": campaign.slug})

    first = client.get(url).json()
    second = client.get(url, {"after": "4"}).json()

    assert [entry["sequence"] for entry in first["entries"]] == [1, 2, 3, 4]
    assert first["next"].endswith(f"{url}?after=4")
    assert [entry["sequence"] for entry in second["entries"]] == [5, 6]
    assert second["next"] is None
    assert recompute_from_export(client, campaign) == chain(campaign)[-1].entry_hash


@pytest.mark.django_db
@pytest.mark.parametrize("after", ["-1", "abc", "1" * 30])
def test_ledger_export_refuses_a_bad_after_with_400(client, distinctive, after):
    url = reverse("pledges:ledger_export", kwargs={"slug": distinctive.campaign.slug})

    response = client.get(url, {"after": after})

    assert response.status_code == 400
    assert response.json() == {"error": "after must be a sequence number (0 or more)"}


@pytest.mark.django_db
def test_my_pledge_shows_the_receipt_and_its_entry_hash(client, distinctive):
    campaign = distinctive.campaign
    client.force_login(distinctive.user)
    entry = LedgerEntry.objects.get(receipt_id=str(distinctive.receipt_id))

    response = client.get(reverse("pledges:pledge_mine", kwargs={"slug": campaign.slug}))

    assert response.status_code == 200
    content = response.content.decode()
    assert str(distinctive.receipt_id) in content
    assert entry.entry_hash in content
    verify_url = reverse("pledges:ledger_verify", kwargs={"slug": campaign.slug})
    assert f"{verify_url}?receipt={distinctive.receipt_id}" in content


@pytest.mark.django_db
def test_api_gives_the_latest_digest_and_the_digest_list(client, distinctive):
    campaign = distinctive.campaign
    digest = LedgerDigest.objects.get(campaign=campaign)
    expected = {
        "sequence": 6,
        "head_hash": digest.head_hash,
        "published_at": digest.published_at.isoformat(),
    }

    detail = client.get(reverse("pledges:api_campaign_detail", kwargs={"slug": campaign.slug})).json()
    listed = client.get(reverse("pledges:api_campaign_digests", kwargs={"slug": campaign.slug})).json()

    assert detail["digest"] == expected
    assert listed == {"slug": campaign.slug, "digests": [{**expected, "pledges": 6}]}


@pytest.mark.django_db
def test_api_digest_is_null_before_the_first_digest(client, campaign_with_letter):
    detail = client.get(reverse("pledges:api_campaign_detail", kwargs={"slug": campaign_with_letter.slug}))

    assert detail.json()["digest"] is None


# --- PostgreSQL: concurrency --------------------------------------------------------------


def assert_every_event_exactly_once(campaign) -> None:
    in_ledger = [entry.payload["event_id"] for entry in chain(campaign) if entry.kind != RELEASE_KIND]
    events = list(PledgeEvent.objects.filter(campaign=campaign).values_list("id", flat=True))
    assert len(in_ledger) == len(set(in_ledger))
    assert sorted(in_ledger) == sorted(events)
    assert [entry.sequence for entry in chain(campaign)] == list(range(1, len(in_ledger) + 1))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_every_event_is_in_the_ledger_once_after_a_concurrent_surge_and_ticks(
    departments, campaign_with_letter
):
    campaign = campaign_with_letter
    counter_settings(lag_seconds=1)
    stop = threading.Event()
    appended = []
    signer = surge_signer(campaign=campaign, departments=departments, actions=40)

    def ticker():
        # Two tickers, as two beat deliveries might overlap: the locks let one through at a time.
        try:
            while not stop.is_set():
                counts_update()
                appended.append(ledger_append_pending())
                time.sleep(0.05)
        finally:
            connection.close()

    tickers = [threading.Thread(target=ticker) for _ in range(2)]
    for thread in tickers:
        thread.start()
    try:
        run_in_threads(signer, 8)
    finally:
        stop.set()
        for thread in tickers:
            thread.join(timeout=60)
    counter_settings(lag_seconds=0)
    for _ in range(2):
        tick()

    assert sum(result.entries for result in appended) > 0  # appended during the surge, not only after
    assert_every_event_exactly_once(campaign)
    counts_reconcile()  # a commit later than the counting lag is the counts' business
    assert ledger_counts(campaign=campaign) == published(campaign)
    result = ledger_verify()
    assert result.ok, result.problems
    assert LedgerDigest.objects.filter(campaign=campaign).latest("id").sequence == len(chain(campaign))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_appenders_under_the_lock_never_append_twice(departments, campaign_with_letter):
    counter_settings(lag_seconds=0)
    for _ in range(10):
        pledge_sign(campaign=campaign_with_letter, department=departments["75"])
    counts_update()
    start = threading.Barrier(4)

    def append(_index):
        start.wait(timeout=10)
        return ledger_append_pending(after_heads_read=lambda: time.sleep(0.2))

    results = run_in_threads(append, 4)

    assert sorted(result.entries for result in results) == [0, 0, 0, 10]
    assert any(result.skipped for result in results)
    assert_every_event_exactly_once(campaign_with_letter)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_control_without_the_lock_two_appenders_collide_and_the_chain_cannot_fork(
    departments, campaign_with_letter
):
    counter_settings(lag_seconds=0)
    for _ in range(5):
        pledge_sign(campaign=campaign_with_letter, department=departments["75"])
    counts_update()
    both_read_the_head = threading.Barrier(2)
    outcomes = []

    def append(_index):
        try:
            outcomes.append(
                ledger_append_pending(
                    use_lock=False, after_heads_read=lambda: both_read_the_head.wait(timeout=10)
                ).entries
            )
        except IntegrityError:
            outcomes.append("collision")

    run_in_threads(append, 2)

    # Both numbered the same events from the same head: the unique sequence refuses the second.
    assert sorted(outcomes, key=str) == [5, "collision"]
    assert_every_event_exactly_once(campaign_with_letter)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_event_committed_after_its_window_is_appended_by_a_later_run(departments, campaign_with_letter):
    counter_settings(lag_seconds=0)
    pledge_sign(campaign=campaign_with_letter, department=departments["01"])
    tick()
    inserted, commit = threading.Event(), threading.Event()

    def slow_signer(_index):
        # occurred_at is set at INSERT; the commit comes after a count and an append have run.
        with transaction.atomic():
            pledge_sign(campaign=campaign_with_letter, department=departments["03"])
            inserted.set()
            assert commit.wait(timeout=10)

    signer = threading.Thread(target=lambda: run_in_threads(slow_signer, 1))
    signer.start()
    assert inserted.wait(timeout=10)
    pledge_sign(campaign=campaign_with_letter, department=departments["75"])
    assert tick() == 1  # the committed one; the slow one is invisible
    commit.set()
    signer.join(timeout=30)

    assert tick() == 1  # within the grace: found again and appended

    assert_every_event_exactly_once(campaign_with_letter)
    counts_reconcile()
    result = ledger_verify()
    assert result.ok, result.problems
