"""Conditions on the campaign page and the round on "Mon engagement".

conditions_table(campaign=..., counts=...): `counts` (campaign_public_counts) with each entry's
condition fields and text, plus `lines` (release-level territories with signatures). The campaign
page's view computes it once per cache period for every visitor (pledges.views.public); the
{% campaign_conditions_table campaign counts as table %} tag gives the same to other templates.
{% pledge_round pledge as round_info %}: the open round the signer is asked to answer, or None.
"""

from django import template
from django.urls import reverse

from pledges.enums import PledgeStatus, TerritoryStatus
from pledges.models import Campaign, Pledge
from pledges.rounds import round_answer_of, round_open_for_pledge
from pledges.selectors import campaign_public_conditions, counts_with_conditions

register = template.Library()


def conditions_table(*, campaign: Campaign, counts: dict) -> dict:
    """The table in the active language, as plain data: it is cached and shared between visitors."""
    table = counts_with_conditions(
        counts=counts, conditions=campaign_public_conditions(campaign=campaign), with_text=True
    )
    for entry in (*table["departments"], *table["regions"], table["nation"]):
        # str(): a lazy label would be pickled into the cache and translated at each reading.
        entry["status_label"] = str(TerritoryStatus(entry["status"]).label) if entry["status"] else ""
    level_entries = {
        "department": table["departments"],
        "region": table["regions"],
        "nation": [table["nation"]],
    }.get(campaign.release_level, table["departments"])
    table["lines"] = [
        entry for entry in level_entries if entry["pledges"] != 0 and entry["target"] is not None
    ]
    table["national_gate"] = campaign.national_gate_min_total
    return table


@register.simple_tag
def campaign_conditions_table(campaign: Campaign, counts: dict) -> dict:
    return conditions_table(campaign=campaign, counts=counts)


@register.simple_tag
def pledge_round(pledge: Pledge | None) -> dict | None:
    if pledge is None or pledge.status != PledgeStatus.ACTIVE:
        return None
    round = round_open_for_pledge(pledge=pledge)
    if round is None:
        return None
    from pledges.notifications import territory_name

    crossing = round.crossing
    return {
        "round": round,
        "ends_at": round.ends_at,
        "territory_name": territory_name(level=crossing.level, code=crossing.code),
        "answer": round_answer_of(round=round, pledge=pledge),
        "url": reverse("pledges:round_confirm", kwargs={"slug": crossing.campaign.slug}),
    }
