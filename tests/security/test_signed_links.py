"""Signed links (the letter download, the round answer, the email stop) work for their holder,
expire when they should, and any change to them is refused, without saying whose they were.
"""

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from pledges.letters_pipeline import DOWNLOAD_MAX_AGE, letter_download_token
from tests.security.world import OTHER, SIGNER


def _tampered(token: str) -> list[str]:
    """The token with one character changed in its value, in its signature, cut, or extended."""
    value, _, signature = token.rpartition(":")
    swap = {"0": "1", "1": "0"}
    other_char = "A" if signature[-1] != "A" else "B"
    return [
        token[:-1] + other_char,
        value.translate(str.maketrans(swap)) + ":" + signature,
        token[: len(token) // 2],
        token + "0",
        "",
        token.replace(":", "."),
    ]


def _body(response) -> str:
    return (
        b"".join(response.streaming_content).decode(errors="replace")
        if response.streaming
        else response.content.decode()
    )


@pytest.mark.parametrize("who", ["anonymous", "other_signer"])
def test_a_letter_link_gives_its_letter_for_thirty_days_then_expires(world, who):
    client = Client()
    if who != "anonymous":
        client.force_login(world.users[who])
    letter = world.objects["signer_letter"]
    url = f"/letters/link/{letter_download_token(letter=letter)}/"

    fresh = client.get(url)
    with time_machine.travel(timezone.now() + DOWNLOAD_MAX_AGE + timedelta(minutes=1)):
        expired = client.get(url)

    assert fresh.status_code == 200 and fresh["Content-Type"] == "application/pdf"
    assert fresh["Cache-Control"] == "private, no-store"
    assert expired.status_code == 410
    assert SIGNER.last_name not in _body(expired)


def test_an_altered_letter_link_is_refused_and_names_no_one(world):
    token = world.tokens["letter_link"]
    other_letter = world.pledges["other_released"].letter
    client = Client()
    for bad in [
        *_tampered(token),
        token.replace(f"{world.objects['signer_letter'].pk}:", f"{other_letter.pk}:", 1),
    ]:
        if not bad:
            continue
        response = client.get(f"/letters/link/{bad}/")
        assert response.status_code in (400, 404), (bad, response.status_code)
        body = _body(response)
        assert SIGNER.last_name not in body and OTHER.last_name not in body


def test_a_round_link_expires_with_its_round_and_refuses_alterations(world):
    client = Client()
    token = world.tokens["round_link"]
    url = f"/campaigns/{world.alpha.slug}/round/{token}/"

    fresh = client.get(url)
    with time_machine.travel(timezone.now() + timedelta(days=world.alpha.round_days, minutes=1)):
        expired = client.get(url)
    wrong_campaign = client.get(f"/campaigns/{world.beta.slug}/round/{token}/")
    altered = [client.get(f"/campaigns/{world.alpha.slug}/round/{bad}/") for bad in _tampered(token) if bad]

    assert fresh.status_code == 200 and SIGNER.last_name in fresh.content.decode()
    assert fresh["Referrer-Policy"] == "no-referrer"
    for response in (expired, wrong_campaign, *altered):
        assert response.status_code == 404
        assert SIGNER.last_name not in response.content.decode()


def test_an_altered_stop_link_stops_nothing(world):
    from deconv.models import EmailStop

    client = Client()
    for bad in _tampered(world.tokens["email_stop"]):
        if not bad:
            continue
        response = client.post(f"/email/stop/{bad}/")
        assert response.status_code in (400, 404)
    assert EmailStop.objects.count() == 0
    assert client.post(f"/email/stop/{world.tokens['email_stop']}/").status_code == 302
    assert EmailStop.objects.count() == 1
