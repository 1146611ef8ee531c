"""Background jobs of the deconv package: sending email, purging old abuse events.

The web request renders a message and hands it over here (deconv.adapters.email_send_later), so
a slow or unreachable SMTP server never holds up a page, and a failing one is retried.

Interim design: the rendered message travels in the task's arguments, through the broker.
The outbox work replaces this with an outbox row per message (persist first, send later,
dedupe key, attempts, last error): a task killed after the SMTP server accepted the message
can then not send it twice, which acks_late redelivery can do today.
"""

import logging
import smtplib

from celery import shared_task
from django.core.mail import EmailMultiAlternatives

logger = logging.getLogger(__name__)

# Worth another try later: the server was busy, down or the connection dropped. A refused
# recipient or a rejected message is not, and fails the task at once.
TRANSIENT_SMTP_ERRORS = (
    smtplib.SMTPServerDisconnected,
    smtplib.SMTPConnectError,
    ConnectionError,
    TimeoutError,
)


@shared_task(
    name="deconv.send_email",
    autoretry_for=TRANSIENT_SMTP_ERRORS,
    retry_backoff=30,
    retry_backoff_max=30 * 60,
    max_retries=8,
)
def send_email(*, kind: str, subject: str, body: str, to: list[str], from_email: str, html: str = "") -> int:
    """Send one rendered message through Django's mail backend; returns how many were sent.

    `kind` names the template (e.g. "account/email/email_confirmation") for the logs, which
    never carry the recipient.
    """
    message = EmailMultiAlternatives(subject=subject, body=body, from_email=from_email, to=to)
    if html:
        message.attach_alternative(html, "text/html")
    sent = message.send()
    logger.info("email sent: %s", kind)
    return sent


@shared_task(name="deconv.abuse_events_purge")
def abuse_events_purge() -> int:
    """Daily: abuse events are kept ABUSE_EVENT_RETENTION_DAYS, then deleted (data minimisation)."""
    from deconv.ratelimit import abuse_events_purge as purge

    return purge()
