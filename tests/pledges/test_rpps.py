"""RPPS numbers: the Luhn check and what the signing form accepts as typed."""

import pytest
from django.utils import translation

from pledges.forms import PledgeForm
from pledges.rpps import rpps_is_valid, rpps_normalize
from tests.pledges import signing_support
from tests.pledges.signing_support import form_data

territories = signing_support.territories

# "12345678903" in fullwidth digits: str.isdigit() is True for them, yet they are not an RPPS.
FULLWIDTH_DIGITS = "".join(chr(0xFF10 + int(char)) for char in "12345678903")


@pytest.mark.parametrize("number", ["12345678903", "19999999998"])
def test_documented_examples_pass_the_luhn_check(number):
    assert rpps_is_valid(number)


@pytest.mark.parametrize(
    "number", ["12345678901", "1234567890", "123456789030", "1234567890a", "", FULLWIDTH_DIGITS]
)
def test_wrong_check_digit_length_or_characters_fail(number):
    assert not rpps_is_valid(number)


@pytest.mark.parametrize(
    "typed", ["123 456 789 03", "1.23.45.67.89.03", "123-456-789-03", "\u00a012345678903 "]
)
def test_spaces_dots_and_dashes_are_dropped(typed):
    assert rpps_normalize(typed) == "12345678903"


def _rpps_errors(campaign, value) -> tuple[list[str], str | None]:
    with translation.override("en"):
        form = PledgeForm(
            form_data(rpps=value), campaign=campaign, letter_version=campaign.current_letter_version
        )
        valid = form.is_valid()
        return list(form.errors.get("rpps", [])), form.cleaned_data.get("rpps") if valid else None


@pytest.mark.parametrize("typed", ["123 456 789 03", "1.23.45.67.89.03", " 12345678903 "])
def test_form_stores_the_normalised_number(campaign, territories, typed):
    errors, cleaned = _rpps_errors(campaign, typed)

    assert errors == []
    assert cleaned == "12345678903"


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        (
            "12345678901",
            "This RPPS number is not valid: its last digit does not match. Check for a typing error.",
        ),
        ("1234567890", "An RPPS number has 11 digits; this one has 10."),
        ("123456789012", "An RPPS number has 11 digits; this one has 12."),
        ("1234567890A", "An RPPS number contains only digits (spaces, dots and dashes are ignored)."),
        (
            FULLWIDTH_DIGITS,
            "An RPPS number contains only digits (spaces, dots and dashes are ignored).",
        ),
    ],
)
def test_form_explains_what_is_wrong_with_the_number(campaign, territories, typed, message):
    errors, _cleaned = _rpps_errors(campaign, typed)

    assert errors == [message]
