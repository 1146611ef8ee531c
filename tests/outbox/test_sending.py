"""The outbox against a real SMTP server: delivered once, retried when worth it, never twice."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone
from kombu.exceptions import OperationalError

from deconv import tasks
from deconv.models import EmailStatus, OutgoingEmail
from deconv.outbox import (
    MAX_ATTEMPTS,
    email_queue_many,
    outbox_claim,
    outbox_dispatch_due,
    outbox_requeue_failed,
    outbox_requeue_stuck,
    outbox_send,
)
from tests.outbox.conftest import ACCEPT, HANG, PERMANENT, TRANSIENT, free_port, make_item, queue_test_email

pytestmark = pytest.mark.django_db


def _row(row) -> OutgoingEmail:
    return OutgoingEmail.objects.get(pk=row.pk)


def test_a_queued_email_is_sent_after_the_commit_and_marked_sent(
    smtp_sink, eager_tasks, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        row = queue_test_email(1)
        assert smtp_sink.deliveries == []
    assert _row(row).status == EmailStatus.QUEUED

    for callback in callbacks:
        callback()

    assert smtp_sink.recipients == ["dr.1@example.org"]
    [message] = smtp_sink.messages()
    assert message["Subject"] == "[deconv] Test email 1"
    assert message["Message-ID"].startswith(f"<outbox.{row.pk}.")
    assert message["List-Unsubscribe"].strip().startswith("<http://127.0.0.1:8000/email/stop/")
    row = _row(row)
    assert (row.status, row.attempts, row.last_error) == (EmailStatus.SENT, 1, "")
    assert row.sent_at is not None


def test_queueing_the_same_dedupe_key_again_creates_and_sends_nothing(smtp_sink, eager_tasks):
    first = queue_test_email(1)
    again = queue_test_email(1)

    assert first is not None
    assert again is None
    assert OutgoingEmail.objects.count() == 1


def test_a_transient_451_is_retried_after_its_backoff_and_delivered_once(smtp_sink, eager_tasks):
    smtp_sink.answers.append(TRANSIENT)
    row = queue_test_email(1)

    with time_machine.travel(timezone.now(), tick=False) as clock:
        report = outbox_send(ids=[row.pk])
        assert (report.sent, report.retried) == (0, 1)
        waiting = _row(row)
        assert (waiting.status, waiting.attempts) == (EmailStatus.QUEUED, 1)
        assert waiting.next_attempt_at == timezone.now() + timedelta(seconds=30)
        assert "451" in waiting.last_error and "Mailbox busy" in waiting.last_error
        # Not before its time, even if a task for it arrives.
        assert outbox_send(ids=[row.pk]).skipped == 1
        assert outbox_dispatch_due() == 0

        clock.shift(timedelta(seconds=31))
        assert outbox_dispatch_due() == 1

    assert smtp_sink.recipients == ["dr.1@example.org"]
    sent = _row(row)
    assert (sent.status, sent.attempts, sent.last_error) == (EmailStatus.SENT, 2, "")


def test_a_permanent_550_fails_at_once_and_is_never_retried(smtp_sink, eager_tasks):
    smtp_sink.answers.append(PERMANENT)
    row = queue_test_email(1)

    report = outbox_send(ids=[row.pk])

    assert (report.sent, report.failed, report.retried) == (0, 1, 0)
    failed = _row(row)
    assert (failed.status, failed.attempts) == (EmailStatus.FAILED, 1)
    assert failed.last_error == "SMTPDataError 550 5.1.1 No such mailbox"
    with time_machine.travel(timezone.now() + timedelta(hours=3)):
        assert outbox_dispatch_due() == 0
        assert outbox_send(ids=[row.pk]).skipped == 1
    assert smtp_sink.deliveries == []


def test_a_refused_recipient_fails_without_its_address_in_the_error(smtp_sink):
    smtp_sink.refused_recipients["gone@example.org"] = "550 5.1.1 Unknown user"
    row = queue_test_email(1, recipient="gone@example.org")

    outbox_send(ids=[row.pk])

    failed = _row(row)
    assert failed.status == EmailStatus.FAILED
    assert failed.last_error == "SMTPRecipientsRefused 550 5.1.1 Unknown user"


def test_a_server_that_hangs_times_out_and_the_email_is_retried_then_delivered_once(
    smtp_sink, eager_tasks, settings
):
    settings.EMAIL_TIMEOUT = 0.5
    smtp_sink.answers.append(HANG)
    row = queue_test_email(1)

    report = outbox_send(ids=[row.pk])

    assert report.retried == 1
    waiting = _row(row)
    assert waiting.status == EmailStatus.QUEUED
    assert "timed out" in waiting.last_error
    with time_machine.travel(timezone.now() + timedelta(seconds=31)):
        assert outbox_dispatch_due() == 1
    assert smtp_sink.recipients == ["dr.1@example.org"]
    assert (_row(row).status, _row(row).attempts) == (EmailStatus.SENT, 2)


def test_one_connection_serves_a_chunk_and_each_row_gets_its_own_outcome(smtp_sink):
    smtp_sink.answers.extend([PERMANENT, ACCEPT, TRANSIENT, ACCEPT])
    rows = [queue_test_email(number) for number in range(1, 5)]

    report = outbox_send(ids=[row.pk for row in rows])

    assert (report.sent, report.failed, report.retried) == (2, 1, 1)
    assert [_row(row).status for row in rows] == [
        EmailStatus.FAILED,
        EmailStatus.SENT,
        EmailStatus.QUEUED,
        EmailStatus.SENT,
    ]
    assert smtp_sink.recipients == ["dr.2@example.org", "dr.4@example.org"]


def test_connection_refused_requeues_every_row_of_the_chunk(smtp_sink, eager_tasks, settings):
    rows = [queue_test_email(number) for number in range(1, 4)]
    settings.EMAIL_PORT = free_port()  # nothing listens there

    report = outbox_send(ids=[row.pk for row in rows])

    assert report.retried == 3
    assert all("ConnectionRefusedError" in _row(row).last_error for row in rows)
    settings.EMAIL_PORT = smtp_sink.port
    with time_machine.travel(timezone.now() + timedelta(seconds=31)):
        assert outbox_dispatch_due() == 3
    assert sorted(smtp_sink.recipients) == ["dr.1@example.org", "dr.2@example.org", "dr.3@example.org"]


def test_an_email_fails_after_its_last_attempt(smtp_sink):
    smtp_sink.answers.append(TRANSIENT)
    row = queue_test_email(1)
    OutgoingEmail.objects.filter(pk=row.pk).update(attempts=MAX_ATTEMPTS - 1)

    report = outbox_send(ids=[row.pk])

    assert report.failed == 1
    failed = _row(row)
    assert (failed.status, failed.attempts) == (EmailStatus.FAILED, MAX_ATTEMPTS)
    assert failed.last_error.endswith(f"(gave up after {MAX_ATTEMPTS} attempts)")


def test_backoff_doubles_from_30_seconds_and_stops_at_an_hour(smtp_sink):
    row = queue_test_email(1)
    delays = []
    for attempts in range(1, MAX_ATTEMPTS):
        OutgoingEmail.objects.filter(pk=row.pk).update(
            status=EmailStatus.QUEUED, attempts=attempts - 1, next_attempt_at=None
        )
        smtp_sink.answers.append(TRANSIENT)
        with time_machine.travel(timezone.now(), tick=False):
            outbox_send(ids=[row.pk])
            delays.append((_row(row).next_attempt_at - timezone.now()).total_seconds())

    assert delays == [30, 60, 120, 240, 480, 960, 1920]
    assert smtp_sink.deliveries == []


def test_a_worker_that_dies_after_claiming_leaves_the_email_to_requeue_stuck_delivered_once(
    smtp_sink, eager_tasks
):
    row = queue_test_email(1)
    start = timezone.now()
    # The worker claims the row and dies before sending.
    assert outbox_claim(ids=[row.pk]) == [row.pk]
    # Its task, redelivered by the broker (acks_late), finds the row taken.
    assert outbox_send(ids=[row.pk]).skipped == 1

    with time_machine.travel(start + timedelta(minutes=9)):
        assert outbox_requeue_stuck() == 0
    with time_machine.travel(start + timedelta(minutes=11)):
        assert outbox_requeue_stuck() == 1
        assert outbox_dispatch_due() == 1
        # Nothing left for the next runs.
        assert outbox_requeue_stuck() == 0
        assert outbox_dispatch_due() == 0

    assert smtp_sink.recipients == ["dr.1@example.org"]
    sent = _row(row)
    assert (sent.status, sent.attempts) == (EmailStatus.SENT, 2)


def test_an_email_whose_send_kills_its_worker_every_time_ends_failed(smtp_sink):
    row = queue_test_email(1)
    OutgoingEmail.objects.filter(pk=row.pk).update(attempts=MAX_ATTEMPTS - 1)
    outbox_claim(ids=[row.pk])

    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        assert outbox_requeue_stuck() == 0

    failed = _row(row)
    assert failed.status == EmailStatus.FAILED
    assert "the worker probably stopped" in failed.last_error


@pytest.mark.slow
def test_a_fan_out_of_2000_run_twice_sends_each_email_exactly_once(
    smtp_sink, eager_tasks, django_capture_on_commit_callbacks, monkeypatch
):
    items = [make_item(number) for number in range(2000)]
    dispatched = []
    apply_async = tasks.outbox_send.apply_async

    def count_dispatch(*args, **kwargs):
        dispatched.append(len(kwargs["kwargs"]["ids"]))
        return apply_async(*args, **kwargs)

    monkeypatch.setattr(tasks.outbox_send, "apply_async", count_dispatch)

    with django_capture_on_commit_callbacks(execute=True):
        first = email_queue_many(items)
    with django_capture_on_commit_callbacks(execute=True):
        second = email_queue_many(items)

    assert (first, second) == (2000, 0)
    assert OutgoingEmail.objects.count() == 2000
    assert OutgoingEmail.objects.filter(status=EmailStatus.SENT).count() == 2000
    recipients = smtp_sink.recipients
    assert len(recipients) == 2000
    assert len(set(recipients)) == 2000
    # One task per chunk of 100, not one per email; the second run dispatched nothing.
    assert dispatched == [100] * 20


def test_a_fan_out_skips_duplicate_keys_within_one_call(smtp_sink):
    items = [make_item(1), make_item(1), make_item(2)]

    assert email_queue_many(items) == 2
    assert OutgoingEmail.objects.count() == 2


def test_an_email_queued_while_the_broker_is_down_is_sent_by_dispatch_due_later(
    smtp_sink, eager_tasks, monkeypatch, django_capture_on_commit_callbacks
):
    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.outbox_send, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        row = queue_test_email(1)  # no exception reaches the caller (a signup, a pledge)
    assert _row(row).status == EmailStatus.QUEUED
    monkeypatch.undo()

    # Still in its dispatch lease: it may be waiting in the broker.
    assert outbox_dispatch_due() == 0
    assert smtp_sink.deliveries == []
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        assert outbox_dispatch_due() == 1

    assert smtp_sink.recipients == ["dr.1@example.org"]
    assert _row(row).status == EmailStatus.SENT


def test_dispatch_due_does_not_redispatch_within_the_lease(smtp_sink, monkeypatch):
    dispatched = []
    monkeypatch.setattr(
        tasks.outbox_send, "apply_async", lambda **kwargs: dispatched.append(kwargs["kwargs"])
    )
    queue_test_email(1)
    start = timezone.now()

    with time_machine.travel(start + timedelta(seconds=61)):
        assert outbox_dispatch_due() == 1
    with time_machine.travel(start + timedelta(seconds=91)):
        assert outbox_dispatch_due() == 0
    with time_machine.travel(start + timedelta(seconds=122)):
        assert outbox_dispatch_due() == 1
    assert len(dispatched) == 2


def test_requeueing_failed_emails_sends_them_with_fresh_attempts(
    smtp_sink, eager_tasks, django_capture_on_commit_callbacks
):
    smtp_sink.answers.append(PERMANENT)
    row = queue_test_email(1)
    outbox_send(ids=[row.pk])
    assert _row(row).status == EmailStatus.FAILED

    with django_capture_on_commit_callbacks(execute=True):
        assert outbox_requeue_failed(ids=[row.pk]) == 1

    sent = _row(row)
    assert (sent.status, sent.attempts) == (EmailStatus.SENT, 1)
    assert smtp_sink.recipients == ["dr.1@example.org"]


@pytest.mark.postgres
def test_two_workers_claiming_the_same_ids_at_once_share_them_without_overlap(transactional_db, monkeypatch):
    monkeypatch.setattr(tasks.outbox_send, "apply_async", lambda **kwargs: None)
    ids = [queue_test_email(number).pk for number in range(200)]
    barrier = threading.Barrier(2)
    claimed: list[list[int]] = []

    def claim():
        try:
            barrier.wait()
            claimed.append(outbox_claim(ids=ids))
        finally:
            connection.close()

    workers = [threading.Thread(target=claim) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    first, second = claimed
    assert not set(first) & set(second)
    assert sorted(first + second) == ids
    assert OutgoingEmail.objects.filter(status=EmailStatus.SENDING, attempts=1).count() == 200
