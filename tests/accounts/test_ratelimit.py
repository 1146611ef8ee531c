from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core.cache.backends.redis import RedisCache
from django.test import RequestFactory
from django.utils import timezone, translation

from deconv import ratelimit, tasks
from deconv.models import AbuseEventKind, RateLimitEvent
from tests.accounts.conftest import PASSWORD
from tests.pledges.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.accounts.urls")]

LIMITED = "/test/limited/"
# A window boundary: 1,800,000,000 is a multiple of 60 and of 3600.
WINDOW_START = 1_800_000_000.0
FRENCH_PATIENCE = "Soyez patient, vous envoyez trop de requêtes."


@pytest.fixture
def clock():
    """Frozen 10 s into a minute (and an hour) window; shift() moves it."""
    with time_machine.travel(WINDOW_START + 10, tick=False) as traveller:
        yield traveller


def in_french(text_function, *args):
    with translation.override("fr"):
        return text_function(*args)


def test_over_the_limit_answers_429_in_french_with_retry_after(client, clock):
    allowed = [client.post(LIMITED).status_code for _ in range(3)]

    refused = client.post(LIMITED)

    assert allowed == [200, 200, 200]
    assert refused.status_code == 429
    assert refused["Retry-After"] == "50"
    html = refused.content.decode()
    assert '<html lang="fr">' in html
    assert FRENCH_PATIENCE in html
    assert in_french(ratelimit.duration_text, 50) in html
    assert refused.templates[0].name == "429.html"


def test_the_429_page_follows_the_visitor_language(client, clock):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    for _ in range(3):
        client.post(LIMITED)

    refused = client.post(LIMITED)

    html = refused.content.decode()
    assert '<html lang="en">' in html
    assert "Be patient, you are sending too many requests." in html
    assert "You can try again in 50 seconds." in html


def test_a_flood_records_one_event_per_client_and_window(client, clock):
    responses = [client.post(LIMITED).status_code for _ in range(30)]

    assert responses.count(429) == 27
    event = RateLimitEvent.objects.get()
    assert (event.kind, event.scope, event.ip, event.user) == (
        AbuseEventKind.RATE_LIMITED,
        "test_scope",
        "127.0.0.0/24",
        None,
    )


def test_the_next_window_records_a_new_event(client, clock):
    for _ in range(5):
        client.post(LIMITED)
    clock.shift(60)
    for _ in range(5):
        client.post(LIMITED)

    assert RateLimitEvent.objects.count() == 2


def test_the_limit_resets_when_the_window_ends(client, clock):
    for _ in range(3):
        client.post(LIMITED)
    assert client.post(LIMITED).status_code == 429

    clock.shift(49)
    assert client.post(LIMITED).status_code == 429
    clock.shift(1)
    assert client.post(LIMITED).status_code == 200


def test_get_requests_are_not_counted_by_default(client, clock):
    statuses = [client.get(LIMITED).status_code for _ in range(10)]

    assert statuses == [200] * 10
    assert client.post(LIMITED).status_code == 200


def test_methods_choose_what_is_counted(client, clock):
    assert client.get("/test/limited-get/").status_code == 200
    assert client.get("/test/limited-get/").status_code == 429


def test_signed_in_users_have_their_own_limit(client, clock):
    user = UserFactory()
    client.force_login(user)
    responses = [client.post(LIMITED) for _ in range(3)]

    assert [response.status_code for response in responses] == [200, 200, 429]
    # The per-user window is an hour long: 3590 s are left in it.
    assert responses[2]["Retry-After"] == "3590"
    event = RateLimitEvent.objects.get()
    assert event.user == user


def test_the_user_limit_follows_the_account_across_addresses(client, clock):
    client.force_login(UserFactory())
    client.post(LIMITED, REMOTE_ADDR="198.51.100.1")
    client.post(LIMITED, REMOTE_ADDR="198.51.100.2")

    assert client.post(LIMITED, REMOTE_ADDR="198.51.100.3").status_code == 429


def test_settings_override_the_rates_given_in_code(client, clock, settings):
    settings.RATE_LIMITS = {"test_scope": {"per_ip": "1/m"}}

    assert client.post(LIMITED).status_code == 200
    assert client.post(LIMITED).status_code == 429


def test_a_forged_forwarded_header_does_not_escape_the_limit(client, clock):
    statuses = [client.post(LIMITED, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code for n in range(5)]

    assert statuses == [200, 200, 200, 429, 429]


def test_behind_a_trusted_proxy_clients_are_told_apart(client, clock, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    for _ in range(3):
        client.post(LIMITED, HTTP_X_FORWARDED_FOR="203.0.113.7")

    assert client.post(LIMITED, HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 429
    assert client.post(LIMITED, HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 200
    assert RateLimitEvent.objects.get().ip == "203.0.113.0/24"


@pytest.mark.redis
def test_counts_are_shared_by_two_cache_clients_on_redis(client, clock, monkeypatch):
    """Two RedisCache instances with their own connections: two web processes, one count."""
    first = ratelimit.cache
    second = RedisCache(settings.REDIS_URL, {"KEY_PREFIX": "deconv"})
    assert second._cache is not first._cache
    for _ in range(2):
        client.post(LIMITED)

    monkeypatch.setattr(ratelimit, "cache", second)
    third = client.post(LIMITED)
    fourth = client.post(LIMITED)

    assert (third.status_code, fourth.status_code) == (200, 429)
    assert RateLimitEvent.objects.count() == 1


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "expected"),
    [
        ("192.0.2.1", "", 0, "192.0.2.1"),
        ("192.0.2.1", "203.0.113.7", 0, "192.0.2.1"),
        ("192.0.2.1", "203.0.113.7", 1, "203.0.113.7"),
        ("192.0.2.1", "6.6.6.6, 203.0.113.7", 1, "203.0.113.7"),
        ("192.0.2.1", "6.6.6.6, 203.0.113.7, 10.0.0.2", 2, "203.0.113.7"),
        # Shorter than the proxies we trust, or garbage: only REMOTE_ADDR is trustworthy.
        ("192.0.2.1", "203.0.113.7", 2, "192.0.2.1"),
        ("192.0.2.1", "not-an-ip", 1, "192.0.2.1"),
        ("::ffff:192.0.2.9", "", 0, "192.0.2.9"),
        ("", "", 0, None),
    ],
)
def test_client_ip(settings, remote, forwarded, trusted, expected):
    settings.TRUSTED_PROXY_COUNT = trusted
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)

    assert ratelimit.client_ip(request) == expected


@pytest.mark.parametrize(
    ("ip", "stored"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:1234:5678::1", "2001:db8:1234::/48"),
        ("::ffff:203.0.113.77", "203.0.113.0/24"),
        ("garbage", ""),
        (None, ""),
    ],
)
def test_stored_addresses_are_truncated(ip, stored):
    assert ratelimit.ip_truncate(ip) == stored


@pytest.mark.parametrize(
    ("text", "amount", "seconds"),
    [("10/m", 10, 60), ("5/h", 5, 3600), ("100/15m", 100, 900), ("3/30s", 3, 30), ("1/d", 1, 86400)],
)
def test_rate_parse(text, amount, seconds):
    assert ratelimit.rate_parse(text) == ratelimit.Rate(amount=amount, seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "10/x", "ten/m", "0/m", "10/0m", "10/m/ip"])
def test_rate_parse_refuses_malformed_rates(text):
    with pytest.raises(ValueError, match="not a rate"):
        ratelimit.rate_parse(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "1 second"),
        (45, "45 seconds"),
        (60, "1 minute"),
        (125, "2 minutes and 5 seconds"),
        (3600, "60 minutes"),
    ],
)
def test_duration_text(seconds, text):
    with translation.override("en"):
        assert ratelimit.duration_text(seconds) == text


def test_allauth_refusals_use_our_page_and_record_an_event(client, clock, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "signup": "1/m/ip"}
    data = {"email": "a@example.org", "password1": PASSWORD, "password2": PASSWORD}
    client.post("/accounts/signup/", data)
    client.post("/accounts/logout/")

    refused = client.post("/accounts/signup/", {**data, "email": "b@example.org"})

    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    assert FRENCH_PATIENCE in refused.content.decode()
    assert refused.templates[0].name == "429.html"
    event = RateLimitEvent.objects.get()
    assert (event.scope, event.ip) == ("allauth:signup", "127.0.0.0/24")


def test_too_many_failed_logins_are_refused_and_recorded(client, clock, settings, verified_user):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login_failed": "10/m/ip,2/5m/key"}
    for _ in range(2):
        client.post("/accounts/login/", {"login": verified_user.email, "password": "faux"})

    refused = client.post("/accounts/login/", {"login": verified_user.email, "password": PASSWORD})

    assert refused.status_code == 200
    assert "Trop de tentatives de connexion échouées" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    assert RateLimitEvent.objects.get().scope == "allauth:login_failed"


def test_a_short_forwarded_header_never_breaks_allauth(client, settings, verified_user):
    # allauth's own address lookup raises ImproperlyConfigured (a 500) in this case.
    settings.TRUSTED_PROXY_COUNT = 2
    settings.ALLAUTH_TRUSTED_PROXY_COUNT = 2

    response = client.post(
        "/accounts/login/",
        {"login": verified_user.email, "password": PASSWORD},
        HTTP_X_FORWARDED_FOR="203.0.113.7",
    )

    assert response.status_code == 302
    assert response["Location"] == "/"


def test_the_admin_lists_events_read_only(admin_client):
    RateLimitEvent.objects.create(scope="pledge", ip="203.0.113.0/24")

    listing = admin_client.get("/admin/deconv/ratelimitevent/")
    add = admin_client.get("/admin/deconv/ratelimitevent/add/")

    assert listing.status_code == 200
    assert "203.0.113.0/24" in listing.content.decode()
    assert add.status_code == 403


def test_old_events_are_purged_after_the_retention_period(settings):
    settings.ABUSE_EVENT_RETENTION_DAYS = 90
    old = RateLimitEvent.objects.create(scope="pledge")
    recent = RateLimitEvent.objects.create(scope="pledge")
    RateLimitEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=91))
    RateLimitEvent.objects.filter(pk=recent.pk).update(created_at=timezone.now() - timedelta(days=89))

    deleted = tasks.abuse_events_purge.apply().get()

    assert deleted == 1
    assert list(RateLimitEvent.objects.values_list("pk", flat=True)) == [recent.pk]
