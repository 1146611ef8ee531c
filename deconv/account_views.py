"""allauth's email confirmation page, made idempotent and explicit about dead links.

allauth's signed (HMAC) keys only resolve while the address is unverified: a second click, or
the POST of a page left open in another tab, ends in a bare 404. Here the key is decoded once
more to tell the person what happened: already confirmed (harmless, 200), expired or invalid
(400, with the way to get a new link). A GET never confirms (ACCOUNT_CONFIRM_EMAIL_ON_GET is
off): mail scanners open links before people do.
"""

from allauth.account import app_settings as account_settings
from allauth.account.models import EmailAddress
from allauth.account.views import ConfirmEmailView
from django.core import signing
from django.http import Http404, HttpResponse

KEY_VALID = "valid"
KEY_CONFIRMED = "confirmed"
KEY_EXPIRED = "expired"
KEY_INVALID = "invalid"


def confirmation_key_state(key: str) -> str:
    """What an HMAC confirmation key points at: valid, confirmed, expired or invalid."""
    max_age = 60 * 60 * 24 * account_settings.EMAIL_CONFIRMATION_EXPIRE_DAYS
    try:
        pk = signing.loads(key, max_age=max_age, salt=account_settings.SALT)
    except signing.SignatureExpired:
        return KEY_EXPIRED
    except signing.BadSignature:
        return KEY_INVALID
    verified = EmailAddress.objects.filter(pk=pk).values_list("verified", flat=True).first()
    if verified is None:
        return KEY_INVALID
    return KEY_CONFIRMED if verified else KEY_VALID


class EmailConfirmView(ConfirmEmailView):
    def get(self, *args, **kwargs) -> HttpResponse:
        response = super().get(*args, **kwargs)
        if self.object is None and self.key_state in (KEY_EXPIRED, KEY_INVALID):
            response.status_code = 400
        return response

    def post(self, *args, **kwargs) -> HttpResponse:
        try:
            return super().post(*args, **kwargs)
        except Http404:
            self.object = None
            status = 200 if self.key_state == KEY_CONFIRMED else 400
            return self.render_to_response(self.get_context_data(), status=status)

    @property
    def key_state(self) -> str:
        if not hasattr(self, "_key_state"):
            self._key_state = confirmation_key_state(self.kwargs["key"])
        return self._key_state

    def get_context_data(self, **kwargs) -> dict:
        context = super().get_context_data(**kwargs)
        context["key_state"] = self.key_state
        return context


email_confirm = EmailConfirmView.as_view()
