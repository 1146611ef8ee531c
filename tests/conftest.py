"""Fixtures shared by every test, and the rule that nothing is skipped in CI."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(config, items):
    """Skip tests whose service is missing, and say why; in CI, fail instead."""
    on_postgres = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    has_redis = bool(settings.REDIS_URL)
    missing = []
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            missing.append((item, "needs PostgreSQL; running on SQLite"))
        elif "redis" in item.keywords and not has_redis:
            missing.append((item, "needs Redis; REDIS_URL is not set"))
    if missing and IN_CI:
        names = ", ".join(item.nodeid for item, _ in missing[:5])
        raise pytest.UsageError(f"CI=true: {len(missing)} tests lack their service ({names}, ...)")
    for item, reason in missing:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _clear_cache():
    from django.core.cache import cache

    from deconv.answer_cache import answer_cache_clear_local

    yield
    cache.clear()
    answer_cache_clear_local()


@pytest.fixture(autouse=True)
def _private_media(tmp_path, settings):
    """Letters and uploads go to a fresh folder per test."""
    settings.PRIVATE_MEDIA_ROOT = tmp_path / "private"
    settings.EMAIL_FILE_PATH = tmp_path / "mail"


def _worker_env() -> dict:
    """The environment for a worker that sees the test database and broker."""
    env = dict(os.environ)
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = (
            f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    else:
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    return env


def wait_for_worker(timeout: float = 30.0) -> bool:
    from deconv.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if app.control.ping(timeout=0.5):
            return True
    return False


@pytest.fixture
def celery_worker_process(transactional_db):
    """A real Celery worker process against the test database and the configured broker."""
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "deconv", "worker", "--pool=solo", "--loglevel=WARNING"],
        cwd=ROOT,
        env=_worker_env(),
        start_new_session=True,
    )
    try:
        assert wait_for_worker(), "the Celery worker did not answer pings within 30 s"
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
