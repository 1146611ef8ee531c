import re

import pytest
from allauth.account.models import EmailAddress
from django.core import mail

from deconv import tasks
from tests.pledges.factories import UserFactory

PASSWORD = "Un-mot-de-passe-solide-42"
LINK = re.compile(r"https?://[^\s]+")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2 costs ~0.3 s per password; these tests set and check many.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def sent_tasks(monkeypatch):
    """Run the outbox's `deconv.outbox_send` in this process when dispatched, and list each
    dispatch (its task arguments: the ids of the queued emails).

    Unit tests only: the worker test proves the real path through the broker.
    """
    calls = []

    def apply_async(kwargs=None, **options):
        calls.append(kwargs)
        return tasks.outbox_send.apply(kwargs=kwargs)

    monkeypatch.setattr(tasks.outbox_send, "apply_async", apply_async)
    return calls


@pytest.fixture
def post_committed(client, django_capture_on_commit_callbacks, sent_tasks):
    """client.post, then run what the request queued for after its commit (the email task)."""

    def post(url, data=None, **extra):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, data or {}, **extra)

    return post


@pytest.fixture
def verified_user(db):
    user = UserFactory(email="medecin@example.org", password=PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def last_link() -> str:
    """The first link of the last email sent."""
    return LINK.search(mail.outbox[-1].body).group(0)


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]
