from django.core import checks

from deconv.checks import check_email_backend, check_production_services, check_secret_key, check_site_url


def ids(messages):
    return [message.id for message in messages]


def test_default_secret_key_is_an_error_only_with_debug_off(settings):
    settings.SECRET_KEY = settings.DEFAULT_SECRET_KEY
    settings.DEBUG = True
    assert check_secret_key(None) == []
    settings.DEBUG = False
    assert ids(check_secret_key(None)) == ["deconv.E001"]
    settings.SECRET_KEY = "a-real-secret"
    assert check_secret_key(None) == []


def test_site_url_host_must_be_allowed(settings):
    settings.SITE_URL = "https://deconv.example.org"
    settings.ALLOWED_HOSTS = ["other.example.org"]
    assert ids(check_site_url(None)) == ["deconv.E003"]
    settings.ALLOWED_HOSTS = [".example.org"]
    assert check_site_url(None) == []
    settings.ALLOWED_HOSTS = ["deconv.example.org"]
    assert check_site_url(None) == []


def test_site_url_without_host_is_an_error(settings):
    settings.SITE_URL = "not a url"
    assert ids(check_site_url(None)) == ["deconv.E002"]


def test_local_mail_backend_is_an_error_only_with_debug_off(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.DEBUG = True
    assert check_email_backend(None) == []
    settings.DEBUG = False
    assert ids(check_email_backend(None)) == ["deconv.E004"]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert check_email_backend(None) == []


def test_embedded_services_warn_in_production(settings):
    settings.DEBUG = False
    settings.DATABASES = {
        "default": {**settings.DATABASES["default"], "ENGINE": "django.db.backends.sqlite3"}
    }
    settings.CELERY_BROKER_URL = "filesystem://"
    assert ids(check_production_services(None)) == ["deconv.W001", "deconv.W002"]


def test_checks_are_registered_with_django(settings):
    settings.DEBUG = False
    settings.SECRET_KEY = settings.DEFAULT_SECRET_KEY
    assert "deconv.E001" in ids(checks.run_checks(tags=[checks.Tags.security]))
