"""release_process: every letter exactly once, each signer told once, the release recorded once."""

import hashlib
import threading

import pytest
from django.db import connection

from deconv.models import OutgoingEmail
from pledges import letters_pipeline
from pledges.enums import LetterStatus, PledgeStatus
from pledges.letters_batch import RenderedLetter
from pledges.letters_pipeline import (
    letter_path,
    letter_store,
    release_process,
)
from pledges.models import LedgerEntry, Letter, Release
from tests.letters.factories import ReleasedPledgeFactory
from tests.letters.support import letter_bytes, letter_text, one_line


def test_release_process_generates_one_letter_per_released_pledge_and_finishes(release, make_pledges):
    pledges = make_pledges(3)
    withdrawn = ReleasedPledgeFactory(release=release, status=PledgeStatus.WITHDRAWN)

    result = release_process(release_id=release.pk)

    assert result.letters_created == 3 and result.finished
    letters = {letter.pledge_id: letter for letter in Letter.objects.filter(release=release)}
    assert set(letters) == {p.pk for p in pledges}
    assert withdrawn.pk not in letters
    for pledge in pledges:
        letter = letters[pledge.pk]
        data = letter_bytes(letter)
        assert letter.file_name == f"{release.pk}/{pledge.receipt_id}.pdf"
        assert letter.status == LetterStatus.GENERATED
        assert letter.sha256 == hashlib.sha256(data).hexdigest()
        assert letter.size_bytes == len(data)
        assert len(letter.inputs_sha256) == 64
    # No temporary file left behind.
    assert sorted(p.name for p in letter_path(file_name=str(release.pk)).iterdir()) == sorted(
        f"{p.receipt_id}.pdf" for p in pledges
    )
    release.refresh_from_db()
    assert release.letters_done_at is not None and release.emails_done_at is not None


def test_the_letter_says_who_to_whom_what_and_when(release, make_pledges):
    (pledge,) = make_pledges(1, first_name="Élise", last_name="Martin-Dupré")
    release_process(release_id=release.pk)

    text = one_line(letter_text(pledge.letter))

    assert "Dr Élise Martin-Dupré" in text
    assert f"N° RPPS : {pledge.rpps}" in text
    assert "CPAM de l'Ain 1 place de la Grenouillère 01000 Bourg-en-Bresse" in text
    assert "Lettre recommandée avec accusé de réception" in text
    assert (
        "Conformément à l'article R.162-54-9 du code de la sécurité sociale et aux dispositions de la "
        "convention nationale" in text
    )
    assert "je ne souhaite plus être placé(e) sous le régime de la convention nationale" in text
    assert "un mois suivant la réception du présent courrier par la caisse" in text
    # Dated the day of the release (2 March 2026, Paris), so a regeneration prints the same date.
    assert "Fait à Bourg-en-Bresse, le 2 mars 2026" in text
    assert "INTENTION" not in text


def test_release_process_emails_each_signer_once_with_a_download_link_and_next_steps(release, make_pledges):
    pledges = make_pledges(2)
    paper = ReleasedPledgeFactory(release=release, user=None)

    release_process(release_id=release.pk)

    emails = {e.recipient: e for e in OutgoingEmail.objects.filter(kind="released")}
    assert set(emails) == {p.user.email for p in pledges}
    assert paper.letter is not None  # a paper pledge gets its letter; organizers hand it over
    email = emails[pledges[0].user.email]
    assert email.dedupe_key == f"released:{pledges[0].pk}"
    body = one_line(email.body_text)
    assert "/letters/link/" in body
    assert "CPAM de l'Ain 1 place de la Grenouillère 01000 Bourg-en-Bresse" in body
    assert "recommandée avec accusé de réception" in body
    assert f"/campaigns/{release.campaign.slug}/my-pledge/" in body


def test_release_process_twice_generates_nothing_and_queues_no_new_email(release, make_pledges):
    make_pledges(3)
    release_process(release_id=release.pk)
    files = {
        letter.pk: (letter.sha256, letter_path(file_name=letter.file_name).stat().st_mtime_ns)
        for letter in Letter.objects.all()
    }
    emails = OutgoingEmail.objects.count()

    again = release_process(release_id=release.pk)

    assert again.letters_created == 0 and again.finished
    assert {
        letter.pk: (letter.sha256, letter_path(file_name=letter.file_name).stat().st_mtime_ns)
        for letter in Letter.objects.all()
    } == files
    assert OutgoingEmail.objects.count() == emails == 3
    assert LedgerEntry.objects.filter(kind="letters_released").count() == 1


def test_release_process_after_a_crash_finishes_what_is_missing(release, make_pledges, monkeypatch):
    pledges = make_pledges(5)
    real_store = letters_pipeline.letter_store
    calls = []

    def crash_after_two(**kwargs):
        calls.append(kwargs["pledge"].pk)
        if len(calls) == 3:
            raise RuntimeError("worker lost")
        return real_store(**kwargs)

    monkeypatch.setattr(letters_pipeline, "letter_store", crash_after_two)
    with pytest.raises(RuntimeError):
        release_process(release_id=release.pk, helpers=False)
    monkeypatch.setattr(letters_pipeline, "letter_store", real_store)
    release.refresh_from_db()
    assert release.letters_done_at is None and release.emails_done_at is None
    assert not OutgoingEmail.objects.exists()

    result = release_process(release_id=release.pk)

    assert result.finished
    assert Letter.objects.filter(release=release).count() == 5
    assert OutgoingEmail.objects.filter(kind="released").count() == 5
    assert {e.dedupe_key for e in OutgoingEmail.objects.all()} == {f"released:{p.pk}" for p in pledges}


def test_ledger_entry_records_each_letters_hash_under_its_receipt(release, make_pledges):
    pledges = make_pledges(3)
    release_process(release_id=release.pk)

    entry = LedgerEntry.objects.get(kind="letters_released")

    assert entry.payload["release_id"] == release.pk
    assert sorted(map(tuple, entry.payload["letters"])) == sorted(
        (str(p.receipt_id), Letter.objects.get(pledge=p).sha256) for p in pledges
    )


def test_a_release_of_several_batches_dispatches_a_helper_task(release, make_pledges, monkeypatch):
    make_pledges(5)
    monkeypatch.setattr(letters_pipeline, "BATCH_SIZE", 2)
    dispatched = []
    monkeypatch.setattr(
        "pledges.tasks.release_letters_help.delay", lambda **kwargs: dispatched.append(kwargs)
    )

    result = release_process(release_id=release.pk)

    assert dispatched == [{"release_id": release.pk}]
    assert result.letters_created == 5


# --- Concurrency (PostgreSQL) ------------------------------------------------------------------


def _fake_render(*, pledges, today, frames=None):
    """A fast stand-in for WeasyPrint: the race is in the database, not in the layout."""
    return [
        RenderedLetter(pledge_id=p.pk, pdf=f"%PDF-fake {p.pk} {threading.get_ident()}".encode(), pages=1)
        for p in pledges
    ]


def _run_in_threads(count, target):
    barrier = threading.Barrier(count)
    errors = []

    def run():
        try:
            barrier.wait()
            target()
        except Exception as error:  # pragma: no cover - reported by the assert below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("locked_batches", [True, False], ids=["skip-locked", "onetoone-only"])
def test_concurrent_release_process_makes_exactly_one_letter_per_pledge(
    campaign, caisse, monkeypatch, locked_batches
):
    """Four workers at once; also with the batch locks off, where only Letter.pledge's OneToOne guards."""
    release = Release.objects.create(
        campaign=campaign,
        level="department",
        code="01",
        released_at="2026-03-02T10:00:00+01:00",
        pledge_count=0,
    )
    pledges = [ReleasedPledgeFactory(release=release, caisse=caisse) for _ in range(40)]
    monkeypatch.setattr(letters_pipeline, "letters_render_batch", _fake_render)
    monkeypatch.setattr(letters_pipeline, "BATCH_SIZE", 7)
    monkeypatch.setattr(letters_pipeline, "_batches_locked", lambda: locked_batches)

    _run_in_threads(4, lambda: release_process(release_id=release.pk, helpers=False))

    letters = list(Letter.objects.filter(release=release))
    assert sorted(letter.pledge_id for letter in letters) == sorted(p.pk for p in pledges)
    for letter in letters:
        # The file on disk is the one whose hash the row holds (no racer overwrote it).
        assert hashlib.sha256(letter_bytes(letter)).hexdigest() == letter.sha256
    folder = letter_path(file_name=str(release.pk))
    assert len(list(folder.iterdir())) == 40  # no temporary file left
    assert OutgoingEmail.objects.filter(kind="released").count() == 40
    assert LedgerEntry.objects.filter(kind="letters_released").count() == 1
    release.refresh_from_db()
    assert release.letters_done_at is not None and release.emails_done_at is not None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_stores_of_one_letter_keep_one_row_and_its_own_file(campaign, caisse):
    release = Release.objects.create(
        campaign=campaign,
        level="department",
        code="01",
        released_at="2026-03-02T10:00:00+01:00",
        pledge_count=0,
    )
    pledge = ReleasedPledgeFactory(release=release, caisse=caisse)
    results = []

    def store():
        rendered = RenderedLetter(pledge_id=pledge.pk, pdf=f"%PDF-{threading.get_ident()}".encode(), pages=1)
        results.append(
            letter_store(pledge=pledge, release=release, rendered=rendered, inputs_sha256="0" * 64)
        )

    _run_in_threads(6, store)

    winners = [r for r in results if r is not None]
    assert len(winners) == 1 and len(results) == 6
    letter = Letter.objects.get(pledge=pledge)
    assert hashlib.sha256(letter_bytes(letter)).hexdigest() == letter.sha256 == winners[0].sha256
    assert [p.name for p in letter_path(file_name=str(release.pk)).iterdir()] == [f"{pledge.receipt_id}.pdf"]


def test_letter_erase_deletes_the_row_and_after_commit_the_file(
    release, make_pledges, django_capture_on_commit_callbacks
):
    from pledges.letters_pipeline import letter_erase

    kept, erased = make_pledges(2)
    release_process(release_id=release.pk)
    erased_path = letter_path(file_name=Letter.objects.get(pledge=erased).file_name)

    with django_capture_on_commit_callbacks(execute=True):
        assert letter_erase(pledge=erased) is True
        assert erased_path.exists()  # until the commit: a rollback keeps both

    assert not erased_path.exists()
    assert not Letter.objects.filter(pledge=erased).exists()
    assert Letter.objects.filter(pledge=kept).exists()
    assert letter_erase(pledge=erased) is False


def test_withdrawing_a_released_pledge_deletes_its_letter_row_and_file(
    release, make_pledges, django_capture_on_commit_callbacks
):
    from pledges.services import pledge_withdraw

    kept, withdrawn = make_pledges(2)
    release_process(release_id=release.pk)
    path = letter_path(file_name=Letter.objects.get(pledge=withdrawn).file_name)
    assert path.exists()

    with django_capture_on_commit_callbacks(execute=True):
        pledge_withdraw(pledge=withdrawn)

    assert not Letter.objects.filter(pledge=withdrawn).exists()
    assert not path.exists()
    assert Letter.objects.filter(pledge=kept).exists()
