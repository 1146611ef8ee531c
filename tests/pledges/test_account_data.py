"""The physician's data: export everything, erase everything (GDPR art. 15, 17, 20)."""

import json

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core import mail, serializers
from django.urls import reverse

from deconv.models import RateLimitEvent
from pledges.enums import PledgeEventKind, PledgeStatus
from pledges.models import Pledge, PledgeEvent, RppsClaim
from pledges.services import account_data_export, account_erase, pledge_withdraw
from tests.pledges import signing_support
from tests.pledges.factories import CampaignFactory, LetterVersionFactory
from tests.pledges.signing_support import RPPS_A, RPPS_B, pledge_for, verified_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_cache")]

territories = signing_support.territories
private_cache = signing_support.private_cache
eager_celery = signing_support.eager_celery

EMAIL = "dr.secret@example.org"
LAST_NAME = "Zyxwvutsrqp"
FIRST_NAME = "Qwertyuiop"
STREET = "7 impasse Introuvable"


@pytest.fixture
def signer(territories):
    return verified_user(EMAIL)


@pytest.fixture
def two_pledges(signer, campaign):
    """A live pledge in two campaigns, with details that are easy to search for."""
    other = CampaignFactory(title="Autre campagne")
    LetterVersionFactory(campaign=other)
    details = {"last_name": LAST_NAME, "first_name": FIRST_NAME, "practice_address": STREET}
    return [
        pledge_for(campaign=campaign, user=signer, **details),
        pledge_for(campaign=other, user=signer, **details),
    ]


def _everything_stored() -> str:
    """Every row of the tables that can hold personal data, as text."""
    querysets = [
        Pledge.objects.all(),
        RppsClaim.objects.all(),
        get_user_model().objects.all(),
        EmailAddress.objects.all(),
        PledgeEvent.objects.all(),
    ]
    return "\n".join(serializers.serialize("json", queryset) for queryset in querysets)


def _assert_no_trace(*needles: str) -> None:
    stored = _everything_stored()
    for needle in needles:
        assert needle not in stored, needle


# --- Export ----------------------------------------------------------------------------------------


def test_export_holds_the_account_the_claim_and_every_pledge(signer, two_pledges):
    pledge_withdraw(pledge=two_pledges[1])
    RateLimitEvent.objects.create(scope="pledge", ip="192.0.2.0/24", user=signer)

    data = account_data_export(user=signer)

    assert json.loads(json.dumps(data)) == data  # JSON-serialisable as is
    assert data["account"]["email"] == EMAIL
    assert data["account"]["email_addresses"] == [{"email": EMAIL, "verified": True, "primary": True}]
    assert data["account"]["date_joined"]
    assert data["rpps_claim"]["rpps"] == RPPS_A
    live, withdrawn = data["pledges"]
    assert (live["status"], live["rpps"], live["last_name"], live["first_name"]) == (
        "active",
        RPPS_A,
        LAST_NAME,
        FIRST_NAME,
    )
    assert live["department"] == {"code": "01", "name": "Ain"}
    assert live["caisse"] == {"code": "cpam-01-ain", "name": "CPAM de l'Ain"}
    assert live["letter_version"]["number"] == 1 and len(live["letter_version"]["content_sha256"]) == 64
    assert live["consented_pledge_at"] and live["consented_data_at"]
    assert (live["signed_ip"], live["signed_user_agent"], live["events_count"]) == ("192.0.2.10", "pytest", 1)
    assert (withdrawn["status"], withdrawn["rpps"], withdrawn["events_count"]) == ("withdrawn", "", 2)
    assert set(live) == set(withdrawn)
    assert [(event["scope"], event["network"]) for event in data["abuse_events"]] == [
        ("pledge", "192.0.2.0/24")
    ]


def test_export_view_is_a_private_json_download(client, signer, two_pledges):
    client.force_login(signer)

    response = client.get(reverse("pledges:account_data_export"))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith('attachment; filename="deconv-my-data-')
    assert response["Cache-Control"] == "private, no-store"
    data = json.loads(response.content)
    assert data["account"]["email"] == EMAIL
    assert len(data["pledges"]) == 2
    assert LAST_NAME in response.content.decode()  # ensure_ascii=False keeps names readable


def test_export_and_delete_need_a_signed_in_account(client):
    for name in ("account_overview", "account_data_export", "account_delete"):
        url = reverse(f"pledges:{name}")
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("account_login"))


def test_export_of_one_account_shows_nothing_of_another(client, two_pledges, territories):
    other = verified_user("other@example.org")
    client.force_login(other)

    data = json.loads(client.get(reverse("pledges:account_data_export")).content)

    assert data["pledges"] == [] and data["rpps_claim"] is None
    assert LAST_NAME not in json.dumps(data)


# --- Withdrawal and erasure -------------------------------------------------------------------


def test_withdrawal_leaves_no_personal_data_of_the_pledge(signer, two_pledges):
    for pledge in two_pledges:
        pledge_withdraw(pledge=pledge)

    _assert_no_trace(RPPS_A, LAST_NAME, FIRST_NAME, STREET, "192.0.2.10")
    assert not RppsClaim.objects.exists()


def test_erasure_leaves_no_personal_data_anywhere_and_adjusts_counts(
    signer, two_pledges, eager_celery, django_capture_on_commit_callbacks
):
    withdrawn_before = PledgeEvent.objects.filter(delta=-1).count()

    with django_capture_on_commit_callbacks(execute=True):
        account_erase(user=signer)

    _assert_no_trace(RPPS_A, LAST_NAME, FIRST_NAME, STREET, EMAIL, "192.0.2.10")
    assert not get_user_model().objects.filter(pk=signer.pk).exists()
    assert not EmailAddress.objects.exists() and not RppsClaim.objects.exists()
    # The rows stay for the ledger, anonymous and withdrawn; each one counted -1 once.
    assert list(Pledge.objects.values_list("status", "user")) == [(PledgeStatus.WITHDRAWN, None)] * 2
    assert (
        PledgeEvent.objects.filter(kind=PledgeEventKind.WITHDRAWN, delta=-1).count() == withdrawn_before + 2
    )
    # One last email, rendered before the address was deleted, and no "withdrawal" email per pledge.
    [message] = mail.outbox
    assert message.to == [EMAIL]
    assert "Autre campagne" in message.body


def test_erasure_also_clears_a_pledge_an_organizer_invalidated(signer, campaign):
    pledge = pledge_for(campaign=campaign, user=signer, rpps=RPPS_B, last_name=LAST_NAME)
    Pledge.objects.filter(pk=pledge.pk).update(status=PledgeStatus.INVALIDATED)

    account_erase(user=signer)

    _assert_no_trace(RPPS_B, LAST_NAME, EMAIL)
    assert not PledgeEvent.objects.filter(delta=-1).exists()  # it no longer counted


def test_delete_view_asks_for_confirmation_then_erases_and_signs_out(
    client, signer, two_pledges, eager_celery, django_capture_on_commit_callbacks
):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(signer)
    url = reverse("pledges:account_delete")

    page = client.get(url)
    unconfirmed = client.post(url, {})
    assert page.status_code == 200
    assert "2 pledges in progress will be withdrawn" in page.content.decode()
    assert unconfirmed.status_code == 200
    assert unconfirmed.context["form"].errors["confirm"] == [
        "Tick the box to confirm that you want to delete your account."
    ]
    assert get_user_model().objects.filter(pk=signer.pk).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"confirm": "on"}, follow=True)

    assert response.redirect_chain == [(reverse("pledges:home"), 302)]
    assert "Your account and your data have been deleted." in response.content.decode()
    assert not response.context["user"].is_authenticated
    _assert_no_trace(RPPS_A, LAST_NAME, FIRST_NAME, EMAIL)
    assert [message.to for message in mail.outbox] == [[EMAIL]]
