"""Organizers at a desk: the dashboard, a directory import, a bulk invalidation, an export; and the
departmental delegate who is kept to their department.

Long jobs run in the real Celery worker and the pages follow them with their progress bars. Read
in English: the msgids are the stable text while the French catalogue of these pages is written.
"""

import re

import pytest
from playwright.sync_api import expect

from pledges.enums import OrganizerRoleKind, PledgeStatus
from pledges.models import OrganizerRole, Pledge
from tests.e2e.support import axe_audit, screenshot, skip_unless_routes
from tests.pledges.signing_support import verified_user

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

SLUG = {"slug": "demo"}
# Long jobs finish within seconds on the demo data; the bar is given a generous margin.
JOB_TIMEOUT_MS = 30_000


def job_followed_to_its_end(page, *, finished_link: str, summary: str) -> None:
    """The bar reaches its end and offers the result; the result page sums the job up.

    A job quicker than the page load is rendered finished at once, without the link.
    """
    link = page.get_by_role("link", name=finished_link)
    status = page.get_by_role("status").filter(has_text=summary)
    expect(link.or_(status)).to_be_visible(timeout=JOB_TIMEOUT_MS)
    bar = page.locator("progress[data-progress-bar]")
    value, maximum = bar.evaluate("(el) => [el.value, el.max]")
    assert value == maximum, f"the bar stopped at {value} / {maximum}"
    if link.is_visible():
        link.click()
    expect(status).to_be_visible()


@pytest.mark.redis
@pytest.mark.worker
def test_a_national_organizer_reads_the_dashboard_imports_the_directory_invalidates_and_exports(
    desktop_en, demo_campaign, worker, login, tmp_path
):
    skip_unless_routes(
        ("pledges:organizer_dashboard", SLUG),
        ("pledges:organizer_map", SLUG),
        ("pledges:organizer_directory", SLUG),
        ("pledges:organizer_bulk_new", SLUG),
        ("pledges:organizer_exports", SLUG),
    )
    from tests.moderation import directory_files

    organizer = verified_user("organisatrice@example.org", is_staff=True, is_superuser=True)
    login(desktop_en, organizer)
    page = desktop_en.new_page()

    # 1. Dashboard: the map and the daily chart are drawn.
    page.goto("/organizer/demo/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("campagne de démonstration")
    map_image = page.get_by_role("img", name=re.compile("^Map of France"))
    expect(map_image).to_be_visible()
    assert map_image.evaluate("(img) => img.complete && img.naturalWidth > 0"), "the map did not load"
    chart = page.locator(".org-chart svg")
    expect(chart).to_be_visible()
    assert chart.bounding_box()["height"] > 50
    axe_audit(page, name="organizer-dashboard")
    screenshot(page, journey="organizer", step="1-dashboard")

    # 2. The RPPS directory: upload a file, the bar follows the import to its end.
    demo_rpps = list(Pledge.objects.filter(campaign=demo_campaign).values_list("rpps", flat=True)[:10])
    directory = directory_files.write(
        tmp_path / "PS_LibreAcces_Personne_activite_202611220000.txt",
        [directory_files.activity(rpps) for rpps in demo_rpps],
    )
    page.goto("/organizer/demo/directory/")
    axe_audit(page, name="organizer-directory")
    page.get_by_label("Directory file", exact=True).set_input_files(directory)
    page.get_by_role("button", name="Upload and import").click()
    expect(page.get_by_role("heading", name="RPPS directory import")).to_be_visible()
    job_followed_to_its_end(page, finished_link="Finished: see the result", summary="Imported")
    axe_audit(page, name="organizer-directory-imported")
    screenshot(page, journey="organizer", step="2-directory-imported")

    # 3. Bulk invalidation: a rule, its preview (count and sample), then confirmation.
    department = (
        Pledge.objects.filter(campaign=demo_campaign, status=PledgeStatus.ACTIVE)
        .values_list("department__code", flat=True)
        .first()
    )
    matching = Pledge.objects.filter(
        campaign=demo_campaign, status=PledgeStatus.ACTIVE, department__code=department
    ).count()
    page.goto("/organizer/demo/moderation/bulk/")
    page.get_by_label("Department").select_option(department)
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("[data-preview-count]")).to_have_attribute("data-preview-count", str(matching))
    axe_audit(page, name="organizer-bulk-preview")
    screenshot(page, journey="organizer", step="3-bulk-preview")
    page.get_by_label("Reason").fill("Signatures en série depuis un même poste (test de bout en bout).")
    page.get_by_role("button", name=re.compile(r"^Invalidate \d+ pledges?$")).click()
    job_followed_to_its_end(page, finished_link="Finished: see the summary", summary="Done")
    axe_audit(page, name="organizer-bulk-done")
    assert not Pledge.objects.filter(
        campaign=demo_campaign, status=PledgeStatus.ACTIVE, department__code=department
    ).exists()

    # 4. Export: prepared in the background, then downloaded.
    page.goto("/organizer/demo/exports/")
    axe_audit(page, name="organizer-exports")
    page.get_by_label("CSV (semicolons, UTF-8)").check()
    page.get_by_role("button", name="Prepare the export").click()
    download_link = page.get_by_role("link", name="Download the file")
    expect(download_link).to_be_visible(timeout=JOB_TIMEOUT_MS)
    axe_audit(page, name="organizer-export-ready")
    screenshot(page, journey="organizer", step="4-export-ready")
    with page.expect_download() as download_info:
        download_link.click()
    exported = tmp_path / "export.csv"
    download_info.value.save_as(exported)
    text = exported.read_text(encoding="utf-8-sig")
    assert text.count("\n") >= Pledge.objects.filter(campaign=demo_campaign).count()


def test_a_departmental_delegate_is_refused_a_pledge_of_another_department(
    desktop_en, demo_campaign, login, console_errors
):
    skip_unless_routes(
        ("pledges:organizer_dashboard", SLUG),
        ("pledges:organizer_moderation_pledge", {"slug": "demo", "pledge_id": 1}),
    )
    own = Pledge.objects.filter(campaign=demo_campaign).select_related("department").first()
    other = Pledge.objects.filter(campaign=demo_campaign).exclude(department=own.department).first()
    delegate = verified_user("delegue@example.org")
    OrganizerRole.objects.create(
        user=delegate,
        campaign=demo_campaign,
        kind=OrganizerRoleKind.DEPARTMENTAL,
        territory_code=own.department.code,
    )
    login(desktop_en, delegate)
    page = desktop_en.new_page()

    # Their own department's pledge opens.
    page.goto(f"/organizer/demo/moderation/pledges/{own.pk}/")
    expect(page.get_by_role("heading", name=f"Pledge #{own.pk}")).to_be_visible()

    # Another department's: refused, without saying whether it exists (404, like a made-up id).
    console_errors.allow(r"status of 404")
    response = page.goto(f"/organizer/demo/moderation/pledges/{other.pk}/")
    assert response.status == 404
    expect(page.get_by_role("main")).not_to_contain_text(other.last_name or "—")
    expect(page.get_by_role("main")).not_to_contain_text(other.rpps)
    made_up = page.goto("/organizer/demo/moderation/pledges/999999999/")
    assert made_up.status == 404
    axe_audit(page, name="organizer-delegate-refused")
    screenshot(page, journey="organizer", step="5-delegate-refused")
