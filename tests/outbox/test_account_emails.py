"""allauth's emails go through the outbox too: required, each a new email, sent after the commit."""

import pytest

from deconv.email_stops import email_stop_hash, email_stop_record
from deconv.models import EmailStatus, OutgoingEmail
from deconv.outbox import outbox_send
from tests.pledges.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "Un-mot-de-passe-solide-42"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _signup(client, email="nouveau@example.org"):
    return client.post("/accounts/signup/", {"email": email, "password1": PASSWORD, "password2": PASSWORD})


def test_a_signup_confirmation_is_an_outbox_row_sent_after_the_commit(
    client, smtp_sink, eager_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _signup(client)
    row = OutgoingEmail.objects.get()
    assert (row.kind, row.recipient, row.status) == (
        "account/email/email_confirmation_signup",
        "nouveau@example.org",
        EmailStatus.QUEUED,
    )
    assert row.dedupe_key.startswith("account:")
    assert row.user.email == "nouveau@example.org"
    # Required: no stop link, and the footer says why (in the request's language, French here).
    assert "/email/stop/" not in row.body_text
    assert row.body_text.count("\n\n") >= 1 and "/accounts/confirm-email/" in row.body_text

    for callback in callbacks:
        callback()

    assert smtp_sink.recipients == ["nouveau@example.org"]
    assert OutgoingEmail.objects.get().status == EmailStatus.SENT


def test_account_emails_reach_an_address_that_stopped_emails(client, smtp_sink):
    email_stop_record(email_hash=email_stop_hash(address="nouveau@example.org"))

    _signup(client)
    row = OutgoingEmail.objects.get()
    outbox_send(ids=[row.pk])

    assert smtp_sink.recipients == ["nouveau@example.org"]


def test_asking_twice_for_a_reset_link_queues_two_emails(client):
    UserFactory(email="medecin@example.org")

    client.post("/accounts/password/reset/", {"email": "medecin@example.org"})
    client.post("/accounts/password/reset/", {"email": "medecin@example.org"})

    assert OutgoingEmail.objects.filter(kind="account/email/password_reset_key").count() == 2
