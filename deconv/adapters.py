"""How allauth sends mail, redirects after login and reports abuse in deconv."""

import logging
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

from allauth.account import app_settings as account_settings
from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context as allauth_context
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.http import HttpRequest
from django.urls import reverse
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme

from deconv import ratelimit
from deconv.models import AbuseEventKind
from deconv.outbox import email_queue_rendered

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmailSite:
    """What allauth's email templates read as `current_site`: our name, the public host."""

    name: str
    domain: str


def email_queue_from_message(*, message: EmailMessage, kind: str, user=None) -> None:
    """Put a message allauth rendered into the outbox (deconv.outbox); a worker sends it after the commit.

    After the commit, so that a worker never mails a link to an account that was rolled back.
    Each is a new email (a uuid4 dedupe key): people ask for these again on purpose (another
    code, another reset link), and allauth's rate limits already bound how often.
    """
    html = ""
    if isinstance(message, EmailMultiAlternatives):
        html = next((content for content, mimetype in message.alternatives if mimetype == "text/html"), "")
    if message.content_subtype == "html":
        html, body = message.body, ""
    else:
        body = message.body
    for recipient in message.to:
        email_queue_rendered(
            kind=kind,
            recipient=recipient,
            subject=message.subject,
            body_text=body,
            body_html=html,
            dedupe_key=f"account:{uuid.uuid4().hex}",
            language=translation.get_language() or settings.LANGUAGE_CODE,
            user=user,
        )


def redirect_is_safe(request: HttpRequest | None, url: str | None) -> bool:
    """Only this site: no other host, no scheme trick (//evil, /\\evil, javascript:)."""
    if not url:
        return False
    if request is None:
        return url_has_allowed_host_and_scheme(url, allowed_hosts=set())
    return url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )


class AccountAdapter(DefaultAccountAdapter):
    def send_mail(self, template_prefix: str, email: str, context: dict) -> None:
        """Render now (the request's language and host); the outbox sends it after the commit."""
        request = allauth_context.request
        ctx = {
            "request": request,
            "email": email,
            "current_site": EmailSite(name=settings.SITE_NAME, domain=urlsplit(settings.SITE_URL).netloc),
            # For the confirmation email's "valid for N days".
            "expire_days": account_settings.EMAIL_CONFIRMATION_EXPIRE_DAYS,
        }
        ctx.update(context)
        message = self.render_mail(template_prefix, email, ctx)
        user = ctx.get("user")
        email_queue_from_message(
            message=message, kind=template_prefix, user=user if getattr(user, "pk", None) else None
        )

    def is_safe_url(self, url: str | None) -> bool:
        # Stricter than allauth's (which also accepts every host in ALLOWED_HOSTS): this site only.
        return redirect_is_safe(allauth_context.request, url)

    def get_login_redirect_url(self, request: HttpRequest) -> str:
        """Where to go after signing in: a safe `next`, else the home page."""
        next_url = request.POST.get("next") or request.GET.get("next")
        if redirect_is_safe(request, next_url):
            return next_url
        return reverse("pledges:home")

    def get_client_ip(self, request: HttpRequest) -> str:
        # Ours honours TRUSTED_PROXY_COUNT like allauth's, but a short X-Forwarded-For falls back
        # to REMOTE_ADDR instead of raising ImproperlyConfigured (a 500 on a crafted header).
        ip = ratelimit.client_ip(request)
        if not ip:
            raise PermissionDenied("Unable to determine client IP address")
        return ip

    def pre_authenticate(self, request: HttpRequest, **credentials) -> None:
        """allauth refuses the attempt with a form error after too many failures: record it too."""
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError:
            ratelimit.abuse_event_record(
                request=request,
                kind=AbuseEventKind.RATE_LIMITED,
                scope="allauth:login_failed",
                throttle_seconds=5 * 60,
            )
            raise
