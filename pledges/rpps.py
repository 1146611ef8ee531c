"""RPPS numbers: 11 digits, the last a Luhn check digit (DOMAIN.md section 3).

All real numbers seen start with "10", but that is observed, not documented: other prefixes
are accepted.
"""

import re

RPPS_LENGTH = 11
# Separators people type when copying from a card or a letterhead.
SEPARATORS = re.compile(r"[\s.\-\u00a0\u202f]")


def rpps_normalize(raw: str) -> str:
    """Drop spaces, dots and dashes; the result may still be invalid."""
    return SEPARATORS.sub("", raw or "")


def luhn_is_valid(digits: str) -> bool:
    if not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def rpps_is_valid(number: str) -> bool:
    return len(number) == RPPS_LENGTH and luhn_is_valid(number)


def luhn_check_digit(digits: str) -> str:
    """The digit to append to `digits` so that the whole passes the Luhn check."""
    for candidate in "0123456789":
        if luhn_is_valid(digits + candidate):
            return candidate
    raise ValueError("digits must be ASCII digits")
