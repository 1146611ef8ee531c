"""Render an email from its templates, and build the message the outbox hands to Django's backend.

Each kind of email is up to three templates: `emails/<kind>-subject.txt`, `emails/<kind>-body.txt`
and, optionally, `emails/<kind>-body.html`. The text part is written to read well on its own:
many hospital mail clients show only that. Sending is the outbox's job (deconv.outbox): nothing
here talks to a mail server.

Every part ends with the footer `emails/footer.txt` / `emails/footer.html`: the stop link, or,
for an email the law requires, why it cannot be stopped. The renderer adds it, not each template,
so that no kind of email can forget it.
"""

from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.utils import translation

# base.html puts the footer inside its layout; an HTML template that does not extend it gets the
# footer appended, found by this marker.
FOOTER_MARKER = "data-email-footer"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    body_text: str
    body_html: str


def _site_context() -> dict:
    return {"SITE_NAME": settings.SITE_NAME, "SITE_URL": settings.SITE_URL, "site_url": settings.SITE_URL}


def email_footer_add(*, email: RenderedEmail, stop_url: str | None, language: str) -> RenderedEmail:
    """Append the footer to both parts: the stop link, or (stop_url None) why it cannot be stopped."""
    context = {**_site_context(), "stop_url": stop_url}
    body_html = email.body_html
    with translation.override(language):
        footer_text = render_to_string("emails/footer.txt", context).strip()
        footer_html = (
            render_to_string("emails/footer.html", context)
            if body_html and FOOTER_MARKER not in body_html
            else ""
        )
    if footer_html:
        position = body_html.rfind("</body>")
        body_html = (
            body_html[:position] + footer_html + body_html[position:]
            if position >= 0
            else body_html + footer_html
        )
    return RenderedEmail(
        subject=email.subject, body_text=f"{email.body_text.rstrip()}\n\n{footer_text}\n", body_html=body_html
    )


def email_render(*, kind: str, context: dict, language: str, stop_url: str | None) -> RenderedEmail:
    """Render the templates of `kind` in `language`, footer included.

    `stop_url` is the recipient's stop link, None for an email the law requires (the footer then
    says why it cannot be stopped). Both are in the templates' context too.
    """
    context = {**_site_context(), **context, "stop_url": stop_url, "email_required": stop_url is None}
    with translation.override(language):
        subject = render_to_string(f"emails/{kind}-subject.txt", context)
        body_text = render_to_string(f"emails/{kind}-body.txt", context)
        try:
            body_html = render_to_string(f"emails/{kind}-body.html", context)
        except TemplateDoesNotExist:
            body_html = ""
    # A header cannot hold a newline; templates end with one.
    subject = " ".join(subject.split())
    prefix = getattr(settings, "ACCOUNT_EMAIL_SUBJECT_PREFIX", "")
    email = RenderedEmail(subject=f"{prefix}{subject}", body_text=body_text.strip(), body_html=body_html)
    # base.html already laid the footer out (it reads stop_url from the context).
    return email_footer_add(email=email, stop_url=stop_url, language=language)


def email_message_build(
    *,
    to: str,
    subject: str,
    body_text: str,
    body_html: str,
    headers: dict[str, str],
    connection,
) -> EmailMultiAlternatives:
    """One message for one recipient, on the outbox's shared connection."""
    message = EmailMultiAlternatives(
        subject=subject,
        body=body_text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers=headers,
        connection=connection,
    )
    if body_html:
        message.attach_alternative(body_html, "text/html")
    return message
