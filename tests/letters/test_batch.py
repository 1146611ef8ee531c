"""Released letters rendered many at a time (pledges.letters_batch): one PDF per signer, each right.

Except where a test says otherwise, the letters checked are stamped ones (a frame shared with the
others and the signer's blocks), not the first letter of a batch, which is laid out whole to
measure its blocks (`stamped_letter`).
"""

import logging
import unicodedata
from datetime import date
from types import SimpleNamespace

import pytest
from django.utils import translation

from pledges.letter_frames import LetterFrames
from pledges.letters_batch import LetterSplitError, letter_page_ranges, letters_render_batch
from pledges.services import letter_version_create
from tests.letters.support import one_line, pdf_reader, pdf_text

TODAY = date(2026, 3, 2)


def stamped_letter(*, pledge, first):
    """`pledge`'s letter rendered after `first`'s in one batch: a stamped letter, never a whole one."""
    frames = LetterFrames()
    _first, letter = letters_render_batch(pledges=[first, pledge], today=TODAY, frames=frames)
    assert frames.counts["measured"] == 1 and frames.counts["whole"] == 0
    return letter


def test_each_split_pdf_holds_its_own_signer_and_no_other(make_pledges):
    pledges = make_pledges(6)
    rendered = letters_render_batch(pledges=pledges, today=TODAY)

    assert [r.pledge_id for r in rendered] == [p.pk for p in pledges]
    for pledge, letter in zip(pledges, rendered, strict=True):
        text = pdf_text(letter.pdf)
        assert f"{pledge.first_name} {pledge.last_name}" in text
        assert pledge.rpps in text
        for other in pledges:
            if other.pk != pledge.pk:
                assert other.rpps not in text
                assert other.last_name not in text
        assert len(pdf_reader(letter.pdf).pages) == letter.pages


def test_a_longer_letter_keeps_all_its_pages_and_numbers_them_on_its_own(campaign, make_pledges):
    short_before, long_one, short_after = make_pledges(3)
    long_version = letter_version_create(
        campaign=campaign,
        title="Lettre longue",
        body="\n\n".join(
            f"Paragraphe {n} de la lettre de {{last_name}}. " + "Texte. " * 80 for n in range(12)
        ),
    )
    long_one.letter_version = long_version
    long_one.save()

    rendered = letters_render_batch(pledges=[short_before, long_one, short_after], today=TODAY)

    short_pages, long_pages = rendered[0].pages, rendered[1].pages
    assert long_pages > short_pages
    long_text = pdf_text(rendered[1].pdf)
    assert "Paragraphe 0 de la lettre" in long_text and "Paragraphe 11 de la lettre" in long_text
    assert short_before.last_name not in long_text and short_after.last_name not in long_text
    # Every page is numbered within its own letter: "n / total" with the letter's own total.
    reader = pdf_reader(rendered[1].pdf)
    for number, page in enumerate(reader.pages, start=1):
        assert f"{number} / {long_pages}" in page.extract_text()
    assert f"1 / {short_pages}" in pdf_reader(rendered[2].pdf).pages[0].extract_text()
    assert pdf_reader(rendered[1].pdf).metadata.title == "Lettre longue"


def test_letters_are_french_a4_tagged_with_embedded_fonts_whatever_the_language(make_pledges):
    first, pledge = make_pledges(2)
    with translation.override("en"):
        letter = stamped_letter(pledge=pledge, first=first)

    text = one_line(pdf_text(letter.pdf))
    assert "N° RPPS" in text and "RPPS no." not in text
    assert "Fait à Bourg-en-Bresse, le 2 mars 2026" in text
    reader = pdf_reader(letter.pdf)
    for page in reader.pages:
        assert (round(float(page.mediabox.width)), round(float(page.mediabox.height))) == (595, 842)
        for font in page["/Resources"]["/Font"].values():
            descendant = font.get_object()["/DescendantFonts"][0].get_object()
            assert "/FontFile2" in descendant["/FontDescriptor"]
    root = reader.trailer["/Root"]
    assert bool(root["/MarkInfo"]["/Marked"])
    assert "/StructTreeRoot" in root
    assert root["/Lang"] == "fr"


def test_the_demo_letter_fits_on_one_a4_page_with_its_legal_basis_and_signature_block(make_pledges):
    first, pledge = make_pledges(2)
    letter = stamped_letter(pledge=pledge, first=first)

    assert letter.pages == 1
    reader = pdf_reader(letter.pdf)
    assert len(reader.pages) == 1
    text = one_line(reader.pages[0].extract_text())
    assert f"Dr {pledge.first_name} {pledge.last_name}" in text and pledge.rpps in text
    assert "CPAM de l'Ain" in text and "01000 Bourg-en-Bresse" in text
    assert "Fait à Bourg-en-Bresse, le 2 mars 2026" in text
    assert "Signature manuscrite" in text
    assert "Article R.162-54-9" in text
    assert "1 / 1" in text


def test_a_paragraph_keeps_its_line_breaks_and_its_values_are_escaped(campaign, make_pledges):
    first, pledge = make_pledges(2)
    pledge.last_name = "<b>Durand</b>"
    version = letter_version_create(
        campaign=campaign,
        title="Lettre",
        body="Dr {first_name} {last_name}\nN° RPPS : {rpps}\n{practice_address}\n\nCorps de la lettre.",
    )
    first.letter_version = pledge.letter_version = version

    letter = stamped_letter(pledge=pledge, first=first)

    # Printed as typed: escaped, not read as markup.
    lines = [line.strip() for line in pdf_text(letter.pdf).splitlines()]
    name_line = lines.index(f"Dr {pledge.first_name} <b>Durand</b>")
    assert lines[name_line + 1] == f"N° RPPS : {pledge.rpps}"
    assert lines[name_line + 2] == pledge.practice_address


@pytest.mark.parametrize(
    "last_name",
    [
        "Nguyễn Thị",
        "Żółć-Łukasiewicz",
        "Þórðarson Ørsted",
        "Παπαδόπουλος",
        "Иванова",
        "Ţăranu Şerban",
        "N\u2019Diaye « Æ Œ »",
    ],
)
def test_names_in_the_scripts_the_letter_fonts_cover_print_without_a_missing_glyph(
    make_pledges, caplog, last_name
):
    first, pledge = make_pledges(2)
    pledge.last_name = last_name
    with caplog.at_level(logging.WARNING, logger="weasyprint"):
        letter = stamped_letter(pledge=pledge, first=first)

    assert not [record for record in caplog.records if ".notdef" in record.getMessage()]
    assert unicodedata.normalize("NFC", last_name) in unicodedata.normalize("NFC", pdf_text(letter.pdf))


def _document(*anchor_lists):
    return SimpleNamespace(
        pages=[SimpleNamespace(anchors=dict.fromkeys(anchors, (0, 0))) for anchors in anchor_lists]
    )


def test_page_ranges_follow_the_markers():
    document = _document(
        ["letter-start-0", "letter-end-0"],
        ["letter-start-1"],
        [],
        ["letter-end-1"],
        ["letter-start-2", "letter-end-2"],
    )
    assert letter_page_ranges(document=document, count=3) == [range(0, 1), range(1, 4), range(4, 5)]


@pytest.mark.parametrize(
    "anchor_lists",
    [
        # An end marker missing.
        (["letter-start-0", "letter-end-0"], ["letter-start-1"]),
        # A page between two letters that belongs to neither.
        (["letter-start-0", "letter-end-0"], [], ["letter-start-1", "letter-end-1"]),
        # Letters out of order.
        (["letter-start-1", "letter-end-1"], ["letter-start-0", "letter-end-0"]),
        # A page left over after the last letter.
        (["letter-start-0", "letter-end-0"], ["letter-start-1", "letter-end-1"], []),
        # A marker on two pages.
        (["letter-start-0", "letter-end-0"], ["letter-start-1", "letter-end-1", "letter-end-0"]),
    ],
)
def test_page_ranges_refuse_a_document_that_does_not_split_cleanly(anchor_lists):
    with pytest.raises(LetterSplitError):
        letter_page_ranges(document=_document(*anchor_lists), count=2)
