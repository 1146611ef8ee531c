"""A physician, on a phone, from the demo campaign to a withdrawn pledge: every page audited."""

import re

import pytest
from playwright.sync_api import expect

from pledges.counting import counts_update
from pledges.enums import PledgeStatus
from pledges.models import Pledge
from tests.e2e.journeys import PASSWORD, RPPS_VALID, signing_form_fill, signing_submit
from tests.e2e.support import (
    SCREENSHOTS,
    axe_audit,
    latest_email_to,
    link_path,
    pdf_first_page_png,
    screenshot,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis, pytest.mark.worker]

EMAIL = "elise.martin@example.org"


def counter_value(page) -> str:
    return page.locator("[data-counter-value]").inner_text().strip()


def test_physician_signs_confirms_counts_downloads_and_withdraws_on_a_phone(
    phone, demo_campaign, worker, tmp_path
):
    page = phone.new_page()

    # 1. The campaign page: what signing means, the letter, the count.
    page.goto("/campaigns/demo/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("campagne de démonstration")
    assert counter_value(page) == "40"
    axe_audit(page, name="physician-campaign")
    screenshot(page, journey="physician", step="1-campaign")

    # 2. "Je signe": not signed in, so the sign-in page, with a way to create an account.
    page.get_by_role("link", name="Je signe la lettre d'intention").first.click()
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/campaigns/demo/sign/"))
    axe_audit(page, name="physician-login")
    page.get_by_role("main").get_by_role("link", name="enregistrer").click()
    expect(page).to_have_url(re.compile(r"/accounts/signup/"))
    axe_audit(page, name="physician-signup")
    screenshot(page, journey="physician", step="2-signup")

    # 3. Create the account: the "check your email" page.
    page.get_by_label("Courriel", exact=True).fill(EMAIL)
    page.get_by_label("Mot de passe", exact=True).fill(PASSWORD)
    page.get_by_label("Mot de passe (confirmation)", exact=True).fill(PASSWORD)
    page.get_by_role("main").get_by_role("button", name="Création de compte").click()
    expect(page).to_have_url(re.compile(r"/accounts/confirm-email/$"))
    axe_audit(page, name="physician-verification-sent")

    # 4. The confirmation email, sent by the worker: its link shows a button; pressing it confirms.
    body = latest_email_to(EMAIL, containing="/accounts/confirm-email/")
    page.goto(link_path(body, containing="/accounts/confirm-email/"))
    axe_audit(page, name="physician-confirm-email")
    screenshot(page, journey="physician", step="3-confirm-email")
    page.get_by_role("main").get_by_role("button", name="Confirmer").click()

    # 5. Signed in and brought back to the signing form ("next" survives sign-up and confirmation).
    page.wait_for_load_state()
    expect(page.get_by_role("button", name="Se déconnecter")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text("Signer la lettre conditionnelle")
    axe_audit(page, name="physician-sign-form")
    signing_form_fill(page)
    screenshot(page, journey="physician", step="4-sign-form")
    signing_submit(page)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Merci")
    axe_audit(page, name="physician-submitted")
    pledge = Pledge.objects.get(campaign=demo_campaign, rpps=RPPS_VALID)
    assert pledge.status == PledgeStatus.ACTIVE
    assert "/campaigns/demo/my-pledge/" in latest_email_to(EMAIL, containing="/campaigns/demo/my-pledge/")

    # 6. "Mon engagement".
    page.get_by_role("link", name="Mon engagement").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mon engagement")
    expect(page.get_by_role("main")).to_contain_text(RPPS_VALID)
    axe_audit(page, name="physician-my-pledge")
    screenshot(page, journey="physician", step="5-my-pledge")

    # 7. The count moves on the campaign page without a reload: counter.js polls count.json.
    page.goto("/campaigns/demo/")
    assert counter_value(page) == "40"
    page.evaluate("window.__notReloaded = true")
    result = counts_update()
    assert result.events >= 1
    expect(page.locator("[data-counter-value]")).to_have_text("41", timeout=10_000)
    assert page.evaluate("window.__notReloaded === true")
    screenshot(page, journey="physician", step="6-count-moved", full_page=False)

    # 8. The letter of intention as a PDF (not sent anywhere), and its first page as a picture.
    page.get_by_role("link", name="Mon engagement").first.click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name=re.compile("Télécharger ma lettre d'intention")).click()
    pdf = tmp_path / "intention.pdf"
    download_info.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")
    png = pdf_first_page_png(pdf, out=SCREENSHOTS / "letter-intention.png")
    assert png.stat().st_size > 1000

    # 9. Withdraw: two clicks, then "Mon engagement" says it is withdrawn.
    page.get_by_role("link", name="Retirer mon engagement").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Retirer mon engagement")
    axe_audit(page, name="physician-withdraw")
    page.get_by_role("button", name="Oui, retirer mon engagement").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mon engagement")
    expect(page.get_by_role("main")).to_contain_text("retiré")
    expect(page.get_by_role("main")).not_to_contain_text(RPPS_VALID)
    axe_audit(page, name="physician-withdrawn")
    screenshot(page, journey="physician", step="7-withdrawn")
    pledge.refresh_from_db()
    assert pledge.status == PledgeStatus.WITHDRAWN


def test_the_sign_in_page_offers_to_sign_up_without_losing_the_way_back_to_the_form(phone):
    page = phone.new_page()
    # Where "Je signe" leads a visitor who is not signed in (the journey above goes through it).
    page.goto("/accounts/login/?next=/campaigns/demo/sign/")
    signup = page.get_by_role("main").get_by_role("link", name="enregistrer")
    expect(signup).to_have_attribute("href", "/accounts/signup/?next=%2Fcampaigns%2Fdemo%2Fsign%2F")
