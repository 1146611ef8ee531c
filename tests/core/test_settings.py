"""The settings module read in a fresh interpreter under a given environment."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

PRINT_SETTINGS = """
import json
from django.conf import settings
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "db_host": settings.DATABASES["default"].get("HOST", ""),
    "broker": settings.CELERY_BROKER_URL,
    "cache": settings.CACHES["default"]["BACKEND"],
    "email": settings.EMAIL_BACKEND,
    "email_host": getattr(settings, "EMAIL_HOST", ""),
    "email_port": getattr(settings, "EMAIL_PORT", 0),
    "email_tls": getattr(settings, "EMAIL_USE_TLS", False),
    "debug": settings.DEBUG,
    "allowed_hosts": settings.ALLOWED_HOSTS,
    "site_url": settings.SITE_URL,
    "language": settings.LANGUAGE_CODE,
    "time_zone": settings.TIME_ZONE,
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "hsts": settings.SECURE_HSTS_SECONDS,
}))
"""

CONFIG_VARIABLES = [
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "EMAIL_URL",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "SITE_URL",
    "PORT",
]


def read_settings(tmp_path, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in CONFIG_VARIABLES}
    clean.update(DJANGO_SETTINGS_MODULE="deconv.settings", DECONV_VAR_DIR=str(tmp_path / "var"), **env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup();" + PRINT_SETTINGS],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_no_environment_gives_the_embedded_default(tmp_path):
    result = read_settings(tmp_path)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["db_name"] == str(tmp_path / "var" / "deconv.sqlite3")
    assert values["broker"] == "filesystem://localhost//"
    assert values["cache"] == "django.core.cache.backends.locmem.LocMemCache"
    assert values["email"] == "django.core.mail.backends.filebased.EmailBackend"
    assert values["language"] == "fr"
    assert values["time_zone"] == "Europe/Paris"
    assert (tmp_path / "var").is_dir()


def test_production_environment_selects_postgres_redis_and_smtp(tmp_path):
    result = read_settings(
        tmp_path,
        DATABASE_URL="postgres://deconv:secret@db.internal:5433/deconv",
        REDIS_URL="redis://cache.internal:6379/2",
        EMAIL_URL="submission://mailer:pw@smtp.example.org",
        SECRET_KEY="a-real-secret",
        DEBUG="false",
        ALLOWED_HOSTS="deconv.example.org",
        SITE_URL="https://deconv.example.org",
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["db_host"] == "db.internal"
    assert values["broker"] == "redis://cache.internal:6379/2"
    assert values["cache"] == "deconv.cache.ResilientRedisCache"
    assert values["email"] == "django.core.mail.backends.smtp.EmailBackend"
    assert (values["email_host"], values["email_port"]) == ("smtp.example.org", 587)
    assert values["email_tls"] is True
    assert values["debug"] is False
    assert values["allowed_hosts"] == ["deconv.example.org"]
    assert values["session_cookie_secure"] is True
    assert values["hsts"] == 31536000


def test_malformed_value_stops_start_up_with_the_variable_named(tmp_path):
    result = read_settings(tmp_path, DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_unknown_email_scheme_is_refused(tmp_path):
    result = read_settings(tmp_path, EMAIL_URL="smtp+tls://mailer:pw@smtp.example.org:587")
    assert result.returncode != 0
    assert "EMAIL_URL has an unknown scheme 'smtp+tls'" in result.stderr


def test_malformed_database_url_is_refused(tmp_path):
    result = read_settings(tmp_path, DATABASE_URL="nosuchdb://x")
    assert result.returncode != 0
    assert "nosuchdb" in result.stderr
