"""Celery tasks: thin wrappers, explicit names, safe to run twice.

Counting tasks are idempotent by construction: the advisory lock lets one runner work at a time
and the bookmark (CounterState.counted_until) means a second run only sees newer events.
"""

from celery import shared_task

from pledges.counting import counts_reconcile, counts_update, counts_update_if_due


@shared_task(name="pledges.counts_tick")
def counts_tick() -> dict:
    """Every second from beat: count if the organizer's interval has passed, else return at once."""
    result = counts_update_if_due()
    if result is None:
        return {"due": False}
    return {"due": True, "skipped": result.skipped, "events": result.events}


@shared_task(name="pledges.counts_update")
def counts_update_task() -> dict:
    """Count now, whatever the interval (e.g. from the admin or a shell after an incident)."""
    result = counts_update()
    return {"skipped": result.skipped, "events": result.events}


@shared_task(name="pledges.counts_reconcile")
def counts_reconcile_task() -> dict:
    """Repair the counts from the pledge rows; drifts are logged by the service."""
    return {"drifts": len(counts_reconcile())}


# --- Signing emails ---------------------------------------------------------------------------
# Imported here, not at the top: this section is appended to a module another part of the work owns.
from deconv.tasks import TRANSIENT_SMTP_ERRORS  # noqa: E402

# Each task reads the database again (a pledge withdrawn meanwhile gets no email) and sends under
# a dedupe key (deconv.mail.email_send_once), so a redelivered task does not send twice.
# Transient SMTP and network errors are retried with backoff (the same list as deconv.send_email);
# a refused recipient fails at once.
_EMAIL_TASK_OPTIONS = {
    "acks_late": True,
    "autoretry_for": TRANSIENT_SMTP_ERRORS,
    "retry_backoff": 30,
    "retry_backoff_max": 1800,
    "max_retries": 8,
}


@shared_task(name="pledges.email_pledge_received", **_EMAIL_TASK_OPTIONS)
def email_pledge_received(*, pledge_id: int, language: str) -> bool:
    from pledges.emails import pledge_received_send

    return pledge_received_send(pledge_id=pledge_id, language=language)


@shared_task(name="pledges.email_pledge_already_signed", **_EMAIL_TASK_OPTIONS)
def email_pledge_already_signed(*, owner_id: int, campaign_id: int, language: str, dedupe_key: str) -> bool:
    from pledges.emails import pledge_already_signed_send

    return pledge_already_signed_send(
        owner_id=owner_id, campaign_id=campaign_id, language=language, dedupe_key=dedupe_key
    )


@shared_task(name="pledges.email_pledge_withdrawn", **_EMAIL_TASK_OPTIONS)
def email_pledge_withdrawn(*, pledge_id: int, language: str) -> bool:
    from pledges.emails import pledge_withdrawn_send

    return pledge_withdrawn_send(pledge_id=pledge_id, language=language)


@shared_task(name="pledges.email_send_rendered", **_EMAIL_TASK_OPTIONS)
def email_send_rendered(*, email: dict, dedupe_key: str) -> bool:
    """An email rendered in the request (the account it went to no longer exists)."""
    from pledges.emails import rendered_send

    return rendered_send(email=email, dedupe_key=dedupe_key)
