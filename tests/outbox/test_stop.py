"""The stop link: a page with a button, honoured at once, never for the emails the law requires."""

import re

import pytest
from django.test import Client

from deconv.email_stops import email_stop_hash, email_stop_url
from deconv.models import EmailStatus, EmailStop, OutgoingEmail
from deconv.outbox import outbox_send
from tests.outbox.conftest import queue_test_email

pytestmark = pytest.mark.django_db

ADDRESS = "dr.1@example.org"


def _stop_path(address: str = ADDRESS) -> str:
    return email_stop_url(address=address).removeprefix("http://127.0.0.1:8000")


def _required_email(recipient: str = ADDRESS, key: str = "deleted"):
    from deconv.outbox import email_queue

    return email_queue(
        kind="account_deleted",
        recipient=recipient,
        context={"withdrawn_campaigns": [], "home_url": "http://127.0.0.1:8000/"},
        dedupe_key=f"test:{key}",
        language="en",
    )


def test_every_non_required_email_carries_the_stop_link_in_both_parts():
    row = queue_test_email(1)
    url = email_stop_url(address=ADDRESS)

    assert row.body_text.rstrip().endswith(url)
    assert f'href="{url}"' in row.body_html
    assert row.body_html.count("data-email-footer") == 1


def test_a_required_email_says_why_it_cannot_be_stopped_and_has_no_stop_link():
    row = _required_email()

    assert "/email/stop/" not in row.body_text + row.body_html
    assert "This email cannot be stopped" in row.body_text
    assert "This email cannot be stopped" in row.body_html


def test_an_html_part_that_does_not_extend_the_base_still_gets_the_footer():
    from deconv.mail import RenderedEmail, email_footer_add

    email = email_footer_add(
        email=RenderedEmail(subject="s", body_text="Hello", body_html="<html><body><p>Hi</p></body></html>"),
        stop_url="http://127.0.0.1:8000/email/stop/x/",
        language="en",
    )

    assert re.search(
        r'<p data-email-footer>.*href="http://127.0.0.1:8000/email/stop/x/".*</p>\s*</body>',
        email.body_html,
        re.S,
    )
    assert email.body_text.startswith("Hello\n\n")


def test_opening_the_stop_link_shows_a_button_and_stops_nothing(client):
    response = client.get(_stop_path())

    assert response.status_code == 200
    content = response.content.decode()
    assert f'action="{_stop_path()}"' in content
    assert 'value="stop"' in content
    assert not EmailStop.objects.exists()


def test_pressing_the_button_stops_later_emails_but_not_the_required_ones(smtp_sink):
    response = Client(enforce_csrf_checks=False).post(_stop_path(), {"action": "stop"})

    assert response.status_code == 302
    assert response["Location"] == _stop_path()
    assert EmailStop.objects.count() == 1
    # Nothing is even stored for a stopped recipient...
    assert queue_test_email(2, recipient=ADDRESS) is None
    assert queue_test_email(3, recipient="DR.1@Example.org") is None
    # ...except what the law requires, which is sent.
    required = _required_email()
    assert outbox_send(ids=[required.pk]).sent == 1
    assert smtp_sink.recipients == [ADDRESS]
    # The page now says so, and offers to undo it.
    page = Client().get(_stop_path()).content.decode()
    assert 'value="resume"' in page


def test_an_email_queued_before_the_stop_is_not_sent(smtp_sink, client):
    row = queue_test_email(1)
    client.post(_stop_path(), {"action": "stop"})

    report = outbox_send(ids=[row.pk])

    assert report.failed == 1
    assert smtp_sink.deliveries == []
    failed = OutgoingEmail.objects.get(pk=row.pk)
    assert (failed.status, failed.last_error) == (EmailStatus.FAILED, "recipient stopped emails")


def test_the_stop_works_without_signing_in_or_csrf_token_for_one_click_unsubscribe():
    # RFC 8058: the mail provider POSTs this body to the List-Unsubscribe address.
    client = Client(enforce_csrf_checks=True)

    response = client.post(_stop_path(), {"List-Unsubscribe": "One-Click"})

    assert response.status_code == 302
    assert EmailStop.objects.count() == 1


def test_resuming_lets_emails_through_again(client):
    client.post(_stop_path(), {"action": "stop"})
    client.post(_stop_path(), {"action": "resume"})

    assert not EmailStop.objects.exists()
    assert queue_test_email(1) is not None


def test_stopping_twice_is_harmless(client):
    client.post(_stop_path(), {"action": "stop"})
    response = client.post(_stop_path(), {"action": "stop"})

    assert response.status_code == 302
    assert EmailStop.objects.count() == 1


@pytest.mark.parametrize(
    "tamper",
    [
        lambda path: path.replace("/email/stop/", "/email/stop/0"),
        lambda path: path[:-5] + "/",
        lambda path: "/email/stop/not-a-token/",
        lambda path: "/email/stop/" + "a" * 64 + ":forged/",
    ],
)
def test_a_tampered_link_gets_a_friendly_400_page(client, tamper):
    for method in (client.get, client.post):
        response = method(tamper(_stop_path()))

        assert response.status_code == 400
        assert "Ce lien n'est pas valide" in response.content.decode()
    assert not EmailStop.objects.exists()


def test_a_stop_keeps_no_address_only_a_keyed_hash(client):
    client.post(_stop_path(), {"action": "stop"})

    stop = EmailStop.objects.get()
    assert stop.email_hash == email_stop_hash(address=ADDRESS)
    assert stop.email_hash == email_stop_hash(address=" DR.1@EXAMPLE.ORG ")
    assert "example" not in stop.email_hash and "example" not in _stop_path()
    # Keyed: not the plain SHA-256 anyone could compute from a list of addresses.
    import hashlib

    assert stop.email_hash != hashlib.sha256(ADDRESS.encode()).hexdigest()


def test_stops_and_links_survive_a_secret_key_rotation_with_the_old_key_as_fallback(client, settings):
    old_path = _stop_path()
    client.post(old_path, {"action": "stop"})

    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-after-rotation-0123456789"

    assert queue_test_email(1) is None
    assert client.get(old_path).status_code == 200
