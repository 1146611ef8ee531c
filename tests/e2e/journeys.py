"""Steps several journeys share: filling the signing form the way a physician does."""

# Valid by the Luhn algorithm (DOMAIN.md section 3); an Ain (01) practice, one caisse.
RPPS_VALID = "12345678903"
RPPS_INVALID = "12345678901"
PASSWORD = "Un-mot-de-passe-solide-42"
PHYSICIAN = {
    "last_name": "Martin",
    "first_name": "Élise",
    "practice_address": "12 rue de la République",
    "postal_code": "01000",
    "city": "Bourg-en-Bresse",
}


def signing_form_fill(page, *, rpps: str = RPPS_VALID) -> None:
    """Fill every required field of the signing form (by id: the journeys run in French and English)."""
    page.locator("#id_rpps").fill(rpps)
    page.locator("#id_last_name").fill(PHYSICIAN["last_name"])
    page.locator("#id_first_name").fill(PHYSICIAN["first_name"])
    page.locator("#id_specialty").select_option("general_practice")
    page.locator("input[name=practice_mode][value=liberal]").check()
    page.locator("#id_sector").select_option("1")
    page.locator("#id_department").select_option("01")
    page.locator("#id_practice_address").fill(PHYSICIAN["practice_address"])
    page.locator("#id_postal_code").fill(PHYSICIAN["postal_code"])
    page.locator("#id_city").fill(PHYSICIAN["city"])
    page.locator("#id_consent_pledge").check()
    page.locator("#id_consent_data").check()


def signing_submit(page) -> None:
    page.get_by_role("button", name="Je signe ma lettre conditionnelle").click()
    page.wait_for_load_state()
