"""The public pages at desktop size: audited, free of console errors, and pictured for the README."""

import pytest
from playwright.sync_api import expect

from tests.e2e.support import axe_audit, screenshot

pytestmark = [pytest.mark.e2e]


def test_the_home_and_campaign_pages_read_well_on_a_desktop(desktop, demo_campaign):
    page = desktop.new_page()

    page.goto("/")
    expect(page.get_by_role("link", name=demo_campaign.title, exact=True)).to_be_visible()
    axe_audit(page, name="desktop-home")
    screenshot(page, journey="desktop", step="1-home", full_page=False)

    page.get_by_role("link", name=demo_campaign.title, exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(demo_campaign.title)
    expect(page.locator("[data-counter-value]")).to_have_text("40")
    # The department table scrolls on small screens: reachable and named for keyboard users.
    expect(page.get_by_role("group", name="Signatures par département")).to_have_attribute("tabindex", "0")
    axe_audit(page, name="desktop-campaign")
    screenshot(page, journey="desktop", step="2-campaign", full_page=False)
