"""deconv settings: one module, read from the environment.

With no environment at all this is the *embedded default*: SQLite and a filesystem Celery
broker in ./var, local-memory cache, outgoing mail written to ./var/mail. Production differs
only by environment variables (see the README's configuration table).
"""

import re
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
import dj_email_url
from django.utils.translation import gettext_lazy as _

from deconv.env import ConfigurationError, envbool, envint, envlist, envstr

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("DECONV_VAR_DIR", str(BASE_DIR / "var")))
# The embedded default keeps its database, broker queue and mail files here.
VAR_DIR.mkdir(parents=True, exist_ok=True)

# The development key: deconv.checks refuses it when DEBUG is off.
DEFAULT_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"  # noqa: S105 (public on purpose)
SECRET_KEY = envstr("SECRET_KEY", DEFAULT_SECRET_KEY)
DEBUG = envbool("DEBUG", True)

PORT = envint("PORT", 8000, minimum=1)
SITE_URL = envstr("SITE_URL", f"http://127.0.0.1:{PORT}").rstrip("/")
SITE_NAME = envstr("SITE_NAME", "deconv")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [SITE_URL])

INSTALLED_APPS = [
    "deconv",
    "territories",
    "pledges",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "csp",
]

MIDDLEWARE = [
    # Outermost: a database outage anywhere below answers the 503 page (deconv.middleware).
    "deconv.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = envstr("DECONV_ROOT_URLCONF", "deconv.urls")
WSGI_APPLICATION = "deconv.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "deconv.context_processors.site",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASE_URL = envstr("DATABASE_URL", f"sqlite:///{VAR_DIR / 'deconv.sqlite3'}")
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share the file: wait for locks instead of failing at once,
    # take the write lock at BEGIN (no upgrade deadlocks), and let readers run during writes.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "deconv.User"

# --- Redis, cache and Celery ------------------------------------------------------------
REDIS_URL = envstr("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            # Redis's cache degraded to "no cache" while Redis is down: signing and the public
            # pages must not fail with the broker (deconv.cache). Bounded socket waits: a Redis
            # that hangs costs a request a few seconds, then the cache is skipped for a while.
            "BACKEND": "deconv.cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "deconv",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 3},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = envstr(
    "CELERY_BROKER_URL", REDIS_URL or "filesystem://localhost//"
)  # a host name keeps kombu from warning
CELERY_BROKER_DIR = VAR_DIR / "celery"
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport: a broker that needs no server, for the embedded default.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
    }
    for _folder in ("queue", "control"):
        (CELERY_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": 3600,
        # Publishing (a dispatch after a pledge's commit) tries to connect once more, at once, then
        # gives up: kombu's default keeps a request waiting about 6 s on a stopped Redis, for a
        # dispatch that outbox_dispatch_due and releases_resume make again anyway. Workers' own
        # connections are retried by broker_connection_retry, not by these options.
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.2,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A hard limit on every task: the job recovery (pledges.jobs) tells a dead worker from a slow one
# by its lock, but cannot see a worker that hangs while alive; killing it frees the lock. The
# longest task measured, a national directory import, runs in minutes.
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT_SECONDS", 3600, minimum=60)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "Europe/Paris"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
HEALTHZ_WORKER_TIMEOUT = float(envint("HEALTHZ_WORKER_TIMEOUT_MS", 1000, minimum=50)) / 1000

# --- Email ----------------------------------------------------------------------------
EMAIL_URL = envstr("EMAIL_URL", "")
if EMAIL_URL:
    _email = dj_email_url.parse(EMAIL_URL)
    if "EMAIL_BACKEND" not in _email:
        raise ConfigurationError(
            f"EMAIL_URL has an unknown scheme {EMAIL_URL.split(':', 1)[0]!r} (use smtp://, smtps:// or submission://)"
        )
    EMAIL_BACKEND = _email["EMAIL_BACKEND"]
    EMAIL_HOST = _email["EMAIL_HOST"]
    EMAIL_PORT = _email["EMAIL_PORT"]
    EMAIL_HOST_USER = _email["EMAIL_HOST_USER"]
    EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"]
    EMAIL_USE_TLS = _email["EMAIL_USE_TLS"]
    EMAIL_USE_SSL = _email["EMAIL_USE_SSL"]
    EMAIL_TIMEOUT = _email["EMAIL_TIMEOUT"] or 20
else:
    # Each message becomes a readable file in var/mail.
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = VAR_DIR / "mail"
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "deconv <noreply@localhost>")
# The outbox (deconv.outbox) queues again an email left "sending" this long by a dead worker.
OUTBOX_STUCK_MINUTES = envint("OUTBOX_STUCK_MINUTES", 10, minimum=1)
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Accounts (django-allauth) ------------------------------------------------------------
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_LOGIN_BY_CODE_ENABLED = True
# Mail scanners open links before people do: a GET shows a page, only its button confirms.
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{SITE_NAME}] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = urlsplit(SITE_URL).scheme or "http"
LOGIN_REDIRECT_URL = "/"
# Renders mail in the request and sends it from a worker; strict `next`; abuse events.
ACCOUNT_ADAPTER = "deconv.adapters.AccountAdapter"
# The signup form with a honeypot field (allauth's own honeypot uses an inline style, which our
# Content-Security-Policy forbids).
ACCOUNT_FORMS = {"signup": "deconv.forms.SignupForm"}
# Signing up with a known address shows the same "check your email" page and mails the owner;
# a password reset or a login code for an unknown address looks the same as for a known one.
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_EMAIL_UNKNOWN_ACCOUNTS = True
# Confirmation links are signed (no key stored) and expire after three days.
ACCOUNT_EMAIL_CONFIRMATION_HMAC = True
ACCOUNT_EMAIL_CONFIRMATION_EXPIRE_DAYS = 3
# Confirming logs in, but only in the browser that signed up (allauth keeps the pending login in
# the session): a leaked link alone never opens a session.
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
# Sign-in codes: hospital mail relays can take minutes, hence 10 minutes rather than allauth's 3.
ACCOUNT_LOGIN_BY_CODE_TIMEOUT = 10 * 60
ACCOUNT_LOGIN_BY_CODE_MAX_ATTEMPTS = 3
# Password reset by link: the link works once (Django's token changes with the password) and for
# an hour; allauth moves the key out of the URL into the session before showing the form, so it
# never leaks through Referer; and resetting does not log in: whoever holds the link must still
# sign in with the new password.
ACCOUNT_PASSWORD_RESET_BY_CODE_ENABLED = False
PASSWORD_RESET_TIMEOUT = 60 * 60
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False

# --- Abuse protection -----------------------------------------------------------------------
# How many X-Forwarded-For hops to trust (the reverse proxies in front of deconv). 0: use
# REMOTE_ADDR. Too high a value lets clients choose their address and escape every limit.
TRUSTED_PROXY_COUNT = envint("TRUSTED_PROXY_COUNT", 0, minimum=0)
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT
# Refused requests and honeypot hits are kept this long for organizers, then purged daily
# by the deconv.abuse_events_purge task.
ABUSE_EVENT_RETENTION_DAYS = envint("ABUSE_EVENT_RETENTION_DAYS", 90, minimum=1)
# allauth's limits ("amount/period/per", period in s, m, h or d; per ip, user or key, the key
# being the email address). Per-IP limits stay generous: a hospital puts hundreds of physicians
# behind one address.
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip,200/h/ip",
    # Re-sending a confirmation email to one address.
    "confirm_email": "1/3m/key",
    "reset_password": "20/m/ip,5/h/key",
    "reset_password_from_key": "20/m/ip",
    "request_login_code": "20/m/ip,3/m/key,10/h/key",
    "change_password": "5/m/user",
    "manage_email": "10/m/user",
    "reauthenticate": "10/m/user",
}


def _rate(name: str, default: str) -> str:
    """A rate such as "10/m" or "100/15m" from the environment variable `name`."""
    value = envstr(name, default).strip()
    if not re.fullmatch(r"[0-9]+/[0-9]*[smhd]", value):
        raise ConfigurationError(f"{name}={value!r} is not a rate (use amount/period, e.g. 10/m or 5/h)")
    return value


# Our own views' limits, read by deconv.ratelimit.rate_limited at each request: operators tune
# them here (or through the environment) without touching the views.
RATE_LIMITS = {
    "pledge": {
        "per_ip": _rate("RATE_LIMIT_PLEDGE_PER_IP", "10/m"),
        "per_user": _rate("RATE_LIMIT_PLEDGE_PER_USER", "5/h"),
    },
    "confirmation": {
        "per_ip": _rate("RATE_LIMIT_CONFIRMATION_PER_IP", "20/m"),
        "per_user": _rate("RATE_LIMIT_CONFIRMATION_PER_USER", "10/h"),
    },
    "withdrawal": {
        "per_ip": _rate("RATE_LIMIT_WITHDRAWAL_PER_IP", "10/m"),
        "per_user": _rate("RATE_LIMIT_WITHDRAWAL_PER_USER", "5/h"),
    },
}

# --- Internationalisation -----------------------------------------------------------------
LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", _("Français")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Europe/Paris"
USE_I18N = True
USE_TZ = True

# --- Static files -------------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# How many Celery tasks share the rendering of one release's letters (one per worker process
# is the useful maximum: WeasyPrint is CPU-bound).
LETTERS_RENDER_TASKS = envint("LETTERS_RENDER_TASKS", 2, minimum=1)
# Letters and uploads: private, never under STATIC_ROOT nor served by the web server.
PRIVATE_MEDIA_ROOT = Path(envstr("PRIVATE_MEDIA_ROOT", str(VAR_DIR / "private")))
# Organizer exports name signers: their files are deleted this long after they were built
# (pledges.exports.exports_purge_expired); an organizer can build a fresh one at any time.
EXPORT_RETENTION_HOURS = envint("EXPORT_RETENTION_HOURS", 72, minimum=1)

# --- Caching of what a surge reads -------------------------------------------------------------
# Anonymous public pages are served whole from the cache this long (pledges.views.public);
# whole seconds, as Django's Redis backend truncates fractions. Counts move once per interval.
PUBLIC_PAGE_CACHE_SECONDS = envint("PUBLIC_PAGE_CACHE_SECONDS", 1, minimum=1)
# The organizers' dashboard reads a per-campaign snapshot (pledges.dashboard_snapshot): computed
# again at most this often after a change, at least this often anyway, and kept fresh by beat
# for campaigns an organizer looked at within the watch period.
DASHBOARD_REFRESH_SECONDS = envint("DASHBOARD_REFRESH_SECONDS", 15, minimum=1)
DASHBOARD_MAX_AGE_SECONDS = envint("DASHBOARD_MAX_AGE_SECONDS", 300, minimum=1)
DASHBOARD_WATCH_SECONDS = envint("DASHBOARD_WATCH_SECONDS", 3600, minimum=60)

# --- Security -----------------------------------------------------------------------------
_https = SITE_URL.startswith("https://")
SESSION_COOKIE_SECURE = _https
CSRF_COOKIE_SECURE = _https
SESSION_COOKIE_HTTPONLY = True
USE_X_FORWARDED_PROTO = envbool("USE_X_FORWARDED_PROTO", False)
# Django can only tell http from https behind a proxy that says so (USE_X_FORWARDED_PROTO):
# then it redirects http itself; otherwise the proxy must, or every request would loop.
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", _https and USE_X_FORWARDED_PROTO)
# Monitors probe /healthz on the machine itself, over plain http.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000 if _https else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
# Preloading binds every subdomain of the organization to https in browsers for months, and
# anyone can submit a domain that sends the preload flag: an operator's decision, off by default,
# so `check --deploy` is told not to ask for it.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if USE_X_FORWARDED_PROTO:
    # Only behind a reverse proxy that sets the header itself.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
}

# --- Logging ------------------------------------------------------------------------------
LOG_LEVEL = envstr("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Email addresses and RPPS numbers that a library or an exception text would log are masked
    # before anything is written (deconv.logging).
    "filters": {"personal_data": {"()": "deconv.logging.PersonalDataFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["personal_data"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # pikepdf (deconv.pdf_stamp) says at INFO, in every worker that prints letters, that it
        # forwards qpdf's messages to logging.
        "pikepdf": {"level": "WARNING"},
    },
}
# Celery workers keep the handlers above (and their masking filter) instead of replacing them.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
