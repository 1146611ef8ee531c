"""Switching the site to English and back, on the campaign and signing pages."""

import pytest
from playwright.sync_api import expect

from tests.e2e.support import axe_audit, screenshot

pytestmark = [pytest.mark.e2e]


def test_a_physician_reads_the_campaign_and_the_form_in_english_then_back_in_french(
    phone, demo_campaign, signer, login
):
    login(phone, signer)
    page = phone.new_page()
    page.goto("/campaigns/demo/")
    expect(page.locator("html")).to_have_attribute("lang", "fr")

    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    # The same page, now in English; the letter itself stays French (lang="fr" on it).
    assert page.url.endswith("/campaigns/demo/")
    expect(page.get_by_role("link", name="I sign the letter of intent").first).to_be_visible()
    expect(page.get_by_role("heading", name="What signing means")).to_be_visible()
    expect(page.get_by_role("button", name="English")).to_have_attribute("aria-current", "true")
    expect(page.locator("article.letter")).to_have_attribute("lang", "fr")
    axe_audit(page, name="language-campaign-en")
    screenshot(page, journey="language", step="1-campaign-en", full_page=False)

    page.get_by_role("link", name="I sign the letter of intent").first.click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign the conditional letter")
    expect(page.get_by_role("button", name="I sign my conditional letter")).to_be_visible()
    expect(page.get_by_label("Last name", exact=True)).to_be_visible()
    axe_audit(page, name="language-sign-form-en")

    page.get_by_role("button", name="Français").click()
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    assert page.url.endswith("/campaigns/demo/sign/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Signer la lettre conditionnelle")
    expect(page.get_by_role("button", name="Je signe ma lettre conditionnelle")).to_be_visible()
