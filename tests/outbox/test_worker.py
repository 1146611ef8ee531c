"""The outbox through the real broker and a real Celery worker, to the SMTP sink."""

import os
import time

import pytest
from django.db import connection

from deconv.celery import app
from deconv.models import EmailStatus, OutgoingEmail
from deconv.outbox import email_queue_many
from tests.outbox.conftest import make_item, queue_test_email, start_sink


@pytest.fixture
def worker_sink(monkeypatch):
    """A sink the worker process sends to: its EMAIL_URL is set before it starts."""
    handler, controller = start_sink()
    monkeypatch.setenv("EMAIL_URL", f"smtp://127.0.0.1:{handler.port}")
    # Tasks left in the test broker by another run would otherwise run first.
    app.control.purge()
    try:
        yield handler
    finally:
        controller.stop()


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.redis
@pytest.mark.worker
@pytest.mark.slow
def test_a_real_worker_sends_a_queued_email_to_the_smtp_server(worker_sink, celery_worker_process):
    # Outside any transaction: committed at once, dispatched at once.
    row = queue_test_email(1)

    assert wait_until(lambda: len(worker_sink.deliveries) == 1, timeout=20)
    assert worker_sink.recipients == ["dr.1@example.org"]
    assert wait_until(lambda: OutgoingEmail.objects.get(pk=row.pk).status == EmailStatus.SENT, timeout=5)


@pytest.mark.redis
@pytest.mark.worker
@pytest.mark.slow
def test_a_fan_out_through_one_worker_delivers_each_email_once(worker_sink, celery_worker_process):
    """Also the throughput measurement: OUTBOX_BENCH_EMAILS=10000 for the figure in the report."""
    count = int(os.environ.get("OUTBOX_BENCH_EMAILS", "500"))
    items = [make_item(number) for number in range(count)]

    start = time.monotonic()
    assert email_queue_many(items) == count
    queued = time.monotonic() - start
    assert wait_until(lambda: len(worker_sink.deliveries) >= count, timeout=max(60, count / 10))
    delivered = time.monotonic() - start
    # Nothing more arrives: no email was sent twice.
    time.sleep(1)

    recipients = worker_sink.recipients
    assert len(recipients) == count
    assert len(set(recipients)) == count
    assert OutgoingEmail.objects.filter(status=EmailStatus.SENT).count() == count
    print(
        f"\noutbox fan-out: {count} emails queued in {queued:.1f} s, all delivered after {delivered:.1f} s "
        f"({count / delivered:.0f}/s, one worker, {connection.vendor})"
    )
