"""The web layer's defences: deployment checks, HTTPS headers and cookies, CSRF on every URL,
rate limits, and answers that do not tell whether an address or an RPPS number is known.
"""

import json
import re
import secrets
import subprocess
import sys

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import translation

from pledges.models import Pledge
from tests.pledges.signing_support import form_data, verified_user
from tests.reliability.servers import ROOT, app_env
from tests.security.test_access_matrix import expected_for
from tests.security.urls import params_for, routes
from tests.security.world import ROLES, SIGNER

PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "SITE_URL": "https://deconv.example.org",
    "ALLOWED_HOSTS": "deconv.example.org",
    "EMAIL_URL": "submission://mailer:secret@smtp.example.org",
    # Never connected to by these tests: checks and settings only.
    "DATABASE_URL": "postgres://deconv@db.internal:5432/deconv",
    "REDIS_URL": "redis://cache.internal:6379/0",
    # The README's production recipe: TLS ends at the reverse proxy, which says so.
    "USE_X_FORWARDED_PROTO": "true",
}
SECURITY_SETTINGS = [
    "DEBUG",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "CSRF_COOKIE_SECURE",
    "SECURE_SSL_REDIRECT",
    "SECURE_REDIRECT_EXEMPT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_PROXY_SSL_HEADER",
    "ALLOWED_HOSTS",
    "SITE_URL",
]
PASSWORD = "Un-mot-de-passe-solide-42"


def _production(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = app_env(**PRODUCTION_ENV, DECONV_VAR_DIR=str(tmp_path / "var"))
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_is_clean_with_a_production_environment(tmp_path):
    result = _production(tmp_path, "manage.py", "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.fixture
def production_settings(tmp_path, settings):
    """This process's settings as deconv/settings.py computes them from PRODUCTION_ENV."""
    script = (
        "import json, django; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {SECURITY_SETTINGS!r}}}))"
    )
    result = _production(tmp_path, "-c", script)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    values["SECURE_PROXY_SSL_HEADER"] = tuple(values["SECURE_PROXY_SSL_HEADER"])
    for name, value in values.items():
        setattr(settings, name, value)
    return values


def test_production_answers_carry_hsts_and_secure_http_only_cookies(db, production_settings):
    assert production_settings["DEBUG"] is False
    user = verified_user(email="cookies@example.org")
    user.set_password(PASSWORD)
    user.save()
    browser = Client(HTTP_HOST="deconv.example.org", HTTP_X_FORWARDED_PROTO="https")

    page = browser.get("/accounts/login/")
    login = browser.post("/accounts/login/", {"login": user.email, "password": PASSWORD})
    plain = Client(HTTP_HOST="deconv.example.org").get("/campaigns/")
    health = Client(HTTP_HOST="deconv.example.org").get("/healthz")

    assert page.status_code == 200
    assert page["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert page["X-Frame-Options"] == "DENY"
    assert page["Referrer-Policy"] == "same-origin"
    assert page["X-Content-Type-Options"] == "nosniff"
    csrf = page.cookies["csrftoken"]
    assert csrf["secure"] is True and csrf["samesite"] == "Lax"
    assert login.status_code == 302
    session = login.cookies["sessionid"]
    assert session["secure"] is True and session["httponly"] is True and session["samesite"] == "Lax"
    # Plain http (the proxy did not say https) is sent to https; the health probe is not.
    assert plain.status_code == 301 and plain["Location"].startswith("https://deconv.example.org/")
    assert health.status_code in (200, 503)


# --- CSRF -------------------------------------------------------------------------------------

# Views that take no CSRF token, and why each is safe without one.
CSRF_EXEMPT = {
    # The public JSON API changes nothing: every POST is a 405.
    "api/v1/campaigns/": 405,
    "api/v1/campaigns/<slug:slug>/": 405,
    "api/v1/campaigns/<slug:slug>/count.json": 405,
    "api/v1/campaigns/<slug:slug>/digests/": 405,
    # RFC 8058 one-click unsubscribe: mail providers POST to the link without a session. The
    # signed token is the authority, and stopping emails is the only thing it can do.
    "email/stop/<str:token>/": 302,
    # Open data, the public map and the API description: read-only, POST is a 405.
    "campaigns/<slug:slug>/open-data.csv": 405,
    "campaigns/<slug:slug>/open-data.json": 405,
    "campaigns/<slug:slug>/map.svg": 405,
    # The language switch only sets the language cookie (deconv.views_language): without a
    # token, public pages carry nothing per visitor and are cached whole.
    "i18n/setlang/": 302,
    "api/v1/openapi.json": 405,
}


@pytest.mark.slow
def test_every_post_without_a_csrf_token_is_refused(world, figures):
    """Each URL, POSTed without a token by a role that may open it: 403 (CSRF), never processed."""
    refused, exempt, problems = 0, 0, []
    pledges_before = Pledge.objects.count()
    for route in routes():
        expected = expected_for(route.route)
        role = next((role for role, cls in zip(ROLES, expected, strict=True) if cls == "ok"), "national")
        client = Client(enforce_csrf_checks=True, raise_request_exception=False)
        if role != "anonymous":
            client.force_login(world.users[role])
        url = route.url(params_for(route, world))
        response = client.post(url, {"answer": "confirmed", "confirm": "on", "reason": "x", "format": "csv"})
        if route.route in CSRF_EXEMPT:
            exempt += 1
            if response.status_code != CSRF_EXEMPT[route.route]:
                problems.append(f"{url}: {response.status_code}, expected {CSRF_EXEMPT[route.route]}")
        elif response.status_code == 403 and any(t.name == "403_csrf.html" for t in response.templates):
            refused += 1
        else:
            problems.append(f"{url} as {role}: {response.status_code}")
    figures(
        "csrf",
        {"post_endpoints_tried": refused + exempt + len(problems), "refused_403": refused, "exempt": exempt},
    )
    assert not problems, "\n".join(problems)
    # Nothing was processed: no pledge created, withdrawn or deleted, no account deleted.
    assert Pledge.objects.count() == pledges_before
    assert Pledge.objects.get(pk=world.pledges["signer_active"].pk).status == "active"
    assert type(world.users["signer"]).objects.filter(pk=world.users["signer"].pk).exists()


# --- Rate limits ------------------------------------------------------------------------------


def _limited(responses) -> list[int]:
    return [response.status_code for response in responses]


def test_failed_logins_are_limited_per_address_even_for_the_right_password(db, private_cache):
    user = verified_user(email="victime@example.org")
    user.set_password(PASSWORD)
    user.save()
    client = Client()
    for attempt in range(5):
        client.post("/accounts/login/", {"login": user.email, "password": f"wrong-{attempt}"})

    refused = client.post("/accounts/login/", {"login": user.email, "password": PASSWORD})

    with translation.override("fr"):
        message = translation.gettext("Too many failed login attempts. Try again later.")
    assert refused.status_code == 200
    assert message in refused.content.decode()
    assert "_auth_user_id" not in client.session


def test_signups_are_limited_per_network(db, private_cache, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "signup": "3/m/ip"}
    client = Client()
    statuses = _limited(
        client.post("/accounts/signup/", {"email": f"bot{n}@example.org", "password1": "x", "password2": "y"})
        for n in range(4)
    )
    assert statuses == [200, 200, 200, 429]


@pytest.fixture
def open_campaign(db):
    from django.core.management import call_command

    from tests.pledges.factories import CampaignFactory, LetterVersionFactory

    call_command("load_territories", stdout=open("/dev/null", "w"))  # noqa: SIM115
    campaign = CampaignFactory()
    LetterVersionFactory(campaign=campaign)
    return campaign


def test_pledge_submissions_are_limited_per_account(open_campaign, private_cache):
    client = Client()
    client.force_login(verified_user())
    url = reverse("pledges:pledge_create", kwargs={"slug": open_campaign.slug})
    # Invalid RPPS numbers: the form is redisplayed each time, and each try counts.
    statuses = _limited(client.post(url, form_data(rpps="12345678901")) for _ in range(6))
    assert statuses == [200] * 5 + [429]


def test_round_confirmations_are_limited_per_account(world):
    client = Client()
    client.force_login(world.users["signer"])
    url = reverse("pledges:round_confirm", kwargs={"slug": world.alpha.slug})
    statuses = _limited(client.post(url, {"answer": "not-an-answer"}) for _ in range(11))
    assert statuses[-1] == 429
    assert set(statuses[:10]) <= {200, 409}


# --- No enumeration ---------------------------------------------------------------------------

_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')


def _neutral(response, typed: str = "") -> tuple[int, str, str]:
    """Status, redirect and body, without the CSRF token and the address the visitor typed."""
    body = _CSRF_INPUT.sub("csrf", response.content.decode())
    if typed:
        body = body.replace(typed, "<typed>")
    return response.status_code, response.get("Location", ""), body


def _known_and_unknown(path: str, field: str, known: str, unknown: str, **extra):
    """The answers to the same form with a known and an unknown address, each shown the page it leads to."""
    return [
        _neutral(Client().post(path, {field: address, **extra}, follow=True), typed=address)
        for address in (known, unknown)
    ]


def test_signup_reset_and_login_code_answer_the_same_for_known_and_unknown_addresses(db, private_cache):
    known = verified_user(email="connu@example.org").email
    passwords = {"password1": PASSWORD, "password2": PASSWORD}

    signup = _known_and_unknown("/accounts/signup/", "email", known, "inconnu@example.org", **passwords)
    reset = _known_and_unknown("/accounts/password/reset/", "email", known, "inconnu2@example.org")
    code = _known_and_unknown("/accounts/login/code/", "email", known, "inconnu3@example.org")

    assert signup[0] == signup[1]
    assert reset[0] == reset[1]
    assert code[0] == code[1]
    assert all(answer[0] == 200 for answer in (*signup, *reset, *code))


def test_signing_with_someone_elses_rpps_looks_like_signing(open_campaign, private_cache):
    owner = verified_user(email="titulaire@example.org")
    first = Client()
    first.force_login(owner)
    url = reverse("pledges:pledge_create", kwargs={"slug": open_campaign.slug})
    new = first.post(url, form_data(rpps=SIGNER.rpps))
    usurper = Client()
    usurper.force_login(verified_user(email="usurpateur@example.org"))
    duplicate = usurper.post(url, form_data(rpps=SIGNER.rpps))

    assert Pledge.objects.filter(rpps=SIGNER.rpps).count() == 1
    assert _neutral(new)[:2] == _neutral(duplicate)[:2] == (200, "")
    assert _neutral(new)[2] == _neutral(duplicate)[2]
