"""deconv.pdf_stamp: one tagged PDF stamped onto another, page for page, with one structure tree."""

import io

import pikepdf
import pytest
from pypdf import PdfReader

from deconv.pdf import PDF_OPTIONS, PDF_STATIC_URL, PDF_TAGGED_ONLY, document_write_pdf, html_layout
from deconv.pdf_stamp import StampError, pdf_stamp


def _pdf(body: str, *, options=PDF_OPTIONS) -> bytes:
    html = (
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Essai</title>'
        f'<link rel="stylesheet" href="{PDF_STATIC_URL}letters/letter.css">'
        # No page numbers: the text is the body's alone.
        "<style>@page { @bottom-right { content: none } }</style>"
        f"</head><body>{body}</body></html>"
    )
    return document_write_pdf(document=html_layout(html=html), title="Essai", options=options)


FRAME = "<p>Texte commun.</p><section></section><p>Suite commune.</p><section></section>"
LAYER = (
    '<section><p>Première à signer.</p></section><section><p style="margin-top: 9cm">Seconde.</p></section>'
)


def _text(pdf: bytes) -> str:
    return " ".join("\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages).split())


def _structure(pdf: bytes) -> list:
    with pikepdf.open(io.BytesIO(pdf)) as document:

        def walk(element):
            """[type, children..., MCIDs...]: where each piece of text sits in the tree."""
            kids = list(element.get("/K", []))
            return [
                str(element.S),
                *(walk(kid) for kid in kids if isinstance(kid, pikepdf.Dictionary)),
                *(int(kid) for kid in kids if isinstance(kid, int)),
            ]

        return walk(document.Root.StructTreeRoot.K[0])


def test_the_layer_is_drawn_over_the_frame_and_read_where_the_frame_left_room():
    stamped = pdf_stamp(frame=_pdf(FRAME), layer=_pdf(LAYER, options=PDF_TAGGED_ONLY))

    text = _text(stamped)
    assert text.index("Texte commun.") < text.index("Première à signer.") < text.index("Seconde.")
    # The placeholders hold the layer's paragraphs, in the frame's reading order.
    assert _structure(stamped) == [
        "/Document",
        ["/P", ["/Span", 0]],
        ["/Sect", ["/P", ["/Span", 2]]],
        ["/P", ["/Span", 1]],
        ["/Sect", ["/P", ["/Span", 3]]],
    ]
    with pikepdf.open(io.BytesIO(stamped)) as document:
        assert document.check_pdf_syntax() == []
        page = document.pages[0]
        mcids = [
            int(operands[1].MCID)
            for operands, operator in pikepdf.parse_content_stream(page)
            if str(operator) == "BDC" and "/MCID" in operands[1]
        ]
        assert mcids == [0, 1, 2, 3]
        (parent_tree,) = [
            value
            for value in document.Root.StructTreeRoot.ParentTree.Nums
            if isinstance(value, pikepdf.Array)
        ]
        assert [str(element.S) for element in parent_tree] == ["/Span"] * 4
        # The same font twice, subset twice: two tags, so no reader takes one subset for the other.
        names = [str(font.BaseFont) for font in page.Resources.Font.values()]
        assert len(names) == 2 and names[0] != names[1]
        assert names[0].split("+")[1] == names[1].split("+")[1] == "Letter-Serif"
        # The frame's metadata stays: title, language, PDF/UA identification.
        assert str(document.Root.Lang) == "fr"
        assert document.open_metadata().get("pdfuaid:part") == "1"


def test_a_layer_with_another_number_of_pages_is_refused():
    frame = _pdf(FRAME)
    layer = _pdf(LAYER + '<div style="break-before: page"></div><p>Page 2</p>', options=PDF_TAGGED_ONLY)

    with pytest.raises(StampError, match="2 layer pages for 1 frame pages"):
        pdf_stamp(frame=frame, layer=layer)


def test_a_layer_with_another_number_of_blocks_is_refused():
    frame = _pdf(FRAME)
    layer = _pdf("<section><p>Seule.</p></section>", options=PDF_TAGGED_ONLY)

    with pytest.raises(StampError, match="1 layer blocks for 2 frame placeholders"):
        pdf_stamp(frame=frame, layer=layer)


def test_a_frame_whose_placeholder_holds_text_is_refused():
    frame = _pdf("<section><p>Occupé.</p></section><section></section>")

    with pytest.raises(StampError, match="not empty"):
        pdf_stamp(frame=frame, layer=_pdf(LAYER, options=PDF_TAGGED_ONLY))


def test_a_layer_with_a_link_is_refused():
    layer = _pdf('<section><p><a href="https://example.org/">lien</a></p></section><section></section>')

    with pytest.raises(StampError, match="annotations"):
        pdf_stamp(frame=_pdf(FRAME), layer=layer)


def test_the_frames_links_keep_their_place_in_the_structure():
    frame = _pdf(
        '<p><a href="https://example.org/">Lien commun</a></p><section></section><section></section>'
    )

    stamped = pdf_stamp(frame=frame, layer=_pdf(LAYER, options=PDF_TAGGED_ONLY))

    with pikepdf.open(io.BytesIO(stamped)) as document:
        (annotation,) = document.pages[0].Annots
        nums = list(document.Root.StructTreeRoot.ParentTree.Nums)
        entries = dict(zip(nums[::2], nums[1::2], strict=True))
        assert str(entries[int(annotation.StructParent)].S) == "/Link"
