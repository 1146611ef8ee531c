"""Who can download a released letter, and how the file is served."""

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from deconv.models import AuditEntry, OutgoingEmail
from pledges.enums import PledgeStatus
from pledges.letters_pipeline import letter_download_token, release_process
from tests.letters.support import letter_bytes
from tests.pledges.factories import UserFactory


@pytest.fixture
def letters(release, make_pledges):
    """Two signers' released letters: the author's and another signer's."""
    author, other = make_pledges(2)
    release_process(release_id=release.pk)
    author.refresh_from_db()
    other.refresh_from_db()
    return author.letter, other.letter


def _url(letter):
    return reverse("pledges:letter_download", kwargs={"letter_id": letter.pk})


def _assert_is_the_letter(response, letter):
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == letter_bytes(letter)
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["Cache-Control"] == "private, no-store"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_the_author_downloads_their_letter(client, letters):
    mine, _other = letters
    client.force_login(mine.pledge.user)
    _assert_is_the_letter(client.get(_url(mine)), mine)


def test_another_signer_gets_404_not_the_letter(client, letters):
    mine, other = letters
    client.force_login(mine.pledge.user)
    response = client.get(_url(other))
    assert response.status_code == 404
    assert other.pledge.rpps.encode() not in response.content


def test_anonymous_visitors_are_sent_to_sign_in(client, letters):
    mine, _other = letters
    response = client.get(_url(mine))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_staff_download_any_letter_and_it_is_audited(client, letters, staff):
    mine, _other = letters
    client.force_login(staff)
    _assert_is_the_letter(client.get(_url(mine)), mine)
    entry = AuditEntry.objects.get(action="pledges.letter_download")
    assert (entry.actor, entry.object_id) == (staff, str(mine.pk))


def test_an_account_without_a_role_gets_404(client, letters):
    mine, _other = letters
    client.force_login(UserFactory())
    assert client.get(_url(mine)).status_code == 404


def test_a_withdrawn_pledges_letter_is_not_served(client, letters):
    mine, _other = letters
    mine.pledge.status = PledgeStatus.WITHDRAWN
    mine.pledge.save()
    client.force_login(mine.pledge.user)
    assert client.get(_url(mine)).status_code == 404
    token_url = reverse(
        "pledges:letter_download_signed", kwargs={"token": letter_download_token(letter=mine)}
    )
    assert client.get(token_url).status_code == 404


def test_post_is_refused(client, letters):
    mine, _other = letters
    client.force_login(mine.pledge.user)
    assert client.post(_url(mine)).status_code == 405


def _signed_url(letter, token=None):
    return reverse(
        "pledges:letter_download_signed", kwargs={"token": token or letter_download_token(letter=letter)}
    )


def test_the_signed_link_downloads_without_signing_in(client, letters):
    mine, _other = letters
    _assert_is_the_letter(client.get(_signed_url(mine)), mine)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"),
        lambda token: str(int(token.split(":")[0]) + 1) + token[token.index(":") :],
        lambda token: "garbage",
        lambda token: token.split(":")[0],
    ],
    ids=["signature", "letter-id", "garbage", "no-signature"],
)
def test_a_tampered_link_shows_a_friendly_400_page(client, letters, tamper):
    mine, other = letters
    response = client.get(_signed_url(mine, tamper(letter_download_token(letter=mine))))
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert b"%PDF" not in response.content
    assert other.pledge.rpps.encode() not in response.content


def test_an_expired_link_shows_a_friendly_page(client, letters):
    mine, _other = letters
    url = _signed_url(mine)
    with time_machine.travel(timezone.now() + timedelta(days=30, minutes=1)):
        response = client.get(url)
    assert response.status_code == 410
    assert b"%PDF" not in response.content
    with time_machine.travel(timezone.now() + timedelta(days=29)):
        assert client.get(url).status_code == 200


def test_the_link_in_the_released_email_downloads_the_letter(client, letters):
    mine, _other = letters
    email = OutgoingEmail.objects.get(dedupe_key=f"released:{mine.pledge.pk}")
    (url,) = set(re.findall(r"https?://\S+/letters/link/\S+/", email.body_text))

    _assert_is_the_letter(client.get(urlsplit(url).path), mine)
