"""Public counts: roll-up, small-count suppression, the campaign page and the home page."""

import re
from datetime import UTC, datetime

import pytest
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext

from pledges.counting import counts_update
from pledges.enums import CampaignStatus, PledgeEventKind
from pledges.events import pledge_event_record
from pledges.models import CounterState, Pledge, TerritoryCount
from pledges.selectors import SMALL_COUNT_THRESHOLD, campaign_public_counts, public_count
from territories.models import Department, Region
from tests.pledges.factories import CampaignFactory

pytestmark = pytest.mark.django_db

UPDATED = datetime(2024, 3, 13, 9, 30, 15, tzinfo=UTC)  # 10:30:15 in Paris


@pytest.fixture
def departments():
    ara = Region.objects.create(code="84", name="Auvergne-Rhône-Alpes")
    idf = Region.objects.create(code="11", name="Île-de-France")
    corse = Region.objects.create(code="94", name="Corse")
    return {
        # Created out of order on purpose: the official position decides.
        "75": Department.objects.create(code="75", name="Paris", region=idf, position=76),
        "2A": Department.objects.create(code="2A", name="Corse-du-Sud", region=corse, position=20),
        "01": Department.objects.create(code="01", name="Ain", region=ara, position=1),
        "03": Department.objects.create(code="03", name="Allier", region=ara, position=3),
    }


def set_counts(campaign, **counts: int) -> None:
    """set_counts(campaign, FR=1234, d75=1230, d01=3, r11=1230): writes TerritoryCount rows."""
    levels = {"FR": "nation", "d": "department", "r": "region"}
    for name, value in counts.items():
        level = levels["FR"] if name == "FR" else levels[name[0]]
        code = name if name == "FR" else name[1:]
        TerritoryCount.objects.create(campaign=campaign, level=level, code=code, pledges=value)


def detail_url(campaign) -> str:
    return reverse("pledges:campaign_detail", kwargs={"slug": campaign.slug})


@pytest.mark.parametrize(
    ("value", "shown"), [(0, 0), (1, None), (2, None), (4, None), (5, 5), (6, 6), (1234, 1234)]
)
def test_public_count_hides_one_to_four_and_shows_zero(value, shown):
    assert SMALL_COUNT_THRESHOLD == 5
    assert public_count(value) == shown


def test_counts_update_rolls_departments_up_into_regions_and_the_nation(departments, campaign):
    letter_version = campaign.current_letter_version
    for number, code in enumerate(["01", "01", "03", "75", "75", "75", "2A"]):
        pledge = Pledge.objects.create(
            campaign=campaign,
            letter_version=letter_version,
            department=departments[code],
            rpps=f"1000000000{number}",
        )
        pledge_event_record(pledge=pledge, kind=PledgeEventKind.PLEDGED)
    CounterState.objects.create(pk=1, lag_seconds=0)

    counts_update()

    rows = {
        (level, code): pledges
        for level, code, pledges in TerritoryCount.objects.filter(campaign=campaign).values_list(
            "level", "code", "pledges"
        )
    }
    assert rows == {
        ("department", "01"): 2,
        ("department", "03"): 1,
        ("department", "75"): 3,
        ("department", "2A"): 1,
        ("region", "84"): 3,
        ("region", "11"): 3,
        ("region", "94"): 1,
        ("nation", "FR"): 7,
    }


def test_campaign_public_counts_lists_every_territory_in_order_and_suppresses_small_counts(
    departments, campaign
):
    set_counts(campaign, FR=9, d75=6, d01=3, r11=6, r84=3)
    CounterState.objects.create(pk=1, counted_until=UPDATED, interval_seconds=7)

    counts = campaign_public_counts(campaign=campaign)

    assert counts["nation"] == {
        "code": "FR",
        "name": "France",
        "level": "nation",
        "pledges": 9,
        "suppressed": False,
    }
    assert counts["departments"] == [
        {"code": "01", "name": "Ain", "level": "department", "pledges": None, "suppressed": True},
        {"code": "03", "name": "Allier", "level": "department", "pledges": 0, "suppressed": False},
        {"code": "2A", "name": "Corse-du-Sud", "level": "department", "pledges": 0, "suppressed": False},
        {"code": "75", "name": "Paris", "level": "department", "pledges": 6, "suppressed": False},
    ]
    assert counts["regions"] == [
        {"code": "11", "name": "Île-de-France", "level": "region", "pledges": 6, "suppressed": False},
        {
            "code": "84",
            "name": "Auvergne-Rhône-Alpes",
            "level": "region",
            "pledges": None,
            "suppressed": True,
        },
        {"code": "94", "name": "Corse", "level": "region", "pledges": 0, "suppressed": False},
    ]
    assert counts["updated_at"] == UPDATED
    assert counts["interval_seconds"] == 7


def test_campaign_public_counts_before_the_first_run_shows_zeros_and_no_date(departments, campaign):
    counts = campaign_public_counts(campaign=campaign)

    assert counts["nation"]["pledges"] == 0
    assert counts["updated_at"] is None
    assert counts["interval_seconds"] == 5


@pytest.mark.parametrize("departments_with_pledges", [1, 3])
def test_campaign_public_counts_costs_three_queries_whatever_the_departments(
    departments, campaign, django_assert_num_queries, departments_with_pledges
):
    for code in ["01", "03", "75"][:departments_with_pledges]:
        set_counts(campaign, **{f"d{code}": 10})
    CounterState.objects.create(pk=1, counted_until=UPDATED)

    with django_assert_num_queries(3):
        counts = campaign_public_counts(campaign=campaign)

    assert sum(1 for entry in counts["departments"] if entry["pledges"]) == departments_with_pledges


def test_campaign_page_shows_the_national_count_the_department_table_and_the_update_time(
    client, departments, campaign
):
    set_counts(campaign, FR=1234, d75=1230, d01=4, r11=1230, r84=4)
    CounterState.objects.create(pk=1, counted_until=UPDATED)

    response = client.get(detail_url(campaign), HTTP_ACCEPT_LANGUAGE="en")

    content = response.content.decode()
    assert response.status_code == 200
    assert re.search(
        r'data-counter-value>1,234</span>\s*<span class="counter__label" data-counter-label>signatures',
        content,
    )
    rows = re.findall(
        r'<tr id="department-(\w+)">\s*<td[^>]*>\w+</td>\s*<th scope="row">([^<]+)</th>\s*<td[^>]*>([^<]*)</td>',
        content,
    )
    assert rows == [
        ("01", "Ain", "fewer than 5"),
        ("03", "Allier", "0"),
        ("2A", "Corse-du-Sud", "0"),
        ("75", "Paris", "1,230"),
    ]
    assert "Counts last updated:" in content
    assert (
        '<time data-counter-updated datetime="2024-03-13T10:30:15+01:00">March 13, 2024, 10:30:15</time>'
        in content
    )


def test_campaign_page_hides_a_small_national_count(client, departments, campaign):
    set_counts(campaign, FR=2, d01=2, r84=2)

    content = client.get(detail_url(campaign), HTTP_ACCEPT_LANGUAGE="en").content.decode()

    assert re.search(r"data-counter-value>fewer than 5</span>", content)
    assert ">2<" not in content
    assert "Counts have not been computed yet." in content


def test_campaign_page_formats_numbers_the_french_way(client, departments, campaign):
    set_counts(campaign, FR=1234, d75=1234, r11=1234)

    content = client.get(detail_url(campaign), HTTP_ACCEPT_LANGUAGE="fr").content.decode()

    assert "data-counter-value>1\xa0234</span>" in content


def test_campaign_page_says_moins_de_5_in_french(client, departments, campaign):
    set_counts(campaign, FR=12, d75=9, d01=3, r11=9, r84=3)
    with translation.override("fr"):
        if gettext("fewer than 5") == "fewer than 5":
            pytest.xfail("the French catalogue does not translate 'fewer than 5' yet (the lead adds it)")

    content = client.get(detail_url(campaign), HTTP_ACCEPT_LANGUAGE="fr").content.decode()

    assert re.search(
        r'<tr id="department-01">.*?<td class="territory-table__count">moins de 5</td>', content, re.S
    )


def test_campaign_page_loads_counter_js_with_its_data_and_has_no_inline_script(client, departments, campaign):
    CounterState.objects.create(pk=1, interval_seconds=9)

    content = client.get(detail_url(campaign)).content.decode()

    scripts = re.findall(r"<script\b[^>]*>", content)
    assert scripts == ['<script src="/static/js/counter.js" defer>']
    assert re.findall(r"<script\b[^>]*>(.*?)</script>", content, re.S) == [""]  # no inline code
    count_url = reverse("pledges:api_campaign_count", kwargs={"slug": campaign.slug})
    assert f'data-counter-url="{count_url}"' in content
    assert 'data-counter-interval="9"' in content


def test_home_shows_each_open_campaign_national_count(client):
    big = CampaignFactory(title="Grande campagne")
    small = CampaignFactory(title="Petite campagne")
    hidden = CampaignFactory(title="Brouillon", status=CampaignStatus.DRAFT)
    set_counts(big, FR=5007)
    set_counts(small, FR=3)
    set_counts(hidden, FR=999)

    response = client.get(reverse("pledges:home"), HTTP_ACCEPT_LANGUAGE="en")

    content = response.content.decode()
    cards = re.findall(r'<p class="card__count">\s*<strong>([^<]+)</strong>', content)
    assert [campaign.title for campaign in response.context["campaigns"]] == [
        "Grande campagne",
        "Petite campagne",
    ]
    assert cards == ["5,007", "fewer than 5"]
    assert "999" not in content
