"""The "Organisation" link in the header."""

import pytest
from django.urls import reverse

from tests.pledges.factories import UserFactory

pytestmark = pytest.mark.django_db


def header(client):
    body = client.get(reverse("pledges:home")).content.decode()
    return body.split("</nav>")[0]


def test_the_link_shows_for_organizers_and_superusers_only(client, campaign, delegate_69):
    organizer_url = reverse("pledges:organizer_home")
    assert organizer_url not in header(client)
    client.force_login(UserFactory())
    assert organizer_url not in header(client)
    client.force_login(delegate_69)
    assert organizer_url in header(client)
    client.force_login(UserFactory(is_superuser=True))
    assert organizer_url in header(client)


def test_the_link_costs_one_query_at_most(rf, delegate_69, django_assert_num_queries):
    from pledges.templatetags.organizer_nav import organizer_nav_visible

    request = rf.get("/")
    request.user = delegate_69
    with django_assert_num_queries(1):
        assert organizer_nav_visible({"request": request}) is True
        assert organizer_nav_visible({"request": request}) is True
