"""Conditions per territory: targets from ThresholdRule rows, gates, and why a territory waits.

Rules are data (pledges.models.ThresholdRule), read per campaign:

- target(territory) = max(min_count, ceil(min_share_percent / 100 x reference population)), the
  population being the campaign's `reference_population_kind`, latest year of each department
  (a region adds up its departments, the nation all of them). A rule with a territory code
  overrides its level's default (blank code). A level without any rule has no condition.
- A territory's own condition: count >= target; for a region rule with `min_departments_met`,
  also k of its departments meeting their own department condition. Without a rule, one
  signature is enough: there must be someone to release.
- Gates, for a territory at the campaign's release level: its region's condition when the
  region level has a rule (release at department level), the nation's condition when the
  nation level has a rule, and `campaign.national_gate_min_total` (no release anywhere before
  the national total reaches it).

Counts are the published ones (TerritoryCount): what the public sees is what is evaluated.
`campaign_conditions` evaluates every territory of a campaign in a fixed number of queries.
"""

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Max
from django.utils import formats, timezone
from django.utils.translation import gettext

from deconv.models import AuditEntry
from pledges.counting import NATION_CODE
from pledges.enums import RoundOutcome, TerritoryLevel, TerritoryStatus
from pledges.models import Campaign, ConfirmationRound, TerritoryCount, TerritoryState, ThresholdRule
from pledges.selectors import SMALL_COUNT_THRESHOLD, public_count
from territories.models import Department, Region
from territories.selectors import reference_population_latest

# Why a territory that meets its own condition is held back (Explanation.blocking_gate).
GATE_REGION = "region"
GATE_NATION = "nation"
GATE_NATIONAL_TOTAL = "national_total"

TerritoryKey = tuple[str, str]  # (level, code)

_LEVELS = (TerritoryLevel.DEPARTMENT.value, TerritoryLevel.REGION.value, TerritoryLevel.NATION.value)


@dataclass(frozen=True)
class Explanation:
    """Where one territory stands against its condition.

    `met` is the territory's own condition; `blocking_gate` names the gate (GATE_*) that holds a
    territory at the release level back although it is met. `status` is the territory's
    TerritoryStatus at the release level, None at other levels. `count` and `missing` are exact:
    publish them through `public_count` (`text` already does).
    """

    level: str
    code: str
    target: int | None
    count: int
    missing: int
    met: bool
    blocking_gate: str | None
    status: str | None
    has_rule: bool = False
    population_missing: bool = False
    departments_required: int | None = None
    departments_met: int | None = None
    national_gate: int = 0
    national_count: int = 0
    nation_target: int | None = None
    round_ends_at: datetime | None = None
    released_at: datetime | None = None
    confirmation_round: bool = True

    @property
    def releasable(self) -> bool:
        return self.met and self.blocking_gate is None

    @property
    def text(self) -> str:
        """One plain sentence for the public, in the current language; small counts stay hidden."""
        if self.status == TerritoryStatus.RELEASED:
            return gettext("Threshold reached and confirmed: the letters of this territory are released.")
        if self.status == TerritoryStatus.AWAITING_APPROVAL:
            return gettext("Threshold reached and confirmed: the release awaits the organizers' approval.")
        if self.status == TerritoryStatus.CONFIRMING:
            if self.round_ends_at is None:
                return gettext("Threshold reached: signatories are asked to confirm.")
            return gettext("Threshold reached: signatories are asked to confirm until %(date)s.") % {
                "date": formats.date_format(timezone.localtime(self.round_ends_at), "DATE_FORMAT")
            }
        if self.status == TerritoryStatus.EXPIRED:
            return gettext("The campaign ended before this territory was released.")
        if self.population_missing:
            return gettext(
                "The threshold cannot be computed yet: the reference population of this territory is missing."
            )
        if not self.has_rule and not self.met:
            return gettext("No threshold of its own: one signature is enough.")
        if not self.met:
            return self._shortfall_text()
        if self.blocking_gate == GATE_NATIONAL_TOTAL:
            return gettext(
                "Threshold reached, but the national rule holds the release: %(total)s signatures are "
                "needed across the country."
            ) % {"total": _number(self.national_gate)}
        if self.blocking_gate == GATE_NATION:
            return gettext(
                "Threshold reached, but the national threshold holds the release: %(total)s signatures are "
                "needed across the country."
            ) % {"total": _number(self.nation_target or 0)}
        if self.blocking_gate == GATE_REGION:
            return gettext(
                "Threshold reached, but the regional rule holds the release: the region must reach its own "
                "threshold first."
            )
        if self.status is None:
            return gettext("Threshold reached.")
        if self.confirmation_round:
            return gettext("Threshold reached: a confirmation round opens shortly.")
        return gettext("Threshold reached: the release is being prepared.")

    def _shortfall_text(self) -> str:
        sentences = []
        if self.target is not None and self.count < self.target:
            shown = public_count(self.count)
            if shown is None:
                sentences.append(
                    gettext("%(target)s signatures needed, fewer than %(threshold)s so far.")
                    % {"target": _number(self.target), "threshold": SMALL_COUNT_THRESHOLD}
                )
            else:
                sentences.append(
                    gettext("%(target)s signatures needed, %(count)s so far: %(missing)s missing.")
                    % {
                        "target": _number(self.target),
                        "count": _number(shown),
                        "missing": _number(self.missing),
                    }
                )
        if (
            self.departments_required is not None
            and self.departments_met is not None
            and self.departments_met < self.departments_required
        ):
            sentences.append(
                gettext("%(required)s of its departments must reach their threshold, %(met)s so far.")
                % {"required": self.departments_required, "met": self.departments_met}
            )
        return " ".join(sentences)


def _number(value: int) -> str:
    # "3 000" in French, "3,000" in English.
    return formats.number_format(value, force_grouping=True)


def _target(*, rule: ThresholdRule | None, population: int | None) -> tuple[int | None, bool]:
    """(target, population_missing) for a rule; (None, False) without a rule.

    A share of an unknown population cannot be computed: the target is then None and the
    condition is not met, rather than a target of `min_count` that would release too early.
    """
    if rule is None:
        return None, False
    share = Decimal(rule.min_share_percent)
    by_share = 0
    if share > 0:
        if not population:
            return None, True
        by_share = math.ceil(share * population / 100)
    # At least one signature: a territory with nobody to release never crosses.
    return max(rule.min_count, by_share, 1), False


@dataclass(frozen=True)
class _Rules:
    defaults: dict[str, ThresholdRule]
    overrides: dict[TerritoryKey, ThresholdRule]

    def rule_for(self, level: str, code: str) -> ThresholdRule | None:
        return self.overrides.get((level, code)) or self.defaults.get(level)

    def level_has_rules(self, level: str) -> bool:
        return level in self.defaults or any(key[0] == level for key in self.overrides)


def _rules(*, campaign: Campaign) -> _Rules:
    defaults, overrides = {}, {}
    for rule in ThresholdRule.objects.filter(campaign=campaign):
        if rule.territory_code:
            overrides[(rule.level, rule.territory_code)] = rule
        else:
            defaults[rule.level] = rule
    return _Rules(defaults=defaults, overrides=overrides)


def campaign_conditions(
    *, campaign: Campaign, counts_override: dict[TerritoryKey, int] | None = None
) -> dict[TerritoryKey, Explanation]:
    """(level, code) -> Explanation for every department, region and the nation, in 6 queries.

    `counts_override` replaces published counts for some territories: pledges.rounds evaluates a
    round's confirmed signatures against the same targets and gates this way.

    1. Read rules, departments (with their region), latest reference populations, published
       counts, territory states and open rounds: one query each.
    2. Departments first: target and own condition.
    3. Regions: population and count add up their departments; own condition includes k of n
       departments met when the rule asks for it. Then the nation.
    4. Gates for territories at the release level: region rule, nation rule, national total.
    """
    rules = _rules(campaign=campaign)
    departments = list(Department.objects.values_list("code", "region__code"))
    populations = reference_population_latest(kind=campaign.reference_population_kind)
    counts: dict[TerritoryKey, int] = {
        (level, code): pledges
        for level, code, pledges in TerritoryCount.objects.filter(campaign=campaign).values_list(
            "level", "code", "pledges"
        )
    }
    if counts_override:
        counts.update(counts_override)
    states = {(state.level, state.code): state for state in TerritoryState.objects.filter(campaign=campaign)}
    round_ends = {
        (level, code): ends_at
        for level, code, ends_at in ConfirmationRound.objects.filter(
            crossing__campaign=campaign, outcome=RoundOutcome.OPEN
        ).values_list("crossing__level", "crossing__code", "ends_at")
    }

    department_level, region_level, nation_level = _LEVELS
    # A region (the nation) adds up the departments whose population is known; None when none is.
    region_departments: dict[str, list[str]] = defaultdict(list)
    region_population: dict[str, int] = defaultdict(int)
    nation_population = 0
    for code, region_code in departments:
        region_departments[region_code].append(code)
        region_population[region_code] += populations.get(code, 0)
        nation_population += populations.get(code, 0)

    own: dict[TerritoryKey, dict] = {}

    def evaluate_own(
        level: str, code: str, population: int | None, departments_met: int | None = None
    ) -> None:
        rule = rules.rule_for(level, code)
        count = counts.get((level, code), 0)
        target, population_missing = _target(rule=rule, population=population)
        required = rule.min_departments_met if rule is not None and level == region_level else None
        if rule is None:
            met = count >= 1
        elif population_missing:
            met = False
        else:
            met = count >= target and (required is None or (departments_met or 0) >= required)
        own[(level, code)] = {
            "target": target,
            "count": count,
            "missing": max(0, target - count) if target is not None else 0,
            "met": met,
            "has_rule": rule is not None,
            "population_missing": population_missing,
            "departments_required": required,
            "departments_met": departments_met if required is not None else None,
        }

    for code, _region in departments:
        evaluate_own(department_level, code, populations.get(code))
    for region_code, codes in region_departments.items():
        met_count = sum(1 for code in codes if own[(department_level, code)]["met"])
        evaluate_own(
            region_level, region_code, region_population[region_code] or None, departments_met=met_count
        )
    evaluate_own(nation_level, NATION_CODE, nation_population or None)

    release_level = campaign.release_level
    region_of = dict(departments)
    national_count = counts.get((nation_level, NATION_CODE), 0)
    nation = own[(nation_level, NATION_CODE)]
    result: dict[TerritoryKey, Explanation] = {}
    for (level, code), values in own.items():
        gate = None
        status = None
        if level == release_level:
            state = states.get((level, code))
            status = state.status if state is not None else TerritoryStatus.COLLECTING.value
            gate = _blocking_gate(
                level=level,
                code=code,
                campaign=campaign,
                rules=rules,
                own=own,
                region_of=region_of,
                national_count=national_count,
            )
        state = states.get((level, code))
        result[(level, code)] = Explanation(
            level=level,
            code=code,
            blocking_gate=gate if values["met"] else None,
            status=status,
            national_gate=campaign.national_gate_min_total,
            national_count=national_count,
            nation_target=nation["target"],
            round_ends_at=round_ends.get((level, code)),
            released_at=state.released_at if state is not None else None,
            confirmation_round=campaign.confirmation_round,
            **values,
        )
    return result


def _blocking_gate(
    *,
    level: str,
    code: str,
    campaign: Campaign,
    rules: _Rules,
    own: dict[TerritoryKey, dict],
    region_of: dict[str, str],
    national_count: int,
) -> str | None:
    """The first gate (most local first) that holds a territory at the release level back."""
    if level == TerritoryLevel.DEPARTMENT and rules.level_has_rules(TerritoryLevel.REGION):
        region_code = region_of.get(code)
        if (
            rules.rule_for(TerritoryLevel.REGION, region_code) is not None
            and not own[(TerritoryLevel.REGION.value, region_code)]["met"]
        ):
            return GATE_REGION
    if (
        level != TerritoryLevel.NATION
        and rules.rule_for(TerritoryLevel.NATION, NATION_CODE) is not None
        and not own[(TerritoryLevel.NATION.value, NATION_CODE)]["met"]
    ):
        return GATE_NATION
    if national_count < campaign.national_gate_min_total:
        return GATE_NATIONAL_TOTAL
    return None


def territory_codes(*, level: str) -> list[str]:
    """Every territory code of a level: departments in official order, regions, or the nation."""
    if level == TerritoryLevel.DEPARTMENT:
        return list(Department.objects.order_by("position").values_list("code", flat=True))
    if level == TerritoryLevel.REGION:
        return list(Region.objects.order_by("code").values_list("code", flat=True))
    return [NATION_CODE]


def territory_explain(*, campaign: Campaign, level: str, code: str) -> Explanation:
    """Where one territory stands; raises KeyError for a territory that does not exist."""
    return campaign_conditions(campaign=campaign)[(level, code)]


def campaign_conditions_fingerprints(*, campaign_ids: list[int]) -> dict[int, tuple]:
    """What evaluation depends on, per campaign, in 4 queries: unchanged means nothing to do.

    Settings (Campaign.updated_at), rules (latest change and number, for deletions), published
    counts and territory states (latest change). Reference populations are not included: the
    caller re-evaluates anyway once its remembered fingerprint expires.
    """
    if not campaign_ids:
        return {}
    campaigns = dict(Campaign.objects.filter(pk__in=campaign_ids).values_list("pk", "updated_at"))
    counts = dict(
        TerritoryCount.objects.filter(campaign_id__in=campaign_ids)
        .values("campaign_id")
        .annotate(at=Max("updated_at"))
        .values_list("campaign_id", "at")
    )
    rules = {
        row["campaign_id"]: (row["at"], row["n"])
        for row in ThresholdRule.objects.filter(campaign_id__in=campaign_ids)
        .values("campaign_id")
        .annotate(at=Max("updated_at"), n=Count("pk"))
        .order_by()
    }
    states = dict(
        TerritoryState.objects.filter(campaign_id__in=campaign_ids)
        .values("campaign_id")
        .annotate(at=Max("updated_at"))
        .values_list("campaign_id", "at")
    )
    return {
        pk: (updated_at, counts.get(pk), rules.get(pk), states.get(pk))
        for pk, updated_at in campaigns.items()
    }


# --- Audit of organizers' rule changes ------------------------------------------------------

# Campaign fields that are part of its conditions: a change is audited like a rule change.
CAMPAIGN_CONDITION_FIELDS = (
    "release_level",
    "national_gate_min_total",
    "reference_population_kind",
    "confirmation_round",
    "round_days",
    "early_release",
    "approval_required",
    "milestone_emails",
    "purge_after_days",
    "closes_at",
)
_RULE_FIELDS = ("level", "territory_code", "min_count", "min_share_percent", "min_departments_met")


def _json_value(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def threshold_rule_snapshot(rule: ThresholdRule) -> dict:
    """The audited values of a rule, JSON-serialisable."""
    return {name: _json_value(getattr(rule, name)) for name in _RULE_FIELDS}


def threshold_rules_audit(
    *, actor, campaign: Campaign, before: dict[int, dict], after: dict[int, dict]
) -> int:
    """Write one AuditEntry per rule created, changed or deleted (snapshots keyed by rule id).

    Returns the number of entries written.
    """
    entries = []
    for pk in sorted(before.keys() | after.keys()):
        old, new = before.get(pk), after.get(pk)
        if old == new:
            continue
        action = (
            "threshold_rule.create"
            if old is None
            else "threshold_rule.delete"
            if new is None
            else "threshold_rule.update"
        )
        snapshot = new or old
        entries.append(
            AuditEntry(
                actor=actor,
                action=action,
                campaign_id=campaign.pk,
                territory_code=snapshot["territory_code"],
                object_type="ThresholdRule",
                object_id=str(pk),
                details={"level": snapshot["level"], "before": old, "after": new},
            )
        )
    AuditEntry.objects.bulk_create(entries)
    return len(entries)


def campaign_conditions_audit(*, actor, campaign: Campaign, before: dict) -> AuditEntry | None:
    """Audit a change of the campaign's condition settings; `before` maps field names to old values."""
    # Compared as values, written as JSON: two datetimes in different time zones are equal.
    changed = [
        name
        for name in CAMPAIGN_CONDITION_FIELDS
        if name in before and before[name] != getattr(campaign, name)
    ]
    if not changed:
        return None
    old = {name: _json_value(before[name]) for name in changed}
    new = {name: _json_value(getattr(campaign, name)) for name in changed}
    return AuditEntry.objects.create(
        actor=actor,
        action="campaign.conditions_update",
        campaign_id=campaign.pk,
        object_type="Campaign",
        object_id=str(campaign.pk),
        details={"before": old, "after": new},
    )
