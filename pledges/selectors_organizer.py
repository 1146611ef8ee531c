"""Reads for the organizer pages: every figure is an SQL aggregate, limited to the organizer's scope.

A dashboard costs a fixed number of queries whatever the number of pledges and territories
(tests/organizer/test_queries.py pins it): one grouped aggregate over the pledges, one over
letters, one over round responses, one per day for the chart, plus the territories and the
conditions (pledges.conditions). Nothing here iterates over pledges in Python.
"""

import hashlib
import math
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from dateutil.relativedelta import relativedelta
from django.core.cache import cache
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from deconv.models import AuditEntry
from pledges.access import OrganizerScope, scope_filter
from pledges.conditions import campaign_conditions
from pledges.enums import COUNTED_STATUSES, PledgeStatus, RoundAnswer, TerritoryLevel, TerritoryStatus
from pledges.models import Campaign, Letter, OrganizerRole, Pledge, RoundResponse, TerritoryCount
from territories.models import Department
from territories.selectors import reference_population_latest

# The projection's rate: pledges of the last PROJECTION_WINDOW_DAYS days, per day.
PROJECTION_WINDOW_DAYS = 14
# Past days of the chart are cached a day at most (the key holds the date, so midnight renews it).
DAILY_CACHE_SECONDS = 24 * 3600


def organizer_campaign_list(*, user) -> QuerySet[Campaign]:
    """The campaigns whose organizer pages this account may open (every campaign for a superuser)."""
    campaigns = Campaign.objects.order_by("-created_at", "pk")
    if user.is_superuser:
        return campaigns
    roles = OrganizerRole.objects.filter(user=user)
    if roles.filter(campaign__isnull=True).exists():
        return campaigns
    return campaigns.filter(organizer_roles__user=user).distinct()


def user_has_organizer_role(*, user) -> bool:
    """Whether to show the organizers' link: one query at most, none for a superuser."""
    if not user.is_authenticated:
        return False
    return user.is_superuser or OrganizerRole.objects.filter(user=user).exists()


# --- Arithmetic ---------------------------------------------------------------------------


def effective_cutoff(*, today: date) -> date:
    """The latest acknowledgement date whose departure has taken effect by `today`.

    Leaving takes effect one month after the acknowledgement (Letter.effective_on: ack + 1
    month, clamped at month ends), so "effective" is `acknowledged_on <= cutoff` in SQL. Simply
    subtracting a month is wrong at month ends: acknowledged on 31 January takes effect on
    28 February, when today - 1 month is only 28 January.
    """
    cutoff = today - relativedelta(months=1)
    while (cutoff + timedelta(days=1)) + relativedelta(months=1) <= today:
        cutoff += timedelta(days=1)
    return cutoff


def projection_date(
    *, missing: int, recent: int, today: date, window_days: int = PROJECTION_WINDOW_DAYS
) -> date | None:
    """When `missing` more pledges arrive at the rate of `recent` per `window_days`; None at a zero rate.

    Rounded up to whole days: 10 missing at 3 a day takes 4 days. Nothing missing: today.
    None too when the date would fall past the calendar (a huge target at a trickle).
    """
    if missing <= 0:
        return today
    if recent <= 0:
        return None
    days = math.ceil(missing * window_days / recent)
    if days > (date.max - today).days:
        return None
    return today + timedelta(days=days)


def share_percent(part: int, whole: int | None) -> Decimal | None:
    """part / whole in %, one decimal; None without a whole."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"))


# --- Dashboard ------------------------------------------------------------------------------


@dataclass
class TerritoryRow:
    """One department in scope, with its live figures (pledge rows, not the published counts)."""

    code: str
    name: str
    position: int
    count: int = 0  # counted pledges (active, released, expired)
    recent: int = 0  # counted pledges signed in the projection window
    population: int | None = None
    target: int | None = None
    missing: int | None = None
    status: str | None = None
    round_ends_at: object = None
    projection: date | None = None
    active: int = 0
    confirmed: int = 0
    released: int = 0
    sent: int = 0
    effective: int = 0
    patients: int = 0  # sum of the declared patient lists
    with_list: int = 0  # counted pledges that declared their patient list

    @property
    def share(self) -> Decimal | None:
        """Share of the reference population, in %."""
        return share_percent(self.count, self.population)

    @property
    def target_percent(self) -> Decimal | None:
        """Progress toward the target, in % (may exceed 100)."""
        return share_percent(self.count, self.target)

    @property
    def progress_value(self) -> int:
        """For a <progress max="100">: the target share capped at 100."""
        percent = self.target_percent
        return 0 if percent is None else min(100, int(percent))

    @property
    def reached(self) -> bool:
        return self.target is not None and self.count >= self.target

    @property
    def status_label(self) -> str:
        if not self.status:
            return ""
        try:
            return str(TerritoryStatus(self.status).label)
        except ValueError:
            return self.status


@dataclass
class PatientEstimate:
    """Patients whose médecin traitant pledged: declared lists, plus an estimate for the others."""

    declared: int
    with_list: int
    without_list: int

    @property
    def mean(self) -> Decimal | None:
        if not self.with_list:
            return None
        return (Decimal(self.declared) / self.with_list).quantize(Decimal("0.1"))

    @property
    def extrapolated(self) -> int | None:
        """mean x pledges without a declared list: an estimate, labelled as such on the page."""
        if not self.with_list:
            return None
        return round(Decimal(self.declared) / self.with_list * self.without_list)

    @property
    def estimated_total(self) -> int | None:
        extra = self.extrapolated
        return None if extra is None else self.declared + extra


@dataclass
class Dashboard:
    rows: list[TerritoryRow]
    totals: dict[str, int]
    patients: PatientEstimate
    daily: list[tuple[date, int]]
    today: date
    has_targets: bool
    window_days: int = PROJECTION_WINDOW_DAYS
    totals_row: TerritoryRow | None = field(default=None)


def _pledges_in_scope(
    *, campaign: Campaign, department_ids: list[int], scope: OrganizerScope
) -> QuerySet[Pledge]:
    """The campaign's pledges in scope, filtered on department ids: no join to the departments.

    At a million pledges the join behind `department__code__in` costs a second per aggregate;
    the ids come from the departments `scope_filter` kept, so the scope check is the same.
    """
    pledges = Pledge.objects.filter(campaign=campaign)
    if scope.national:
        return pledges
    return pledges.filter(department_id__in=department_ids)


def campaign_dashboard(*, campaign: Campaign, scope: OrganizerScope, today: date | None = None) -> Dashboard:
    """Every figure of the dashboard, for the departments in `scope`, in a fixed number of queries.

    1. Departments in scope (1), reference populations (1), conditions (pledges.conditions, 6).
    2. Pledges grouped by department with conditional counts (1), letters (1), confirmations (1).
    3. New pledges per day of signing, for the chart (1 or 2: pledges_daily).
    """
    today = today or timezone.localdate()
    departments = scope_filter(Department.objects.all(), scope, department_field="code").order_by("position")
    rows: dict[str, TerritoryRow] = {}
    code_of: dict[int, str] = {}
    for pk, code, name, position in departments.values_list("pk", "code", "name", "position"):
        rows[code] = TerritoryRow(code=code, name=name, position=position)
        code_of[pk] = code
    populations = reference_population_latest(kind=campaign.reference_population_kind)
    conditions = campaign_conditions(campaign=campaign)

    pledges = _pledges_in_scope(campaign=campaign, department_ids=list(code_of), scope=scope)
    counted = Q(status__in=COUNTED_STATUSES)
    since = timezone.now() - timedelta(days=PROJECTION_WINDOW_DAYS)
    totals = defaultdict(int)
    # One pass over the campaign's pledges (~0.3 s at a million on PostgreSQL), grouped by id.
    for row in (
        pledges.values("department_id")
        .annotate(
            counted=Count("pk", filter=counted),
            active=Count("pk", filter=Q(status=PledgeStatus.ACTIVE)),
            released=Count("pk", filter=Q(status=PledgeStatus.RELEASED)),
            expired=Count("pk", filter=Q(status=PledgeStatus.EXPIRED)),
            withdrawn=Count("pk", filter=Q(status=PledgeStatus.WITHDRAWN)),
            invalidated=Count("pk", filter=Q(status=PledgeStatus.INVALIDATED)),
            recent=Count("pk", filter=counted & Q(created_at__gte=since)),
            patients=Sum("patient_list_size", filter=counted),
            with_list=Count("patient_list_size", filter=counted),
        )
        .order_by()
    ):
        territory = rows.get(code_of.get(row["department_id"], ""))
        if territory is None:  # a department created meanwhile: nothing to show it under
            continue
        territory.count = row["counted"]
        territory.active = row["active"]
        territory.released = row["released"]
        territory.recent = row["recent"]
        territory.patients = row["patients"] or 0
        territory.with_list = row["with_list"]
        for key in ("counted", "active", "released", "expired", "withdrawn", "invalidated"):
            totals[key] += row[key]

    letters = Letter.objects.filter(pledge__campaign=campaign)
    if not scope.national:
        letters = letters.filter(pledge__department_id__in=list(code_of))
    for row in (
        letters.values("pledge__department_id")
        .annotate(
            sent=Count("pk", filter=Q(sent_on__isnull=False)),
            effective=Count("pk", filter=Q(acknowledged_on__lte=effective_cutoff(today=today))),
        )
        .order_by()
    ):
        territory = rows.get(code_of.get(row["pledge__department_id"], ""))
        if territory is not None:
            territory.sent, territory.effective = row["sent"], row["effective"]

    # Confirmed = released, or confirmed in a round and not (yet) released: the same rule as
    # pledges.followthrough.release_funnel (a campaign may release without a round).
    confirmations = RoundResponse.objects.filter(
        pledge__campaign=campaign,
        pledge__status__in=[PledgeStatus.ACTIVE, PledgeStatus.EXPIRED],
        answer=RoundAnswer.CONFIRMED,
    )
    if not scope.national:
        confirmations = confirmations.filter(pledge__department_id__in=list(code_of))
    for department_id, confirmed in (
        confirmations.values("pledge__department_id")
        .annotate(confirmed=Count("pledge", distinct=True))
        .values_list("pledge__department_id", "confirmed")
        .order_by()
    ):
        territory = rows.get(code_of.get(department_id, ""))
        if territory is not None:
            territory.confirmed = confirmed
    for territory in rows.values():
        territory.confirmed += territory.released

    has_targets = False
    for territory in rows.values():
        territory.population = populations.get(territory.code)
        explanation = conditions.get((TerritoryLevel.DEPARTMENT.value, territory.code))
        if explanation is not None:
            territory.target = explanation.target
            territory.status = explanation.status
            territory.round_ends_at = explanation.round_ends_at
        if territory.target is not None:
            has_targets = True
            territory.missing = max(0, territory.target - territory.count)
            territory.projection = projection_date(
                missing=territory.missing, recent=territory.recent, today=today
            )

    daily = pledges_daily(pledges=pledges, campaign=campaign, scope=scope, today=today)

    ordered = sorted(rows.values(), key=lambda r: r.position)
    patients = PatientEstimate(
        declared=sum(r.patients for r in ordered),
        with_list=sum(r.with_list for r in ordered),
        without_list=sum(r.count - r.with_list for r in ordered),
    )
    funnel = {
        "pledged": totals["counted"],
        "active": totals["active"],
        "confirmed": sum(r.confirmed for r in ordered),
        "released": totals["released"],
        "sent": sum(r.sent for r in ordered),
        "effective": sum(r.effective for r in ordered),
        "expired": totals["expired"],
        "withdrawn": totals["withdrawn"],
        "invalidated": totals["invalidated"],
    }
    totals_row = TerritoryRow(
        code="",
        name="",
        position=0,
        count=funnel["pledged"],
        recent=sum(r.recent for r in ordered),
        population=sum(r.population or 0 for r in ordered) or None,
        target=sum(r.target for r in ordered if r.target is not None) if has_targets else None,
    )
    if totals_row.target is not None:
        totals_row.missing = sum(r.missing or 0 for r in ordered)
    return Dashboard(
        rows=ordered,
        totals=funnel,
        patients=patients,
        daily=daily,
        today=today,
        has_targets=has_targets,
        totals_row=totals_row,
    )


def _scope_key(scope: OrganizerScope) -> str:
    if scope.national:
        return "national"
    codes = ",".join(sorted(scope.department_codes))
    return hashlib.sha256(codes.encode()).hexdigest()[:16]


def pledges_daily(
    *, pledges: QuerySet[Pledge], campaign: Campaign, scope: OrganizerScope, today: date
) -> list[tuple[date, int]]:
    """New pledges per day of signing (withdrawn ones included), oldest first.

    Grouping a million rows by local day costs about a second on PostgreSQL, and a past day's
    figure never changes (the day a pledge was signed stays its day, whatever happens to it
    later), so past days are cached until midnight per campaign and scope; today's count is an
    index range read.
    """
    start_of_today = timezone.make_aware(datetime.combine(today, time.min))
    key = f"pledges:dashboard:daily:{campaign.pk}:{_scope_key(scope)}:{today.isoformat()}"
    past = cache.get(key)
    if past is None:
        past = list(
            pledges.filter(created_at__lt=start_of_today)
            .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
            .values("day")
            .annotate(n=Count("pk"))
            .values_list("day", "n")
            .order_by("day")
        )
        cache.set(key, past, DAILY_CACHE_SECONDS)
    today_count = pledges.filter(created_at__gte=start_of_today).count()
    return past + ([(today, today_count)] if today_count else [])


# --- Sorting and filtering the territory table (at most 101 rows: in Python) ----------------

_SORT_KEYS = {
    "code": lambda r: r.position,
    "name": lambda r: _fold(r.name),
    "count": lambda r: r.count,
    "population": lambda r: r.population,
    "share": lambda r: r.share,
    "target": lambda r: r.target,
    "progress": lambda r: r.target_percent,
    "missing": lambda r: r.missing,
    "status": lambda r: r.status,
    "round": lambda r: r.round_ends_at,
    "projection": lambda r: r.projection,
    "sent": lambda r: r.sent,
    "effective": lambda r: r.effective,
}
SORT_FIELDS = tuple(_SORT_KEYS)
DEFAULT_SORT = "code"


def _fold(text: str) -> str:
    """Lower case without accents: "ile" finds "Île-de-France", "reunion" finds "La Réunion"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def territory_rows_filter(rows: list[TerritoryRow], *, query: str) -> list[TerritoryRow]:
    """Rows whose code starts with, or whose name contains, the query (accents and case ignored)."""
    needle = _fold(query.strip())[:100]
    if not needle:
        return rows
    return [r for r in rows if _fold(r.code).startswith(needle) or needle in _fold(r.name)]


def territory_rows_sort(rows: list[TerritoryRow], *, sort: str) -> tuple[list[TerritoryRow], str]:
    """Rows sorted by `sort` ("count", "-count", ...; unknown: by code); empty values last either way."""
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    if name not in _SORT_KEYS:
        return sorted(rows, key=_SORT_KEYS[DEFAULT_SORT]), DEFAULT_SORT
    key = _SORT_KEYS[name]
    present = [r for r in rows if key(r) is not None]
    empty = [r for r in rows if key(r) is None]
    # Ties keep the official order, whatever the direction.
    present.sort(key=lambda r: r.position)
    present.sort(key=key, reverse=descending)
    return present + empty, ("-" if descending else "") + name


# --- Audit log -------------------------------------------------------------------------------


def audit_entries(*, campaign: Campaign, scope: OrganizerScope) -> QuerySet[AuditEntry]:
    """The campaign's audit entries an organizer may read, newest first.

    National organizers and observers read them all. A delegate reads the campaign-wide entries
    (blank territory) and those about a department in scope. `territory_code` holds a region
    code for region-level rules (pledges.conditions) and region codes collide with department
    codes ("84" is both Auvergne-Rhône-Alpes and Vaucluse): entries whose details say
    level "region" are matched against the regions of the delegate's departments instead.
    """
    entries = (
        AuditEntry.objects.filter(campaign_id=campaign.pk)
        .select_related("actor")
        .order_by("-created_at", "-pk")
    )
    if scope.national:
        return entries
    region_codes = list(
        Department.objects.filter(code__in=scope.department_codes)
        .values_list("region__code", flat=True)
        .distinct()
    )
    region_level = Q(details__level=TerritoryLevel.REGION.value)
    return entries.filter(
        Q(territory_code="")
        | (Q(territory_code__in=scope.department_codes) & (Q(details__level__isnull=True) | ~region_level))
        | (Q(territory_code__in=region_codes) & region_level)
    )


# --- Map ---------------------------------------------------------------------------------------


def organizer_map_departments(*, campaign: Campaign, scope: OrganizerScope) -> list:
    """Every department for the organizer's map: published counts in scope, the others marked outside.

    Published counts (TerritoryCount, at most a counting interval old) rather than the live
    aggregate: a map needs no second-exact figure, and reading 101 rows keeps it instant at a
    million pledges. Departments outside the scope carry no figure at all, so the map cannot
    leak them.
    """
    from pledges.maps import MapDepartment

    counts = dict(
        scope_filter(
            TerritoryCount.objects.filter(campaign=campaign, level=TerritoryLevel.DEPARTMENT),
            scope,
            department_field="code",
        ).values_list("code", "pledges")
    )
    populations = reference_population_latest(kind=campaign.reference_population_kind)
    conditions = campaign_conditions(campaign=campaign)
    departments = []
    for code, name in Department.objects.order_by("position").values_list("code", "name"):
        if not scope.covers_department(code):
            departments.append(MapDepartment(code=code, name=name, count=None, in_scope=False))
            continue
        explanation = conditions.get((TerritoryLevel.DEPARTMENT.value, code))
        departments.append(
            MapDepartment(
                code=code,
                name=name,
                count=counts.get(code, 0),
                target=explanation.target if explanation is not None else None,
                population=populations.get(code),
            )
        )
    return departments
