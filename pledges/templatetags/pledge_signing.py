"""{% pledge_has_live campaign as has_pledge %}: whether the signed-in user has a live pledge there.

A tag rather than a view variable so that the campaign page's call to action needs no change in
the public views (one query per page for signed-in users, none for visitors).
"""

from django import template

from pledges.enums import LIVE_STATUSES
from pledges.models import Campaign, Pledge

register = template.Library()


@register.simple_tag(takes_context=True)
def pledge_has_live(context, campaign: Campaign) -> bool:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    # Asked twice per page (top and bottom call to action): remember the answer on the request.
    cache = request.__dict__.setdefault("_pledge_has_live", {})
    if campaign.pk not in cache:
        cache[campaign.pk] = Pledge.objects.filter(
            campaign=campaign, user=user, status__in=LIVE_STATUSES
        ).exists()
    return cache[campaign.pk]
