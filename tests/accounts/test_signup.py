import time

import pytest
import time_machine
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from deconv.models import OutgoingEmail
from tests.accounts.conftest import PASSWORD, last_link, path_of

pytestmark = pytest.mark.django_db

SIGNUP = "/accounts/signup/"


def signup(post_committed, email="nouveau@example.org", **extra):
    return post_committed(SIGNUP, {"email": email, "password1": PASSWORD, "password2": PASSWORD, **extra})


def test_signup_mails_the_confirmation_link_through_the_task_after_commit(
    client, django_capture_on_commit_callbacks, sent_tasks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            SIGNUP, {"email": "nouveau@example.org", "password1": PASSWORD, "password2": PASSWORD}
        )
        # Rendered, queued for after the commit, not sent inside the request.
        assert mail.outbox == []
        assert sent_tasks == []
    assert len(callbacks) == 1

    callbacks[0]()

    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert len(sent_tasks) == 1
    queued = OutgoingEmail.objects.get(pk__in=sent_tasks[0]["ids"])
    assert queued.kind == "account/email/email_confirmation_signup"
    assert queued.recipient == "nouveau@example.org"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["nouveau@example.org"]
    assert message.subject.startswith("[deconv] ")
    assert "/accounts/confirm-email/" in message.body


def test_confirmation_email_is_rendered_in_french(post_committed):
    signup(post_committed)

    body = mail.outbox[0].body
    assert "Bonjour, c'est deconv !" in body
    assert "Pour confirmer que cela est correct, allez sur http://testserver/accounts/confirm-email/" in body


def test_opening_the_confirmation_link_shows_a_button_and_confirms_nothing(client, post_committed):
    signup(post_committed)
    link = path_of(last_link())

    response = client.get(link)

    assert response.status_code == 200
    assert b'method="post"' in response.content
    assert "Confirmer" in response.content.decode()
    assert EmailAddress.objects.get(email="nouveau@example.org").verified is False


def test_pressing_the_button_confirms_logs_in_and_sends_on(client, post_committed):
    signup(post_committed)
    link = path_of(last_link())

    response = client.post(link)

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert EmailAddress.objects.get(email="nouveau@example.org").verified is True
    assert (
        int(client.session["_auth_user_id"]) == get_user_model().objects.get(email="nouveau@example.org").pk
    )


def test_confirmation_honours_the_next_page_given_at_signup(client, post_committed):
    signup(post_committed, next="/campaigns/demo/sign/")

    response = client.post(path_of(last_link()))

    assert response.status_code == 302
    assert response["Location"] == "/campaigns/demo/sign/"


def test_confirmation_ignores_a_next_page_on_another_site(client, post_committed):
    signup(post_committed, next="https://evil.example/phish")

    response = client.post(path_of(last_link()))

    assert response.status_code == 302
    assert response["Location"] == "/"


def test_confirming_twice_is_harmless_and_says_so(client, post_committed):
    signup(post_committed)
    link = path_of(last_link())
    client.post(link)

    again = client.post(link)
    opened_again = client.get(link)

    assert again.status_code == 200
    assert "déjà confirmée" in again.content.decode()
    assert opened_again.status_code == 200
    assert "déjà confirmée" in opened_again.content.decode()
    assert EmailAddress.objects.filter(email="nouveau@example.org", verified=True).count() == 1


def test_confirming_from_another_browser_confirms_without_logging_in(post_committed):
    signup(post_committed)
    other_browser = Client()

    response = other_browser.post(path_of(last_link()))

    assert EmailAddress.objects.get(email="nouveau@example.org").verified is True
    assert "_auth_user_id" not in other_browser.session
    assert response.status_code == 302


def test_an_expired_link_shows_an_error_page_not_a_500(client, post_committed):
    signup(post_committed)
    link = path_of(last_link())

    with time_machine.travel(time.time() + 3 * 86400 + 60):
        opened = client.get(link)
        pressed = client.post(link)

    for response in (opened, pressed):
        assert response.status_code == 400
        assert "Ce lien de confirmation a expiré." in response.content.decode()
    assert EmailAddress.objects.get(email="nouveau@example.org").verified is False


def test_a_link_is_still_valid_just_before_three_days(client, post_committed):
    signup(post_committed)
    link = path_of(last_link())

    with time_machine.travel(time.time() + 3 * 86400 - 300):
        response = client.post(link)

    assert response.status_code == 302
    assert EmailAddress.objects.get(email="nouveau@example.org").verified is True


@pytest.mark.parametrize(
    "tamper", [lambda key: key[:-2] + "xx", lambda key: "nonsense", lambda key: key[:10]]
)
def test_a_tampered_link_shows_an_error_page_not_a_500(client, post_committed, tamper):
    signup(post_committed)
    key = last_link().rstrip("/").rsplit("/", 1)[1]
    link = f"/accounts/confirm-email/{tamper(key)}/"

    opened = client.get(link)
    pressed = client.post(link)

    for response in (opened, pressed):
        assert response.status_code == 400
        assert "Ce lien de confirmation n'est pas valide" in response.content.decode()
    assert EmailAddress.objects.get(email="nouveau@example.org").verified is False


def test_an_unconfirmed_account_cannot_sign_in_and_gets_the_link_again(client, post_committed):
    signup(post_committed)
    mail.outbox.clear()
    post_committed("/accounts/logout/")

    with time_machine.travel(time.time() + 4 * 60):
        response = post_committed("/accounts/login/", {"login": "nouveau@example.org", "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    assert "_auth_user_id" not in client.session
    assert len(mail.outbox) == 1
    assert "/accounts/confirm-email/" in mail.outbox[0].body
