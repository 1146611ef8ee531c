import re
import time

import pytest
import time_machine
from django.core import mail

from tests.accounts.conftest import PASSWORD, last_link, path_of

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Un-autre-mot-de-passe-77"


def test_login_page_links_to_the_sign_in_code_page(client):
    html = client.get("/accounts/login/").content.decode()

    assert 'href="/accounts/login/code/"' in html
    assert "Envoyez-moi un code de connexion" in html


def test_login_by_password_goes_home_by_default(client, verified_user):
    response = client.post("/accounts/login/", {"login": verified_user.email, "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert int(client.session["_auth_user_id"]) == verified_user.pk


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/campaigns/demo/sign/", "/campaigns/demo/sign/"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example/", "/"),
    ],
)
def test_login_honours_only_a_next_page_on_this_site(client, verified_user, next_url, expected):
    response = client.post(
        "/accounts/login/", {"login": verified_user.email, "password": PASSWORD, "next": next_url}
    )

    assert response.status_code == 302
    assert response["Location"] == expected


def test_login_by_emailed_code(client, post_committed, verified_user):
    requested = post_committed("/accounts/login/code/", {"email": verified_user.email})

    assert requested.status_code == 302
    assert requested["Location"] == "/accounts/login/code/confirm/"
    assert mail.outbox[-1].to == [verified_user.email]
    code = re.search(r"^([A-Z0-9]{3,}-[A-Z0-9]{3,})$", mail.outbox[-1].body, re.MULTILINE).group(1)

    confirmed = client.post("/accounts/login/code/confirm/", {"code": code})

    assert confirmed.status_code == 302
    assert confirmed["Location"] == "/"
    assert int(client.session["_auth_user_id"]) == verified_user.pk


def test_a_wrong_sign_in_code_does_not_log_in(client, post_committed, verified_user):
    post_committed("/accounts/login/code/", {"email": verified_user.email})

    response = client.post("/accounts/login/code/confirm/", {"code": "WRONG1"})

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_a_code_request_for_an_unknown_email_looks_the_same(client, post_committed, verified_user):
    known = post_committed("/accounts/login/code/", {"email": verified_user.email})
    client.cookies.clear()
    unknown = post_committed("/accounts/login/code/", {"email": "personne@example.org"})

    assert (unknown.status_code, unknown["Location"]) == (known.status_code, known["Location"])


def test_password_reset_by_link(client, post_committed, verified_user):
    requested = post_committed("/accounts/password/reset/", {"email": verified_user.email})
    assert requested["Location"] == "/accounts/password/reset/done/"
    link = path_of(last_link())

    opened = client.get(link)
    # The key leaves the URL (no Referer leak) for the session before the form shows.
    assert opened.status_code == 302
    assert re.fullmatch(r"/accounts/password/reset/key/[0-9a-z]+-set-password/", opened["Location"])
    form_page = client.get(opened["Location"])
    assert b'name="password1"' in form_page.content
    changed = client.post(opened["Location"], {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    assert changed.status_code == 302
    assert changed["Location"] == "/accounts/password/reset/key/done/"
    # Resetting does not log in: the new password does.
    assert "_auth_user_id" not in client.session
    verified_user.refresh_from_db()
    assert verified_user.check_password(NEW_PASSWORD)


def test_a_password_reset_link_works_once(client, post_committed, verified_user):
    post_committed("/accounts/password/reset/", {"email": verified_user.email})
    link = path_of(last_link())
    set_password = client.get(link)["Location"]
    client.post(set_password, {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})

    reused = client.get(link, follow=True)

    assert reused.status_code == 200
    assert b'name="password1"' not in reused.content
    verified_user.refresh_from_db()
    assert verified_user.check_password(NEW_PASSWORD)


def test_a_password_reset_link_expires_after_an_hour(client, post_committed, verified_user):
    post_committed("/accounts/password/reset/", {"email": verified_user.email})
    link = path_of(last_link())

    with time_machine.travel(time.time() + 3600 + 60):
        response = client.get(link, follow=True)

    assert response.status_code == 200
    assert b'name="password1"' not in response.content


def test_password_reset_for_an_unknown_email_looks_the_same(post_committed, verified_user):
    known = post_committed("/accounts/password/reset/", {"email": verified_user.email})
    unknown = post_committed("/accounts/password/reset/", {"email": "personne@example.org"})

    assert (unknown.status_code, unknown["Location"]) == (known.status_code, known["Location"])
    # The unknown address is told no account exists (it may be the owner's other address).
    assert mail.outbox[-1].to == ["personne@example.org"]
    assert "/accounts/password/reset/key/" not in mail.outbox[-1].body
