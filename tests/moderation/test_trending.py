"""Trending networks and email domains, in scope, per time window; recent abuse events."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from deconv.models import RateLimitEvent
from pledges.access import organizer_scope
from pledges.moderation import TrendingRow, trending_email_domains, trending_networks
from tests.moderation.factories import pledge_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def surge(campaign, ain_pledge):
    """Paris: 3 from 203.0.113.x at surge.example, 1 IPv6, 1 two hours ago; Ain: the distinctive one."""
    for index in range(3):
        pledge_make(
            campaign=campaign, department="75", email=f"s{index}@Surge.example", ip=f"203.0.113.{index + 1}"
        )
    pledge_make(campaign=campaign, department="75", email="v6@other.example", ip="2001:db8:aa:1::1")
    pledge_make(
        campaign=campaign,
        department="75",
        email="old@old.example",
        ip="203.0.113.99",
        created_at=timezone.now() - timedelta(hours=2),
    )


def test_networks_and_domains_of_the_last_hour_in_scope(campaign, national, delegate_paris, surge):
    hour_ago = timezone.now() - timedelta(hours=1)
    national_scope = organizer_scope(user=national, campaign=campaign)
    paris_scope = organizer_scope(user=delegate_paris, campaign=campaign)

    assert trending_networks(campaign=campaign, scope=national_scope, since=hour_ago) == [
        TrendingRow("203.0.113.0/24", 3),
        TrendingRow("198.51.100.0/24", 1),
        TrendingRow("2001:db8:aa::/48", 1),
    ]
    assert trending_networks(campaign=campaign, scope=paris_scope, since=hour_ago) == [
        TrendingRow("203.0.113.0/24", 3),
        TrendingRow("2001:db8:aa::/48", 1),
    ]
    assert trending_email_domains(campaign=campaign, scope=paris_scope, since=hour_ago) == [
        TrendingRow("surge.example", 3),
        TrendingRow("other.example", 1),
    ]


def test_the_day_window_includes_older_pledges(campaign, delegate_paris, surge):
    day_ago = timezone.now() - timedelta(hours=24)
    scope = organizer_scope(user=delegate_paris, campaign=campaign)

    assert trending_networks(campaign=campaign, scope=scope, since=day_ago)[0] == TrendingRow(
        "203.0.113.0/24", 4
    )
    assert TrendingRow("old.example", 1) in trending_email_domains(
        campaign=campaign, scope=scope, since=day_ago
    )


def test_trending_page_links_to_the_search_and_shows_abuse_events_to_national_organizers(
    campaign, national, delegate_paris, surge, as_user
):
    RateLimitEvent.objects.create(scope="pledge", ip="203.0.113.0/24")
    url = reverse("pledges:organizer_moderation_trending", kwargs={"slug": campaign.slug})

    page = as_user(national).get(url)
    assert page.status_code == 200
    search = reverse("pledges:organizer_moderation", kwargs={"slug": campaign.slug})
    assert f'href="{search}?ip=203.0.113.0/24"'.encode() in page.content
    assert f'href="{search}?email_domain=surge.example"'.encode() in page.content
    assert [event.scope for event in page.context["abuse_events"]] == ["pledge"]

    day = as_user(delegate_paris).get(url, {"window": "day"})
    assert day.context["window"] == "day"
    assert day.context["abuse_events"] == []
    assert b"198.51.100.0/24" not in day.content
    assert b"ain-distinct.example" not in day.content
