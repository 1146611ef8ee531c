from collections.abc import Iterable

from django.db.models import F, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from pledges.counting import COUNTER_STATE_PK, NATION_CODE
from pledges.enums import CampaignStatus, TerritoryLevel
from pledges.models import Campaign, CounterState, TerritoryCount
from territories.models import Department


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


def campaign_list_public() -> QuerySet[Campaign]:
    """Every campaign anyone may see (all statuses but draft), by title."""
    return Campaign.objects.exclude(status=CampaignStatus.DRAFT).order_by("title", "pk")


def campaign_get_public(*, slug: str) -> Campaign:
    """A campaign anyone may see: every status but draft. Raises Http404 otherwise."""
    campaign = Campaign.objects.exclude(status=CampaignStatus.DRAFT).filter(slug=slug).first()
    if campaign is None:
        raise Http404("No such campaign")
    return campaign


# --- Public counts --------------------------------------------------------------------------
# Counts of 1 to 4 in a territory are never published (as the CNAM's "NS"): with so few
# signers, a colleague could guess who signed. 0 reveals no one and is shown.
SMALL_COUNT_THRESHOLD = 5
NATION_NAME = "France"


def public_count(value: int) -> int | None:
    """The count as published: None (suppressed) from 1 to SMALL_COUNT_THRESHOLD - 1."""
    if 0 < value < SMALL_COUNT_THRESHOLD:
        return None
    return value


def _territory_entry(*, code: str, name: str, level: str, value: int) -> dict:
    shown = public_count(value)
    return {"code": code, "name": name, "level": level, "pledges": shown, "suppressed": shown is None}


def counter_state_public() -> dict:
    """When counts were last brought up to date (None before the first run) and how often they are."""
    state = (
        CounterState.objects.filter(pk=COUNTER_STATE_PK).values("counted_until", "interval_seconds").first()
    )
    if state is None:
        return {
            "updated_at": None,
            "interval_seconds": CounterState._meta.get_field("interval_seconds").default,
        }
    return {"updated_at": state["counted_until"], "interval_seconds": state["interval_seconds"]}


def campaign_national_counts(*, campaign_ids: Iterable[int]) -> dict[int, dict]:
    """Campaign id -> {"pledges": int | None, "suppressed": bool} for the nation, in one query."""
    ids = list(campaign_ids)
    values = dict(
        TerritoryCount.objects.filter(
            campaign_id__in=ids, level=TerritoryLevel.NATION, code=NATION_CODE
        ).values_list("campaign_id", "pledges")
    )
    result = {}
    for campaign_id in ids:
        shown = public_count(values.get(campaign_id, 0))
        result[campaign_id] = {"pledges": shown, "suppressed": shown is None}
    return result


def campaign_public_conditions(*, campaign: Campaign) -> dict[tuple[str, str], dict]:
    """(level, code) -> the public side of each territory's condition, in a fixed number of queries.

    {"target" (None: no rule at this level), "missing" (None without a target, or when the count
    is suppressed: target - missing would reveal it), "status" (None outside the release level),
    "round_ends_at", "released_at" (None when not applicable), "text"} (pledges.conditions).
    """
    from pledges.conditions import campaign_conditions

    result = {}
    for key, explanation in campaign_conditions(campaign=campaign).items():
        shown = public_count(explanation.count)
        result[key] = {
            "target": explanation.target,
            "missing": explanation.missing if explanation.target is not None and shown is not None else None,
            "status": explanation.status,
            "round_ends_at": explanation.round_ends_at,
            "released_at": explanation.released_at,
            "text": explanation.text,
        }
    return result


CONDITION_FIELDS = ("target", "missing", "status", "round_ends_at", "released_at")


def counts_with_conditions(
    *, counts: dict, conditions: dict[tuple[str, str], dict], with_text: bool = False
) -> dict:
    """A copy of campaign_public_counts' answer whose entries carry their condition's fields."""
    fields = (*CONDITION_FIELDS, "text") if with_text else CONDITION_FIELDS
    empty = dict.fromkeys(fields)

    def enrich(entry: dict) -> dict:
        condition = conditions.get((entry["level"], entry["code"]), empty)
        return {**entry, **{name: condition.get(name) for name in fields}}

    return {
        **counts,
        "nation": enrich(counts["nation"]),
        "regions": [enrich(entry) for entry in counts["regions"]],
        "departments": [enrich(entry) for entry in counts["departments"]],
    }


def campaign_public_counts(*, campaign: Campaign, with_conditions: bool = False) -> dict:
    """Published counts of a campaign for the nation, every region and every department, in 3 queries.

    Departments come in official order (position), regions in INSEE code order; every territory is
    listed, 0 when nobody signed there. Each entry is {"code", "name", "level", "pledges" (None
    when suppressed), "suppressed"}. `updated_at` is the moment counts include events up to.
    `with_conditions` adds CONDITION_FIELDS to each entry (campaign_public_conditions' queries).
    """
    if with_conditions:
        return counts_with_conditions(
            counts=campaign_public_counts(campaign=campaign),
            conditions=campaign_public_conditions(campaign=campaign),
        )
    counted = {
        (level, code): pledges
        for level, code, pledges in TerritoryCount.objects.filter(campaign=campaign).values_list(
            "level", "code", "pledges"
        )
    }
    departments = list(Department.objects.select_related("region").order_by("position"))
    state = counter_state_public()

    regions = {department.region.code: department.region for department in departments}
    return {
        "nation": _territory_entry(
            code=NATION_CODE,
            name=NATION_NAME,
            level=TerritoryLevel.NATION.value,
            value=counted.get((TerritoryLevel.NATION, NATION_CODE), 0),
        ),
        "regions": [
            _territory_entry(
                code=code,
                name=regions[code].name,
                level=TerritoryLevel.REGION.value,
                value=counted.get((TerritoryLevel.REGION, code), 0),
            )
            for code in sorted(regions)
        ],
        "departments": [
            _territory_entry(
                code=department.code,
                name=department.name,
                level=TerritoryLevel.DEPARTMENT.value,
                value=counted.get((TerritoryLevel.DEPARTMENT, department.code), 0),
            )
            for department in departments
        ],
        "updated_at": state["updated_at"],
        "interval_seconds": state["interval_seconds"],
    }
