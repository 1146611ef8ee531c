"""The frames of released letters: the text letters share, laid out once with room for each signer's.

pledges.letters_batch explains the method; this module keeps its state for one worker's share of
a release, the batches of one release_letters_generate call (LetterFrames):
- the frames laid out, per frame key (the letter's HTML without any signer's data: the same for
  every letter of a letter version, caisse and date) and signer block heights, with where each
  block goes (pledges.letter_layout.Placement);
- the heights the signer blocks took so far, to place a letter's blocks before they are laid out:
  a block of the same shape (the lengths of its lines) takes the height it took before; a block
  of another shape, the lowest height that held as long lines; else the usual height of its name.
  A wrong guess costs a second layout of that letter's blocks, never a wrong letter.
"""

import hashlib
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import date
from html import unescape

from django.template.loader import render_to_string
from django.utils import translation

from deconv.pdf import PDF_STATIC_URL, document_write_pdf, html_layout
from pledges.letter_layout import (
    FRAME,
    LETTER_START_PREFIX,
    SIGNER,
    LetterLayout,
    Placement,
    signer_block_prefix,
)
from pledges.letters import LETTER_LANGUAGE, LETTER_TEMPLATE, letter_context
from pledges.models import Pledge

# Frames kept per LetterFrames: a release has one letter text, a few caisses and a few common
# sets of block heights; each frame is a ~15 kB PDF.
MAX_FRAMES = 128


class FrameLayoutError(RuntimeError):
    """A frame's layout does not hold each signer block once: its letters are laid out whole."""


# The height of each signer block of a letter, in CSS px rounded to a thousandth, in block order.
Heights = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Frame:
    pdf: bytes
    pages: int
    placements: dict[str, Placement]
    # The page area's top left corner in page coordinates, where placements count from.
    origin: tuple[float, float]

    def block_box_start(self, *, name: str) -> tuple[int, float, float]:
        """Where a block's box starts: its page, and x and y in page coordinates (as anchors say)."""
        placement = self.placements[name]
        return placement.page, self.origin[0] + placement.left, self.origin[1] + placement.top


@dataclass
class LetterDraft:
    """A letter on its way: its context, its frame's key, its signer blocks, their heights once measured."""

    pledge: Pledge
    context: dict
    frame_key: str
    # The signer blocks in order, each with the length of each of its lines of text: blocks of the
    # same shape nearly always take the same height (they wrap alike).
    block_shapes: dict[str, tuple[int, ...]]
    heights: Heights | None = None

    @property
    def block_names(self) -> tuple[str, ...]:
        return tuple(self.block_shapes)


class LetterFrames:
    """The frames laid out so far and the block heights seen, shared by the batches of one call."""

    def __init__(self, *, max_frames: int = MAX_FRAMES):
        self.max_frames = max_frames
        self._frames: OrderedDict[tuple[str, Heights], Frame] = OrderedDict()
        # Frames whose layout failed: not laid out again for each of their letters.
        self._failed: set[tuple[str, Heights]] = set()
        # The heights seen per block name, and per block name and shape.
        self._heights_seen: dict[str, Counter] = {}
        self._heights_by_shape: dict[tuple[str, tuple[int, ...]], Counter] = {}
        # Per block name and number of lines: the longest line seen in a block of each height.
        self._longest_line_at: dict[tuple[str, int], dict[float, int]] = {}
        # What the letters cost: frames laid out; letters laid out whole to measure their blocks
        # (the first of a letter text), placed a second time, laid out whole as a fallback.
        self.counts = Counter(frames=0, measured=0, placed_again=0, whole=0)

    def likely_heights(self, *, letter: LetterDraft) -> Heights:
        """Each block's likely height: that of the same shape, else of as long lines, else of its name."""
        return tuple(
            (name, self._likely_height(name=name, shape=shape)) for name, shape in letter.block_shapes.items()
        )

    def _likely_height(self, *, name: str, shape: tuple[int, ...]) -> float:
        same_shape = self._heights_by_shape.get((name, shape))
        if same_shape:
            return same_shape.most_common(1)[0][0]
        # A block's height grows with its lines' lengths: the lowest height that held lines as long,
        # else the tallest seen with as many lines.
        longest_at = self._longest_line_at.get((name, len(shape)))
        if longest_at:
            longest = max(shape, default=0)
            held = [height for height, length in longest_at.items() if length >= longest]
            return min(held) if held else max(longest_at)
        same_name = self._heights_seen.get(name)
        return same_name.most_common(1)[0][0] if same_name else 0.0

    def knows(self, *, letter: LetterDraft) -> bool:
        return all(name in self._heights_seen for name in letter.block_names)

    def observe(self, *, letter: LetterDraft, heights: Heights) -> None:
        for name, height in heights:
            shape = letter.block_shapes[name]
            self._heights_seen.setdefault(name, Counter())[height] += 1
            self._heights_by_shape.setdefault((name, shape), Counter())[height] += 1
            longest_at = self._longest_line_at.setdefault((name, len(shape)), {})
            longest_at[height] = max(longest_at.get(height, 0), max(shape, default=0))

    def frame(self, *, letter: LetterDraft, heights: Heights) -> Frame:
        """The letter's frame with its blocks at `heights`, laid out now if not yet (FrameLayoutError)."""
        key = (letter.frame_key, heights)
        if key in self._failed:
            raise FrameLayoutError("this frame's layout failed already")
        frame = self._frames.get(key)
        if frame is None:
            try:
                frame = frame_layout(letter=letter, heights=heights)
            except FrameLayoutError:
                self._failed.add(key)
                raise
            self.counts["frames"] += 1
            self._frames[key] = frame
            if len(self._frames) > self.max_frames:
                self._frames.popitem(last=False)
        else:
            self._frames.move_to_end(key)
        return frame


# --- Frames --------------------------------------------------------------------------------------


def letter_html(*, context: dict, layout: LetterLayout) -> str:
    """templates/letters/letter.html: one letter as a document, laid out as `layout` says."""
    with translation.override(LETTER_LANGUAGE):
        return render_to_string(
            LETTER_TEMPLATE, {"PDF_STATIC_URL": PDF_STATIC_URL, **context, "layout": layout}
        )


_SIGNER_BLOCK = re.compile(
    r'<section class="signer-block[^"]*" id="'
    + signer_block_prefix(letter_index=0)
    + r'([^"]+)"[^>]*>(.*?)</section>',
    re.DOTALL,
)
_LINE_BREAK = re.compile(r"<br\s*/?>")
_TAG = re.compile(r"<[^>]+>")


def _block_shapes(html: str) -> dict[str, tuple[int, ...]]:
    """Each signer block of a letter's HTML, with the length of each of its lines of text."""
    shapes = {}
    for name, content in _SIGNER_BLOCK.findall(html):
        if name in shapes:
            # Blocks are found by name in the layouts: two of one name would be placed as one.
            raise FrameLayoutError(f"two signer blocks named {name}")
        text = unescape(_TAG.sub("", _LINE_BREAK.sub("\n", content)))
        shapes[name] = tuple(len(line.strip()) for line in text.split("\n") if line.strip())
    return shapes


def letter_draft(*, pledge: Pledge, today: date) -> LetterDraft:
    """A released letter's context, its frame's key and the shapes of its signer blocks."""
    context = letter_context(pledge=pledge, intention=False, today=today)
    # The frame without heights: no signer's data, the same HTML for every letter that shares it.
    key_html = letter_html(context=context, layout=LetterLayout(kind=FRAME))
    # The signer blocks, not placed yet: what they hold.
    blocks_html = letter_html(context=context, layout=LetterLayout(kind=SIGNER))
    return LetterDraft(
        pledge=pledge,
        context=context,
        frame_key=hashlib.sha256(key_html.encode()).hexdigest(),
        block_shapes=_block_shapes(blocks_html),
    )


def frame_layout(*, letter: LetterDraft, heights: Heights) -> Frame:
    """Lay out a letter's frame with its signer blocks at `heights`; read where each block went."""
    html = letter_html(context=letter.context, layout=LetterLayout(kind=FRAME, heights=dict(heights)))
    document = html_layout(html=html)
    # The start marker opens the letter: the top left corner of the page area, where the signer
    # layout positions its blocks from.
    origin_x, origin_y = document.pages[0].anchors[LETTER_START_PREFIX + "0"][:2]
    prefix = signer_block_prefix(letter_index=0)
    placements: dict[str, Placement] = {}
    previous_page = 0
    # Anchors come in page order, then in document order within a page: the blocks' order.
    for page_number, page in enumerate(document.pages):
        for anchor, (x1, y1, x2, _y2) in page.anchors.items():
            if not anchor.startswith(prefix):
                continue
            name = anchor[len(prefix) :]
            placements[name] = Placement(
                page=page_number,
                left=x1 - origin_x,
                top=y1 - origin_y,
                width=x2 - x1,
                breaks_before=page_number - previous_page,
            )
            previous_page = page_number
    if set(placements) != {name for name, _height in heights}:
        raise FrameLayoutError("the frame does not hold each signer block once")
    pdf = document_write_pdf(document=document, title=letter.context["title"])
    return Frame(pdf=pdf, pages=len(document.pages), placements=placements, origin=(origin_x, origin_y))
