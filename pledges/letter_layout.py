"""Which parts of a letter a rendering lays out: all of it, its shared frame, or its signer's blocks.

templates/letters/_letter.html wraps each part that holds the signer's own text (name, RPPS,
address, place) in {% signer_block "name" %} and every other part in {% frame_block %}
(pledges/templatetags/letter_blocks.py). The `layout` in the template's context says what they
render (pledges.letters_batch explains why a letter is laid out in two parts):

- full: everything; each signer block is a <section> in the flow (previews, a letter alone);
- frame: everything but the signer's text; each signer block is an empty <section> of a given
  height, the room the signer's text takes. A frame holds no signer's data and can be shared;
- signer: only the signer blocks, each positioned absolutely where the frame left room for it,
  on the same page of the letter.

A signer block is its own block formatting context (letter.css, .signer-block): its margins stay
inside it, so it takes the same height laid out in the letter or alone at the same width.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

FULL = "full"
FRAME = "frame"
SIGNER = "signer"
# The ids of the empty markers that open and close each letter (templates/letters/_letter.html):
# + the letter's index in its document.
LETTER_START_PREFIX = "letter-start-"
LETTER_END_PREFIX = "letter-end-"


@dataclass(frozen=True)
class Placement:
    """Where a signer block goes: its page of the letter and its box, in CSS px from the page area."""

    page: int
    left: float
    top: float
    width: float
    # Page breaks the signer layout puts before this block: it is on a later page than the last one.
    breaks_before: int = 0


@dataclass(frozen=True)
class LetterLayout:
    kind: str = FULL
    # frame: the height of each signer block, in CSS px; None lays out no height (a frame's key).
    heights: Mapping[str, float] | None = None
    # signer: where each block goes, and how many pages the letter has.
    placements: Mapping[str, Placement] = field(default_factory=dict)
    pages: int = 1

    @property
    def shows_frame(self) -> bool:
        return self.kind != SIGNER

    @property
    def shows_signer(self) -> bool:
        return self.kind != FRAME

    @property
    def trailing_breaks(self) -> range:
        """signer: the page breaks after the last block, so that the signer's pages match the frame's."""
        if self.kind != SIGNER:
            return range(0)
        last_page = max((placement.page for placement in self.placements.values()), default=0)
        return range(self.pages - 1 - last_page)


FULL_LAYOUT = LetterLayout()


def signer_block_prefix(*, letter_index: int) -> str:
    return f"signer-block-{letter_index}-"


def signer_block_id(*, letter_index: int, name: str) -> str:
    """The block's HTML id: its position in the layout is read back from WeasyPrint's anchors."""
    return signer_block_prefix(letter_index=letter_index) + name
