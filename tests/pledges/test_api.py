"""The public JSON API: exact shapes, suppression, 404/405 JSON, CORS, cache headers, the 1 s cache."""

import json
import time
from datetime import UTC, datetime

import pytest
from django.test import Client
from django.urls import reverse

from deconv.answer_cache import answer_cache_clear_local
from pledges.enums import CampaignStatus
from pledges.models import CounterState, TerritoryCount
from territories.models import Department, Region
from tests.pledges.factories import CampaignFactory

pytestmark = pytest.mark.django_db

UPDATED = datetime(2024, 3, 13, 9, 30, 15, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_process_cache():
    # The API keeps answers in process memory for a second; tests must not see each other's.
    answer_cache_clear_local()
    yield
    answer_cache_clear_local()


@pytest.fixture
def departments():
    ara = Region.objects.create(code="84", name="Auvergne-Rhône-Alpes")
    idf = Region.objects.create(code="11", name="Île-de-France")
    return {
        "75": Department.objects.create(code="75", name="Paris", region=idf, position=76),
        "01": Department.objects.create(code="01", name="Ain", region=ara, position=1),
    }


@pytest.fixture
def counted(departments, campaign):
    """Paris 6 (shown), Ain 3 (suppressed), counts as of UPDATED, interval 5 s."""
    for level, code, pledges in [
        ("department", "75", 6),
        ("department", "01", 3),
        ("region", "11", 6),
        ("region", "84", 3),
        ("nation", "FR", 9),
    ]:
        TerritoryCount.objects.create(campaign=campaign, level=level, code=code, pledges=pledges)
    CounterState.objects.create(pk=1, counted_until=UPDATED, interval_seconds=5)
    return campaign


def count_url(campaign) -> str:
    return reverse("pledges:api_campaign_count", kwargs={"slug": campaign.slug})


def detail_url(campaign) -> str:
    return reverse("pledges:api_campaign_detail", kwargs={"slug": campaign.slug})


def test_campaign_list_gives_public_campaigns_with_their_national_count(client, counted, settings):
    settings.SITE_URL = "https://deconv.example"
    CampaignFactory(slug="brouillon", status=CampaignStatus.DRAFT)
    paused = CampaignFactory(slug="en-pause", title="Campagne en pause", status=CampaignStatus.PAUSED)
    TerritoryCount.objects.create(campaign=paused, level="nation", code="FR", pledges=2)

    response = client.get(reverse("pledges:api_campaign_list"))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "campaigns": [
            {
                "slug": counted.slug,
                "title": counted.title,
                "status": "open",
                "pledges": 9,
                "url": f"https://deconv.example/campaigns/{counted.slug}/",
            },
            {
                "slug": "en-pause",
                "title": "Campagne en pause",
                "status": "paused",
                "pledges": None,
                "url": "https://deconv.example/campaigns/en-pause/",
            },
        ]
    }


# The conditions' fields (pledges.conditions): this campaign has no threshold rule, and only
# territories of the release level (departments by default) have a status.
NO_CONDITION = {"target": None, "missing": None, "status": None, "round_ends_at": None, "released_at": None}


def test_campaign_detail_lists_departments_regions_and_nation_with_suppression(client, counted):
    response = client.get(detail_url(counted))

    assert response.status_code == 200
    assert response.json() == {
        "slug": counted.slug,
        "title": counted.title,
        "status": "open",
        "pledges": 9,
        "updated_at": "2024-03-13T09:30:15+00:00",
        "territories": [
            {"code": "01", "name": "Ain", "level": "department", "pledges": None, "suppressed": True}
            | NO_CONDITION
            | {"status": "collecting"},
            {"code": "75", "name": "Paris", "level": "department", "pledges": 6, "suppressed": False}
            | NO_CONDITION
            | {"status": "collecting"},
            {"code": "11", "name": "Île-de-France", "level": "region", "pledges": 6, "suppressed": False}
            | NO_CONDITION,
            {
                "code": "84",
                "name": "Auvergne-Rhône-Alpes",
                "level": "region",
                "pledges": None,
                "suppressed": True,
            }
            | NO_CONDITION,
            {"code": "FR", "name": "France", "level": "nation", "pledges": 9, "suppressed": False}
            | NO_CONDITION,
        ],
        "digest": None,  # no ledger digest yet (tests/pledges/test_ledger.py covers one)
    }
    assert b'"pledges":3' not in response.content


def test_count_json_gives_the_national_count_and_its_time(client, counted):
    response = client.get(count_url(counted))

    assert response.status_code == 200
    assert response.json() == {"slug": counted.slug, "pledges": 9, "updated_at": "2024-03-13T09:30:15+00:00"}


def test_count_json_hides_a_small_national_count(client, departments, campaign):
    TerritoryCount.objects.create(campaign=campaign, level="nation", code="FR", pledges=4)

    assert client.get(count_url(campaign)).json() == {
        "slug": campaign.slug,
        "pledges": None,
        "updated_at": None,
    }


@pytest.mark.parametrize("view", ["pledges:api_campaign_detail", "pledges:api_campaign_count"])
@pytest.mark.parametrize("slug", ["brouillon", "inconnue", "x" * 200])
def test_draft_and_unknown_campaigns_are_404_json(client, view, slug):
    CampaignFactory(slug="brouillon", status=CampaignStatus.DRAFT)

    response = client.get(reverse(view, kwargs={"slug": slug}))

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "campaign not found"}
    assert response["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_other_methods_are_405_json_even_without_a_csrf_token(counted, method):
    client = Client(enforce_csrf_checks=True)

    response = getattr(client, method)(count_url(counted))

    assert response.status_code == 405
    assert response.json() == {"error": "method not allowed"}
    assert response["Allow"] == "GET, HEAD, OPTIONS"


def test_cors_preflight_is_answered(client, counted):
    response = client.options(
        count_url(counted),
        HTTP_ORIGIN="https://union.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
    )

    assert response.status_code == 204
    assert response.content == b""
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    assert response["Access-Control-Max-Age"] == "86400"


@pytest.mark.parametrize("method", ["get", "head"])
@pytest.mark.parametrize("view", ["pledges:api_campaign_detail", "pledges:api_campaign_count"])
def test_get_and_head_are_open_to_every_origin_and_cacheable_for_one_interval(client, counted, method, view):
    CounterState.objects.filter(pk=1).update(interval_seconds=10)

    response = getattr(client, method)(
        reverse(view, kwargs={"slug": counted.slug}), HTTP_ORIGIN="https://x.example"
    )

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Cache-Control"] == "public, max-age=10, stale-while-revalidate=30"
    assert (response.content == b"") == (method == "head")


def test_list_is_cacheable_too(client, counted):
    response = client.get(reverse("pledges:api_campaign_list"))

    assert response["Cache-Control"] == "public, max-age=5, stale-while-revalidate=15"
    assert response["Access-Control-Allow-Origin"] == "*"


def test_count_json_is_served_from_the_cache_without_a_query_nor_a_session(
    client, counted, django_assert_num_queries
):
    first = client.get(count_url(counted))
    TerritoryCount.objects.filter(campaign=counted, level="nation").update(pledges=50)

    with django_assert_num_queries(0):
        cached = client.get(count_url(counted))

    assert cached.content == first.content
    assert cached.cookies == {}
    assert "Cookie" not in cached.get("Vary", "")


def test_another_process_is_served_from_the_shared_cache_without_a_query(
    client, counted, django_assert_num_queries, settings
):
    # A cache of this test's own: with pytest -n, other workers flush the shared test Redis.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "api-shared"}
    }
    first = client.get(count_url(counted))
    answer_cache_clear_local()  # what a second web process starts with

    with django_assert_num_queries(0):
        shared = client.get(count_url(counted))

    assert shared.content == first.content


def test_cached_answers_expire_after_a_second(client, counted):
    client.get(count_url(counted))
    TerritoryCount.objects.filter(campaign=counted, level="nation").update(pledges=50)

    time.sleep(1.1)

    assert json.loads(client.get(count_url(counted)).content)["pledges"] == 50


def test_unknown_slugs_are_cached_as_404_too(client, django_assert_num_queries):
    client.get(reverse("pledges:api_campaign_count", kwargs={"slug": "inconnue"}))

    with django_assert_num_queries(0):
        response = client.get(reverse("pledges:api_campaign_count", kwargs={"slug": "inconnue"}))

    assert response.status_code == 404
