"""Errors on the signing form are announced and tied to their fields."""

import pytest
from playwright.sync_api import expect

from pledges.models import Pledge
from tests.e2e.journeys import PHYSICIAN, RPPS_INVALID, signing_form_fill, signing_submit
from tests.e2e.support import axe_audit, screenshot

pytestmark = [pytest.mark.e2e]


def described_by(page, element_id: str) -> list[str]:
    return (page.locator(f"#{element_id}").get_attribute("aria-describedby") or "").split()


def test_an_invalid_rpps_is_announced_and_tied_to_its_field(phone, demo_campaign, signer, login):
    login(phone, signer)
    page = phone.new_page()
    page.goto("/campaigns/demo/sign/")
    signing_form_fill(page, rpps=RPPS_INVALID)
    signing_submit(page)

    # An alert sums up, so screen readers announce that the form came back with errors.
    summary = page.locator(".form-errors[role=alert]")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("Certains champs")
    # The field says it is invalid, and points at its error message (and its help text).
    rpps = page.locator("#id_rpps")
    expect(rpps).to_have_attribute("aria-invalid", "true")
    assert "id_rpps_error" in described_by(page, "id_rpps")
    assert "id_rpps_helptext" in described_by(page, "id_rpps")
    expect(page.locator("#id_rpps_error")).to_contain_text("n'est pas valide")
    # What was typed stays, so only the mistake needs retyping; other fields are not marked.
    expect(rpps).to_have_value(RPPS_INVALID)
    expect(page.locator("#id_city")).to_have_value(PHYSICIAN["city"])
    expect(page.locator("#id_city")).not_to_have_attribute("aria-invalid", "true")
    axe_audit(page, name="errors-invalid-rpps")
    screenshot(page, journey="errors", step="invalid-rpps")
    assert not Pledge.objects.filter(campaign=demo_campaign, user=signer).exists()


def test_missing_consents_are_tied_to_their_checkboxes(phone, demo_campaign, signer, login):
    login(phone, signer)
    page = phone.new_page()
    page.goto("/campaigns/demo/sign/")
    signing_form_fill(page)
    page.locator("#id_consent_pledge").uncheck()
    page.locator("#id_consent_data").uncheck()
    signing_submit(page)

    expect(page.locator(".form-errors[role=alert]")).to_be_visible()
    for name in ("consent_pledge", "consent_data"):
        checkbox = page.locator(f"#id_{name}")
        expect(checkbox).to_have_attribute("aria-invalid", "true")
        assert f"id_{name}_error" in described_by(page, f"id_{name}")
        expect(page.locator(f"#id_{name}_error")).to_contain_text("Cochez cette case")
    axe_audit(page, name="errors-missing-consents")
