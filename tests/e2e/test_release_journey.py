"""From a threshold reached to a departure's effective date, as the signer sees it on a phone.

The beat jobs (counting, conditions, round closing, letters) are called from the test in the
order beat would run them; the signer's steps go through the browser. The pages of this journey
are read in English: their msgids are the stable text while the French catalogue is completed.
"""

import pytest
from dateutil.relativedelta import relativedelta
from django.utils import formats, timezone, translation
from playwright.sync_api import expect

from pledges.counting import counts_update
from pledges.enums import PledgeStatus, TerritoryLevel
from pledges.models import Pledge
from tests.e2e.journeys import signing_form_fill
from tests.e2e.support import axe_audit, screenshot, skip_unless_routes

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


ROUTES = (
    ("pledges:round_confirm", {"slug": "demo"}),
    ("pledges:letter_download", {"letter_id": 1}),
    ("pledges:letter_sent", {"slug": "demo"}),
    ("pledges:letter_acknowledged", {"slug": "demo"}),
)


def ain_signed_and_round_opened(page, *, campaign, user, early_release: bool):
    """The signer signs in Ain; Ain needs one signature (every other department far more); beat
    counts and opens Ain's round. Returns the pledge and its round."""
    from pledges.models import ConfirmationRound, ThresholdRule
    from pledges.rounds import conditions_evaluate

    campaign.confirmation_round = True
    campaign.early_release = early_release
    campaign.approval_required = False
    campaign.release_level = TerritoryLevel.DEPARTMENT
    campaign.save()
    ThresholdRule.objects.create(campaign=campaign, level=TerritoryLevel.DEPARTMENT, min_count=100_000)
    ThresholdRule.objects.create(
        campaign=campaign, level=TerritoryLevel.DEPARTMENT, territory_code="01", min_count=1
    )

    page.goto("/campaigns/demo/sign/")
    signing_form_fill(page)
    page.get_by_role("button", name="I sign my conditional letter").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Thank you")
    pledge = Pledge.objects.get(campaign=campaign, user=user)

    counts_update()
    assert conditions_evaluate(campaign_ids=[campaign.pk], force=True) == 1
    return pledge, ConfirmationRound.objects.get(crossing__campaign=campaign, crossing__code="01")


def test_a_signer_confirms_in_the_round_then_downloads_sends_and_records_the_acknowledgement(
    phone_en, demo_campaign, signer, login, tmp_path
):
    skip_unless_routes(*ROUTES)
    from pledges.letters_pipeline import release_process
    from pledges.models import ConfirmationRound, Release
    from pledges.rounds import rounds_close_due

    login(phone_en, signer)
    page = phone_en.new_page()
    # Without early release the round runs to its end (moved to now below, as time would).
    pledge, round = ain_signed_and_round_opened(
        page, campaign=demo_campaign, user=signer, early_release=False
    )

    # The signer is asked again, from "My pledge".
    page.goto("/campaigns/demo/my-pledge/")
    expect(page.get_by_role("heading", name="Confirmation round")).to_be_visible()
    axe_audit(page, name="release-my-pledge-round-open")
    page.get_by_role("link", name="Answer now").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Do you maintain your participation?")
    axe_audit(page, name="release-round-confirm")
    screenshot(page, journey="release", step="1-round")
    page.get_by_role("button", name="I maintain my participation").click()
    expect(page.get_by_role("main")).to_contain_text("you maintain your participation")

    # Beat, once the round has ended: enough confirmations, Ain is released; the letters are made.
    ConfirmationRound.objects.filter(pk=round.pk).update(ends_at=timezone.now())
    assert rounds_close_due() == 1
    release = Release.objects.get(campaign=demo_campaign, code="01")
    release_process(release_id=release.pk, helpers=False)
    pledge.refresh_from_db()
    assert pledge.status == PledgeStatus.RELEASED

    # The letter, to print, sign by hand and post.
    page.goto("/campaigns/demo/my-pledge/")
    expect(page.get_by_role("heading", name="Your letter is released")).to_be_visible()
    axe_audit(page, name="release-my-pledge-released")
    screenshot(page, journey="release", step="2-released")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download my letter (PDF)").click()
    pdf = tmp_path / "letter.pdf"
    download_info.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")

    # Sent today by registered mail, acknowledged today: the departure takes effect in a month.
    today = timezone.localdate()
    page.get_by_label("Date you posted the letter").fill(today.isoformat())
    page.get_by_label("Registered mail number (optional)").fill("1A 234 567 8901 2")
    page.get_by_role("button", name="Save").first.click()
    expect(page.get_by_role("main")).to_contain_text("1A 234 567 8901 2")
    page.get_by_label("Date on the acknowledgement of receipt").fill(today.isoformat())
    page.get_by_role("button", name="Save").last.click()
    effective = today + relativedelta(months=1)
    expect(page.get_by_role("main")).to_contain_text("You leave the convention on")
    with translation.override("en"):
        expect(page.get_by_role("main")).to_contain_text(formats.date_format(effective, "DATE_FORMAT"))
    axe_audit(page, name="release-effective-date")
    screenshot(page, journey="release", step="3-effective-date")


def test_the_confirmation_that_releases_the_territory_early_lands_on_a_page_not_a_404(
    phone_en, demo_campaign, signer, login, console_errors
):
    skip_unless_routes(*ROUTES)
    console_errors.allow(r"status of 404")
    login(phone_en, signer)
    page = phone_en.new_page()
    pledge, _round = ain_signed_and_round_opened(
        page, campaign=demo_campaign, user=signer, early_release=True
    )

    page.goto("/campaigns/demo/my-pledge/round/")
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="I maintain my participation").click()
    pledge.refresh_from_db()
    assert pledge.status == PledgeStatus.RELEASED
    assert navigation.value.status == 200
