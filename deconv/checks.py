"""System checks for configuration mistakes that would hurt a live campaign.

They run with every management command (`manage.py check`, `migrate`, `runserver`), so a
production deployment with the development key or no mail server stops before it serves.
"""

from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

# Backends that keep mail on this machine: fine for development, a silent loss in production.
LOCAL_EMAIL_BACKENDS = {
    "django.core.mail.backends.filebased.EmailBackend",
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
}


def _host_allowed(host: str, allowed_hosts: list[str]) -> bool:
    for pattern in allowed_hosts:
        if pattern == "*" or pattern == host:
            return True
        if pattern.startswith(".") and (host == pattern[1:] or host.endswith(pattern)):
            return True
    return False


@register(Tags.security)
def check_secret_key(app_configs, **kwargs):
    if not settings.DEBUG and settings.SECRET_KEY == settings.DEFAULT_SECRET_KEY:
        return [
            Error(
                "SECRET_KEY is the development default while DEBUG is off.",
                hint="Set SECRET_KEY to a long random value (python -c 'import secrets; print(secrets.token_urlsafe(50))').",
                id="deconv.E001",
            )
        ]
    return []


@register(Tags.security)
def check_site_url(app_configs, **kwargs):
    host = urlsplit(settings.SITE_URL).hostname
    if not host:
        return [Error(f"SITE_URL={settings.SITE_URL!r} has no host name.", id="deconv.E002")]
    if not _host_allowed(host, settings.ALLOWED_HOSTS):
        return [
            Error(
                f"The host of SITE_URL ({host}) is not in ALLOWED_HOSTS.",
                hint="Add it to ALLOWED_HOSTS, or correct SITE_URL: links in emails use it.",
                id="deconv.E003",
            )
        ]
    return []


@register(Tags.security)
def check_email_backend(app_configs, **kwargs):
    if not settings.DEBUG and settings.EMAIL_BACKEND in LOCAL_EMAIL_BACKENDS:
        return [
            Error(
                "No SMTP server is configured while DEBUG is off: emails would never leave this machine.",
                hint="Set EMAIL_URL, for example submission://user:password@smtp.example.org (STARTTLS on 587).",
                id="deconv.E004",
            )
        ]
    return []


@register()
def check_production_services(app_configs, **kwargs):
    if settings.DEBUG:
        return []
    warnings = []
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        warnings.append(
            Warning(
                "SQLite is used while DEBUG is off.",
                hint="Set DATABASE_URL to a PostgreSQL database for a real campaign.",
                id="deconv.W001",
            )
        )
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        warnings.append(
            Warning(
                "The filesystem Celery broker is used while DEBUG is off.",
                hint="Set REDIS_URL: workers on several machines need a shared broker.",
                id="deconv.W002",
            )
        )
    return warnings
