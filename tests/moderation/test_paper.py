"""Paper pledges: same validation as online, duplicates refused plainly, source shown, counted."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from deconv.models import AuditEntry
from pledges.counting import counts_update
from pledges.enums import PledgeEventKind, PledgeSource, PledgeStatus
from pledges.models import CounterState, Pledge, PledgeEvent, TerritoryCount
from pledges.moderation import paper_pledge_create
from territories.models import Department
from tests.moderation.factories import pledge_make
from tests.pledges.signing_support import RPPS_A, form_data, service_data

pytestmark = pytest.mark.django_db


def paper_form(**overrides) -> dict:
    data = form_data(**overrides)
    for name in ("consent_pledge", "consent_data", "website"):
        data.pop(name)
    data["attest"] = "on"
    return data


def test_a_paper_pledge_is_recorded_without_account_and_counted(campaign, delegate_ain):
    CounterState.objects.update_or_create(pk=1, defaults={"lag_seconds": 0})

    pledge = paper_pledge_create(campaign=campaign, organizer=delegate_ain, data=service_data())

    assert (pledge.source, pledge.status, pledge.user, pledge.entered_by) == (
        PledgeSource.PAPER,
        PledgeStatus.ACTIVE,
        None,
        delegate_ain,
    )
    assert (pledge.rpps, pledge.department.code, pledge.caisse.department.code) == (RPPS_A, "01", "01")
    assert pledge.signed_ip is None
    assert PledgeEvent.objects.get(pledge=pledge).kind == PledgeEventKind.PLEDGED
    counts_update()
    assert TerritoryCount.objects.get(campaign=campaign, level="department", code="01").pledges == 1
    entry = AuditEntry.objects.get(action="pledge.paper_create")
    assert (entry.actor, entry.territory_code, entry.object_id, entry.details) == (
        delegate_ain,
        "01",
        str(pledge.pk),
        {},
    )


@pytest.mark.parametrize("source", ["online", "paper"])
def test_a_second_pledge_with_the_same_rpps_is_refused_with_a_clear_message(campaign, national, source):
    pledge_make(campaign=campaign, rpps=RPPS_A, source=source)

    with pytest.raises(ValidationError) as refused:
        paper_pledge_create(campaign=campaign, organizer=national, data=service_data())

    assert refused.value.message_dict["rpps"] == [
        "This physician already has a pledge in this campaign (online or on paper): nothing was recorded."
    ]
    assert Pledge.objects.filter(rpps=RPPS_A).count() == 1


def test_a_withdrawn_or_invalidated_pledge_does_not_block_a_paper_letter(campaign, national):
    pledge_make(campaign=campaign, rpps=RPPS_A, status=PledgeStatus.INVALIDATED)

    assert paper_pledge_create(campaign=campaign, organizer=national, data=service_data()).status == "active"


def test_paper_pledges_follow_the_online_rules_and_the_organizer_territory(
    campaign, delegate_paris, observer
):
    with pytest.raises(ValidationError, match="outside your territory"):
        paper_pledge_create(campaign=campaign, organizer=delegate_paris, data=service_data())
    with pytest.raises(ValidationError, match="not valid"):
        paper_pledge_create(
            campaign=campaign, organizer=delegate_paris, data=service_data(rpps="12345678901")
        )
    with pytest.raises(ValidationError, match="postal code"):
        paper_pledge_create(
            campaign=campaign,
            organizer=delegate_paris,
            data=service_data(department=Department.objects.get(code="75"), postal_code="01000"),
        )
    with pytest.raises(PermissionDenied):
        paper_pledge_create(campaign=campaign, organizer=observer, data=service_data())
    assert not Pledge.objects.exists()


def test_paper_form_records_the_letter_and_shows_its_source(campaign, delegate_ain, as_user):
    client = as_user(delegate_ain)
    url = reverse("pledges:organizer_paper", kwargs={"slug": campaign.slug})

    page = client.get(url)
    assert "consent_pledge" not in page.context["form"].fields
    assert [str(value) for value, _label in page.context["form"].fields["department"].choices if value] == [
        "01"
    ]

    response = client.post(url, paper_form())
    pledge = Pledge.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{url}?recorded={pledge.pk}"
    assert pledge.source == PledgeSource.PAPER
    listing = client.get(response["Location"])
    assert b"Paper, entered by an organizer" in listing.content


def test_paper_form_requires_the_attestation_and_refuses_duplicates(campaign, national, as_user):
    client = as_user(national)
    url = reverse("pledges:organizer_paper", kwargs={"slug": campaign.slug})

    unattested = client.post(url, {**paper_form(), "attest": ""})
    assert unattested.status_code == 400
    assert "attest" in unattested.context["form"].errors

    pledge_make(campaign=campaign, rpps=RPPS_A)
    duplicate = client.post(url, paper_form())
    assert duplicate.status_code == 400
    assert duplicate.context["form"].errors["rpps"] == [
        "This physician already has a pledge in this campaign (online or on paper): nothing was recorded."
    ]
    assert Pledge.objects.count() == 1
