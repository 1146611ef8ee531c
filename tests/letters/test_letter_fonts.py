"""The signing form accepts a character only if the letter's embedded fonts can print it."""

import unicodedata

import pytest

from pledges.letter_fonts import characters_letters_cannot_print, letter_font_code_points


def test_every_latin_letter_of_a_french_or_european_name_is_printable():
    # Latin-1 Supplement and Latin Extended-A: every letter of French civil-status names and
    # of most European ones (the RPPS directory spells names in Latin letters).
    letters = [
        chr(point) for point in range(0x00C0, 0x0180) if unicodedata.category(chr(point)).startswith("L")
    ]
    assert len(letters) > 150
    assert characters_letters_cannot_print("".join(letters)) == []


@pytest.mark.parametrize(
    ("value", "missing"),
    [
        ("王小明", ["王", "小", "明"]),
        ("Kim 김", ["김"]),
        ("Martin", []),
        ("Nguyễn Thị", []),
    ],
)
def test_characters_without_a_glyph_are_named_once_each(value, missing):
    assert characters_letters_cannot_print(value) == missing


def test_the_coverage_is_read_from_the_fonts():
    covered = letter_font_code_points()
    assert ord("é") in covered and ord("€") in covered
    assert ord("王") not in covered
