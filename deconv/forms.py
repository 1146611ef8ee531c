"""Forms shared across the site: the honeypot trap, and allauth's signup form with it."""

from allauth.account.adapter import get_adapter
from allauth.account.forms import SignupForm as AllauthSignupForm
from django import forms
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from deconv.models import AbuseEventKind
from deconv.ratelimit import abuse_event_record

HONEYPOT_LABEL = _("Leave this field empty")


class HoneypotInput(forms.TextInput):
    """A text input that people neither see nor reach, wrapped with its own label.

    `is_hidden` makes form templates list it with the hidden fields, rendered without a
    visible label or help text (Django's templates and templates/allauth/elements/fields.html
    both do); unlike a type="hidden" input, bots still see a text box worth filling. Hidden from
    sight by the `visually-hidden` class (no inline style: the CSP forbids it), from screen
    readers by aria-hidden, from the keyboard by tabindex=-1, from autofill by autocomplete=off.
    """

    is_hidden = True

    def __init__(self, attrs=None):
        super().__init__({"autocomplete": "off", "tabindex": "-1", **(attrs or {})})

    def render(self, name, value, attrs=None, renderer=None):
        # Never echo what a bot typed back into the page.
        field = super().render(name, None, attrs, renderer)
        field_id = (attrs or {}).get("id") or self.attrs.get("id") or ""
        return format_html(
            '<div class="visually-hidden" aria-hidden="true"><label for="{}">{}</label>{}</div>',
            field_id,
            HONEYPOT_LABEL,
            field,
        )


class HoneypotMixin:
    """Adds a trap field that only bots fill in; put it before the form class in the bases.

    The form stays valid when the trap is filled: the view checks `honeypot_filled`, records the
    event and answers exactly as on success, so a bot learns nothing. For example::

        if form.is_valid():
            if form.honeypot_filled:
                honeypot_record(request=request, scope="pledge")
                return redirect(<the usual success page>)
    """

    # A name bots like to fill; not "honeypot".
    honeypot_field_name = "website"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields[self.honeypot_field_name] = forms.CharField(
            label=HONEYPOT_LABEL, required=False, widget=HoneypotInput()
        )

    @property
    def honeypot_filled(self) -> bool:
        # Read from the raw data: the answer must not depend on the rest of the form being valid.
        value = self.data.get(self.add_prefix(self.honeypot_field_name), "")
        return bool(str(value).strip())


def honeypot_record(*, request: HttpRequest, scope: str) -> None:
    """Record that the trap of a form in `scope` was filled (at most one event per client and hour)."""
    abuse_event_record(request=request, kind=AbuseEventKind.HONEYPOT, scope=scope, throttle_seconds=3600)


class SignupForm(HoneypotMixin, AllauthSignupForm):
    """allauth's signup (email, password twice) with the honeypot."""

    def try_save(self, request: HttpRequest):
        if self.honeypot_filled:
            honeypot_record(request=request, scope="signup")
            # The page a real signup leads to, but no account and no email.
            return None, get_adapter(request).respond_email_verification_sent(request, None)
        return super().try_save(request)
