"""With JavaScript disabled, signing and withdrawing still work: every page is server-rendered."""

import pytest
from playwright.sync_api import expect

from pledges.enums import PledgeStatus
from pledges.models import Pledge
from tests.e2e.journeys import RPPS_VALID, signing_form_fill, signing_submit
from tests.e2e.support import axe_audit, screenshot

pytestmark = [pytest.mark.e2e]


def test_a_physician_signs_and_withdraws_without_javascript(phone_without_js, demo_campaign, signer, login):
    login(phone_without_js, signer)
    page = phone_without_js.new_page()

    page.goto("/campaigns/demo/")
    # The server-rendered count is there without counter.js.
    expect(page.locator("[data-counter-value]")).to_have_text("40")
    page.get_by_role("link", name="Je signe la lettre d'intention").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Signer la lettre conditionnelle")
    signing_form_fill(page)
    signing_submit(page)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Merci")
    assert Pledge.objects.get(campaign=demo_campaign, user=signer).status == PledgeStatus.ACTIVE

    page.get_by_role("link", name="Mon engagement").first.click()
    expect(page.get_by_role("main")).to_contain_text(RPPS_VALID)
    page.get_by_role("link", name="Retirer mon engagement").click()
    page.get_by_role("button", name="Oui, retirer mon engagement").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Mon engagement")
    expect(page.get_by_role("main")).to_contain_text("retiré")
    axe_audit(page, name="no-js-withdrawn")
    screenshot(page, journey="no-js", step="withdrawn")
    assert Pledge.objects.get(campaign=demo_campaign, user=signer).status == PledgeStatus.WITHDRAWN
