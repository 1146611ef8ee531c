"""Which characters the letter's embedded fonts can print.

Names and addresses typed in the signing form end up in a PDF sent to a caisse. A character the
letter's fonts have no glyph for comes out as an empty box (.notdef) in a legal act, found days
later at release. The form refuses such characters when they are typed, naming the field and the
characters, so that the signer can transliterate them as they would on any French form.

Read from the font files themselves (the same ones WeasyPrint embeds, found like deconv.pdf finds
them), once per process: changing the fonts changes what is accepted, with no list to keep.
"""

from functools import cache

from django.contrib.staticfiles import finders
from fontTools.ttLib import TTFont

# Every face a letter uses: a character is printable only if each of them has it (the name may be
# set in bold, the city in italic).
LETTER_FONT_FILES = (
    "letters/fonts/DejaVuSerif.ttf",
    "letters/fonts/DejaVuSerif-Bold.ttf",
    "letters/fonts/DejaVuSerif-Italic.ttf",
)


@cache
def letter_font_code_points() -> frozenset[int]:
    """The code points every letter font has a glyph for (~3,000 for DejaVu Serif)."""
    covered: frozenset[int] | None = None
    for name in LETTER_FONT_FILES:
        path = finders.find(name)
        if path is None:
            raise FileNotFoundError(f"letter font missing from the static files: {name}")
        with TTFont(path, lazy=True) as font:
            points = frozenset(font.getBestCmap())
        covered = points if covered is None else covered & points
    return covered or frozenset()


def characters_letters_cannot_print(value: str) -> list[str]:
    """The distinct characters of `value` the letter fonts cannot draw, in order of appearance."""
    covered = letter_font_code_points()
    return list(dict.fromkeys(char for char in value if ord(char) not in covered))
