"""Emails queued unrendered: stored in the caller's transaction, rendered by the worker that sends them."""

import time
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from deconv import outbox, tasks
from deconv.email_stops import email_stop_hash, email_stop_record
from deconv.models import EmailStatus, OutgoingEmail
from deconv.outbox import (
    MAX_ATTEMPTS,
    NOTHING_TO_RENDER_ERROR,
    email_queue_later,
    email_queue_many,
    outbox_claim,
    outbox_dispatch_due,
    outbox_requeue_stuck,
    outbox_send,
)
from tests.outbox.conftest import make_item

pytestmark = pytest.mark.django_db


class Builder:
    """A context builder for the `outbox_test` kind: the number is the dedupe key's last part."""

    def __init__(self):
        self.calls: list[list[int]] = []
        self.gone: set[int] = set()
        self.error: Exception | None = None

    def __call__(self, rows):
        self.calls.append([row.pk for row in rows])
        if self.error is not None:
            raise self.error
        contexts = {}
        for row in rows:
            number = int(row.dedupe_key.rsplit(":", 1)[1])
            contexts[row.pk] = None if number in self.gone else {"number": number}
        return contexts


@pytest.fixture
def builder(monkeypatch):
    registered = Builder()
    monkeypatch.setitem(outbox._context_builders, "outbox_test", registered)
    return registered


def queue_later(number: int, **kwargs) -> OutgoingEmail | None:
    return email_queue_later(
        kind="outbox_test",
        recipient=kwargs.get("recipient", f"dr.{number}@example.org"),
        dedupe_key=f"test:outbox_test:{number}",
        language="fr",
    )


def _row(row) -> OutgoingEmail:
    return OutgoingEmail.objects.get(pk=row.pk)


def test_an_email_queued_later_is_stored_unrendered_then_rendered_and_stored_before_it_is_sent(
    smtp_sink, builder, monkeypatch
):
    row = queue_later(7)
    assert (row.status, row.subject, row.body_text, row.body_html) == (EmailStatus.QUEUED, "", "", "")
    stored_when_sent = []
    build = outbox.email_message_build

    def build_and_look(**kwargs):
        stored_when_sent.append(_row(row).subject)
        return build(**kwargs)

    monkeypatch.setattr(outbox, "email_message_build", build_and_look)

    assert outbox_send(ids=[row.pk]).sent == 1

    sent = _row(row)
    assert stored_when_sent == ["[deconv] Test email 7"]
    assert sent.status == EmailStatus.SENT
    assert "Test email 7 for the outbox." in sent.body_text
    assert "/email/stop/" in sent.body_text  # the footer, with the stop link
    assert "Test email 7 for the outbox." in sent.body_html
    [message] = smtp_sink.messages()
    assert message["Subject"] == "[deconv] Test email 7"
    assert builder.calls == [[row.pk]]


def test_a_chunk_is_rendered_in_one_call_of_its_builder(smtp_sink, builder):
    rows = [queue_later(number) for number in (1, 2, 3)]

    assert outbox_send(ids=[row.pk for row in rows]).sent == 3

    assert builder.calls == [[row.pk for row in rows]]
    assert sorted(smtp_sink.recipients) == ["dr.1@example.org", "dr.2@example.org", "dr.3@example.org"]
    assert all("Test email" in _row(row).subject for row in rows)


def test_a_fan_out_queued_later_is_rendered_when_sent(smtp_sink, builder):
    assert (
        email_queue_many([make_item(number, kind="outbox_test") for number in (4, 5)], render_later=True) == 2
    )
    rows = list(OutgoingEmail.objects.order_by("pk"))
    assert [row.body_text for row in rows] == ["", ""]

    assert outbox_send(ids=[row.pk for row in rows]).sent == 2

    assert [_row(row).subject for row in rows] == ["[deconv] Test email 4", "[deconv] Test email 5"]


def test_queueing_later_the_same_key_again_creates_nothing(builder):
    assert queue_later(1) is not None
    assert queue_later(1) is None
    assert OutgoingEmail.objects.count() == 1


def test_a_stopped_recipient_gets_no_row_at_all(builder):
    email_stop_record(email_hash=email_stop_hash(address="dr.1@example.org"))

    assert queue_later(1) is None
    assert OutgoingEmail.objects.count() == 0


def test_a_kind_without_a_context_builder_cannot_be_queued_later():
    with pytest.raises(LookupError):
        email_queue_later(kind="no_such_kind", recipient="dr.1@example.org", dedupe_key="test:none:1")
    assert OutgoingEmail.objects.count() == 0


def test_an_email_whose_subject_is_gone_fails_and_is_never_sent(smtp_sink, builder):
    row = queue_later(1)
    builder.gone.add(1)

    report = outbox_send(ids=[row.pk])

    assert (report.sent, report.failed) == (0, 1)
    failed = _row(row)
    assert (failed.status, failed.last_error, failed.body_text) == (
        EmailStatus.FAILED,
        NOTHING_TO_RENDER_ERROR,
        "",
    )
    assert smtp_sink.deliveries == []


def test_a_builder_that_fails_retries_with_a_backoff_and_sends_nothing_without_its_text(smtp_sink, builder):
    row = queue_later(1)
    builder.error = RuntimeError("database hiccup")

    report = outbox_send(ids=[row.pk])

    assert (report.sent, report.retried) == (0, 1)
    retried = _row(row)
    assert retried.status == EmailStatus.QUEUED
    assert retried.next_attempt_at > timezone.now()
    assert "RuntimeError database hiccup" in retried.last_error
    assert smtp_sink.deliveries == []

    builder.error = None
    with time_machine.travel(retried.next_attempt_at + timedelta(seconds=1)):
        assert outbox_send(ids=[row.pk]).sent == 1
    assert smtp_sink.recipients == ["dr.1@example.org"]


def test_a_builder_that_keeps_failing_ends_failed(smtp_sink, builder):
    row = queue_later(1)
    OutgoingEmail.objects.filter(pk=row.pk).update(attempts=MAX_ATTEMPTS - 1)
    builder.error = RuntimeError("broken template")

    assert outbox_send(ids=[row.pk]).failed == 1

    assert _row(row).status == EmailStatus.FAILED
    assert smtp_sink.deliveries == []


def test_a_worker_that_dies_after_claiming_an_unrendered_email_leaves_it_to_be_rendered_and_sent_once(
    smtp_sink, builder, eager_tasks
):
    row = queue_later(1)
    start = timezone.now()
    assert outbox_claim(ids=[row.pk]) == [row.pk]  # then the worker dies, before rendering

    with time_machine.travel(start + timedelta(minutes=11)):
        assert outbox_requeue_stuck() == 1
        assert outbox_dispatch_due() == 1

    assert smtp_sink.recipients == ["dr.1@example.org"]
    sent = _row(row)
    assert (sent.status, sent.attempts, sent.subject) == (EmailStatus.SENT, 2, "[deconv] Test email 1")


def test_emails_queued_later_by_one_process_leave_for_the_broker_together(
    builder, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.OUTBOX_DISPATCH_DELAY_SECONDS = 0.05
    published = []
    monkeypatch.setattr(
        tasks.outbox_send, "apply_async", lambda kwargs=None, **options: published.append(kwargs["ids"])
    )

    ids = []
    for number in (1, 2, 3):
        # One transaction each, as three signing requests.
        with django_capture_on_commit_callbacks(execute=True):
            ids.append(queue_later(number).pk)
    assert published == []

    deadline = time.monotonic() + 5
    while not published and time.monotonic() < deadline:
        time.sleep(0.02)
    assert published == [ids]


def test_a_process_that_dies_before_gathered_ids_leave_loses_only_their_dispatch(
    builder, smtp_sink, eager_tasks, monkeypatch, django_capture_on_commit_callbacks
):
    """The row is committed and marked dispatched: outbox_dispatch_due hands it again after the lease."""
    monkeypatch.setattr(outbox._dispatch_buffer, "add", lambda ids: None)  # the process died
    with django_capture_on_commit_callbacks(execute=True):
        row = queue_later(1)

    assert outbox_dispatch_due() == 0  # within the lease: maybe still on its way
    with time_machine.travel(timezone.now() + outbox.DISPATCH_LEASE + timedelta(seconds=1)):
        assert outbox_dispatch_due() == 1

    assert smtp_sink.recipients == ["dr.1@example.org"]
    assert _row(row).status == EmailStatus.SENT


def test_a_recipient_who_stops_emails_after_the_queueing_gets_nothing_and_costs_no_rendering(
    smtp_sink, builder
):
    row = queue_later(1)
    email_stop_record(email_hash=email_stop_hash(address="dr.1@example.org"))

    assert outbox_send(ids=[row.pk]).failed == 1

    assert builder.calls == []
    stopped = _row(row)
    assert (stopped.status, stopped.last_error) == (EmailStatus.FAILED, outbox.STOPPED_ERROR)
    assert smtp_sink.deliveries == []
