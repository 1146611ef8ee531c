from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from pledges.enums import CampaignStatus
from pledges.selectors import campaign_list_open
from tests.pledges.factories import CampaignFactory, LetterVersionFactory

pytestmark = pytest.mark.django_db


def test_home_lists_open_campaigns_only(client):
    now = timezone.now()
    open_campaign = CampaignFactory(title="Campagne ouverte")
    CampaignFactory(title="Brouillon caché", status=CampaignStatus.DRAFT)
    CampaignFactory(title="Campagne suspendue", status=CampaignStatus.PAUSED)
    CampaignFactory(title="Campagne close", status=CampaignStatus.CLOSED)
    CampaignFactory(
        title="Ouverte mais échue", opens_at=now - timedelta(days=30), closes_at=now - timedelta(days=1)
    )

    response = client.get(reverse("pledges:home"))

    assert response.status_code == 200
    assert response.templates[0].name == "pledges/home.html"
    assert response.context["campaigns"] == [open_campaign]
    content = response.content.decode()
    assert "Campagne ouverte" in content
    assert "Brouillon caché" not in content
    assert "Ouverte mais échue" not in content


def test_open_campaigns_close_soonest_first_then_without_closing_date():
    now = timezone.now()
    later = CampaignFactory(closes_at=now + timedelta(days=60))
    no_end = CampaignFactory(closes_at=None)
    sooner = CampaignFactory(closes_at=now + timedelta(days=5))

    assert list(campaign_list_open()) == [sooner, later, no_end]


def test_campaign_detail_shows_the_campaign_and_its_current_letter(client, campaign):
    current = LetterVersionFactory(campaign=campaign, body="Texte de la version 2 pour {last_name}.")

    response = client.get(reverse("pledges:campaign_detail", kwargs={"slug": campaign.slug}))

    assert response.status_code == 200
    # The territories' part is rendered first, on its own: it is cached for every visitor.
    assert [template.name for template in response.templates][:2] == [
        "pledges/campaign_territories.html",
        "pledges/campaign_detail.html",
    ]
    assert response.context["campaign"] == campaign
    assert response.context["letter_version"] == current
    content = response.content.decode()
    assert campaign.title in content
    assert "Texte de la version 2 pour {last_name}." in content


@pytest.mark.parametrize("status", [CampaignStatus.PAUSED, CampaignStatus.CLOSED])
def test_paused_and_closed_campaigns_stay_visible(client, status):
    campaign = CampaignFactory(status=status)

    response = client.get(reverse("pledges:campaign_detail", kwargs={"slug": campaign.slug}))

    assert response.status_code == 200
    assert response.context["campaign"] == campaign
    assert response.context["letter_version"] is None


def test_draft_campaign_is_404(client):
    draft = CampaignFactory(status=CampaignStatus.DRAFT, title="Brouillon secret")
    LetterVersionFactory(campaign=draft)

    response = client.get(reverse("pledges:campaign_detail", kwargs={"slug": draft.slug}))

    assert response.status_code == 404
    assert "Brouillon secret" not in response.content.decode()


def test_unknown_campaign_is_404(client):
    response = client.get(reverse("pledges:campaign_detail", kwargs={"slug": "nowhere"}))

    assert response.status_code == 404
