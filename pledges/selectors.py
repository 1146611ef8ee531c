from django.db.models import F, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from pledges.enums import CampaignStatus
from pledges.models import Campaign


def campaign_list_open() -> QuerySet[Campaign]:
    """Campaigns marked open whose closing date has not passed, closing soonest first.

    A campaign that opens later is listed too (its page says when signing starts); one left
    "open" after its closing date is not, so the home page never advertises a finished campaign.
    """
    return (
        Campaign.objects.filter(status=CampaignStatus.OPEN)
        .filter(Q(closes_at__isnull=True) | Q(closes_at__gt=timezone.now()))
        .order_by(F("closes_at").asc(nulls_last=True), "title", "pk")
    )


def campaign_get_public(*, slug: str) -> Campaign:
    """A campaign anyone may see: every status but draft. Raises Http404 otherwise."""
    campaign = Campaign.objects.exclude(status=CampaignStatus.DRAFT).filter(slug=slug).first()
    if campaign is None:
        raise Http404("No such campaign")
    return campaign
