"""Who may open each organizer page: anonymous, no role, other department, right delegate, region,
national, observer, wrong method. Data that could leak is created first (the `pledges` fixture)."""

import pytest
from django.conf import settings
from django.urls import reverse

from pledges.enums import BundleStatus
from pledges.models import ExportJob
from tests.organizer.conftest import LEAKY_NAME

pytestmark = pytest.mark.django_db


@pytest.fixture
def export_of(campaign):
    """An export of department 69, finished, requested by `user`."""

    def make(user, codes=("69",), national=False):
        return ExportJob.objects.create(
            campaign=campaign,
            file_format="csv",
            scope={"national": national, "department_codes": list(codes)},
            status=BundleStatus.QUEUED,
            requested_by=user,
        )

    return make


def page_urls(campaign) -> dict[str, str]:
    slug = campaign.slug
    return {
        "dashboard": reverse("pledges:organizer_dashboard", kwargs={"slug": slug}),
        "map": reverse("pledges:organizer_map", kwargs={"slug": slug}),
        "exports": reverse("pledges:organizer_exports", kwargs={"slug": slug}),
        "audit": reverse("pledges:organizer_audit", kwargs={"slug": slug}),
    }


PAGES = ["dashboard", "map", "exports", "audit"]


@pytest.mark.parametrize("page", PAGES)
def test_anonymous_visitors_are_sent_to_the_login_page(client, campaign, pledges, page):
    url = page_urls(campaign)[page]
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{settings.LOGIN_URL}?next={url}"


def test_anonymous_visitors_are_sent_to_the_login_page_from_the_campaign_list(client, db):
    response = client.get(reverse("pledges:organizer_home"))
    assert response.status_code == 302
    assert response["Location"].startswith(settings.LOGIN_URL)


@pytest.mark.parametrize("page", PAGES)
def test_an_account_without_a_role_gets_403(client, campaign, pledges, stranger, page):
    client.force_login(stranger)
    response = client.get(page_urls(campaign)[page])
    assert response.status_code == 403
    assert LEAKY_NAME not in response.content.decode()


def test_an_account_without_a_role_gets_403_on_the_campaign_list(client, stranger):
    client.force_login(stranger)
    assert client.get(reverse("pledges:organizer_home")).status_code == 403


def test_a_role_in_another_campaign_gives_no_access(client, campaign, pledges, territories):
    from pledges.enums import OrganizerRoleKind
    from tests.organizer.factories import OrganizerRoleFactory
    from tests.pledges.factories import CampaignFactory

    other = CampaignFactory()
    user = OrganizerRoleFactory(campaign=other, kind=OrganizerRoleKind.NATIONAL).user
    client.force_login(user)
    assert client.get(page_urls(campaign)["dashboard"]).status_code == 403
    listed = client.get(reverse("pledges:organizer_home")).content.decode()
    assert other.title in listed
    assert campaign.title not in listed


@pytest.mark.parametrize("page", PAGES)
def test_wrong_method_gets_405(client, campaign, national, page):
    client.force_login(national)
    method = client.put if page == "exports" else client.post
    assert method(page_urls(campaign)[page]).status_code == 405


def test_unknown_campaign_is_404(client, national):
    client.force_login(national)
    assert client.get(reverse("pledges:organizer_dashboard", kwargs={"slug": "nope"})).status_code == 404


@pytest.mark.parametrize("user_fixture", ["delegate_69", "regional_ara", "national", "observer"])
@pytest.mark.parametrize("page", PAGES)
def test_organizers_with_a_role_read_every_page(client, campaign, pledges, request, user_fixture, page):
    client.force_login(request.getfixturevalue(user_fixture))
    response = client.get(page_urls(campaign)[page])
    assert response.status_code == 200
    if page == "map":
        assert response["Content-Type"].startswith("image/svg+xml")
    else:
        assert campaign.title in response.content.decode()


def test_observers_cannot_post_an_export(client, campaign, observer):
    client.force_login(observer)
    response = client.post(page_urls(campaign)["exports"], {"format": "csv"})
    assert response.status_code == 403
    assert not ExportJob.objects.exists()


def test_observers_see_no_export_form(client, campaign, observer):
    client.force_login(observer)
    body = client.get(page_urls(campaign)["exports"]).content.decode()
    assert 'name="format"' not in body
    assert 'method="post" class="form"' not in body


@pytest.mark.parametrize(
    "view", ["organizer_export_detail", "organizer_export_status", "organizer_export_download"]
)
def test_an_export_is_only_for_the_account_that_requested_it(
    client, campaign, delegate_69, national, export_of, view
):
    job = export_of(delegate_69)
    client.force_login(national)
    url = reverse(f"pledges:{view}", kwargs={"slug": campaign.slug, "export_id": job.pk})
    assert client.get(url).status_code == 404


@pytest.mark.parametrize(
    "view", ["organizer_export_detail", "organizer_export_status", "organizer_export_download"]
)
def test_an_export_beyond_the_current_scope_is_refused(client, campaign, delegate_69, export_of, view):
    """The delegate's role changed since: an export of Paris is no longer theirs to read."""
    job = export_of(delegate_69, codes=("75",))
    client.force_login(delegate_69)
    url = reverse(f"pledges:{view}", kwargs={"slug": campaign.slug, "export_id": job.pk})
    assert client.get(url).status_code == 403


@pytest.mark.parametrize(
    "view", ["organizer_export_detail", "organizer_export_status", "organizer_export_download"]
)
def test_export_pages_send_anonymous_visitors_to_login(client, campaign, delegate_69, export_of, view):
    job = export_of(delegate_69)
    url = reverse(f"pledges:{view}", kwargs={"slug": campaign.slug, "export_id": job.pk})
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(settings.LOGIN_URL)


@pytest.mark.parametrize(
    "view", ["organizer_export_detail", "organizer_export_status", "organizer_export_download"]
)
def test_export_pages_refuse_post(client, campaign, delegate_69, export_of, view):
    job = export_of(delegate_69)
    client.force_login(delegate_69)
    url = reverse(f"pledges:{view}", kwargs={"slug": campaign.slug, "export_id": job.pk})
    assert client.post(url).status_code == 405


def test_a_draft_campaign_is_readable_by_its_organizers(client, campaign, national):
    campaign.status = "draft"
    campaign.save()
    client.force_login(national)
    assert client.get(page_urls(campaign)["dashboard"]).status_code == 200
