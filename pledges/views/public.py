from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from pledges.selectors import (
    campaign_get_public,
    campaign_list_open,
    campaign_national_counts,
    campaign_public_counts,
)


def home(request: HttpRequest) -> HttpResponse:
    campaigns = list(campaign_list_open())
    counts = campaign_national_counts(campaign_ids=[campaign.pk for campaign in campaigns])
    for campaign in campaigns:
        campaign.national_count = counts[campaign.pk]
    return render(request, "pledges/home.html", {"campaigns": campaigns})


def campaign_detail(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = campaign_get_public(slug=slug)
    return render(
        request,
        "pledges/campaign_detail.html",
        {
            "campaign": campaign,
            "letter_version": campaign.current_letter_version,
            "counts": campaign_public_counts(campaign=campaign),
        },
    )
