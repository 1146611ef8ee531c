"""Signing with the keyboard alone: Tab, Shift+Tab, Space, Enter and typing; focus always visible."""

import pytest
from playwright.sync_api import expect

from pledges.enums import PledgeStatus
from pledges.models import Pledge
from tests.e2e.journeys import PHYSICIAN, RPPS_VALID
from tests.e2e.support import axe_audit, focused, screenshot

pytestmark = [pytest.mark.e2e]

MAX_TABS = 40


def press_tab_until(page, element_id: str, *, key: str = "Tab") -> list[dict]:
    """Press Tab (or Shift+Tab) until `element_id` has the focus; every stop must show its focus."""
    stops = []
    for _ in range(MAX_TABS):
        page.keyboard.press(key)
        state = focused(page)
        assert state is not None, f"{key} left the page (focus on body) before reaching #{element_id}"
        assert state["visible"], f"no visible focus on {state} after {key}"
        stops.append(state)
        if state["id"] == element_id:
            return stops
    raise AssertionError(f"#{element_id} not reached with {MAX_TABS} presses of {key}: {stops}")


def test_a_physician_signs_with_the_keyboard_alone_and_always_sees_the_focus(
    desktop, demo_campaign, signer, login
):
    login(desktop, signer)
    page = desktop.new_page()
    page.goto("/campaigns/demo/sign/")

    # The skip link comes first and leads past the header into the main content.
    page.keyboard.press("Tab")
    skip = focused(page)
    assert skip["tag"] == "a" and skip["text"] == "Aller au contenu" and skip["visible"]
    screenshot(page, journey="keyboard", step="1-skip-link", full_page=False)
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    # Identity.
    press_tab_until(page, "id_rpps")
    page.keyboard.type(RPPS_VALID)
    press_tab_until(page, "id_last_name")
    page.keyboard.type(PHYSICIAN["last_name"])
    press_tab_until(page, "id_first_name")
    page.keyboard.type(PHYSICIAN["first_name"])
    # A closed <select> picks the next option whose label starts with the typed letter(s).
    press_tab_until(page, "id_specialty")
    page.keyboard.type("M")
    press_tab_until(page, "id_practice_mode_0")
    page.keyboard.press("Space")
    press_tab_until(page, "id_sector")
    page.keyboard.type("Secteur 1")
    screenshot(page, journey="keyboard", step="2-select-focused", full_page=False)

    # Practice; a typing error in the postal code, corrected by going back with Shift+Tab.
    press_tab_until(page, "id_department")
    page.keyboard.type("Ain")
    press_tab_until(page, "id_practice_address")
    page.keyboard.type(PHYSICIAN["practice_address"])
    press_tab_until(page, "id_postal_code")
    page.keyboard.type("0100")
    press_tab_until(page, "id_city")
    page.keyboard.type(PHYSICIAN["city"])
    press_tab_until(page, "id_postal_code", key="Shift+Tab")
    # Focusing a text field with the keyboard selects its text: typing replaces it.
    page.keyboard.type(PHYSICIAN["postal_code"])

    # Consents, then the submit button.
    press_tab_until(page, "id_consent_pledge")
    page.keyboard.press("Space")
    press_tab_until(page, "id_consent_data")
    page.keyboard.press("Space")
    screenshot(page, journey="keyboard", step="3-checkbox-focused", full_page=False)
    page.keyboard.press("Tab")
    submit = focused(page)
    assert submit["tag"] == "button" and submit["text"] == "Je signe ma lettre conditionnelle"
    assert submit["visible"], submit

    values = page.evaluate(
        """() => Object.fromEntries(["rpps", "last_name", "first_name", "specialty", "sector", "department",
            "practice_address", "postal_code", "city"].map((n) => [n, document.getElementById("id_" + n).value]))"""
    )
    assert values == {
        "rpps": RPPS_VALID,
        "last_name": PHYSICIAN["last_name"],
        "first_name": PHYSICIAN["first_name"],
        "specialty": "general_practice",
        "sector": "1",
        "department": "01",
        "practice_address": PHYSICIAN["practice_address"],
        "postal_code": PHYSICIAN["postal_code"],
        "city": PHYSICIAN["city"],
    }
    axe_audit(page, name="keyboard-sign-form-filled")

    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Merci")
    assert Pledge.objects.get(campaign=demo_campaign, user=signer).status == PledgeStatus.ACTIVE
