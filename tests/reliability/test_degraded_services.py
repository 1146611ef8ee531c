"""What each part does while the service under it is down: the database (503 page), the cache
(an empty cache), the broker (the committed change stands, the dispatch is logged).
"""

import logging

import pytest
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import InterfaceError, OperationalError
from django.test import Client
from django.urls import reverse
from django.utils import translation
from kombu.exceptions import OperationalError as BrokerError

from deconv import ratelimit
from deconv.cache import CacheUnavailableError, ResilientRedisCache
from deconv.middleware import RETRY_AFTER_SECONDS
from deconv.tasks import dispatch_safely
from pledges.models import ExportJob
from pledges.tasks import export_build_task
from tests.reliability.servers import free_port


def _french(msgid: str) -> str:
    with translation.override("fr"):
        return translation.gettext(msgid)


def _assert_is_the_503_page(response) -> None:
    body = response.content.decode()
    assert response.status_code == 503
    assert _french("Service temporarily unavailable") in body
    assert "Traceback" not in body and "OperationalError" not in body
    assert response["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert response["Cache-Control"] == "no-store"
    assert response["X-Frame-Options"] == "DENY"
    assert "script-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_a_view_that_loses_the_database_answers_the_french_503_page(db, monkeypatch, caplog, error):
    def database_gone():
        raise error("server closed the connection unexpectedly (host=db.internal user=deconv)")

    monkeypatch.setattr("pledges.views.public.campaign_list_open", database_gone)

    with caplog.at_level(logging.WARNING, logger="deconv.middleware"):
        response = Client().get("/")

    _assert_is_the_503_page(response)
    assert f"database unavailable: {error.__name__} on GET /, answered 503" in caplog.text
    assert "db.internal" not in caplog.text


def test_a_middleware_that_loses_the_database_answers_the_503_page_too(db, monkeypatch):
    def session_save_fails(self, request, response):
        raise OperationalError("could not connect to server: Connection refused")

    monkeypatch.setattr(SessionMiddleware, "process_response", session_save_fails)

    response = Client(raise_request_exception=False).get("/")

    _assert_is_the_503_page(response)


def test_other_errors_stay_500s(db, monkeypatch):
    def bug():
        raise ZeroDivisionError

    monkeypatch.setattr("pledges.views.public.campaign_list_open", bug)

    response = Client(raise_request_exception=False).get("/")

    assert response.status_code == 500
    assert _french("Service temporarily unavailable") not in response.content.decode()


@pytest.fixture
def unreachable_cache():
    """The resilient cache pointed at a port where no Redis listens, its outage not yet noticed."""
    ResilientRedisCache._down_until = ResilientRedisCache._logged_at = 0.0
    cache = ResilientRedisCache(
        f"redis://127.0.0.1:{free_port()}/0",
        {"OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}},
    )
    yield cache
    ResilientRedisCache._down_until = 0.0


def test_an_unreachable_redis_cache_answers_as_an_empty_cache(unreachable_cache, caplog):
    cache = unreachable_cache
    with caplog.at_level(logging.WARNING, logger="deconv.cache"):
        assert cache.get("key", "default") == "default"
        assert cache.add("key", 1) is False
        assert cache.set("key", 1) is None
        assert cache.get_many(["a", "b"]) == {}
        assert cache.has_key("key") is False
        assert cache.delete("key") is False
        assert cache.set_many({"a": 1}) == ["a"]
        with pytest.raises(ValueError):
            cache.incr("key")
        with pytest.raises(CacheUnavailableError):
            cache.decr("key")
    assert "cache: Redis unavailable (ConnectionError); serving without cache" in caplog.text
    # Logged once, not once per operation.
    assert caplog.text.count("Redis unavailable") == 1


@pytest.mark.redis
def test_the_cache_works_again_once_redis_answers(settings):
    ResilientRedisCache._down_until = 0.0
    cache = ResilientRedisCache(settings.REDIS_URL, {"KEY_PREFIX": "reliability"})
    cache.delete("back")
    assert cache.add("back", 1, 5) is True
    assert cache.get("back") == 1
    assert cache.incr("back") == 2
    cache.delete("back")


def test_rate_limits_let_requests_through_while_the_cache_is_down(db, unreachable_cache, monkeypatch, rf):
    monkeypatch.setattr(ratelimit, "cache", unreachable_cache)
    request = rf.post("/")
    request.user = type("Anonymous", (), {"is_authenticated": False})()

    refusals = [ratelimit.rate_limit_check(request, scope="test", per_ip="1/m") for _ in range(5)]

    assert refusals == [None] * 5


def test_dispatch_safely_logs_and_returns_false_when_the_broker_refuses(monkeypatch, caplog):
    def broker_down(*args, **kwargs):
        raise BrokerError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(export_build_task, "delay", broker_down)

    with caplog.at_level(logging.WARNING, logger="deconv.tasks"):
        assert dispatch_safely(export_build_task, 42) is False

    assert "broker unavailable: task pledges.export_build not dispatched" in caplog.text


def test_dispatch_safely_hands_the_arguments_to_the_task(monkeypatch):
    calls = []
    monkeypatch.setattr(export_build_task, "delay", lambda *args, **kwargs: calls.append((args, kwargs)))

    assert dispatch_safely(export_build_task, 42, extra="x") is True
    assert calls == [((42,), {"extra": "x"})]


def test_an_export_requested_while_the_broker_is_down_is_recorded_without_an_error_page(
    transactional_db, monkeypatch, client
):
    """transactional_db: the on_commit dispatch runs inside the request, as in production."""
    import io

    from django.core.management import call_command

    from pledges.enums import OrganizerRoleKind
    from pledges.models import OrganizerRole
    from tests.pledges.factories import CampaignFactory, LetterVersionFactory, UserFactory

    call_command("load_territories", stdout=io.StringIO())
    campaign = CampaignFactory()
    LetterVersionFactory(campaign=campaign)
    organizer = UserFactory()
    OrganizerRole.objects.create(user=organizer, campaign=campaign, kind=OrganizerRoleKind.NATIONAL)

    def broker_down(*args, **kwargs):
        raise BrokerError("Connection refused")

    monkeypatch.setattr(export_build_task, "delay", broker_down)
    client.force_login(organizer)

    response = client.post(
        reverse("pledges:organizer_exports", kwargs={"slug": campaign.slug}), {"format": "csv"}
    )

    job = ExportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"].endswith(f"/exports/{job.pk}/")
    assert job.status == "queued"


def _publish_attempts(transport_options: dict, monkeypatch) -> int:
    """How many times one publish to a stopped Redis tries to connect before giving up."""
    from celery import Celery
    from redis.connection import Connection

    attempts = []
    connect = Connection._connect

    def counted(self):
        attempts.append(1)
        return connect(self)

    monkeypatch.setattr(Connection, "_connect", counted)
    app = Celery("probe", broker=f"redis://127.0.0.1:{free_port()}/0", set_as_current=False)
    app.conf.broker_transport_options = transport_options
    app.conf.broker_connection_timeout = 4
    with pytest.raises(BrokerError):
        app.send_task("probe.task", retry=False)
    return len(attempts)


@pytest.mark.slow
@pytest.mark.redis
def test_publishing_to_a_stopped_broker_gives_up_after_one_quick_retry(settings, monkeypatch):
    """A pledge's dispatch must not keep the signer waiting: kombu's default retries for seconds."""
    configured = dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    assert _publish_attempts({"visibility_timeout": 3600}, monkeypatch) > 2  # kombu's default, for contrast
    assert _publish_attempts(configured, monkeypatch) <= 2
    assert configured["interval_start"] == 0 and configured["interval_max"] <= 0.5
