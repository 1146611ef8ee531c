from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from pledges.selectors import campaign_get_public, campaign_list_open


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "pledges/home.html", {"campaigns": list(campaign_list_open())})


def campaign_detail(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = campaign_get_public(slug=slug)
    return render(
        request,
        "pledges/campaign_detail.html",
        {"campaign": campaign, "letter_version": campaign.current_letter_version},
    )
