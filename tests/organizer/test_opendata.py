"""Open data per territory: counts only, small counts hidden, cached like the API."""

import csv
import io

import pytest
from django.core.cache import cache
from django.urls import reverse

from pledges.models import TerritoryCount

pytestmark = pytest.mark.django_db


@pytest.fixture
def counted(campaign):
    for level, code, pledges in [
        ("department", "69", 7),
        ("department", "75", 3),
        ("region", "84", 7),
        ("region", "11", 3),
        ("nation", "FR", 10),
    ]:
        TerritoryCount.objects.create(campaign=campaign, level=level, code=code, pledges=pledges)


def url(campaign, extension):
    return reverse(f"pledges:open_data_{extension}", kwargs={"slug": campaign.slug})


def test_json_lists_every_territory_with_small_counts_hidden(client, campaign, counted):
    response = client.get(url(campaign, "json"))
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Cache-Control"].startswith("public, max-age=")
    data = response.json()
    territories = {(t["level"], t["code"]): t for t in data["territories"]}
    assert len(territories) == 101 + 18 + 1
    assert territories[("department", "69")] == {
        "code": "69", "name": "Rhône", "level": "department", "pledges": 7, "suppressed": False,
        "target": 10, "status": "collecting",
    }  # fmt: skip
    paris = territories[("department", "75")]
    assert (paris["pledges"], paris["suppressed"]) == (None, True)
    assert (territories[("region", "11")]["pledges"], territories[("region", "11")]["suppressed"]) == (
        None,
        True,
    )
    assert territories[("department", "38")]["pledges"] == 0
    assert territories[("nation", "FR")]["pledges"] == 10
    assert data["small_counts_hidden_below"] == 5


def test_csv_has_the_same_rows_and_no_small_count(client, campaign, counted):
    response = client.get(url(campaign, "csv"))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert list(rows[0]) == ["code", "name", "level", "pledges", "suppressed", "target", "status"]
    by_code = {(r["level"], r["code"]): r for r in rows}
    assert (by_code[("department", "69")]["pledges"], by_code[("department", "69")]["suppressed"]) == (
        "7",
        "false",
    )
    assert (by_code[("department", "75")]["pledges"], by_code[("department", "75")]["suppressed"]) == (
        "",
        "true",
    )
    assert ",3," not in response.content.decode()


def test_open_data_is_cached_for_a_counting_interval(client, campaign, counted, django_assert_num_queries):
    client.get(url(campaign, "json"))
    TerritoryCount.objects.filter(code="69").update(pledges=70)
    with django_assert_num_queries(0):
        cached = client.get(url(campaign, "json")).json()
    assert next(t for t in cached["territories"] if t["code"] == "69")["pledges"] == 7
    cache.clear()
    fresh = client.get(url(campaign, "json")).json()
    assert next(t for t in fresh["territories"] if t["code"] == "69")["pledges"] == 70


@pytest.mark.parametrize("extension", ["csv", "json"])
def test_open_data_of_a_draft_campaign_is_404_and_post_is_405(client, campaign, extension):
    assert client.post(url(campaign, extension)).status_code == 405
    campaign.status = "draft"
    campaign.save()
    assert client.get(url(campaign, extension)).status_code == 404
