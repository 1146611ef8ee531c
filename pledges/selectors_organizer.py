"""Reads for the organizer pages, limited to the organizer's scope.

The dashboard reads a per-campaign snapshot of every department's figures, aggregated in SQL in
the background (pledges.dashboard_snapshot), and keeps the departments of the organizer's scope:
no query per request when it is cached (tests/organizer/test_dashboard.py pins the count).
Nothing here iterates over pledges in Python.
"""

import functools
import hashlib
import unicodedata
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cached_property

from dateutil.relativedelta import relativedelta
from django.db.models import Q, QuerySet
from django.utils import timezone

from deconv.models import AuditEntry
from pledges.access import OrganizerScope, scope_filter
from pledges.dashboard_snapshot import (
    PROJECTION_WINDOW_DAYS,
    DashboardSnapshot,
    ReleaseFigures,
    dashboard_daily_get,
    dashboard_snapshot_get,
)
from pledges.enums import TerritoryLevel, TerritoryStatus
from pledges.models import Campaign, OrganizerRole, TerritoryCount
from territories.models import Department


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
    # Integer ceiling division: a float overflows for a huge target at a trickle.
    days = -(-missing * window_days // recent)
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
    today: date
    has_targets: bool
    as_of: datetime  # when the snapshot's figures were aggregated
    version: str  # the snapshot's digest: same figures, same version
    window_days: int = PROJECTION_WINDOW_DAYS
    totals_row: TerritoryRow | None = field(default=None)
    releases: list[ReleaseFigures] = field(default_factory=list)  # in scope, latest first
    daily_loader: Callable[[], list[tuple[date, int]]] | None = field(default=None, repr=False)

    @cached_property
    def daily(self) -> list[tuple[date, int]]:
        """New pledges per day of signing in scope, oldest first (read on first use)."""
        return self.daily_loader() if self.daily_loader is not None else []


def campaign_dashboard(
    *,
    campaign: Campaign,
    scope: OrganizerScope,
    today: date | None = None,
    snapshot: DashboardSnapshot | None = None,
) -> Dashboard:
    """Every figure of the dashboard for the departments in `scope`, from the campaign's snapshot.

    No query when the snapshot is cached (pledges.dashboard_snapshot aggregates every department
    in the background); the snapshot holds every department, and only those the scope covers
    become rows, so the totals below add up the organizer's own departments only. The chart's
    days are read when `daily` is first used: a cached page fragment does not need them.
    """
    today = today or timezone.localdate()
    snapshot = snapshot or dashboard_snapshot_get(campaign=campaign)
    cutoff = effective_cutoff(today=today)
    rows = []
    for department in snapshot.departments:
        if not scope.covers_department(department.code):
            continue
        row = TerritoryRow(
            code=department.code,
            name=department.name,
            position=department.position,
            count=department.counted,
            recent=department.recent,
            population=department.population,
            target=department.target,
            status=department.status,
            round_ends_at=department.round_ends_at,
            active=department.active,
            confirmed=department.confirmed,
            released=department.released,
            sent=department.sent,
            effective=department.effective(cutoff=cutoff),
            patients=department.patients,
            with_list=department.with_list,
        )
        if row.target is not None:
            row.missing = max(0, row.target - row.count)
            row.projection = projection_date(missing=row.missing, recent=row.recent, today=today)
        rows.append(row)

    in_scope = [d for d in snapshot.departments if scope.covers_department(d.code)]
    has_targets = any(r.target is not None for r in rows)
    funnel = {
        "pledged": sum(r.count for r in rows),
        "active": sum(r.active for r in rows),
        "confirmed": sum(r.confirmed for r in rows),
        "released": sum(r.released for r in rows),
        "sent": sum(r.sent for r in rows),
        "effective": sum(r.effective for r in rows),
        "expired": sum(d.expired for d in in_scope),
        "withdrawn": sum(d.withdrawn for d in in_scope),
        "invalidated": sum(d.invalidated for d in in_scope),
    }
    totals_row = TerritoryRow(
        code="",
        name="",
        position=0,
        count=funnel["pledged"],
        recent=sum(r.recent for r in rows),
        population=sum(r.population or 0 for r in rows) or None,
        target=sum(r.target for r in rows if r.target is not None) if has_targets else None,
    )
    if totals_row.target is not None:
        totals_row.missing = sum(r.missing or 0 for r in rows)
    return Dashboard(
        rows=rows,
        totals=funnel,
        patients=PatientEstimate(
            declared=sum(r.patients for r in rows),
            with_list=sum(r.with_list for r in rows),
            without_list=sum(r.count - r.with_list for r in rows),
        ),
        today=today,
        has_targets=has_targets,
        as_of=snapshot.computed_at,
        version=snapshot.version,
        totals_row=totals_row,
        # A delegate's releases: their departments' (escrow bundles start here).
        releases=[
            release
            for release in snapshot.releases
            if scope.national
            or (release.level == TerritoryLevel.DEPARTMENT and release.code in scope.department_codes)
        ],
        daily_loader=functools.partial(
            _daily_in_scope, campaign=campaign, scope=scope, snapshot=snapshot, today=today
        ),
    )


def scope_key(scope: OrganizerScope) -> str:
    """A short key naming the scope's departments, for caches of what the scope may see."""
    if scope.national:
        return "national"
    codes = ",".join(sorted(scope.department_codes))
    return hashlib.sha256(codes.encode()).hexdigest()[:16]


def _daily_in_scope(
    *, campaign: Campaign, scope: OrganizerScope, snapshot: DashboardSnapshot, today: date
) -> list[tuple[date, int]]:
    """New pledges per day of signing (withdrawn ones included) in scope, oldest first.

    Past days come from a per-day cache of every department (pledges.dashboard_snapshot, one
    aggregate a day); today's count from the snapshot, when the snapshot is of today (just after
    midnight, the past days already hold the snapshot's day).
    """
    past = dashboard_daily_get(campaign=campaign, until=today)
    if scope.national:
        days = list(past.national)
    else:
        merged: dict[date, int] = defaultdict(int)
        for code in scope.department_codes:
            for day, n in past.by_department.get(code, ()):
                merged[day] += n
        days = sorted(merged.items())
    if snapshot.day == today:
        signed_today = sum(d.signed_today for d in snapshot.departments if scope.covers_department(d.code))
        if signed_today:
            days.append((today, signed_today))
    return days


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


def territory_sort_normalize(sort: str) -> str:
    """A sort parameter as territory_rows_sort understands it: unknown columns sort by code."""
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    if name not in _SORT_KEYS:
        return DEFAULT_SORT
    return ("-" if descending else "") + name


def territory_rows_sort(rows: list[TerritoryRow], *, sort: str) -> tuple[list[TerritoryRow], str]:
    """Rows sorted by `sort` ("count", "-count", ...; unknown: by code); empty values last either way."""
    sort = territory_sort_normalize(sort)
    descending = sort.startswith("-")
    name = sort.lstrip("-")
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


def organizer_map_departments(
    *, campaign: Campaign, scope: OrganizerScope, snapshot: DashboardSnapshot | None = None
) -> list:
    """Every department for the organizer's map: published counts in scope, the others marked outside.

    Published counts (TerritoryCount, at most a counting interval old) rather than the
    snapshot's: the map follows the public counts, and reading 101 rows keeps it instant at a
    million pledges. Targets and populations come from the dashboard's snapshot. Departments
    outside the scope carry no figure at all, so the map cannot leak them.
    """
    from pledges.maps import MapDepartment

    counts = dict(
        scope_filter(
            TerritoryCount.objects.filter(campaign=campaign, level=TerritoryLevel.DEPARTMENT),
            scope,
            department_field="code",
        ).values_list("code", "pledges")
    )
    snapshot = snapshot or dashboard_snapshot_get(campaign=campaign)
    departments = []
    for department in snapshot.departments:
        code = department.code
        if not scope.covers_department(code):
            departments.append(MapDepartment(code=code, name=department.name, count=None, in_scope=False))
            continue
        departments.append(
            MapDepartment(
                code=code,
                name=department.name,
                count=counts.get(code, 0),
                target=department.target,
                population=department.population,
            )
        )
    return departments
