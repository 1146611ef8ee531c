"""What the outbox keeps about people, for how long; and the organizers' read-only view of it."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from deconv.models import EmailStatus, OutgoingEmail
from deconv.outbox import email_forget, email_queue, outbox_purge, outbox_send
from tests.outbox.conftest import PERMANENT, queue_test_email
from tests.pledges.factories import UserFactory

pytestmark = pytest.mark.django_db

ADMIN_URL = "/admin/deconv/outgoingemail/"


def _deleted_email(recipient: str = "gone@example.org") -> OutgoingEmail:
    return email_queue(
        kind="account_deleted",
        recipient=recipient,
        context={"withdrawn_campaigns": ["Campagne"], "home_url": "http://127.0.0.1:8000/"},
        dedupe_key="data-deleted:test",
    )


def test_the_data_deleted_email_forgets_its_address_once_sent(smtp_sink):
    row = _deleted_email()

    assert outbox_send(ids=[row.pk]).sent == 1

    assert smtp_sink.recipients == ["gone@example.org"]
    sent = OutgoingEmail.objects.get(pk=row.pk)
    assert (sent.status, sent.recipient, sent.body_text, sent.body_html) == (EmailStatus.SENT, "", "", "")
    assert sent.dedupe_key == "data-deleted:test"


def test_forgetting_an_address_cancels_its_queued_emails_and_blanks_the_others(smtp_sink):
    sent = queue_test_email(1, recipient="dr.x@example.org")
    outbox_send(ids=[sent.pk])
    waiting = queue_test_email(2, recipient="Dr.X@example.org")
    other = queue_test_email(3, recipient="someone@example.org")

    assert email_forget(address="dr.x@example.org") == 2

    rows = {row.pk: row for row in OutgoingEmail.objects.all()}
    assert (rows[sent.pk].status, rows[sent.pk].recipient, rows[sent.pk].body_text) == (
        EmailStatus.SENT,
        "",
        "",
    )
    assert (rows[waiting.pk].status, rows[waiting.pk].recipient) == (EmailStatus.FAILED, "")
    assert rows[other.pk].recipient == "someone@example.org"


def test_old_sent_and_failed_emails_lose_their_address_and_text_but_keep_their_key(smtp_sink):
    smtp_sink.answers.extend(["accept", PERMANENT])
    sent, failed = queue_test_email(1), queue_test_email(2)
    outbox_send(ids=[sent.pk, failed.pk])
    queued = queue_test_email(3)

    with time_machine.travel(timezone.now() + timedelta(days=29)):
        assert outbox_purge() == 0
    with time_machine.travel(timezone.now() + timedelta(days=31)):
        assert outbox_purge() == 2

    rows = {row.pk: row for row in OutgoingEmail.objects.all()}
    assert [rows[row.pk].recipient for row in (sent, failed, queued)] == ["", "", "dr.3@example.org"]
    # The keys stay taken: queueing again sends nothing.
    assert queue_test_email(1) is None


# --- Admin ---------------------------------------------------------------------------------------


@pytest.fixture
def organizer_client(client):
    client.force_login(UserFactory(email="organizer@example.org", is_staff=True, is_superuser=True))
    return client


def test_the_admin_lists_emails_and_filters_by_status_and_kind(organizer_client, smtp_sink):
    smtp_sink.answers.append(PERMANENT)
    failed = queue_test_email(1)
    outbox_send(ids=[failed.pk])
    queue_test_email(2)

    everything = organizer_client.get(ADMIN_URL)
    only_failed = organizer_client.get(ADMIN_URL, {"status__exact": "failed", "kind": "outbox_test"})

    assert everything.status_code == 200
    assert everything.context["cl"].result_count == 2
    assert [row.pk for row in only_failed.context["cl"].result_list] == [failed.pk]


def test_the_admin_searches_by_domain_or_full_address_not_by_fragment(organizer_client):
    hospital = queue_test_email(1, recipient="dr.a@chu-lyon.fr")
    queue_test_email(2, recipient="dr.b@example.org")

    def found(term):
        response = organizer_client.get(ADMIN_URL, {"q": term})
        return [row.pk for row in response.context["cl"].result_list]

    assert found("chu-lyon.fr") == [hospital.pk]
    assert found("@chu-lyon.fr") == [hospital.pk]
    assert found("DR.A@chu-lyon.fr") == [hospital.pk]
    assert found("lyon") == []


def test_the_admin_is_read_only(organizer_client):
    row = queue_test_email(1)

    assert organizer_client.get(f"{ADMIN_URL}add/").status_code == 403
    detail = organizer_client.get(f"{ADMIN_URL}{row.pk}/change/")
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()
    assert organizer_client.post(f"{ADMIN_URL}{row.pk}/delete/").status_code == 403


def test_the_requeue_action_sends_failed_emails_again_and_leaves_the_others(
    organizer_client, smtp_sink, eager_tasks, django_capture_on_commit_callbacks
):
    smtp_sink.answers.append(PERMANENT)
    failed = queue_test_email(1)
    outbox_send(ids=[failed.pk])
    sent = queue_test_email(2)
    outbox_send(ids=[sent.pk])

    with django_capture_on_commit_callbacks(execute=True):
        response = organizer_client.post(
            ADMIN_URL, {"action": "requeue_failed", "_selected_action": [failed.pk, sent.pk]}
        )

    assert response.status_code == 302
    assert OutgoingEmail.objects.get(pk=failed.pk).status == EmailStatus.SENT
    assert smtp_sink.recipients == ["dr.2@example.org", "dr.1@example.org"]
