"""Released letters, many at a time: the text they share laid out once, each signer's own stamped in.

Why: WeasyPrint's cost is the text it lays out, not the document: a letter laid out with 99
others in one document still cost more than half of one laid out alone (39 against 70 ms of CPU
for the letters of bench/letters.py, 2026-12-06; bench/NOTES.md).
The letters of a release differ only in their signer's blocks (name, RPPS, address, place: a few
lines), so the rest, the frame, is laid out once per letter text, caisse and date.

How (pledges.letter_layout names the three layouts, pledges.letter_frames keeps the frames):
0. The first letter of a letter text is laid out whole, alone: that measures its signer blocks.
1. Each letter's frame is its HTML without any signer's data; letters whose frame HTML is the
   same share a frame. A frame is laid out with an empty block of a given height where each
   signer block goes; each (frame, heights) once, with where each block went.
2. The signer blocks of a whole batch are laid out in one document, each letter on its own pages,
   each block positioned absolutely where its frame leaves room for it. Their heights are only
   known after that layout: a letter is placed in the frame of the heights its blocks most likely
   take; one whose blocks turn out taller or shorter is laid out again, in a second document, in
   the frame of its own heights (which then fits: a block's height depends on its width, not on
   where it is).
3. Each letter's pages of signer blocks are written alone and stamped onto its frame
   (deconv.pdf_stamp): one PDF, one structure tree (PDF/UA), the fonts embedded.
4. A letter that still does not fit, or cannot be stamped, is laid out whole on its own, as
   letters_render_each lays out every letter: slower, never wrong.
The result is the letter a single layout makes: tests/letters/test_stamping.py renders both at
150 dpi and finds a few anti-aliased pixels a few grey levels apart (block heights are rounded to
a thousandth of a CSS px), and the same structure tree.

How the pages of the signer document are split, robustly:
1. Each letter is an <article> (templates/letters/_letter.html) that starts on a new page and
   holds two empty markers, `letter-start-<i>` first and `letter-end-<i>` last.
2. After the layout, every page lists the anchors it holds (Page.anchors): letter i spans from
   the page of its start marker to the page of its end marker.
3. The ranges must tile the document exactly (first page 0, each letter starting on the page
   after the previous one ends, the last ending on the last page); anything else raises
   LetterSplitError rather than risk a page of one physician in another's letter.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date

from django.template.loader import render_to_string
from django.utils import translation
from django.utils.safestring import mark_safe

from deconv.pdf import PDF_STATIC_URL, PDF_TAGGED_ONLY, document_write_pdf, html_layout
from pledges.letter_frames import (
    Frame,
    FrameLayoutError,
    LetterDraft,
    LetterFrames,
    letter_draft,
    letter_html,
)
from pledges.letter_layout import (
    FULL_LAYOUT,
    LETTER_END_PREFIX,
    LETTER_START_PREFIX,
    SIGNER,
    LetterLayout,
    signer_block_id,
)
from pledges.letters import LETTER_LANGUAGE, letter_context
from pledges.models import Pledge

logger = logging.getLogger(__name__)

ARTICLE_TEMPLATE = "letters/_letter.html"
SIGNER_BLOCKS_TEMPLATE = "letters/signer_blocks.html"
# How far a block may land from where its frame left room for it, in CSS px (rounding only).
PLACEMENT_TOLERANCE = 0.01


class LetterSplitError(RuntimeError):
    """The laid-out document does not split cleanly into the letters it was made from."""


@dataclass(frozen=True)
class RenderedLetter:
    pledge_id: int
    pdf: bytes
    pages: int


# --- Signer blocks -------------------------------------------------------------------------------


def signer_blocks_html(*, letters: Sequence[tuple[LetterDraft, Frame]]) -> str:
    """One HTML document with the signer blocks of each letter, placed in its frame, each from a new page."""
    with translation.override(LETTER_LANGUAGE):
        articles = [
            render_to_string(
                ARTICLE_TEMPLATE,
                {
                    **letter.context,
                    "letter_index": index,
                    "layout": LetterLayout(kind=SIGNER, placements=frame.placements, pages=frame.pages),
                },
            )
            for index, (letter, frame) in enumerate(letters)
        ]
        return render_to_string(
            SIGNER_BLOCKS_TEMPLATE,
            {
                "PDF_STATIC_URL": PDF_STATIC_URL,
                # The articles were rendered (and escaped) by the template engine just above.
                "articles": [mark_safe(article) for article in articles],  # noqa: S308
                "title": "",
            },
        )


def letter_page_ranges(*, document, count: int) -> list[range]:
    """The pages of each of `count` letters in a laid-out document of letters (see the module docstring)."""
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    for page_index, page in enumerate(document.pages):
        for anchor in page.anchors:
            for prefix, found in ((LETTER_START_PREFIX, starts), (LETTER_END_PREFIX, ends)):
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


def _blocks_measured(*, document, page_range: range, letter_index: int, letter: LetterDraft):
    """Each signer block's height as laid out, and where its box landed: {name: (page in letter, x, y)}."""
    heights = []
    landed = {}
    for name in letter.block_names:
        block_id = signer_block_id(letter_index=letter_index, name=name)
        for page_in_letter, page_number in enumerate(page_range):
            box = document.pages[page_number].anchors.get(block_id)
            if box is not None:
                heights.append((name, round(box[3] - box[1], 3)))
                landed[name] = (page_in_letter, box[0], box[1])
                break
        else:
            raise LetterSplitError(f"signer block {name} of letter {letter_index} was not laid out")
    return tuple(heights), landed


def _landed_where_placed(*, landed: dict, frame: Frame) -> bool:
    for name, (page, x, y) in landed.items():
        frame_page, frame_x, frame_y = frame.block_box_start(name=name)
        if (
            page != frame_page
            or abs(x - frame_x) > PLACEMENT_TOLERANCE
            or abs(y - frame_y) > PLACEMENT_TOLERANCE
        ):
            return False
    return True


@dataclass
class _Round:
    """What one layout of signer blocks gave: letters done, to place again, or to lay out whole."""

    done: dict[int, RenderedLetter] = field(default_factory=dict)
    again: list[LetterDraft] = field(default_factory=list)
    whole: list[LetterDraft] = field(default_factory=list)


def _signer_round(*, letters: Sequence[LetterDraft], frames: LetterFrames) -> _Round:
    """Lay out the signer blocks of `letters`, each in the frame of its measured (else likely) heights."""
    result = _Round()
    placed = []
    for letter in letters:
        heights = letter.heights or frames.likely_heights(letter=letter)
        try:
            placed.append((letter, heights, frames.frame(letter=letter, heights=heights)))
        except FrameLayoutError:
            logger.exception("letter of pledge %s: no frame, laid out whole", letter.pledge.pk)
            result.whole.append(letter)
    if not placed:
        return result
    document = html_layout(html=signer_blocks_html(letters=[(letter, frame) for letter, _h, frame in placed]))
    try:
        ranges = letter_page_ranges(document=document, count=len(placed))
    except LetterSplitError:
        logger.exception("%d letters: their signer blocks do not split, laid out whole", len(placed))
        result.whole += [letter for letter, _heights, _frame in placed]
        return result
    for index, ((letter, planned, frame), page_range) in enumerate(zip(placed, ranges, strict=True)):
        try:
            heights, landed = _blocks_measured(
                document=document, page_range=page_range, letter_index=index, letter=letter
            )
        except LetterSplitError:
            logger.exception("letter of pledge %s: a block is missing, laid out whole", letter.pledge.pk)
            result.whole.append(letter)
            continue
        frames.observe(letter=letter, heights=heights)
        if heights != planned and letter.heights is None:
            # Placed in the frame of other heights: again, in the frame of its own.
            result.again.append(replace(letter, heights=heights))
        elif (
            heights != planned
            or len(page_range) != frame.pages
            or not _landed_where_placed(landed=landed, frame=frame)
        ):
            logger.warning(
                "letter of pledge %s: its blocks do not fit their frame, laid out whole", letter.pledge.pk
            )
            result.whole.append(letter)
        else:
            pages = [document.pages[number] for number in page_range]
            layer = document_write_pdf(document=document, pages=pages, options=PDF_TAGGED_ONLY)
            # Imported here: pikepdf (qpdf, lxml) is for the workers that print, not every web process.
            from deconv.pdf_stamp import StampError, pdf_stamp

            try:
                pdf = pdf_stamp(frame=frame.pdf, layer=layer)
            except StampError:
                logger.exception("letter of pledge %s: not stamped, laid out whole", letter.pledge.pk)
                result.whole.append(letter)
                continue
            result.done[letter.pledge.pk] = RenderedLetter(
                pledge_id=letter.pledge.pk, pdf=pdf, pages=frame.pages
            )
    return result


def _letter_whole(*, pledge: Pledge, context: dict) -> tuple[RenderedLetter, object]:
    """The whole letter laid out alone, and its WeasyPrint document (to measure its blocks)."""
    document = html_layout(html=letter_html(context=context, layout=FULL_LAYOUT))
    pdf = document_write_pdf(document=document, title=context["title"])
    return RenderedLetter(pledge_id=pledge.pk, pdf=pdf, pages=len(document.pages)), document


def _letter_whole_measured(*, letter: LetterDraft, frames: LetterFrames) -> RenderedLetter:
    """The whole letter, whose blocks' heights `frames` learns: where a letter text starts."""
    rendered, document = _letter_whole(pledge=letter.pledge, context=letter.context)
    frames.counts["measured"] += 1
    try:
        heights, _landed = _blocks_measured(
            document=document, page_range=range(len(document.pages)), letter_index=0, letter=letter
        )
    except LetterSplitError:
        logger.exception("letter of pledge %s: its blocks could not be measured", letter.pledge.pk)
    else:
        frames.observe(letter=letter, heights=heights)
    return rendered


# --- Entry points --------------------------------------------------------------------------------


def letters_render_batch(
    *, pledges: Sequence[Pledge], today: date, frames: LetterFrames | None = None
) -> list[RenderedLetter]:
    """Each pledge's released letter as its own PDF, in order (module docstring).

    Pledges need letter_version and caisse loaded (select_related) to avoid a query per letter.
    Pass the same `frames` to the batches of a release so that they share their frames.
    """
    frames = frames if frames is not None else LetterFrames()
    drafts = [letter_draft(pledge=pledge, today=today) for pledge in pledges]
    done: dict[int, RenderedLetter] = {}
    # A letter whose blocks were never seen (the first of a letter text) is laid out whole, which
    # measures them for the others.
    to_place = []
    for letter in drafts:
        if frames.knows(letter=letter):
            to_place.append(letter)
        else:
            done[letter.pledge.pk] = _letter_whole_measured(letter=letter, frames=frames)
    first = _signer_round(letters=to_place, frames=frames)
    # Letters whose blocks took other heights than guessed: placed again, in the frame of their own.
    frames.counts["placed_again"] += len(first.again)
    second = _signer_round(letters=first.again, frames=frames)
    done |= first.done | second.done
    # (A letter placed in the frame of its own heights never goes round again: it fits, or is whole.)
    for letter in first.whole + second.whole:
        frames.counts["whole"] += 1
        done[letter.pledge.pk], _document = _letter_whole(pledge=letter.pledge, context=letter.context)
    return [done[pledge.pk] for pledge in pledges]


def letters_render_each(*, pledges: Sequence[Pledge], today: date) -> list[RenderedLetter]:
    """The same letters, each laid out whole in a document of its own: the slow way (bench/letters.py)."""
    return [
        _letter_whole(pledge=pledge, context=letter_context(pledge=pledge, intention=False, today=today))[0]
        for pledge in pledges
    ]
