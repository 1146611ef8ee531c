"""The public pages served whole from the cache to anonymous visitors, and only to them.

The campaign page and the home page: rendered once per second per language for every anonymous
visitor (pledges.views.public), without a cookie, a CSRF token or a session in them; signed-in
visitors and visitors with a message waiting get their own rendering. The language switch works
without a CSRF token (deconv.views_language). The two-level cache itself: deconv.answer_cache.
"""

import re
import threading
import time

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deconv import answer_cache
from deconv.answer_cache import answer_cache_clear_local, answer_cached
from pledges.models import CounterState, TerritoryCount
from tests.pledges import signing_support
from tests.pledges.factories import CampaignFactory, LetterVersionFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.postgres,
    pytest.mark.usefixtures("private_cache", "territories"),
]

private_cache = signing_support.private_cache
territories = signing_support.territories

CSRF_FIELD = "csrfmiddlewaretoken"
MY_PLEDGE_FR = "Mon engagement"


@pytest.fixture(autouse=True)
def _fresh_process_cache():
    # Pages are kept in process memory for a second: tests must not see each other's.
    answer_cache_clear_local()
    yield
    answer_cache_clear_local()


@pytest.fixture
def campaign(db):
    """An open campaign whose nation count is 1,234 (Ain 1,234), counted just now."""
    campaign = CampaignFactory(title="Déconventionnement 2025")
    LetterVersionFactory(campaign=campaign)
    for level, code in [("department", "01"), ("region", "84"), ("nation", "FR")]:
        TerritoryCount.objects.create(campaign=campaign, level=level, code=code, pledges=1234)
    CounterState.objects.update_or_create(pk=1, defaults={"interval_seconds": 5})
    return campaign


@pytest.fixture
def signer(campaign):
    user = signing_support.verified_user("dr.martin@example.org")
    signing_support.pledge_for(campaign=campaign, user=user)
    return user


def page_url(campaign) -> str:
    return reverse("pledges:campaign_detail", kwargs={"slug": campaign.slug})


def nation_count(response) -> str:
    match = re.search(r"data-counter-value>([^<]*)<", response.content.decode())
    assert match is not None
    return match.group(1)


def set_nation_count(campaign, value: int) -> None:
    TerritoryCount.objects.filter(campaign=campaign, level="nation").update(pledges=value)


# --- Anonymous visitors: one page for all -----------------------------------------------------------


def test_anonymous_page_is_served_again_without_a_query(campaign, django_assert_num_queries):
    first = Client().get(page_url(campaign))
    set_nation_count(campaign, 5000)

    with django_assert_num_queries(0):
        cached = Client().get(page_url(campaign))

    assert first.status_code == cached.status_code == 200
    assert cached.content == first.content
    assert nation_count(cached) == "1\xa0234"  # the cached count, not the new one
    assert "Ain" in cached.content.decode()  # the territories table is part of it


@pytest.mark.parametrize("url", ["campaign", "home"])
def test_anonymous_page_carries_no_cookie_no_token_and_public_short_cache_headers(campaign, url):
    path = page_url(campaign) if url == "campaign" else reverse("pledges:home")

    for response in (Client().get(path), Client().get(path)):  # built, then from the cache
        content = response.content.decode()
        assert response.status_code == 200
        assert response.cookies == {}
        assert CSRF_FIELD not in content
        assert "Set-Cookie" not in response.headers
        assert response["Cache-Control"] == "public, max-age=1"
        assert {"Accept-Language", "Cookie"} <= {part.strip() for part in response["Vary"].split(",")}
        assert response["Content-Language"] == "fr"
        assert '<html lang="fr">' in content
        assert '<form class="lang-switch" action="/i18n/setlang/" method="post">' in content
        assert f'<input type="hidden" name="next" value="{path}">' in content


def test_anonymous_visitor_with_cookies_gets_the_page_privately_cacheable_only(campaign):
    client = Client()
    client.cookies["django_language"] = "fr"
    client.get(page_url(campaign))

    response = client.get(page_url(campaign))

    assert response["Cache-Control"] == "private, max-age=1"
    assert CSRF_FIELD not in response.content.decode()


def test_head_is_served_from_the_same_cache(campaign, django_assert_num_queries):
    Client().get(page_url(campaign))

    with django_assert_num_queries(0):
        response = Client().head(page_url(campaign))

    assert response.status_code == 200
    assert response.content == b""
    assert response["Content-Language"] == "fr"
    assert response["Cache-Control"] == "public, max-age=1"


def test_query_strings_share_the_cached_page_and_stay_out_of_it(campaign, django_assert_num_queries):
    first = Client().get(page_url(campaign) + "?utm_source=newsletter")

    with django_assert_num_queries(0):
        second = Client().get(page_url(campaign) + "?fbclid=abc")

    assert second.content == first.content
    assert "utm_source" not in first.content.decode()


def test_another_process_is_served_from_the_shared_cache_without_a_query(campaign, django_assert_num_queries):
    first = Client().get(page_url(campaign))
    answer_cache_clear_local()  # what a second web process starts with

    with django_assert_num_queries(0):
        shared = Client().get(page_url(campaign))

    assert shared.content == first.content


def test_counts_are_refreshed_once_the_cache_expires(campaign):
    assert nation_count(Client().get(page_url(campaign))) == "1\xa0234"
    set_nation_count(campaign, 5000)

    time.sleep(1.1)  # both levels keep a page for 1 s

    assert nation_count(Client().get(page_url(campaign))) == "5\xa0000"


def test_unknown_and_draft_campaigns_are_404_and_cached_as_such(campaign, django_assert_num_queries):
    draft = CampaignFactory(status="draft")
    for slug in ("inconnue", draft.slug):
        assert Client().get(reverse("pledges:campaign_detail", kwargs={"slug": slug})).status_code == 404

        with django_assert_num_queries(0):
            response = Client().get(reverse("pledges:campaign_detail", kwargs={"slug": slug}))

        assert response.status_code == 404
    assert Client().get("/campaigns/" + "x" * 81 + "/").status_code == 404


def test_home_page_is_cached_for_anonymous_visitors_too(campaign, django_assert_num_queries):
    first = Client().get(reverse("pledges:home"))

    with django_assert_num_queries(0):
        cached = Client().get(reverse("pledges:home"))

    assert cached.content == first.content
    assert campaign.title in cached.content.decode()


# --- Signed-in visitors: their own page, never shared ---------------------------------------------


def test_signed_in_page_shows_my_pledge_and_is_never_served_to_visitors(campaign, signer):
    member = Client()
    member.force_login(signer)

    mine = member.get(page_url(campaign))
    anonymous = Client().get(page_url(campaign))

    assert MY_PLEDGE_FR in mine.content.decode()
    assert CSRF_FIELD in mine.content.decode()  # the sign-out form
    assert mine["Cache-Control"] == "private, no-cache"
    assert MY_PLEDGE_FR not in anonymous.content.decode()
    assert CSRF_FIELD not in anonymous.content.decode()
    assert "Se déconnecter" not in anonymous.content.decode()


def test_cached_anonymous_page_is_never_served_to_a_signed_in_visitor(campaign, signer):
    anonymous = Client().get(page_url(campaign))
    member = Client()
    member.force_login(signer)

    mine = member.get(page_url(campaign))
    home = member.get(reverse("pledges:home"))

    assert MY_PLEDGE_FR not in anonymous.content.decode()
    assert MY_PLEDGE_FR in mine.content.decode()
    assert "Se déconnecter" in mine.content.decode()
    assert "Mon compte" in home.content.decode()


def test_signed_in_pages_share_the_territories_table_not_the_page(campaign, signer):
    member = Client()
    member.force_login(signer)
    member.get(page_url(campaign))
    set_nation_count(campaign, 5000)

    with CaptureQueriesContext(connection) as queries:
        again = member.get(page_url(campaign))

    assert not [query for query in queries if "pledges_territorycount" in query["sql"]]
    assert nation_count(again) == "1\xa0234"
    assert MY_PLEDGE_FR in again.content.decode()


def test_a_pending_message_is_shown_not_hidden_by_the_cache(campaign, signer):
    Client().get(reverse("pledges:home"))  # the anonymous home page is cached
    member = Client()
    member.force_login(signer)

    response = member.post(reverse("account_logout"), follow=True)

    assert response.redirect_chain == [("/", 302)]
    assert 'class="messages"' in response.content.decode()
    assert response["Cache-Control"] == "private, no-cache"
    # Shown once: the next visit is the shared page again.
    assert 'class="messages"' not in member.get(reverse("pledges:home")).content.decode()


# --- Languages and the language switch --------------------------------------------------------------


def test_each_language_has_its_own_cached_page(campaign, django_assert_num_queries):
    french = Client().get(page_url(campaign))
    english = Client(HTTP_ACCEPT_LANGUAGE="en").get(page_url(campaign))

    with django_assert_num_queries(0):
        french_again = Client().get(page_url(campaign))
        english_again = Client(HTTP_ACCEPT_LANGUAGE="en").get(page_url(campaign))

    assert french_again.content == french.content
    assert english_again.content == english.content
    assert '<html lang="fr">' in french.content.decode()
    assert '<html lang="en">' in english.content.decode()
    assert "Signatures by department" in english.content.decode()
    assert "Signatures by department" not in french.content.decode()
    assert english_again["Content-Language"] == "en"


def test_language_switch_works_without_a_csrf_token_and_gives_the_page_in_that_language(campaign):
    client = Client(enforce_csrf_checks=True)
    Client().get(page_url(campaign))  # the French page is cached

    response = client.post(reverse("set_language"), {"language": "en", "next": page_url(campaign)})

    assert response.status_code == 302
    assert response["Location"] == page_url(campaign)
    assert response.cookies["django_language"].value == "en"
    page = client.get(page_url(campaign))
    assert '<html lang="en">' in page.content.decode()
    assert page["Content-Language"] == "en"

    client.post(reverse("set_language"), {"language": "fr", "next": page_url(campaign)})
    assert '<html lang="fr">' in client.get(page_url(campaign)).content.decode()


@pytest.mark.parametrize(
    "unsafe_next", ["https://evil.example/", "//evil.example/campaigns/", "javascript:alert(1)"]
)
def test_language_switch_redirects_to_a_safe_next_only(unsafe_next):
    response = Client(enforce_csrf_checks=True).post(
        reverse("set_language"), {"language": "en", "next": unsafe_next}
    )

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert response.cookies["django_language"].value == "en"


def test_language_switch_posted_from_another_site_changes_nothing():
    response = Client(enforce_csrf_checks=True).post(
        reverse("set_language"), {"language": "en", "next": "/"}, HTTP_SEC_FETCH_SITE="cross-site"
    )

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert "django_language" not in response.cookies


# --- The two-level cache ------------------------------------------------------------------------------


def test_an_expired_entry_is_rebuilt_by_one_thread_while_the_others_serve_the_previous_one(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(answer_cache.time, "monotonic", lambda: now[0])
    answer_cached(key="test:stale", build=lambda: "old", seconds=1)
    answer_cache.cache.delete("test:stale")
    now[0] += 2  # expired in this process's memory and in Django's cache
    started, release = threading.Event(), threading.Event()

    def slow_build() -> str:
        started.set()
        release.wait(5)
        return "new"

    results = []
    rebuilder = threading.Thread(
        target=lambda: results.append(answer_cached(key="test:stale", build=slow_build, seconds=1))
    )
    rebuilder.start()
    assert started.wait(5)
    meanwhile = answer_cached(key="test:stale", build=lambda: "built twice", seconds=1)
    release.set()
    rebuilder.join(5)

    assert meanwhile == "old"
    assert results == ["new"]
    assert answer_cached(key="test:stale", build=lambda: "built again", seconds=1) == "new"


def test_a_value_refused_by_keep_is_returned_but_never_stored():
    built = []

    def build() -> str:
        built.append(1)
        return "per visitor"

    for _ in range(2):
        value = answer_cached(key="test:keep", build=build, seconds=60, keep=lambda value: False)
        assert value == "per visitor"

    assert len(built) == 2
    assert answer_cache.cache.get("test:keep") is None
