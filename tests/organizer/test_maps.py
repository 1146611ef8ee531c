"""The map of departments (organizer and public) and the daily chart."""

import re
from datetime import date

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import translation

from pledges.maps import (
    MapDepartment,
    daily_chart_svg,
    daily_series,
    department_class,
    department_map_svg,
    map_department_codes,
)
from pledges.models import TerritoryCount
from tests.organizer.conftest import LEAKY_NAME

pytestmark = pytest.mark.django_db

EVERY_CODE = {f"{n:02d}" for n in range(1, 96) if n != 20} | {"2A", "2B", "971", "972", "973", "974", "976"}


def path_classes(svg: str) -> dict[str, str]:
    """data-code -> fill class of the first shape drawn for it."""
    found = {}
    for css, code in re.findall(r'<path class="d (\w+)" data-code="(\w+)"', svg):
        found.setdefault(code, css)
    return found


def test_the_shapes_file_draws_all_101_departments():
    assert map_department_codes() == EVERY_CODE
    assert len(EVERY_CODE) == 101


@pytest.fixture
def published(campaign, pledges):
    """The published counts of the `pledges` fixture (the organizer map reads those)."""
    for code, made in pledges.items():
        TerritoryCount.objects.create(campaign=campaign, level="department", code=code, pledges=len(made))


def test_the_organizer_map_has_every_department_a_legend_and_a_text_alternative(
    client, campaign, published, national
):
    client.force_login(national)
    response = client.get(reverse("pledges:organizer_map", kwargs={"slug": campaign.slug}))
    svg = response.content.decode()
    assert response["Content-Type"] == "image/svg+xml; charset=utf-8"
    assert response["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert set(path_classes(svg)) == EVERY_CODE
    assert 'role="img"' in svg and 'aria-labelledby="map-title map-desc"' in svg
    assert '<title id="map-title">' in svg and '<desc id="map-desc">' in svg
    assert '<g id="legend">' in svg
    assert svg.count('class="swatch ') >= 6
    # 7 of a target of 10 in Rhône: 50-75 %; 3 in Paris: under 25 %; Isère: nothing yet.
    classes = path_classes(svg)
    assert (classes["69"], classes["75"], classes["38"]) == ("p3", "p2", "zero")
    assert "Rhône (69)" in svg


def test_a_delegate_map_leaves_other_departments_blank(client, campaign, published, delegate_69):
    client.force_login(delegate_69)
    svg = client.get(reverse("pledges:organizer_map", kwargs={"slug": campaign.slug})).content.decode()
    classes = path_classes(svg)
    assert classes["69"] == "p3"
    assert {code for code, css in classes.items() if css == "out"} == EVERY_CODE - {"69"}
    paris = re.search(r'data-code="75" d="[^"]*"><title>([^<]*)</title>', svg).group(1)
    assert "3" not in paris
    assert LEAKY_NAME not in svg


def test_departments_are_binned_by_target_or_by_population():
    def cls(count, target=None, population=None, in_scope=True):
        department = MapDepartment(
            code="01", name="Ain", count=count, target=target, population=population, in_scope=in_scope
        )
        return department_class(department, by_target=target is not None)

    assert [cls(n, target=100) for n in (0, 1, 24, 25, 50, 75, 99, 100, 150)] == [
        "zero", "p1", "p1", "p2", "p3", "p4", "p4", "met", "met",
    ]  # fmt: skip
    assert [cls(n, population=1000) for n in (5, 25, 50, 100, 199, 200)] == [
        "p1",
        "p2",
        "p3",
        "p4",
        "p4",
        "p5",
    ]
    assert cls(None, target=10) == "sup"
    assert cls(5, target=10, in_scope=False) == "out"
    assert cls(3) == "na"


def test_without_any_target_the_map_shows_the_share_of_population():
    with translation.override("en"):
        svg = department_map_svg(
            departments=[MapDepartment(code="01", name="Ain", count=30, population=600)],
            title="t",
            description="d",
        )
    assert path_classes(svg)["01"] == "p3"  # 5 %
    assert "Signatures as a share of the reference population" in svg
    assert ">20 % or more<" in svg
    assert "Ain (01): 30 signatures, 5.0 % of the reference population" in svg


def public_map(client, campaign, lang="en"):
    return client.get(reverse("pledges:campaign_map", kwargs={"slug": campaign.slug}), {"lang": lang})


def test_the_public_map_hides_small_counts(client, campaign):
    TerritoryCount.objects.create(campaign=campaign, level="department", code="69", pledges=7)
    TerritoryCount.objects.create(campaign=campaign, level="department", code="75", pledges=3)
    response = public_map(client, campaign)
    svg = response.content.decode()
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert response["Cache-Control"].startswith("public, max-age=")
    classes = path_classes(svg)
    assert classes["69"] == "p3"
    assert classes["75"] == "sup"
    assert set(classes) == EVERY_CODE
    paris = re.search(r'data-code="75" d="[^"]*"><title>([^<]*)</title>', svg).group(1)
    assert "3" not in paris.replace("(75)", "")
    assert 'class="swatch sup"' in svg


def test_the_public_map_is_built_once_per_interval(client, campaign, django_assert_num_queries):
    public_map(client, campaign)
    TerritoryCount.objects.create(campaign=campaign, level="department", code="69", pledges=9)
    with django_assert_num_queries(0):
        svg = public_map(client, campaign).content.decode()
    assert path_classes(svg)["69"] == "zero"  # still the cached answer
    cache.clear()
    assert path_classes(public_map(client, campaign).content.decode())["69"] == "p4"


def test_the_public_map_of_a_draft_or_unknown_campaign_is_404(client, campaign):
    campaign.status = "draft"
    campaign.save()
    assert public_map(client, campaign).status_code == 404
    assert client.get(reverse("pledges:campaign_map", kwargs={"slug": "x" * 200})).status_code == 404


def test_the_public_map_speaks_the_language_of_its_url(client, campaign):
    english = public_map(client, campaign, lang="en").content.decode()
    assert "no signature" in english
    assert public_map(client, campaign, lang="xx").status_code == 200


def test_the_campaign_page_shows_the_map_and_links_open_data(client, campaign):
    body = client.get(reverse("pledges:campaign_detail", kwargs={"slug": campaign.slug})).content.decode()
    assert reverse("pledges:campaign_map", kwargs={"slug": campaign.slug}) + "?lang=" in body
    assert reverse("pledges:open_data_csv", kwargs={"slug": campaign.slug}) in body


def test_the_daily_series_fills_days_without_pledges():
    series = daily_series([(date(2026, 3, 1), 4), (date(2026, 3, 4), 2)], today=date(2026, 3, 5))
    assert series == [
        (date(2026, 3, 1), 4),
        (date(2026, 3, 2), 0),
        (date(2026, 3, 3), 0),
        (date(2026, 3, 4), 2),
        (date(2026, 3, 5), 0),
    ]
    assert daily_series([], today=date(2026, 3, 5)) == []


def test_the_chart_draws_one_bar_per_day_with_a_title_and_no_inline_style():
    series = [(date(2026, 3, 1), 4), (date(2026, 3, 2), 0), (date(2026, 3, 3), 8)]
    svg = daily_chart_svg(series=series, title="Per day", description="Bars")
    assert svg.count('class="chart__bar"') == 3
    assert "<title>" in svg and 'aria-labelledby="chart-title chart-desc"' in svg
    assert "style" not in svg
