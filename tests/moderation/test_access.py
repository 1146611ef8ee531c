"""Every moderation page against every kind of visitor (hc's alice/bob/charlie, pretalx's leak rule).

A distinctive pledge in Ain is created first: it must not reach the delegate of Paris through any
page (search, pledge page, trending, bulk preview, paper list, counts).
"""

import pytest
from django.urls import reverse

from pledges.enums import PledgeStatus
from pledges.models import BulkInvalidation, DirectoryImport, Pledge
from tests.moderation.factories import pledge_make

pytestmark = pytest.mark.django_db

DISTINCTIVE = (b"Distinct", b"ain-distinct", b"198.51.100")

# name -> (URL name, extra kwargs, methods allowed). "{pledge}", "{bulk}" and "{import}" are filled in.
PAGES = {
    "search": ("organizer_moderation", {}, {"GET"}),
    "pledge": ("organizer_moderation_pledge", {"pledge_id": "{pledge}"}, {"GET"}),
    "trending": ("organizer_moderation_trending", {}, {"GET"}),
    "bulk_new": ("organizer_bulk_new", {}, {"GET", "POST"}),
    "bulk_detail": ("organizer_bulk_detail", {"bulk_id": "{bulk}"}, {"GET"}),
    "bulk_status": ("organizer_bulk_status", {"bulk_id": "{bulk}"}, {"GET"}),
    "directory": ("organizer_directory", {}, {"GET", "POST"}),
    "directory_detail": ("organizer_directory_detail", {"import_id": "{import}"}, {"GET"}),
    "directory_status": ("organizer_directory_status", {"import_id": "{import}"}, {"GET"}),
    "paper": ("organizer_paper", {}, {"GET", "POST"}),
    "flag": ("organizer_moderation_flag", {"pledge_id": "{pledge}"}, {"POST"}),
    "unflag": ("organizer_moderation_unflag", {"pledge_id": "{pledge}"}, {"POST"}),
    "invalidate": ("organizer_moderation_invalidate", {"pledge_id": "{pledge}"}, {"POST"}),
    "reinstate": ("organizer_moderation_reinstate", {"pledge_id": "{pledge}"}, {"POST"}),
    "bulk_cancel": ("organizer_bulk_cancel", {"bulk_id": "{bulk}"}, {"POST"}),
    "directory_verify": ("organizer_directory_verify", {}, {"POST"}),
}
READABLE = [name for name, (_url, _kwargs, methods) in PAGES.items() if "GET" in methods]
WRITABLE = [name for name, (_url, _kwargs, methods) in PAGES.items() if "POST" in methods]
NATIONAL_ONLY = {"directory", "directory_detail", "directory_status", "directory_verify"}
# Pages about one object of Ain: another department's delegate gets a 404, as if it did not exist.
AIN_OBJECTS = {
    "pledge",
    "bulk_detail",
    "bulk_status",
    "flag",
    "unflag",
    "invalidate",
    "reinstate",
    "bulk_cancel",
}


@pytest.fixture
def objects(campaign, ain_pledge, delegate_ain):
    bulk = BulkInvalidation.objects.create(
        campaign=campaign,
        rule={"email_domain": "nothing.example", "scope": ["01"]},
        reason="Test",
        preview_count=0,
        created_by=delegate_ain,
    )
    directory_import = DirectoryImport.objects.create(file_name="PS_LibreAcces_Personne_activite_1.txt")
    return {"pledge": ain_pledge.pk, "bulk": bulk.pk, "import": directory_import.pk}


@pytest.fixture
def url(campaign, objects):
    def build(name: str) -> str:
        url_name, extra, _methods = PAGES[name]
        kwargs = {key: str(value).format(**objects) for key, value in extra.items()}
        return reverse(f"pledges:{url_name}", kwargs={"slug": campaign.slug, **kwargs})

    return build


def assert_unchanged(pledge_id: int) -> None:
    pledge = Pledge.objects.get(pk=pledge_id)
    assert (pledge.status, pledge.flagged) == (PledgeStatus.ACTIVE, False)


@pytest.mark.parametrize("name", PAGES)
def test_anonymous_visitors_are_sent_to_the_login_page(client, url, name):
    method = "get" if "GET" in PAGES[name][2] else "post"

    response = getattr(client, method)(url(name))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login") + "?next=")


@pytest.mark.parametrize("name", PAGES)
def test_an_account_without_a_role_gets_403(as_user, no_role, url, objects, name):
    method = "get" if "GET" in PAGES[name][2] else "post"

    response = getattr(as_user(no_role), method)(url(name), {"reason": "x"})

    assert response.status_code == 403
    assert_unchanged(objects["pledge"])


@pytest.mark.parametrize("name", READABLE)
def test_an_observer_reads_every_page(as_user, observer, url, name):
    response = as_user(observer).get(url(name))

    assert response.status_code == 200
    if name in ("search", "pledge"):
        assert b"Distinct" in response.content


@pytest.mark.parametrize("name", WRITABLE)
def test_an_observer_cannot_change_anything(as_user, observer, url, objects, name):
    response = as_user(observer).post(url(name), {"reason": "x", "email_domain": "ain-distinct.example"})

    assert response.status_code == 403
    assert_unchanged(objects["pledge"])
    assert BulkInvalidation.objects.get().cancel_requested_at is None


@pytest.mark.parametrize("name", READABLE)
def test_a_national_organizer_reads_every_page(as_user, national, url, name):
    response = as_user(national).get(url(name))

    assert response.status_code == 200
    if name in ("search", "pledge"):
        assert b"Distinct" in response.content


@pytest.mark.parametrize("name", READABLE)
def test_the_right_delegate_sees_their_pledge_but_not_the_national_directory(
    as_user, delegate_ain, url, name
):
    response = as_user(delegate_ain).get(url(name))

    if name in NATIONAL_ONLY:
        assert response.status_code == 403
    else:
        assert response.status_code == 200
    if name in ("search", "pledge"):
        assert b"Distinct" in response.content
    if name == "pledge":
        # The network and the email domain, linked to the search; not the address itself.
        assert b"?ip=198.51.100.0/24" in response.content
        assert b"?email_domain=ain-distinct.example" in response.content
        assert b"198.51.100.77" not in response.content


@pytest.mark.parametrize("name", PAGES)
def test_the_delegate_of_another_department_sees_and_touches_nothing_of_ain(
    as_user, delegate_paris, url, objects, name
):
    method = "get" if "GET" in PAGES[name][2] else "post"

    response = getattr(as_user(delegate_paris), method)(
        url(name), {"reason": "x"} if method == "post" else {}
    )

    if name in NATIONAL_ONLY:
        assert response.status_code == 403
    elif name in AIN_OBJECTS:
        assert response.status_code == 404
    else:
        assert response.status_code in (200, 400) if method == "post" else response.status_code == 200
        for text in DISTINCTIVE:
            assert text not in response.content
    assert_unchanged(objects["pledge"])


def test_search_preview_trending_and_counts_leave_out_another_department(
    campaign, as_user, delegate_paris, ain_pledge, url
):
    paris = pledge_make(campaign=campaign, department="75", email="p@ain-distinct.example", ip="198.51.100.5")
    client = as_user(delegate_paris)

    search = client.get(url("search"), {"email_domain": "ain-distinct.example"})
    assert [pledge.pk for pledge in search.context["page"].object_list] == [paris.pk]
    assert search.context["page"].paginator.count == 1

    preview = client.get(url("bulk_new"), {"email_domain": "ain-distinct.example"})
    assert preview.context["preview"].count == 1
    assert [pledge.pk for pledge in preview.context["sample"]] == [paris.pk]

    trending = client.get(url("trending"))
    assert [(row.value, row.count) for row in trending.context["networks"]] == [("198.51.100.0/24", 1)]
    assert [(row.value, row.count) for row in trending.context["domains"]] == [("ain-distinct.example", 1)]

    by_name = client.get(url("search"), {"name": "Zéphyrin"})
    assert by_name.context["page"].paginator.count == 0


@pytest.mark.parametrize("name", PAGES)
def test_other_methods_are_405(as_user, national, url, name):
    client = as_user(national)
    allowed = PAGES[name][2]

    if "GET" not in allowed:
        assert client.get(url(name)).status_code == 405
    if "POST" not in allowed:
        assert client.post(url(name)).status_code == 405
    assert client.put(url(name)).status_code == 405
    assert client.delete(url(name)).status_code == 405


# --- The one-pledge actions through their pages --------------------------------------------------


def test_the_right_delegate_invalidates_then_reinstates_from_the_pledge_page(
    as_user, delegate_ain, url, objects
):
    client = as_user(delegate_ain)

    response = client.post(url("invalidate"), {"reason": "Usurpation d'identité"}, follow=True)
    assert response.redirect_chain == [(url("pledge"), 302)]
    assert b"The pledge is invalidated" in response.content
    pledge = Pledge.objects.get(pk=objects["pledge"])
    assert (pledge.status, pledge.invalidation_reason) == (PledgeStatus.INVALIDATED, "Usurpation d'identité")

    response = client.post(url("reinstate"), follow=True)
    assert b"The pledge is active again" in response.content
    assert Pledge.objects.get(pk=objects["pledge"]).status == PledgeStatus.ACTIVE


def test_invalidating_without_a_reason_is_refused_with_a_message(as_user, delegate_ain, url, objects):
    response = as_user(delegate_ain).post(url("invalidate"), {"reason": ""}, follow=True)

    assert b"Give a reason." in response.content
    assert_unchanged(objects["pledge"])


def test_bad_search_input_is_a_form_error_not_a_500(as_user, national, url):
    response = as_user(national).get(
        url("search"),
        {"ip": "999.1.1.1/99", "email_domain": "not a domain", "created_from": "yesterday", "page": "x"},
    )

    assert response.status_code == 200
    assert set(response.context["form"].errors) == {"ip", "email_domain", "created_from"}
