"""Background jobs of the deconv package: the outbox (deconv.outbox), purging old abuse events.

Thin wrappers: ids in, one service call, a small report out. Every outbox task is safe to run
twice: a row is sent only by the task that claimed it (deconv.outbox.outbox_claim), so a task
redelivered after a worker died (acks_late) finds its rows taken, and sends nothing twice.
"""

import hashlib
import logging

from celery import shared_task

logger = logging.getLogger(__name__)


def dispatch_safely(task, *args, **kwargs) -> bool:
    """Hand `task` to the broker now; False, logged, when the broker cannot take it.

    For transaction.on_commit callbacks: their change is committed already, so a broker outage
    must not turn it into an error page (nor fail the beat job that made it). What the task
    was to do stays recorded (a queued row, an unfinished release) for its repair job or a new
    request. `delay` keeps Celery's short publish retries (about half a second in all).
    """
    try:
        task.delay(*args, **kwargs)
    except Exception:
        logger.warning("broker unavailable: task %s not dispatched", task.name, exc_info=True)
        return False
    return True


@shared_task(name="deconv.outbox_send", acks_late=True)
def outbox_send(ids: list[int]) -> dict:
    """Send the queued, due emails among `ids` over one mail connection."""
    from deconv.outbox import outbox_send as send

    return send(ids=ids).as_dict()


@shared_task(name="deconv.outbox_dispatch_due")
def outbox_dispatch_due() -> int:
    """Every 10 s: retries whose time has come, and emails whose dispatch was lost."""
    from deconv.outbox import outbox_dispatch_due as dispatch_due

    return dispatch_due()


@shared_task(name="deconv.outbox_requeue_stuck")
def outbox_requeue_stuck() -> int:
    """Every minute: emails left in sending by a worker that died go back to the queue."""
    from deconv.outbox import outbox_requeue_stuck as requeue_stuck

    return requeue_stuck()


@shared_task(name="deconv.outbox_purge")
def outbox_purge() -> int:
    """Daily: old sent and failed emails lose their address and text (data minimisation)."""
    from deconv.outbox import outbox_purge as purge

    return purge()


@shared_task(name="deconv.send_email", acks_late=True)
def send_email(*, kind: str, subject: str, body: str, to: list[str], from_email: str, html: str = "") -> int:
    """Legacy: a message rendered before the outbox existed, still waiting in the broker.

    It goes into the outbox like any other. Its dedupe key is a hash of its content, so a
    redelivered legacy task queues nothing twice. `from_email` is ignored: the outbox sends from
    DEFAULT_FROM_EMAIL, as the legacy task was called with.
    """
    from deconv.outbox import email_queue_rendered

    queued = 0
    for recipient in to:
        digest = hashlib.sha256("\0".join((kind, recipient, subject, body, html)).encode()).hexdigest()
        row = email_queue_rendered(
            kind=kind,
            recipient=recipient,
            subject=subject,
            body_text=body,
            body_html=html,
            dedupe_key=f"legacy:{digest}",
            language="fr",
        )
        queued += row is not None
    return queued


@shared_task(name="deconv.abuse_events_purge")
def abuse_events_purge() -> int:
    """Daily: abuse events are kept ABUSE_EVENT_RETENTION_DAYS, then deleted (data minimisation)."""
    from deconv.ratelimit import abuse_events_purge as purge

    return purge()
