"""The projection and the effective-date cut-off."""

from datetime import date, timedelta

import pytest
from dateutil.relativedelta import relativedelta

from pledges.selectors_organizer import effective_cutoff, projection_date

TODAY = date(2026, 3, 10)


@pytest.mark.parametrize(
    ("missing", "recent", "expected"),
    [
        (0, 0, TODAY),  # nothing missing: reached today
        (10, 0, None),  # nobody signed lately: no date
        (10, 14, TODAY + timedelta(days=10)),  # 1 a day
        (10, 42, TODAY + timedelta(days=4)),  # 3 a day: 3.33 days, rounded up
        (1, 1, TODAY + timedelta(days=14)),
        (700, 7, TODAY + timedelta(days=1400)),
        (10**9, 1, None),  # past the calendar: no date rather than an overflow (and a 500)
        (10**400, 1, None),  # too large for a float too
    ],
)
def test_projection_date_at_the_pace_of_the_last_14_days(missing, recent, expected):
    assert projection_date(missing=missing, recent=recent, today=TODAY) == expected


@pytest.mark.parametrize(
    "today", [date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 31), date(2024, 2, 29), date(2026, 12, 31)]
)
def test_effective_cutoff_matches_one_month_after_the_acknowledgement(today):
    cutoff = effective_cutoff(today=today)
    for offset in range(-40, 5):
        acknowledged = cutoff + timedelta(days=offset)
        assert (acknowledged + relativedelta(months=1) <= today) == (acknowledged <= cutoff)
