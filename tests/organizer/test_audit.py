"""The audit log page: who reads which entries, pagination."""

import pytest
from django.urls import reverse

from deconv.models import AuditEntry
from pledges.views.organizer import AUDIT_PAGE_SIZE

pytestmark = pytest.mark.django_db


@pytest.fixture
def entries(campaign, national):
    def entry(action, territory_code="", **details):
        return AuditEntry.objects.create(
            actor=national,
            action=action,
            campaign_id=campaign.pk,
            territory_code=territory_code,
            details=details,
        )

    return {
        "campaign_wide": entry("campaign.conditions_update"),
        "rhone": entry("pledge.invalidate", "69"),
        "paris": entry("pledge.invalidate-paris", "75"),
        # "84" is a region here (Auvergne-Rhône-Alpes), and also the Vaucluse department's code.
        "region_ara": entry("threshold_rule.update-ara", "84", level="region"),
        "vaucluse": entry("pledge.invalidate-vaucluse", "84"),
        "other_campaign": AuditEntry.objects.create(
            actor=national, action="elsewhere", campaign_id=campaign.pk + 1000
        ),
    }


def audit(client, campaign, user, **params):
    client.force_login(user)
    response = client.get(reverse("pledges:organizer_audit", kwargs={"slug": campaign.slug}), params)
    assert response.status_code == 200
    return response.content.decode()


def test_national_organizers_read_every_entry_of_the_campaign(client, campaign, national, entries):
    body = audit(client, campaign, national)
    for name in [
        "campaign.conditions_update",
        "pledge.invalidate-paris",
        "threshold_rule.update-ara",
        "pledge.invalidate-vaucluse",
    ]:
        assert name in body
    assert "elsewhere" not in body


def test_a_departmental_delegate_reads_their_department_and_campaign_wide_entries(
    client, campaign, delegate_69, entries
):
    body = audit(client, campaign, delegate_69)
    assert "campaign.conditions_update" in body
    assert "<code>pledge.invalidate</code>" in body
    assert "pledge.invalidate-paris" not in body
    assert "pledge.invalidate-vaucluse" not in body
    # Rhône is in Auvergne-Rhône-Alpes: the region's rule concerns it.
    assert "threshold_rule.update-ara" in body


def test_a_region_code_is_not_read_as_the_department_with_the_same_code(client, campaign, entries):
    from pledges.enums import OrganizerRoleKind
    from tests.organizer.factories import OrganizerRoleFactory

    vaucluse = OrganizerRoleFactory(
        campaign=campaign, kind=OrganizerRoleKind.DEPARTMENTAL, territory_code="84"
    ).user
    body = audit(client, campaign, vaucluse)
    assert "pledge.invalidate-vaucluse" in body
    assert "threshold_rule.update-ara" not in body


def test_the_audit_log_is_paginated(client, campaign, national):
    AuditEntry.objects.bulk_create(
        [
            AuditEntry(actor=national, action=f"action-{i:03d}", campaign_id=campaign.pk)
            for i in range(AUDIT_PAGE_SIZE + 5)
        ]
    )
    first = audit(client, campaign, national)
    second = audit(client, campaign, national, page=2)
    assert first.count("<code>action-") == AUDIT_PAGE_SIZE
    assert second.count("<code>action-") == 5
    assert 'rel="next"' in first and 'rel="prev"' in second
    assert audit(client, campaign, national, page="nonsense").count("<code>action-") == AUDIT_PAGE_SIZE
