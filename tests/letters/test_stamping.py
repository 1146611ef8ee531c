"""Released letters made of a shared frame and each signer's stamped blocks (pledges.letters_batch).

The promise: the letter a release gets is the letter a single layout makes (within a few grey
levels on a few anti-aliased pixels), with one structure tree that reads in order; frames are
shared and hold no signer's data; a letter that cannot be stamped is laid out whole.
"""

import io
import logging
from datetime import date

import pikepdf
import pypdfium2
import pytest

from deconv import pdf_stamp as pdf_stamp_module
from pledges.letter_frames import LetterFrames
from pledges.letters_batch import letters_render_batch, letters_render_each
from pledges.services import letter_version_create
from tests.letters.factories import CaisseFactory
from tests.letters.support import one_line, pdf_reader, pdf_text

TODAY = date(2026, 3, 2)
LONG_NAME = "de La Tour d'Auvergne-Lauraguais-Montmorency"
LONG_ADDRESS = (
    "Maison de santé pluriprofessionnelle des Trois Rivières, bâtiment B, 14 boulevard de la Liberté"
)


# Grey levels two renderings of the same letter may differ by: the frames round block heights to a
# thousandth of a CSS px, which moves a few anti-aliased pixels by a level or two. Text moved by
# a tenth of a pixel, or a glyph changed, differs by far more.
GREY_TOLERANCE = 8


def pages_as_pixels(data: bytes) -> list[bytes]:
    """Each page rendered in grey at 150 dpi by pdfium."""
    document = pypdfium2.PdfDocument(data)
    try:
        return [bytes(page.render(scale=150 / 72, grayscale=True).buffer) for page in document]
    finally:
        document.close()


def assert_same_as_laid_out_whole(pledges, rendered):
    wholes = letters_render_each(pledges=pledges, today=TODAY)
    for pledge, letter, whole in zip(pledges, rendered, wholes, strict=True):
        assert letter.pledge_id == pledge.pk
        assert letter.pages == whole.pages
        for stamped_page, whole_page in zip(
            pages_as_pixels(letter.pdf), pages_as_pixels(whole.pdf), strict=True
        ):
            assert len(stamped_page) == len(whole_page)
            differences = [abs(a - b) for a, b in zip(stamped_page, whole_page, strict=True) if a != b]
            assert max(differences, default=0) <= GREY_TOLERANCE, (pledge.last_name, len(differences))


def test_stamped_letters_look_like_the_letters_a_single_layout_makes(make_pledges):
    pledges = make_pledges(6)
    # Names and addresses that wrap: blocks of other heights than the others'.
    pledges[2].last_name = LONG_NAME
    pledges[4].practice_address = LONG_ADDRESS
    frames = LetterFrames()

    rendered = letters_render_batch(pledges=pledges, today=TODAY, frames=frames)

    assert_same_as_laid_out_whole(pledges, rendered)
    assert frames.counts["whole"] == 0


def test_letters_with_blocks_of_the_same_heights_share_one_frame(make_pledges):
    pledges = make_pledges(8)
    frames = LetterFrames()

    letters_render_batch(pledges=pledges, today=TODAY, frames=frames)
    letters_render_batch(pledges=make_pledges(4), today=TODAY, frames=frames)

    # The first letter is laid out whole (it measures the blocks); the 11 others share one frame.
    assert dict(frames.counts) == {"frames": 1, "measured": 1, "placed_again": 0, "whole": 0}


def test_a_letter_whose_blocks_are_taller_is_placed_again_in_its_own_frame(make_pledges):
    pledges = make_pledges(5)
    pledges[3].last_name = LONG_NAME  # its signature block wraps on two lines
    frames = LetterFrames()

    rendered = letters_render_batch(pledges=pledges, today=TODAY, frames=frames)

    assert dict(frames.counts) == {"frames": 2, "measured": 1, "placed_again": 1, "whole": 0}
    assert_same_as_laid_out_whole(pledges[3:4], rendered[3:4])
    assert LONG_NAME in one_line(pdf_text(rendered[3].pdf))


def test_letters_to_different_caisses_get_their_own_frames_and_addressees(make_pledges):
    pledges = make_pledges(4)
    other = CaisseFactory(code="cpam-01-bis", name="CPAM de l'Ain, antenne d'Oyonnax", postal_code="01100")
    for pledge in pledges[1::2]:
        pledge.caisse = other
    frames = LetterFrames()

    rendered = letters_render_batch(pledges=pledges, today=TODAY, frames=frames)

    texts = [one_line(pdf_text(letter.pdf)) for letter in rendered]
    assert ["antenne d'Oyonnax" in text for text in texts] == [False, True, False, True]
    assert frames.counts["frames"] == 2
    assert_same_as_laid_out_whole(pledges, rendered)


def test_signer_blocks_the_template_adds_and_a_second_page_are_stamped_too(campaign, make_pledges):
    # No sender nor place in the body: the template adds the sender block and "Fait à ..., le ...";
    # a paragraph with the signer's name falls on the second page.
    version = letter_version_create(
        campaign=campaign,
        title="Lettre longue",
        body="\n\n".join(
            [
                *(f"Paragraphe {n}. " + "Texte de la lettre. " * 40 for n in range(6)),
                "Signé : {first_name} {last_name}.",
            ]
        ),
    )
    pledges = make_pledges(3)
    pledges[1].last_name = LONG_NAME
    for pledge in pledges:
        pledge.letter_version = version
    frames = LetterFrames()

    rendered = letters_render_batch(pledges=pledges, today=TODAY, frames=frames)

    assert rendered[2].pages == 2
    assert_same_as_laid_out_whole(pledges, rendered)
    (whole,) = letters_render_each(pledges=pledges[2:3], today=TODAY)
    assert_structured_like_whole(stamped=rendered[2].pdf, whole=whole.pdf)
    second_page = one_line(pdf_reader(rendered[2].pdf).pages[1].extract_text())
    assert f"Signé : {pledges[2].first_name} {pledges[2].last_name}." in second_page
    assert f"Fait à {pledges[2].city}, le 2 mars 2026" in second_page
    # The footer names the signer on every page.
    assert f"Dr {pledges[2].first_name} {pledges[2].last_name} — N° RPPS {pledges[2].rpps}" in second_page
    assert frames.counts["whole"] == 0


def _reading_order(pdf) -> list[int]:
    """The MCIDs the structure tree links, in reading order (depth first)."""
    order = []

    def walk(element):
        assert str(element.S) != "/Sect" or len(element.K), "a signer block left empty"
        for kid in element.get("/K", []):
            if isinstance(kid, int):
                order.append(int(kid))
            elif isinstance(kid, pikepdf.Dictionary):
                walk(kid)

    walk(pdf.Root.StructTreeRoot.K[0])
    return order


def _tree_shape(pdf):
    """The structure tree as (type, number of pieces of text, children)."""

    def shape(element):
        kids = list(element.get("/K", []))
        return (
            str(element.S),
            sum(isinstance(kid, int) for kid in kids),
            [shape(kid) for kid in kids if isinstance(kid, pikepdf.Dictionary)],
        )

    return shape(pdf.Root.StructTreeRoot.K[0])


def _marked_content_ids(page) -> list[int]:
    return [
        int(operands[1].MCID)
        for operands, operator in pikepdf.parse_content_stream(page)
        if str(operator) == "BDC" and isinstance(operands[1], pikepdf.Dictionary) and "/MCID" in operands[1]
    ]


def assert_structured_like_whole(*, stamped: bytes, whole: bytes) -> None:
    """Each page's text has its structure element, and the tree is the letter laid out whole's."""
    with pikepdf.open(io.BytesIO(stamped)) as pdf, pikepdf.open(io.BytesIO(whole)) as whole_pdf:
        assert pdf.check_pdf_syntax() == []
        page_trees = [
            value for value in pdf.Root.StructTreeRoot.ParentTree.Nums if isinstance(value, pikepdf.Array)
        ]
        assert len(page_trees) == len(pdf.pages)
        for page, parent_tree in zip(pdf.pages, page_trees, strict=True):
            mcids = _marked_content_ids(page)
            assert sorted(mcids) == list(range(len(parent_tree)))
            for mcid in mcids:
                assert mcid in [int(kid) for kid in parent_tree[mcid].K if isinstance(kid, int)]
        assert _tree_shape(pdf) == _tree_shape(whole_pdf)


def test_a_stamped_letter_has_one_structure_tree_that_reads_in_order(make_pledges):
    pledges = make_pledges(3)
    frames = LetterFrames()
    stamped = letters_render_batch(pledges=pledges, today=TODAY, frames=frames)[1]
    (frame,) = frames._frames.values()
    frame_pdf = pikepdf.open(io.BytesIO(frame.pdf))
    frame_mcids = _marked_content_ids(frame_pdf.pages[0])

    pdf = pikepdf.open(io.BytesIO(stamped.pdf))
    assert pdf.check_pdf_syntax() == []
    page = pdf.pages[0]
    mcids = _marked_content_ids(page)
    assert len(mcids) == len(set(mcids)) > len(frame_mcids)
    # Every piece of text has its structure element, which points back to it.
    (parent_tree,) = [
        value for value in pdf.Root.StructTreeRoot.ParentTree.Nums if isinstance(value, pikepdf.Array)
    ]
    assert len(parent_tree) == len(mcids) == max(mcids) + 1
    for mcid in mcids:
        assert mcid in [int(kid) for kid in parent_tree[mcid].K if isinstance(kid, int)]
    # Reading order: the frame's text and the signer's (MCIDs after the frame's), each in its own
    # order, interleaved: the title, then the sender block (the demo body's first paragraph)...
    order = _reading_order(pdf)
    signer = [mcid for mcid in order if mcid >= len(frame_mcids)]
    shared = [mcid for mcid in order if mcid < len(frame_mcids)]
    assert order[0] < len(frame_mcids) <= order[1]
    assert signer == sorted(signer) and shared == sorted(shared)
    # ... exactly as the letter laid out whole reads: the same elements, holding as many pieces of text.
    (whole,) = letters_render_each(pledges=pledges[1:2], today=TODAY)
    assert_structured_like_whole(stamped=stamped.pdf, whole=whole.pdf)
    # Text left unlinked is only the page margins' (the footer), as WeasyPrint tags them.
    assert len(set(mcids) - set(order)) == 2  # "Dr ... — N° RPPS ..." and "1 / 1"
    # Fonts: the frame's subsets and the signer's, each with its own subset tag.
    names = [str(font.BaseFont) for font in page.Resources.Font.values()]
    assert len(names) == len(set(names))
    assert pdf.Root.Lang == "fr" and bool(pdf.Root.MarkInfo.Marked)


def _every_string_and_stream(data: bytes) -> str:
    """Every string and (decompressed) stream of a PDF, as text: what a reader could dig out."""
    found = []
    with pikepdf.open(io.BytesIO(data)) as pdf:
        for obj in pdf.objects:
            if isinstance(obj, pikepdf.Stream):
                data = obj.read_bytes()
                found += [data.decode("utf-8", errors="replace"), data.decode("utf-16-be", errors="replace")]
            elif isinstance(obj, pikepdf.Dictionary | pikepdf.Array):
                found.append(repr(obj))
    return "\n".join(found)


def test_a_frame_holds_no_signer_data(make_pledges):
    pledges = make_pledges(3, city="Oyonnax", practice_address="3 cours de Verdun")
    frames = LetterFrames()

    letters_render_batch(pledges=pledges, today=TODAY, frames=frames)

    (frame,) = frames._frames.values()
    text = one_line(pdf_text(frame.pdf))
    raw = _every_string_and_stream(frame.pdf)
    assert "CPAM de l'Ain" in text and "Article R.162-54-9" in text
    assert "<dc:title>" in raw and "Lettre de déconventionnement" in raw  # the search sees the XMP
    for pledge in pledges:
        for value in (pledge.last_name, pledge.first_name, pledge.rpps, pledge.practice_address, pledge.city):
            assert value not in text
            assert value not in raw


def test_a_letter_that_cannot_be_stamped_is_laid_out_whole(make_pledges, monkeypatch, caplog):
    pledges = make_pledges(3)

    def refuse(*, frame, layer):
        raise pdf_stamp_module.StampError("refused by the test")

    monkeypatch.setattr(pdf_stamp_module, "pdf_stamp", refuse)
    frames = LetterFrames()

    with caplog.at_level(logging.WARNING, logger="pledges.letters_batch"):
        rendered = letters_render_batch(pledges=pledges, today=TODAY, frames=frames)

    assert dict(frames.counts) == {"frames": 1, "measured": 1, "placed_again": 0, "whole": 2}
    assert_same_as_laid_out_whole(pledges, rendered)
    # The log names the pledge, never the signer.
    for pledge in pledges[1:]:
        assert f"letter of pledge {pledge.pk}: not stamped" in caplog.text
    for pledge in pledges:
        for value in (pledge.last_name, pledge.first_name, pledge.rpps, pledge.user.email):
            assert value not in caplog.text


def test_frames_kept_are_bounded(make_pledges):
    pledges = make_pledges(4)
    for number, pledge in enumerate(pledges):
        pledge.caisse = CaisseFactory(code=f"cpam-test-{number}", name=f"Caisse {number}")
    frames = LetterFrames(max_frames=2)

    rendered = letters_render_batch(pledges=pledges, today=TODAY, frames=frames)

    assert len(frames._frames) == 2
    assert [
        f"Caisse {number}" in one_line(pdf_text(letter.pdf)) for number, letter in enumerate(rendered)
    ] == [True] * 4


@pytest.mark.parametrize("count", [0, 1, 2])
def test_a_batch_of_none_one_or_two_letters(make_pledges, count):
    pledges = make_pledges(count)
    frames = LetterFrames()

    rendered = letters_render_batch(pledges=pledges, today=TODAY, frames=frames)

    assert [letter.pledge_id for letter in rendered] == [pledge.pk for pledge in pledges]
    assert_same_as_laid_out_whole(pledges, rendered)
    # The first is laid out whole to measure its blocks, the second stamped.
    assert frames.counts["measured"] == min(count, 1) and frames.counts["whole"] == 0
    assert frames.counts["frames"] == max(count - 1, 0)
