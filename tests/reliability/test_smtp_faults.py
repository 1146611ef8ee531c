"""The mail server misbehaves in turn: refuses for now, refuses for good, hangs, disappears.

Three emails go through it with the outbox's own send and beat functions (tasks run eagerly,
the clock moved with time-machine). Each is retried while the error is temporary, failed when it
is permanent, delivered at most once, and organizers find the failures in the admin's filter.
"""

from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone

from deconv.celery import app as celery_app
from deconv.models import EmailStatus, OutgoingEmail
from deconv.outbox import email_queue, outbox_dispatch_due, outbox_send
from tests.pledges.factories import UserFactory
from tests.reliability.smtp import HANG, PERMANENT, TRANSIENT

OUTBOX_TEMPLATES = Path(__file__).resolve().parents[1] / "outbox" / "templates"


@pytest.fixture
def smtp(sink, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = sink.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 1
    sink.hang_seconds = 2.5
    engine = settings.TEMPLATES[0]
    settings.TEMPLATES = [{**engine, "DIRS": [*engine["DIRS"], OUTBOX_TEMPLATES]}, *settings.TEMPLATES[1:]]
    previous = (celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates)
    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    yield sink
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


def _queue(number: int) -> OutgoingEmail:
    return email_queue(
        kind="outbox_test",
        recipient=f"dr.smtp{number}@example.org",
        context={"number": number},
        dedupe_key=f"reliability:smtp:{number}",
    )


def _state(row: OutgoingEmail) -> tuple[str, int]:
    row.refresh_from_db()
    return row.status, row.attempts


def test_refused_then_refused_for_good_then_hanging_then_gone_smtp_retries_fails_and_never_duplicates(
    db, smtp, client, figures
):
    doomed, slow, lucky = _queue(1), _queue(2), _queue(3)
    ids = [doomed.pk, slow.pk, lucky.pk]

    with time_machine.travel(timezone.now(), tick=False) as clock:
        # 1. 451 for all three: each back in the queue, 30 s later.
        smtp.answers.extend([TRANSIENT] * 3)
        first = outbox_send(ids=ids)
        assert [_state(row) for row in (doomed, slow, lucky)] == [(EmailStatus.QUEUED, 1)] * 3
        assert "451" in OutgoingEmail.objects.get(pk=doomed.pk).last_error
        assert outbox_dispatch_due() == 0  # not before the backoff

        # 2. 550 for the first, a hang (timeout) for the second, accepted for the third.
        clock.shift(timedelta(seconds=31))
        smtp.answers.extend([PERMANENT, HANG])
        second = outbox_dispatch_due()
        assert _state(doomed) == (EmailStatus.FAILED, 2)
        assert _state(slow) == (EmailStatus.QUEUED, 2)
        assert _state(lucky) == (EmailStatus.SENT, 2)

        # 3. The server is gone (connection refused): the second waits again.
        smtp.server_stop()
        clock.shift(timedelta(minutes=2))
        third = outbox_dispatch_due()
        assert _state(slow) == (EmailStatus.QUEUED, 3)
        refused_error = OutgoingEmail.objects.get(pk=slow.pk).last_error

        # 4. Back: the second is delivered, once; the failed one is never tried again.
        smtp.server_start()
        clock.shift(timedelta(minutes=5))
        fourth = outbox_dispatch_due()
        clock.shift(timedelta(hours=2))
        later = outbox_dispatch_due()

    # Organizers see the failure, and why, through the admin's status filter.
    organizer = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(organizer)
    failed_page = client.get("/admin/deconv/outgoingemail/?status__exact=failed").content.decode()
    sent_page = client.get("/admin/deconv/outgoingemail/?status__exact=sent").content.decode()

    figures(
        "smtp_faults",
        {
            "emails": len(ids),
            "send_attempts_seen_by_server": smtp.attempts,
            "deliveries": len(smtp.recipients),
            "duplicates": len(smtp.duplicates()),
            "failed": OutgoingEmail.objects.filter(status=EmailStatus.FAILED).count(),
            "sent": OutgoingEmail.objects.filter(status=EmailStatus.SENT).count(),
        },
    )
    assert first.retried == 3 and (second, third, fourth, later) == (3, 1, 1, 0)
    assert "ConnectionRefusedError" in refused_error
    assert _state(slow) == (EmailStatus.SENT, 4)
    assert sorted(smtp.recipients) == ["dr.smtp2@example.org", "dr.smtp3@example.org"]
    assert smtp.duplicates() == {}
    assert OutgoingEmail.objects.get(pk=doomed.pk).last_error == "SMTPDataError 550 5.1.1 No such mailbox"
    assert "dr.smtp1@example.org" in failed_page and "550 5.1.1 No such mailbox" in failed_page
    assert "dr.smtp2@example.org" not in failed_page and "dr.smtp3@example.org" not in failed_page
    assert "dr.smtp2@example.org" in sent_page and "dr.smtp3@example.org" in sent_page
