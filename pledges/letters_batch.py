"""Render many released letters with one WeasyPrint layout, then split it into one PDF per letter.

A WeasyPrint document has a fixed cost whatever its length (a new Fontconfig configuration with
the embedded fonts, the stylesheet parsed, the HTML parsed and styled): laying out 100 letters as
one document pays it once. It is not most of a letter's cost: laying out, painting and writing
each letter's page remain, so batching saves well under half of a letter's cost (bench/letters.py
measures both ways in the same run).

How the pages are split back, robustly:
1. Each letter is an <article> (templates/letters/_letter.html) that starts on a new page and
   holds two empty markers, `letter-start-<i>` first and `letter-end-<i>` last.
2. After the layout, every page lists the anchors it holds (Page.anchors): letter i spans from
   the page of its start marker to the page of its end marker.
3. The ranges must tile the document exactly (first page 0, each letter starting on the page
   after the previous one ends, the last ending on the last page); anything else raises
   LetterSplitError rather than risk a page of one physician in another's letter.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from django.template.loader import render_to_string
from django.utils import translation
from django.utils.safestring import mark_safe

from deconv.pdf import PDF_STATIC_URL, document_write_pdf, html_layout
from pledges.letters import LETTER_LANGUAGE, letter_context
from pledges.models import Pledge

ARTICLE_TEMPLATE = "letters/_letter.html"
BATCH_TEMPLATE = "letters/batch.html"
START_PREFIX = "letter-start-"
END_PREFIX = "letter-end-"


class LetterSplitError(RuntimeError):
    """The laid-out document does not split cleanly into the letters it was made from."""


@dataclass(frozen=True)
class RenderedLetter:
    pledge_id: int
    pdf: bytes
    pages: int


def batch_html(*, pledges: Sequence[Pledge], today: date) -> str:
    """One HTML document holding every pledge's letter, in order, each starting a new page."""
    with translation.override(LETTER_LANGUAGE):
        articles = [
            render_to_string(
                ARTICLE_TEMPLATE,
                {**letter_context(pledge=pledge, intention=False, today=today), "letter_index": index},
            )
            for index, pledge in enumerate(pledges)
        ]
        titles = {pledge.letter_version.title for pledge in pledges}
        return render_to_string(
            BATCH_TEMPLATE,
            {
                "PDF_STATIC_URL": PDF_STATIC_URL,
                # The articles were rendered (and escaped) by the template engine just above.
                "articles": [mark_safe(article) for article in articles],  # noqa: S308
                "title": titles.pop() if len(titles) == 1 else "",
            },
        )


def letter_page_ranges(*, document, count: int) -> list[range]:
    """The pages of each of `count` letters in a laid-out batch document (see the module docstring)."""
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    for page_index, page in enumerate(document.pages):
        for anchor in page.anchors:
            for prefix, found in ((START_PREFIX, starts), (END_PREFIX, ends)):
                if anchor.startswith(prefix):
                    letter_index = int(anchor[len(prefix) :])
                    if letter_index in found:
                        raise LetterSplitError(f"marker {anchor} on two pages")
                    found[letter_index] = page_index
    expected = set(range(count))
    if set(starts) != expected or set(ends) != expected:
        raise LetterSplitError("a letter's start or end marker is missing")
    ranges = []
    next_page = 0
    for letter_index in range(count):
        start, end = starts[letter_index], ends[letter_index]
        if start != next_page or end < start:
            raise LetterSplitError(f"letter {letter_index} does not follow the previous one")
        ranges.append(range(start, end + 1))
        next_page = end + 1
    if next_page != len(document.pages):
        raise LetterSplitError("pages left over after the last letter")
    return ranges


def letters_render_batch(*, pledges: Sequence[Pledge], today: date) -> list[RenderedLetter]:
    """Each pledge's released letter as its own PDF, from one layout of them all, in order.

    Pledges need letter_version and caisse loaded (select_related) to avoid a query per letter.
    """
    if not pledges:
        return []
    document = html_layout(html=batch_html(pledges=pledges, today=today))
    ranges = letter_page_ranges(document=document, count=len(pledges))
    return [
        RenderedLetter(
            pledge_id=pledge.pk,
            pdf=document_write_pdf(
                document=document,
                pages=[document.pages[index] for index in page_range],
                title=pledge.letter_version.title,
            ),
            pages=len(page_range),
        )
        for pledge, page_range in zip(pledges, ranges, strict=True)
    ]


def letters_render_each(*, pledges: Sequence[Pledge], today: date) -> list[RenderedLetter]:
    """The same letters, one WeasyPrint document each: the slow way, kept for bench/letters.py."""
    rendered = []
    for pledge in pledges:
        rendered.extend(letters_render_batch(pledges=[pledge], today=today))
    return rendered
