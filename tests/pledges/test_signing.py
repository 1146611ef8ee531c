"""Signing through the browser's path: signup, pledge, "Mon engagement", preview, edit, withdraw."""

import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from pledges.enums import CampaignStatus, PledgeEventKind, PledgeStatus
from pledges.models import Pledge, PledgeEvent, RppsClaim, TerritoryCount
from tests.pledges import signing_support
from tests.pledges.factories import CampaignFactory, LetterVersionFactory
from tests.pledges.signing_support import (
    RPPS_A,
    form_data,
    pledge_for,
    verified_user,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_cache")]

# Shared fixtures, bound here so that pytest finds them in this module.
territories = signing_support.territories
private_cache = signing_support.private_cache
eager_celery = signing_support.eager_celery


def _url(name: str, campaign) -> str:
    return reverse(f"pledges:{name}", kwargs={"slug": campaign.slug})


@pytest.fixture
def signer(territories):
    return verified_user("signer@example.org")


@pytest.fixture
def signer_client(client, signer):
    # Messages are asserted in English (the msgids): French translations come later.
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    client.force_login(signer)
    return client


def _sign(client, campaign, django_capture_on_commit_callbacks, **overrides):
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(_url("pledge_create", campaign), form_data(**overrides))


# --- The whole path, from signup to withdrawal -------------------------------------------------


def test_signup_verify_pledge_preview_edit_and_withdraw(
    client, campaign, territories, eager_celery, django_capture_on_commit_callbacks
):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    # Sign up with allauth; the confirmation link arrives by email.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("account_signup"),
            {
                "email": "dr.martin@example.org",
                "password1": "tres-long-mot-2-passe",
                "password2": "tres-long-mot-2-passe",
            },
        )
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    confirm_url = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[0].body).group(0)
    confirm_path = urlsplit(confirm_url).path

    # A GET only shows the button (mail scanners); the POST confirms and signs in.
    assert client.get(confirm_path).status_code == 200
    response = client.post(confirm_path)
    assert response.status_code == 302

    # The sign page shows the form with the letter version in the consent.
    response = client.get(_url("pledge_create", campaign))
    assert response.status_code == 200
    assert "version 1" in response.content.decode()

    mail.outbox.clear()
    response = _sign(client, campaign, django_capture_on_commit_callbacks)
    assert response.status_code == 200
    assert _page_template(response) == "pledges/pledge_submitted.html"
    pledge = Pledge.objects.get(campaign=campaign)
    assert pledge.user.email == "dr.martin@example.org"
    assert (pledge.status, pledge.rpps, pledge.last_name, pledge.first_name) == (
        PledgeStatus.ACTIVE,
        RPPS_A,
        "Martin",
        "Élise",
    )
    assert pledge.caisse.name == "CPAM de l'Ain"
    assert pledge.letter_version == campaign.current_letter_version
    assert pledge.consented_pledge_at is not None and pledge.consented_data_at is not None
    assert RppsClaim.objects.get(rpps=RPPS_A).user == pledge.user
    assert list(PledgeEvent.objects.values_list("kind", "delta")) == [(PledgeEventKind.PLEDGED, 1)]
    assert [message.to for message in mail.outbox] == [["dr.martin@example.org"]]
    assert campaign.title in mail.outbox[0].subject
    assert _url("pledge_withdraw", campaign) in mail.outbox[0].body

    # Mon engagement.
    response = client.get(_url("pledge_mine", campaign))
    content = response.content.decode()
    assert response.status_code == 200
    assert RPPS_A in content and "Martin" in content and "Ain (01)" in content
    assert _url("pledge_letter_preview", campaign) in content
    assert _url("pledge_withdraw", campaign) in content
    assert reverse("pledges:account_data_export") in content
    assert reverse("pledges:account_delete") in content

    # The PDF preview.
    response = client.get(_url("pledge_letter_preview", campaign))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")
    assert response["Content-Disposition"].startswith("attachment;")
    assert "no-store" in response["Cache-Control"] and "private" in response["Cache-Control"]

    # Correct the details: move to Nord, where the caisse must be chosen.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            _url("pledge_edit", campaign),
            form_data(department="59", postal_code="59000", city="Lille", caisse="cpam-59-lille-douai"),
        )
    assert response.status_code == 302
    pledge.refresh_from_db()
    assert (pledge.department.code, pledge.caisse.code, pledge.city) == ("59", "cpam-59-lille-douai", "Lille")
    moves = PledgeEvent.objects.filter(kind=PledgeEventKind.MOVED).order_by("delta")
    assert [(event.department.code, event.delta) for event in moves] == [("01", -1), ("59", 1)]

    # Withdraw: two clicks from Mon engagement (the link, then the button).
    response = client.get(_url("pledge_withdraw", campaign))
    assert response.status_code == 200
    assert response.content.decode().count('type="submit"') >= 1
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_url("pledge_withdraw", campaign))
    assert response.status_code == 302
    pledge.refresh_from_db()
    assert pledge.status == PledgeStatus.WITHDRAWN
    assert pledge.withdrawn_at is not None
    assert (pledge.rpps, pledge.last_name, pledge.first_name) == ("", "", "")
    assert (pledge.practice_address, pledge.postal_code, pledge.city) == ("", "", "")
    assert (pledge.patient_list_size, pledge.signed_ip, pledge.signed_user_agent) == (None, None, "")
    assert not RppsClaim.objects.exists()
    assert PledgeEvent.objects.filter(kind=PledgeEventKind.WITHDRAWN, delta=-1).count() == 1
    assert [message.to for message in mail.outbox] == [["dr.martin@example.org"]]
    assert "withdraw" in mail.outbox[0].subject.lower() or "retrait" in mail.outbox[0].subject.lower()

    # The preview is gone with the pledge.
    assert client.get(_url("pledge_letter_preview", campaign)).status_code == 404


def test_pledge_pages_require_login_and_keep_next(client, campaign):
    for name in ("pledge_create", "pledge_mine", "pledge_edit", "pledge_withdraw", "pledge_letter_preview"):
        url = _url(name, campaign)
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"] == f"{reverse('account_login')}?next={url}"


def test_signed_user_is_sent_to_mon_engagement_from_the_form(signer_client, signer, campaign):
    pledge_for(campaign=campaign, user=signer)

    response = signer_client.get(_url("pledge_create", campaign))

    assert response.status_code == 302
    assert response["Location"] == _url("pledge_mine", campaign)


def test_campaign_page_links_to_the_form_or_to_mon_engagement(signer_client, signer, campaign):
    content = signer_client.get(_url("campaign_detail", campaign)).content.decode()
    assert f'href="{_url("pledge_create", campaign)}"' in content
    assert f'href="{_url("pledge_mine", campaign)}"' not in content

    pledge_for(campaign=campaign, user=signer)

    content = signer_client.get(_url("campaign_detail", campaign)).content.decode()
    assert f'href="{_url("pledge_mine", campaign)}"' in content
    assert f'href="{_url("pledge_create", campaign)}"' not in content


# --- Kill switch and eligibility -----------------------------------------------------------------


def test_paused_campaign_refuses_the_form_but_stays_readable(
    signer_client, django_capture_on_commit_callbacks
):
    campaign = CampaignFactory(status=CampaignStatus.PAUSED)
    LetterVersionFactory(campaign=campaign)

    page = signer_client.get(_url("pledge_create", campaign))
    response = _sign(signer_client, campaign, django_capture_on_commit_callbacks)

    assert page.status_code == 200
    assert "paused" in page.content.decode()
    assert 'name="rpps"' not in page.content.decode()
    assert response.status_code == 409
    assert "paused" in response.content.decode()
    assert not Pledge.objects.exists() and not RppsClaim.objects.exists()
    assert signer_client.get(_url("campaign_detail", campaign)).status_code == 200


def test_ineligible_specialty_is_refused_with_the_allowed_list(
    signer_client, django_capture_on_commit_callbacks
):
    campaign = CampaignFactory(eligible_specialties=["general_practice"])
    LetterVersionFactory(campaign=campaign)

    response = _sign(signer_client, campaign, django_capture_on_commit_callbacks, specialty="cardiology")

    assert response.status_code == 200
    assert response.context["form"].errors["specialty"] == [
        "This campaign is only open to these specialties: General practice."
    ]
    assert not Pledge.objects.exists()


def test_practice_mode_outside_the_campaign_is_refused(signer_client, django_capture_on_commit_callbacks):
    campaign = CampaignFactory(eligible_practice_modes=["liberal"])
    LetterVersionFactory(campaign=campaign)

    response = _sign(signer_client, campaign, django_capture_on_commit_callbacks, practice_mode="mixed")

    assert "practice_mode" in response.context["form"].errors
    assert not Pledge.objects.exists()


# --- Addresses and caisses ---------------------------------------------------------------------


def test_postal_code_outside_the_department_is_explained(
    signer_client, campaign, django_capture_on_commit_callbacks
):
    response = _sign(signer_client, campaign, django_capture_on_commit_callbacks, postal_code="59000")

    assert response.context["form"].errors["postal_code"] == [
        "The postal code 59000 is not in Ain (01). Check the postal code or the department of practice."
    ]
    assert not Pledge.objects.exists()


@pytest.mark.parametrize(("department", "postal_code"), [("2A", "20000"), ("2B", "20200"), ("974", "97400")])
def test_corsica_and_overseas_postal_codes_match_their_department(
    signer_client, campaign, django_capture_on_commit_callbacks, department, postal_code
):
    response = _sign(
        signer_client,
        campaign,
        django_capture_on_commit_callbacks,
        department=department,
        postal_code=postal_code,
    )

    assert _page_template(response) == "pledges/pledge_submitted.html"
    assert Pledge.objects.get().department.code == department


def test_caisse_is_required_in_nord(signer_client, campaign, django_capture_on_commit_callbacks):
    response = _sign(
        signer_client,
        campaign,
        django_capture_on_commit_callbacks,
        department="59",
        postal_code="59000",
        caisse="",
    )

    [error] = response.context["form"].errors["caisse"]
    assert error.startswith("Nord (59) has several caisses: choose the one where you practise")
    assert "CPAM de Lille-Douai" in error
    assert not Pledge.objects.exists()


def test_caisse_is_chosen_for_you_in_ain(signer_client, campaign, django_capture_on_commit_callbacks):
    _sign(signer_client, campaign, django_capture_on_commit_callbacks, caisse="")

    assert Pledge.objects.get().caisse.code == "cpam-01-ain"


def test_caisse_of_another_department_is_refused(signer_client, campaign, django_capture_on_commit_callbacks):
    response = _sign(
        signer_client,
        campaign,
        django_capture_on_commit_callbacks,
        department="59",
        postal_code="59000",
        caisse="cpam-62-artois",
    )

    [error] = response.context["form"].errors["caisse"]
    assert error.startswith("CPAM de l'Artois is not a caisse of Nord (59).")
    assert not Pledge.objects.exists()


def test_unknown_caisse_code_is_refused(signer_client, campaign, django_capture_on_commit_callbacks):
    response = _sign(signer_client, campaign, django_capture_on_commit_callbacks, caisse="cpam-99-nowhere")

    assert response.context["form"].errors["caisse"] == ["Choose a caisse from the list."]


# --- Hostile and broken input --------------------------------------------------------------------


def test_html_in_names_is_stored_as_typed_and_shown_escaped(signer_client, signer, campaign):
    pledge_for(
        campaign=campaign, user=signer, last_name="<script>alert(1)</script>", first_name='"><img src=x>'
    )

    content = signer_client.get(_url("pledge_mine", campaign)).content.decode()

    assert Pledge.objects.get().last_name == "<script>alert(1)</script>"
    assert "<script>alert(1)</script>" not in content
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content
    assert "<img src=x>" not in content


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("last_name", "M" * 101, "Ensure this value has at most 100 characters (it has 101)."),
        ("first_name", "Jean\x00", "Null characters are not allowed."),
        ("city", "Lyon\x00", "Null characters are not allowed."),
        ("rpps", "1234567890\x003", "Null characters are not allowed."),
        ("practice_address", "x" * 201, "Ensure this value has at most 200 characters (it has 201)."),
        (
            "last_name",
            "Mar\u202etin",
            "Last name contains invisible or control characters: please type it again.",
        ),
        ("first_name", "123 -'", "First name must contain at least one letter."),
        (
            "last_name",
            "王小明",
            "Last name contains characters your letter cannot print (王 小 明): please write them in "
            "Latin letters, as on your professional documents.",
        ),
        ("patient_list_size", "10001", "Ensure this value is less than or equal to 10000."),
        ("patient_list_size", "-1", "Ensure this value is greater than or equal to 0."),
        (
            "sector",
            "3",
            "You already practise outside the convention: this letter, which leaves it, does not apply to you.",
        ),
        ("department", "99", "Choose your department from the list."),
    ],
)
def test_bad_input_gets_a_message_never_a_500(
    signer_client, campaign, django_capture_on_commit_callbacks, field, value, message
):
    response = _sign(signer_client, campaign, django_capture_on_commit_callbacks, **{field: value})

    assert response.status_code == 200
    assert message in response.context["form"].errors[field]
    assert not Pledge.objects.exists()


def test_names_keep_accents_hyphens_and_apostrophes_and_lose_extra_spaces(
    signer_client, campaign, django_capture_on_commit_callbacks
):
    _sign(
        signer_client,
        campaign,
        django_capture_on_commit_callbacks,
        last_name="  D'Alembert-Çığ   Noël ",
        first_name="Jean\t Éloïse",
    )

    pledge = Pledge.objects.get()
    assert (pledge.last_name, pledge.first_name) == ("D'Alembert-Çığ Noël", "Jean Éloïse")


def test_missing_consent_is_refused_with_its_reason(
    signer_client, campaign, django_capture_on_commit_callbacks
):
    response = _sign(signer_client, campaign, django_capture_on_commit_callbacks, consent_data="")

    assert response.context["form"].errors["consent_data"] == [
        "Tick this box to sign: we can only keep your pledge with your explicit consent."
    ]
    assert not Pledge.objects.exists()


def test_garbage_post_is_a_form_with_errors(signer_client, campaign):
    response = signer_client.post(_url("pledge_create", campaign), {"rpps": ["a", "b"], "department": "\x00"})

    assert response.status_code == 200
    assert set(response.context["form"].errors) >= {"rpps", "last_name", "department", "consent_pledge"}


# --- Only the author, only with CSRF --------------------------------------------------------------


def test_another_account_cannot_see_or_withdraw_a_pledge(client, signer, campaign):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "en"
    pledge = pledge_for(campaign=campaign, user=signer)
    intruder = verified_user("intruder@example.org")
    client.force_login(intruder)

    for name in ("pledge_letter_preview", "pledge_withdraw", "pledge_edit"):
        assert client.get(_url(name, campaign)).status_code == 404
    assert client.post(_url("pledge_withdraw", campaign)).status_code == 404
    assert client.post(_url("pledge_edit", campaign), form_data()).status_code == 404

    pledge.refresh_from_db()
    assert pledge.status == PledgeStatus.ACTIVE
    assert pledge.rpps == RPPS_A
    content = client.get(_url("pledge_mine", campaign)).content.decode()
    assert RPPS_A not in content and "Martin" not in content


def test_signing_and_withdrawing_need_the_csrf_token(signer, campaign):
    client = Client(enforce_csrf_checks=True, HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(signer)

    assert client.post(_url("pledge_create", campaign), form_data()).status_code == 403
    assert not Pledge.objects.exists()

    pledge = pledge_for(campaign=campaign, user=signer)
    assert client.post(_url("pledge_withdraw", campaign)).status_code == 403
    assert client.post(reverse("pledges:account_delete"), {"confirm": "on"}).status_code == 403
    pledge.refresh_from_db()
    assert pledge.status == PledgeStatus.ACTIVE

    # With the token from the page, the same POST goes through.
    page = client.get(_url("pledge_withdraw", campaign)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert client.post(_url("pledge_withdraw", campaign), {"csrfmiddlewaretoken": token}).status_code == 302
    pledge.refresh_from_db()
    assert pledge.status == PledgeStatus.WITHDRAWN


def test_withdrawing_twice_is_harmless(signer_client, signer, campaign, django_capture_on_commit_callbacks):
    pledge_for(campaign=campaign, user=signer)

    with django_capture_on_commit_callbacks(execute=True):
        first = signer_client.post(_url("pledge_withdraw", campaign))
        second = signer_client.post(_url("pledge_withdraw", campaign))

    assert first.status_code == second.status_code == 302
    assert second["Location"] == _url("pledge_mine", campaign)
    assert PledgeEvent.objects.filter(kind=PledgeEventKind.WITHDRAWN).count() == 1
    content = signer_client.get(_url("pledge_mine", campaign)).content.decode()
    assert "You withdrew your pledge to this campaign on" in content
    assert f'href="{_url("pledge_create", campaign)}"' in content


def test_withdrawal_stays_possible_when_the_campaign_is_paused(signer_client, signer, campaign):
    pledge = pledge_for(campaign=campaign, user=signer)
    campaign.status = CampaignStatus.PAUSED
    campaign.save()

    edit = signer_client.get(_url("pledge_edit", campaign))
    response = signer_client.post(_url("pledge_withdraw", campaign))

    assert "paused" in edit.content.decode()
    assert 'name="last_name"' not in edit.content.decode()
    assert response.status_code == 302
    pledge.refresh_from_db()
    assert pledge.status == PledgeStatus.WITHDRAWN


def test_mon_engagement_shows_the_department_count_with_small_counts_hidden(signer_client, signer, campaign):
    pledge_for(campaign=campaign, user=signer)
    count = TerritoryCount.objects.create(campaign=campaign, level="department", code="01", pledges=3)

    hidden = signer_client.get(_url("pledge_mine", campaign)).content.decode()
    count.pledges = 12
    count.save()
    shown = signer_client.get(_url("pledge_mine", campaign)).content.decode()

    assert "Fewer than 5 pledges" in hidden
    assert "12 pledges so far." in shown


def test_edit_keeps_rpps_and_refuses_bad_values(signer_client, signer, campaign):
    pledge = pledge_for(campaign=campaign, user=signer)

    page = signer_client.get(_url("pledge_edit", campaign)).content.decode()
    response = signer_client.post(
        _url("pledge_edit", campaign), form_data(postal_code="75001", rpps="19999999998")
    )

    assert 'name="rpps"' not in page
    assert 'value="Martin"' in page
    assert "postal_code" in response.context["form"].errors
    pledge.refresh_from_db()
    assert (pledge.rpps, pledge.postal_code) == (RPPS_A, "01000")


def test_account_overview_lists_the_pledges_and_data_links(signer_client, signer, campaign):
    other = CampaignFactory(title="Deuxième campagne")
    LetterVersionFactory(campaign=other)
    pledge_for(campaign=campaign, user=signer)
    pledge_for(campaign=other, user=signer)

    content = signer_client.get(reverse("pledges:account_overview")).content.decode()

    assert campaign.title in content and "Deuxième campagne" in content
    assert reverse("pledges:account_data_export") in content
    assert reverse("pledges:account_delete") in content


# --- Bots and floods ----------------------------------------------------------------------------


def test_a_filled_honeypot_gets_the_neutral_page_and_writes_nothing(
    signer_client, campaign, django_capture_on_commit_callbacks
):
    success_page = "pledges/pledge_submitted.html"

    response = _sign(
        signer_client, campaign, django_capture_on_commit_callbacks, website="http://spam.example"
    )

    assert _page_template(response) == success_page
    assert not Pledge.objects.exists() and not RppsClaim.objects.exists() and not PledgeEvent.objects.exists()
    assert mail.outbox == []


def test_signing_posts_are_rate_limited_per_account(signer_client, campaign, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "pledge": {"per_ip": "100/m", "per_user": "2/h"}}
    url = _url("pledge_create", campaign)

    statuses = [signer_client.post(url, {}).status_code for _ in range(3)]
    form_page = signer_client.get(url)

    assert statuses == [200, 200, 429]
    assert form_page.status_code == 200  # showing the form is not counted


def test_withdrawal_posts_are_rate_limited_per_account(signer_client, signer, campaign, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "withdrawal": {"per_ip": "100/m", "per_user": "1/h"}}
    pledge_for(campaign=campaign, user=signer)
    url = _url("pledge_withdraw", campaign)

    statuses = [signer_client.post(url).status_code for _ in range(2)]

    assert statuses == [302, 429]


def _page_template(response) -> str:
    """The page's own template: emails are rendered in the request too (queued into the outbox)."""
    return next(template.name for template in response.templates if not template.name.startswith("emails/"))
