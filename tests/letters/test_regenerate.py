"""A letter follows its inputs until the signer reports it sent, never after."""

from datetime import date

from pledges.enums import LetterStatus
from pledges.followthrough import letter_sent_record
from pledges.letters_pipeline import letter_regenerate_if_changed, letters_refresh, release_process
from tests.letters.support import letter_bytes, letter_text, one_line


def _released_letter(release, make_pledges):
    (pledge,) = make_pledges(1)
    release_process(release_id=release.pk)
    pledge.refresh_from_db()
    return pledge.letter


def test_unchanged_inputs_leave_the_letter_alone(release, make_pledges):
    letter = _released_letter(release, make_pledges)
    before = (letter.sha256, letter.generated_at, letter_bytes(letter))

    assert letter_regenerate_if_changed(letter=letter) is False

    letter.refresh_from_db()
    assert (letter.sha256, letter.generated_at, letter_bytes(letter)) == before


def test_a_corrected_caisse_address_regenerates_the_letter_before_it_is_sent(release, make_pledges, caisse):
    letter = _released_letter(release, make_pledges)
    old_sha, old_inputs = letter.sha256, letter.inputs_sha256
    caisse.address_line1 = "8 rue Paul Pioda"
    caisse.save()

    assert letters_refresh(release=release) == 1

    letter.refresh_from_db()
    assert letter.inputs_sha256 != old_inputs and letter.sha256 != old_sha
    text = one_line(letter_text(letter))
    assert "8 rue Paul Pioda" in text and "Grenouillère" not in text
    assert "le 2 mars 2026" in text  # still dated the day of the release
    assert letter.file_name == f"{release.pk}/{letter.pledge.receipt_id}.pdf"
    assert letters_refresh(release=release) == 0


def test_a_letter_reported_sent_is_never_regenerated(release, make_pledges, caisse):
    letter = _released_letter(release, make_pledges)
    letter = letter_sent_record(letter=letter, sent_on=date.today())
    before = (letter.sha256, letter.inputs_sha256, letter_bytes(letter))
    caisse.address_line1 = "8 rue Paul Pioda"
    caisse.save()

    assert letter.status == LetterStatus.SENT
    assert letter_regenerate_if_changed(letter=letter) is False
    assert letters_refresh() == 0

    letter.refresh_from_db()
    assert (letter.sha256, letter.inputs_sha256, letter_bytes(letter)) == before
    assert "Grenouillère" in letter_text(letter)
