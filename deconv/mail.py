"""Render an email from templates and send it (once, where the cache allows).

Each kind of email is three templates: `emails/<kind>-subject.txt`, `emails/<kind>-body.txt`
and `emails/<kind>-body.html`. The text part is written to read well on its own: many
hospital mail clients show only that.
"""

from dataclasses import asdict, dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import translation

# A dedupe claim outlives any retry schedule of a task (Celery's backoff tops out in minutes).
DEDUPE_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class RenderedEmail:
    to: str
    subject: str
    body_text: str
    body_html: str

    def as_dict(self) -> dict[str, str]:
        """JSON-serialisable, for a task argument."""
        return asdict(self)


def email_render(*, kind: str, to: str, context: dict, language: str | None = None) -> RenderedEmail:
    """Render the three templates of `kind` in `language` (the site's default when None)."""
    context = {"SITE_NAME": settings.SITE_NAME, "SITE_URL": settings.SITE_URL, **context}
    with translation.override(language or settings.LANGUAGE_CODE):
        subject = render_to_string(f"emails/{kind}-subject.txt", context)
        body_text = render_to_string(f"emails/{kind}-body.txt", context)
        body_html = render_to_string(f"emails/{kind}-body.html", context)
    # A header cannot hold a newline; templates end with one.
    subject = " ".join(subject.split())
    prefix = getattr(settings, "ACCOUNT_EMAIL_SUBJECT_PREFIX", "")
    return RenderedEmail(
        to=to, subject=f"{prefix}{subject}", body_text=body_text.strip() + "\n", body_html=body_html
    )


def email_send(*, email: RenderedEmail) -> None:
    """Send through Django's configured backend; raises on SMTP errors (the task retries)."""
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=email.body_text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email.to],
    )
    message.attach_alternative(email.body_html, "text/html")
    message.send(fail_silently=False)


def email_send_once(*, email: RenderedEmail, dedupe_key: str) -> bool:
    """Send unless an email with this key was already sent; returns whether it sent.

    Celery redelivers a task whose worker died before acknowledging it (acks_late), so a
    task may run twice. The claim is taken in the shared cache before sending and released
    if sending fails, so a retry after an SMTP error still sends. Trade-off, until the outbox
    table replaces this: a worker that dies between the claim and the SMTP call loses that
    email rather than sending it twice; with the local-memory cache (embedded default, one
    process per cache) the claim only protects retries within one worker process.
    """
    key = f"mail-sent:{dedupe_key}"
    if not cache.add(key, 1, timeout=DEDUPE_TTL_SECONDS):
        return False
    try:
        email_send(email=email)
    except Exception:
        cache.delete(key)
        raise
    return True
