"""Fixtures and helpers shared by the signing tests (test_signing*.py, test_account_data.py).

Import the fixtures you use by name; pytest registers them in the importing module.
"""

import re

import pytest
from allauth.account.models import EmailAddress
from django.core.management import call_command

from deconv.celery import app as celery_app
from pledges.models import Campaign, Pledge
from pledges.services import pledge_create
from territories.models import Caisse, Department
from tests.pledges.factories import UserFactory

# Valid by the Luhn algorithm (DOMAIN.md section 3), and two more built the same way.
RPPS_A = "12345678903"
RPPS_B = "19999999998"
RPPS_C = "10000000009"

_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')


@pytest.fixture
def territories(db):
    call_command("load_territories", stdout=open("/dev/null", "w"))  # noqa: SIM115 (closed at exit)


@pytest.fixture
def private_cache(settings, request):
    """A cache of this test's own: rate-limit counters and email dedupe keys live in the cache, and
    the shared Redis one is flushed by other tests running in parallel (pytest -n)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }


@pytest.fixture
def eager_celery(settings):
    """Tasks run in the caller, mail goes to django.core.mail.outbox."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


def verified_user(email: str | None = None, **kwargs):
    """An account whose address allauth considers verified (as after the confirmation step)."""
    user = UserFactory(**({"email": email} if email else {}), **kwargs)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def form_data(**overrides) -> dict:
    """A valid POST to the signing form, in Ain (01, one caisse)."""
    data = {
        "rpps": RPPS_A,
        "last_name": "Martin",
        "first_name": "Élise",
        "specialty": "general_practice",
        "practice_mode": "liberal",
        "sector": "1",
        "department": "01",
        "practice_address": "12 rue de la République",
        "postal_code": "01000",
        "city": "Bourg-en-Bresse",
        "caisse": "",
        "patient_list_size": "1200",
        "consent_pledge": "on",
        "consent_data": "on",
        "website": "",
    }
    data.update(overrides)
    return data


def service_data(**overrides) -> dict:
    """The cleaned values pledge_create takes (what PledgeForm.pledge_data returns)."""
    data = {
        "rpps": RPPS_A,
        "last_name": "Martin",
        "first_name": "Élise",
        "specialty": "general_practice",
        "practice_mode": "liberal",
        "sector": "1",
        "department": Department.objects.get(code="01"),
        "practice_address": "12 rue de la République",
        "postal_code": "01000",
        "city": "Bourg-en-Bresse",
        "caisse": Caisse.objects.get(department__code="01"),
        "patient_list_size": 1200,
    }
    data.update(overrides)
    return data


def pledge_for(*, campaign: Campaign, user, **overrides) -> Pledge:
    result = pledge_create(
        campaign=campaign, user=user, data=service_data(**overrides), ip="192.0.2.10", user_agent="pytest"
    )
    assert result.created
    return result.pledge


def without_csrf(content: bytes) -> str:
    return _CSRF.sub('name="csrfmiddlewaretoken" value="…"', content.decode())
