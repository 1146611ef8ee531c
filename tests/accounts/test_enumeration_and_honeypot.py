import pytest
from django import forms
from django.contrib.auth import get_user_model
from django.core import mail

from deconv.forms import HoneypotMixin
from deconv.models import AbuseEventKind, RateLimitEvent
from tests.accounts.conftest import PASSWORD

pytestmark = pytest.mark.django_db

SIGNUP = "/accounts/signup/"


def signup_data(email: str, **extra) -> dict:
    return {"email": email, "password1": PASSWORD, "password2": PASSWORD, **extra}


def test_signup_with_a_known_email_looks_exactly_like_a_new_signup(post_committed, verified_user):
    new = post_committed(SIGNUP, signup_data("inconnu@example.org"))
    post_committed("/accounts/logout/")
    known = post_committed(SIGNUP, signup_data(verified_user.email))

    assert (
        (known.status_code, known["Location"])
        == (new.status_code, new["Location"])
        == (302, "/accounts/confirm-email/")
    )
    assert get_user_model().objects.filter(email=verified_user.email).count() == 1


def test_signup_with_a_known_email_tells_the_owner_instead(post_committed, verified_user):
    post_committed(SIGNUP, signup_data(verified_user.email))

    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [verified_user.email]
    assert "/accounts/password/reset/" in mail.outbox[0].body
    assert "/accounts/confirm-email/" not in mail.outbox[0].body


def test_signup_page_hides_the_honeypot_from_people(client):
    html = client.get(SIGNUP).content.decode()

    trap = html[html.index('<div class="visually-hidden" aria-hidden="true">') :]
    trap = trap[: trap.index("</div>")]
    assert '<label for="id_website">Laissez ce champ vide</label>' in trap
    assert 'name="website"' in trap
    assert 'tabindex="-1"' in trap
    assert 'autocomplete="off"' in trap
    assert 'type="text"' in trap
    assert "style=" not in trap


def test_a_filled_honeypot_fails_silently_with_the_usual_response(post_committed):
    genuine = post_committed(SIGNUP, signup_data("vrai@example.org"))
    post_committed("/accounts/logout/")
    mail.outbox.clear()

    bot = post_committed(SIGNUP, signup_data("robot@example.org", website="http://spam.example"))

    assert (bot.status_code, bot["Location"]) == (genuine.status_code, genuine["Location"])
    assert not get_user_model().objects.filter(email="robot@example.org").exists()
    assert mail.outbox == []
    event = RateLimitEvent.objects.get()
    assert (event.kind, event.scope, event.ip) == (AbuseEventKind.HONEYPOT, "signup", "127.0.0.0/24")


def test_a_flood_of_bot_signups_records_one_event(post_committed):
    for n in range(5):
        post_committed(SIGNUP, signup_data(f"robot{n}@example.org", website="x"))

    assert RateLimitEvent.objects.filter(kind=AbuseEventKind.HONEYPOT).count() == 1
    assert not get_user_model().objects.filter(email__startswith="robot").exists()


class ContactForm(HoneypotMixin, forms.Form):
    message = forms.CharField()


def test_honeypot_mixin_flags_a_filled_trap_on_any_form():
    filled = ContactForm(data={"message": "bonjour", "website": "spam"})
    empty = ContactForm(data={"message": "bonjour", "website": ""})
    blank = ContactForm(data={"message": "bonjour", "website": "   "})

    assert filled.is_valid() and filled.honeypot_filled is True
    assert empty.is_valid() and empty.honeypot_filled is False
    assert blank.honeypot_filled is False


def test_honeypot_mixin_answers_even_when_the_rest_of_the_form_is_invalid():
    form = ContactForm(data={"website": "spam"})

    assert form.is_valid() is False
    assert form.honeypot_filled is True


def test_honeypot_is_rendered_with_the_hidden_fields_and_never_echoes_a_value():
    form = ContactForm(data={"message": "", "website": "spam"})

    assert [field.name for field in form.hidden_fields()] == ["website"]
    html = str(form)
    assert "spam" not in html
    assert html.count("Laissez ce champ vide") == 1
