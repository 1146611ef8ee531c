"""Signing services, their emails, and the letter they produce."""

from datetime import date

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import translation

from deconv.models import EmailStatus, OutgoingEmail
from deconv.outbox import outbox_send
from deconv.pdf import PDF_STATIC_URL, render_to_pdf, static_path_for_url
from pledges.enums import CampaignStatus, PledgeEventKind, PledgeStatus
from pledges.letters import french_date, letter_context, letter_render_pdf
from pledges.models import Pledge, PledgeEvent, RppsClaim
from pledges.services import pledge_create, pledge_update, pledge_withdraw
from territories.models import Caisse, Department
from tests.pledges import signing_support
from tests.pledges.factories import CampaignFactory, LetterVersionFactory
from tests.pledges.signing_support import RPPS_A, RPPS_B, pledge_for, service_data, verified_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_cache")]

territories = signing_support.territories
private_cache = signing_support.private_cache
eager_celery = signing_support.eager_celery


@pytest.fixture
def signer(territories):
    return verified_user("signer@example.org")


# --- pledge_create ---------------------------------------------------------------------------------


def test_pledge_create_records_pledge_claim_event_and_emails_after_commit(
    campaign, signer, eager_celery, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        result = pledge_create(
            campaign=campaign, user=signer, data=service_data(), ip="2001:db8::1", user_agent="UA" * 400
        )
        # Nothing is sent before the transaction commits.
        assert mail.outbox == []
    for callback in callbacks:
        callback()

    pledge = result.pledge
    assert result.created
    assert (pledge.status, pledge.letter_version.number, pledge.signed_ip) == (
        PledgeStatus.ACTIVE,
        1,
        "2001:db8::1",
    )
    assert len(pledge.signed_user_agent) == 300
    assert RppsClaim.objects.get().rpps == RPPS_A
    assert list(PledgeEvent.objects.values_list("kind", "delta", "department__code")) == [
        ("pledged", 1, "01")
    ]
    assert [message.to for message in mail.outbox] == [["signer@example.org"]]
    html = mail.outbox[0].alternatives[0][0]
    assert reverse("pledges:pledge_withdraw", kwargs={"slug": campaign.slug}) in html


def test_pledge_create_refuses_a_paused_or_closed_campaign(signer):
    for status in (CampaignStatus.PAUSED, CampaignStatus.CLOSED, CampaignStatus.DRAFT):
        campaign = CampaignFactory(status=status)
        LetterVersionFactory(campaign=campaign)
        with pytest.raises(ValidationError) as error:
            pledge_create(campaign=campaign, user=signer, data=service_data(), ip=None, user_agent="")
        assert error.value.code in {"campaign_paused", "campaign_not_open"}
    assert not Pledge.objects.exists()


def test_pledge_create_enforces_eligibility_and_caisse_without_the_form(signer):
    campaign = CampaignFactory(eligible_specialties=["general_practice"], eligible_practice_modes=["liberal"])
    LetterVersionFactory(campaign=campaign)
    nord = Department.objects.get(code="59")
    cases = {
        "specialty": service_data(specialty="cardiology"),
        "practice_mode": service_data(practice_mode="mixed"),
        "caisse": service_data(department=nord, postal_code="59000", caisse=None),
        "postal_code": service_data(postal_code="75001"),
        "rpps": service_data(rpps="12345678901"),
    }
    for field, data in cases.items():
        with pytest.raises(ValidationError) as error:
            pledge_create(campaign=campaign, user=signer, data=data, ip=None, user_agent="")
        assert field in error.value.message_dict
    wrong_caisse = service_data(caisse=Caisse.objects.get(code="cpam-62-artois"))
    with pytest.raises(ValidationError):
        pledge_create(campaign=campaign, user=signer, data=wrong_caisse, ip=None, user_agent="")
    assert not Pledge.objects.exists() and not RppsClaim.objects.exists()


def test_a_bad_ip_is_not_stored(campaign, signer):
    result = pledge_create(campaign=campaign, user=signer, data=service_data(), ip="not-an-ip", user_agent="")

    assert result.pledge.signed_ip is None


# --- pledge_update -------------------------------------------------------------------------------


def test_pledge_update_moves_the_count_when_the_department_changes(campaign, signer):
    pledge = pledge_for(campaign=campaign, user=signer)
    nord = Department.objects.get(code="59")

    pledge_update(pledge=pledge, data=service_data(last_name="Martin-Durand"))
    pledge_update(
        pledge=pledge,
        data=service_data(
            last_name="Martin-Durand",
            department=nord,
            postal_code="59100",
            caisse=Caisse.objects.get(code="cpam-59-roubaix-tourcoing"),
        ),
    )

    pledge.refresh_from_db()
    assert (pledge.last_name, pledge.department.code, pledge.rpps) == ("Martin-Durand", "59", RPPS_A)
    events = PledgeEvent.objects.order_by("pk").values_list("kind", "department__code", "delta")
    assert list(events) == [("pledged", "01", 1), ("moved", "01", -1), ("moved", "59", 1)]


def test_pledge_update_refuses_a_withdrawn_pledge(campaign, signer):
    pledge = pledge_for(campaign=campaign, user=signer)
    pledge_withdraw(pledge=pledge)

    with pytest.raises(ValidationError) as error:
        pledge_update(pledge=pledge, data=service_data())

    assert error.value.code == "pledge_not_active"


# --- pledge_withdraw -------------------------------------------------------------------------------


def test_withdrawal_keeps_the_claim_while_another_campaign_holds_a_live_pledge(campaign, signer):
    other = CampaignFactory()
    LetterVersionFactory(campaign=other)
    first = pledge_for(campaign=campaign, user=signer)
    second = pledge_for(campaign=other, user=signer)

    pledge_withdraw(pledge=first)
    assert RppsClaim.objects.filter(user=signer).exists()

    pledge_withdraw(pledge=second)
    assert not RppsClaim.objects.exists()


def test_withdrawal_is_idempotent_and_writes_one_event_and_one_email(
    campaign, signer, eager_celery, django_capture_on_commit_callbacks
):
    pledge = pledge_for(campaign=campaign, user=signer)

    with django_capture_on_commit_callbacks(execute=True):
        pledge_withdraw(pledge=pledge)
        pledge_withdraw(pledge=pledge)

    assert PledgeEvent.objects.filter(kind=PledgeEventKind.WITHDRAWN).count() == 1
    assert len(mail.outbox) == 1
    assert "withdraw" in mail.outbox[0].body.lower() or "retir" in mail.outbox[0].body.lower()


def test_a_withdrawn_pledge_gets_no_further_email(
    campaign, signer, eager_celery, django_capture_on_commit_callbacks
):
    # Its receipt is queued in the outbox, not sent yet (the commit has not happened).
    pledge = pledge_for(campaign=campaign, user=signer)
    with django_capture_on_commit_callbacks(execute=True):
        pledge_withdraw(pledge=pledge)

    receipt = OutgoingEmail.objects.get(dedupe_key=f"pledge-received:{pledge.pk}")
    assert receipt.status == EmailStatus.FAILED
    # A send task that runs late (queue backlog, retry) finds nothing to send.
    assert outbox_send(ids=[receipt.pk]).sent == 0
    assert len(mail.outbox) == 1
    assert "withdraw" in mail.outbox[0].subject.lower() or "retrait" in mail.outbox[0].subject.lower()


# --- Emails ---------------------------------------------------------------------------------------


def test_email_parts_are_rendered_in_the_recipients_language(campaign, signer, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with translation.override("en"):
        pledge_for(campaign=campaign, user=signer, last_name="<b>Martin</b>")

    assert outbox_send(ids=[OutgoingEmail.objects.get(kind="pledge_received").pk]).sent == 1

    [message] = mail.outbox
    assert message.subject.startswith(settings.ACCOUNT_EMAIL_SUBJECT_PREFIX)
    assert "\n" not in message.subject
    assert "held in escrow" in message.body
    assert "<p>" not in message.body and "&quot;" not in message.body  # plain text, not escaped HTML
    assert message.alternatives[0][1] == "text/html"
    assert "<b>Martin</b>" not in message.alternatives[0][0]


# --- The letter ------------------------------------------------------------------------------------


def test_french_date_writes_the_first_of_the_month_as_1er():
    assert french_date(date(2026, 3, 1)) == "1er mars 2026"
    assert french_date(date(2026, 11, 22)) == "22 novembre 2026"


def test_letter_fills_every_placeholder_and_marks_the_missing_caisse_address(campaign, signer):
    LetterVersionFactory(
        campaign=campaign,
        body=(
            "{first_name} {last_name}, RPPS {rpps}, {specialty}\n{practice_address}\n\n"
            "{caisse_name}\n{caisse_address}\n\nEffet : {effective_date}.\n\nFait à {place}, le {date}"
        ),
    )
    pledge = pledge_for(campaign=campaign, user=signer)

    context = letter_context(pledge=pledge, intention=True)

    text = "\n\n".join(context["paragraphs"])
    assert "{" not in text
    assert "Élise Martin, RPPS 12345678903" in text
    assert "12 rue de la République\n01000 Bourg-en-Bresse" in text
    assert "CPAM de l'Ain\naddress to be completed" in text or "CPAM de l'Ain\nadresse à compléter" in text
    assert "Fait à Bourg-en-Bresse, le " in text
    # The body fills these blocks itself: the template does not repeat them.
    assert (context["show_sender"], context["show_addressee"], context["show_place_and_date"]) == (
        False,
        False,
        False,
    )


def test_letter_pdf_html_has_the_name_rpps_caisse_address_and_the_intention_mark(campaign, signer):
    caisse = Caisse.objects.get(code="cpam-01-ain")
    caisse.address_line1 = "1 place de la Grenouillère"
    caisse.postal_code = "01000"
    caisse.city = "Bourg-en-Bresse"
    caisse.save()
    pledge = pledge_for(campaign=campaign, user=signer, last_name="<i>Martin</i>")

    html, pdf = letter_render_pdf(pledge=pledge, intention=True)

    assert pdf.startswith(b"%PDF")
    assert "&lt;i&gt;Martin&lt;/i&gt;" in html and "<i>Martin</i>" not in html
    assert RPPS_A in html
    assert "CPAM de l&#x27;Ain" in html and "1 place de la Grenouillère" in html
    assert html.count("INTENTION") >= 2  # banner and watermark
    assert '<html lang="fr">' in html


def test_letter_without_intention_has_no_mark(campaign, signer):
    pledge = pledge_for(campaign=campaign, user=signer, rpps=RPPS_B)

    html, _pdf = letter_render_pdf(pledge=pledge, intention=False)

    assert "INTENTION" not in html


def test_preview_view_renders_the_letter_of_the_signed_in_author(client, campaign, signer, monkeypatch):
    pledge_for(campaign=campaign, user=signer)
    rendered = {}

    def spy(**kwargs):
        html, pdf = render_to_pdf(**kwargs)
        rendered["html"] = html
        return html, pdf

    monkeypatch.setattr("pledges.letters.render_to_pdf", spy)
    client.force_login(signer)

    response = client.get(reverse("pledges:pledge_letter_preview", kwargs={"slug": campaign.slug}))

    assert response.content.startswith(b"%PDF")
    assert (
        "Martin" in rendered["html"]
        and RPPS_A in rendered["html"]
        and "CPAM de l&#x27;Ain" in rendered["html"]
    )


# --- The PDF fetcher --------------------------------------------------------------------------


def test_pdf_fetcher_serves_our_static_files_only():
    assert static_path_for_url(f"{PDF_STATIC_URL}letters/letter.css").name == "letter.css"
    assert static_path_for_url(f"{PDF_STATIC_URL}letters/fonts/DejaVuSerif.ttf").name == "DejaVuSerif.ttf"
    for url in (
        "https://example.org/static/letters/letter.css",
        "http://deconv-pdf.invalid/static/letters/letter.css",
        "file:///etc/passwd",
        f"{PDF_STATIC_URL}../../settings.py",
        f"{PDF_STATIC_URL}letters/%2e%2e/%2e%2e/deconv/settings.py",
        f"{PDF_STATIC_URL}letters/missing.css",
        "https://deconv-pdf.invalid/etc/passwd",
        "data:text/css,body{}",
    ):
        assert static_path_for_url(url) is None, url


def test_pdf_rendering_never_fetches_an_outside_resource(tmp_path, settings, monkeypatch):
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]},
    ]
    (tmp_path / "hostile.html").write_text(
        '<link rel="stylesheet" href="https://example.org/x.css">'
        '<img src="file:///etc/hostname"><img src="http://169.254.169.254/latest/meta-data/">'
        "<p>texte</p>"
    )
    opened = []
    monkeypatch.setattr("urllib.request.OpenerDirector.open", lambda *args, **kwargs: opened.append(args))

    _html, pdf = render_to_pdf(template_name="hostile.html", context={})

    assert pdf.startswith(b"%PDF")
    assert opened == []


def test_withdrawing_an_invalidated_pledge_erases_it_without_a_count_change(campaign, signer):
    pledge = pledge_for(campaign=campaign, user=signer)
    Pledge.objects.filter(pk=pledge.pk).update(status=PledgeStatus.INVALIDATED)

    pledge_withdraw(pledge=pledge)

    pledge.refresh_from_db()
    assert (pledge.status, pledge.rpps, pledge.last_name) == (PledgeStatus.WITHDRAWN, "", "")
    assert not PledgeEvent.objects.filter(kind=PledgeEventKind.WITHDRAWN).exists()
