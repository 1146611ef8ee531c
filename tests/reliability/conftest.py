"""Fixtures of the fault tests: private servers, the application in subprocesses, figures.

The web server, the workers and the helper commands are separate processes pointed at the
test database (or a private PostgreSQL cluster) and at a private Redis through their
environment, as in production. Their data is written by the test with the ORM on the
transactional test database, so every process sees it.
"""

import io
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from tests.reliability.servers import RedisServer, WebServer, Worker, app_env, figures_report
from tests.reliability.smtp import sink_start

CSRF_TOKEN = "reliabilitytestcsrftoken00000000"  # 32 characters: Django's unmasked secret format


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def figures(record_property):
    """figures("name", {...}): print, attach to the report, append to test-artifacts/reliability.txt."""

    def report(name: str, values: dict) -> None:
        figures_report(name, values, record_property)

    return report


def tests_database_url() -> str:
    """The URL of the database this test runs on, for the processes it starts."""
    db = connection.settings_dict
    assert connection.vendor == "postgresql", "the fault tests need PostgreSQL"
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def territories_loaded(transactional_db):
    call_command("load_territories", stdout=io.StringIO())


@pytest.fixture
def private_redis(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def sink():
    sink = sink_start()
    yield sink
    sink.server_stop()


@pytest.fixture
def processes():
    """Start web servers and workers through this; every one is stopped at the end of the test."""
    started = []

    def track(process):
        started.append(process)
        return process

    yield track
    for process in reversed(started):
        process.stop()


@pytest.fixture
def base_env(tmp_path, settings, transactional_db):
    """Environment shared by the test's processes: its database, files and lenient limits."""
    return app_env(
        DATABASE_URL=tests_database_url(),
        DECONV_VAR_DIR=str(tmp_path / "var"),
        PRIVATE_MEDIA_ROOT=str(settings.PRIVATE_MEDIA_ROOT),
        DEBUG="false",
        SECRET_KEY=settings.SECRET_KEY,
        SITE_URL="http://127.0.0.1:8000",
        # Every load request comes from 127.0.0.1: the per-IP limits would refuse them, which
        # tests/security checks on its own.
        RATE_LIMIT_PLEDGE_PER_IP="100000/m",
        RATE_LIMIT_PLEDGE_PER_USER="100000/h",
        LOG_LEVEL="WARNING",
    )


def start_web(processes, env, tmp_path, **kwargs) -> WebServer:
    web = processes(WebServer(env=env, log_path=tmp_path / "web.log", **kwargs))
    web.start()
    return web


def start_worker(processes, env, tmp_path, name: str = "worker") -> Worker:
    worker = processes(Worker(env=env, log_path=tmp_path / f"{name}.log"))
    worker.start()
    return worker


def session_cookie(user) -> str:
    """A session of `user` in the database, as after signing in."""
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@dataclass
class Answer:
    status: int  # 0: no HTTP answer at all (connection refused, reset, timed out)
    body: str
    error: str = ""
    seconds: float = 0.0


def http_post(url: str, *, data: dict, session: str, timeout: float = 20) -> Answer:
    """A browser's form POST: session and CSRF cookies, the CSRF token in the body."""
    body = urllib.parse.urlencode({**data, "csrfmiddlewaretoken": CSRF_TOKEN}).encode()
    request = urllib.request.Request(  # noqa: S310 (always http://127.0.0.1)
        url,
        data=body,
        headers={
            "Cookie": f"sessionid={session}; csrftoken={CSRF_TOKEN}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    return _answer(request, timeout)


def http_get(url: str, *, session: str | None = None, timeout: float = 20) -> Answer:
    headers = {"Cookie": f"sessionid={session}"} if session else {}
    return _answer(urllib.request.Request(url, headers=headers), timeout)  # noqa: S310


def _answer(request, timeout: float) -> Answer:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer = Answer(status=response.status, body=response.read().decode(errors="replace"))
    except urllib.error.HTTPError as error:
        answer = Answer(status=error.code, body=error.read().decode(errors="replace"))
    except OSError as error:
        answer = Answer(status=0, body="", error=type(error).__name__)
    answer.seconds = time.monotonic() - started
    return answer


TRACEBACK = re.compile(r"Traceback \(most recent call last\)|File \"/|django\.db\.utils\.|psycopg")


def looks_like_a_stack_trace(body: str) -> bool:
    return bool(TRACEBACK.search(body))
