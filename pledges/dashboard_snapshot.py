"""The organizer dashboard's figures: aggregated per campaign in the background, read by requests.

At a million pledges, aggregating the campaign's pledges costs about a second of PostgreSQL time;
doing it on every request made the dashboard take seconds as soon as a few organizers had it open.
The figures only change when pledges, letters, answers or conditions do, so they are aggregated
once per campaign for every department, and each request reads them and keeps its scope's share.

1. `dashboard_snapshot_compute` aggregates every department of one campaign in a fixed number of
   queries (pinned by tests/organizer/test_snapshot.py) into a `DashboardSnapshot`, stored in the
   cache under one key per campaign. Past days of the chart are aggregated once a day, apart.
2. Requests (`dashboard_snapshot_get`) read it and mark the campaign watched. They never filter
   the snapshot themselves: pledges.selectors_organizer keeps the departments of the organizer's
   scope (pledges.access), so a delegate never sees another department's figures.
3. Beat runs `dashboard_snapshots_refresh` every few seconds. For each campaign watched in the
   last DASHBOARD_WATCH_SECONDS, and at most every DASHBOARD_REFRESH_SECONDS, it reads a cheap
   fingerprint (the campaign's latest PledgeEvent and pledges.conditions' fingerprint) and
   recomputes when it moved, when the day changed, or when the snapshot is
   DASHBOARD_MAX_AGE_SECONDS old. Every pledge change writes a PledgeEvent (pledges.events);
   letters' follow-through, answers changed back from "confirmed" and patient-list edits write
   none, so those reach the dashboard within the maximum age. Open and paused campaigns nobody
   watches are recomputed every DASHBOARD_MAX_AGE_SECONDS only, so that the first organizer to
   arrive gets a page at once, saying how old its figures are, and fresh ones a tick later.
4. Event ids are allocated before their transaction commits, so an event can become visible
   after a larger id was seen: a snapshot computed after the fingerprint moved is "unsettled" and
   computed once more a refresh interval later, when such transactions (a few milliseconds for
   a signature) have committed.
5. A request that finds no snapshot, or one far older than the maximum age (no worker running),
   computes it itself under a per-campaign lock (a PostgreSQL advisory lock): concurrent first
   requests wait for the first one's result instead of each aggregating a million rows.
6. Past days of the chart change only when a pledge moves department or rows are inserted with a
   past date (the demo data): each snapshot counts, per department, the pledges signed before its
   day, and beat recomputes the past days when they no longer add up to those counts.
"""

import hashlib
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from pledges.conditions import campaign_conditions, campaign_conditions_fingerprints
from pledges.enums import COUNTED_STATUSES, CampaignStatus, PledgeStatus, RoundAnswer, TerritoryLevel
from pledges.models import Campaign, Letter, Pledge, PledgeEvent, Release, RoundResponse
from territories.models import Department
from territories.selectors import reference_population_latest

# The projection's rate: pledges of the last PROJECTION_WINDOW_DAYS days, per day.
PROJECTION_WINDOW_DAYS = 14
# Key of the per-campaign advisory lock (pg_advisory_xact_lock(class, campaign id)): b"dash".
SNAPSHOT_LOCK_CLASS = 0x64617368
# Cached values are pickled dataclasses: a release that changes their fields bumps the format,
# so that no process reads another release's pickles.
_FORMAT = 1
_SNAPSHOT_KEY = f"pledges:dashboard:v{_FORMAT}:snapshot:{{campaign_id}}"
_WATCH_KEY = "pledges:dashboard:watched:{campaign_id}"
_DAILY_KEY = f"pledges:dashboard:v{_FORMAT}:daily:{{campaign_id}}:{{day}}"
# Past days never change: their cache lives until the day after (the key holds the date).
_DAILY_CACHE_SECONDS = 26 * 3600
# Campaigns whose snapshot beat keeps at most DASHBOARD_MAX_AGE_SECONDS old, watched or not.
_LIVE_CAMPAIGN_STATUSES = (CampaignStatus.OPEN, CampaignStatus.PAUSED)
# Without PostgreSQL (development on SQLite, one process): a lock per campaign in the process.
_local_locks: dict[int, threading.Lock] = {}
_local_locks_guard = threading.Lock()


def refresh_seconds() -> int:
    """At most this often a watched campaign's snapshot is recomputed (when something changed)."""
    return max(1, int(getattr(settings, "DASHBOARD_REFRESH_SECONDS", 15)))


def max_age_seconds() -> int:
    """A watched campaign's snapshot is recomputed at least this often, changed or not."""
    return max(refresh_seconds(), int(getattr(settings, "DASHBOARD_MAX_AGE_SECONDS", 300)))


def watch_seconds() -> int:
    """How long after an organizer last opened the dashboard beat keeps its snapshot fresh."""
    return max(60, int(getattr(settings, "DASHBOARD_WATCH_SECONDS", 3600)))


def stale_seconds() -> int:
    """Older than this, a request recomputes itself: beat is not keeping the snapshot fresh."""
    return max_age_seconds() + max(60, 4 * refresh_seconds())


@dataclass(frozen=True)
class DepartmentFigures:
    """One department of a campaign, every status included: requests pick the ones in scope."""

    code: str
    name: str
    position: int
    population: int | None = None
    target: int | None = None
    status: str | None = None
    round_ends_at: datetime | None = None
    counted: int = 0  # active, released, expired
    active: int = 0
    released: int = 0
    expired: int = 0
    withdrawn: int = 0
    invalidated: int = 0
    confirmed: int = 0  # released, or active/expired and confirmed in a round
    recent: int = 0  # counted, signed in the last PROJECTION_WINDOW_DAYS days
    patients: int = 0  # sum of the declared patient lists of counted pledges
    with_list: int = 0  # counted pledges that declared their list
    signed_today: int = 0  # every status, signed since midnight of the snapshot's day
    signed_before: int = 0  # every status, signed before that midnight: checks the past days
    sent: int = 0  # letters reported sent
    # Letters per acknowledgement date: "in effect" depends on the reader's day (effective_cutoff).
    acknowledged: tuple[tuple[date, int], ...] = ()

    def effective(self, *, cutoff: date) -> int:
        """Letters whose departure has taken effect: acknowledged on `cutoff` or before."""
        return sum(n for day, n in self.acknowledged if day <= cutoff)


@dataclass(frozen=True)
class ReleaseFigures:
    """A released territory, for the dashboard's links to its escrow bundle."""

    pk: int
    level: str
    code: str
    released_at: datetime
    pledge_count: int


@dataclass(frozen=True)
class DashboardSnapshot:
    campaign_id: int
    computed_at: datetime
    day: date  # the local day of computed_at: `signed_today` belongs to it
    fingerprint: tuple
    # False when the fingerprint moved since the previous snapshot: computed once more (step 4).
    settled: bool
    departments: tuple[DepartmentFigures, ...]  # every department, in official order
    releases: tuple[ReleaseFigures, ...]  # latest first; written with a territory state change
    # Digest of the figures: rendered fragments are cached under it (same figures, same HTML).
    version: str

    def age_seconds(self, *, now: datetime) -> float:
        return (now - self.computed_at).total_seconds()


@dataclass(frozen=True)
class DailyCounts:
    """Pledges per day of signing (every status) before `until`, for the chart."""

    until: date
    national: tuple[tuple[date, int], ...]
    by_department: dict[str, tuple[tuple[date, int], ...]]


def snapshot_key(campaign_id: int) -> str:
    return _SNAPSHOT_KEY.format(campaign_id=campaign_id)


def watch_key(campaign_id: int) -> str:
    return _WATCH_KEY.format(campaign_id=campaign_id)


def daily_key(campaign_id: int, day: date) -> str:
    return _DAILY_KEY.format(campaign_id=campaign_id, day=day.isoformat())


# --- Computing ---------------------------------------------------------------------------------


def dashboard_fingerprint(*, campaign: Campaign) -> tuple:
    """What the figures depend on that is cheap to read: unchanged means nothing to recompute.

    The campaign's latest PledgeEvent (every pledge change writes one: pledges.events) read
    backwards on the primary key, and the conditions' fingerprint (settings, rules, published
    counts, territory states: pledges.conditions), in 5 queries whatever the number of pledges.
    """
    last_event = (
        PledgeEvent.objects.filter(campaign_id=campaign.pk)
        .order_by("-pk")
        .values_list("pk", flat=True)
        .first()
    )
    conditions = campaign_conditions_fingerprints(campaign_ids=[campaign.pk]).get(campaign.pk)
    return (last_event, conditions)


def dashboard_snapshot_compute(
    *, campaign: Campaign, fingerprint: tuple | None = None, previous: DashboardSnapshot | None = None
) -> DashboardSnapshot:
    """Every department's figures for one campaign, in a fixed number of queries.

    1. The fingerprint first (5 queries, unless given), so that a change made while aggregating
       moves it and brings another refresh.
    2. Departments (1), reference populations (1), conditions (pledges.conditions, 6).
    3. Pledges grouped by department with conditional counts (1), confirmations in rounds (1).
    4. Letters grouped by department and acknowledgement date (1), releases (1).
    """
    now = timezone.now()
    day = timezone.localdate(now)
    if fingerprint is None:
        fingerprint = dashboard_fingerprint(campaign=campaign)
    departments = list(Department.objects.order_by("position").values_list("pk", "code", "name", "position"))
    populations = reference_population_latest(kind=campaign.reference_population_kind)
    conditions = campaign_conditions(campaign=campaign)

    counted = Q(status__in=COUNTED_STATUSES)
    start_of_day = timezone.make_aware(datetime.combine(day, time.min))
    pledges = {
        row["department_id"]: row
        for row in Pledge.objects.filter(campaign=campaign)
        .values("department_id")
        .annotate(
            counted=Count("pk", filter=counted),
            active=Count("pk", filter=Q(status=PledgeStatus.ACTIVE)),
            released=Count("pk", filter=Q(status=PledgeStatus.RELEASED)),
            expired=Count("pk", filter=Q(status=PledgeStatus.EXPIRED)),
            withdrawn=Count("pk", filter=Q(status=PledgeStatus.WITHDRAWN)),
            invalidated=Count("pk", filter=Q(status=PledgeStatus.INVALIDATED)),
            recent=Count(
                "pk", filter=counted & Q(created_at__gte=now - timedelta(days=PROJECTION_WINDOW_DAYS))
            ),
            patients=Sum("patient_list_size", filter=counted),
            with_list=Count("patient_list_size", filter=counted),
            signed_today=Count("pk", filter=Q(created_at__gte=start_of_day)),
            signed_before=Count("pk", filter=Q(created_at__lt=start_of_day)),
        )
        .order_by()
    }

    # Confirmed = released, or confirmed in a round and not (yet) released: the same rule as
    # pledges.followthrough.release_funnel (a campaign may release without a round). A pledge
    # released between this statement and the one above may be counted twice in one snapshot;
    # its RELEASED event moves the fingerprint, so the next refresh counts it right.
    confirmed_in_round = dict(
        RoundResponse.objects.filter(
            pledge__campaign=campaign,
            pledge__status__in=[PledgeStatus.ACTIVE, PledgeStatus.EXPIRED],
            answer=RoundAnswer.CONFIRMED,
        )
        .values("pledge__department_id")
        .annotate(confirmed=Count("pledge", distinct=True))
        .values_list("pledge__department_id", "confirmed")
        .order_by()
    )

    sent: dict[int, int] = defaultdict(int)
    acknowledged: dict[int, list[tuple[date, int]]] = defaultdict(list)
    for department_id, acknowledged_on, n_sent, n in (
        Letter.objects.filter(pledge__campaign=campaign)
        .values("pledge__department_id", "acknowledged_on")
        .annotate(sent=Count("pk", filter=Q(sent_on__isnull=False)), n=Count("pk"))
        .values_list("pledge__department_id", "acknowledged_on", "sent", "n")
        .order_by("pledge__department_id", "acknowledged_on")
    ):
        sent[department_id] += n_sent
        if acknowledged_on is not None:
            acknowledged[department_id].append((acknowledged_on, n))

    figures = []
    for pk, code, name, position in departments:
        row = pledges.get(pk, {})
        explanation = conditions.get((TerritoryLevel.DEPARTMENT.value, code))
        figures.append(
            DepartmentFigures(
                code=code,
                name=name,
                position=position,
                population=populations.get(code),
                target=explanation.target if explanation is not None else None,
                status=explanation.status if explanation is not None else None,
                round_ends_at=explanation.round_ends_at if explanation is not None else None,
                counted=row.get("counted", 0),
                active=row.get("active", 0),
                released=row.get("released", 0),
                expired=row.get("expired", 0),
                withdrawn=row.get("withdrawn", 0),
                invalidated=row.get("invalidated", 0),
                confirmed=row.get("released", 0) + confirmed_in_round.get(pk, 0),
                recent=row.get("recent", 0),
                patients=row.get("patients") or 0,
                with_list=row.get("with_list", 0),
                signed_today=row.get("signed_today", 0),
                signed_before=row.get("signed_before", 0),
                sent=sent.get(pk, 0),
                acknowledged=tuple(acknowledged.get(pk, ())),
            )
        )
    departments_figures = tuple(figures)
    releases = tuple(
        ReleaseFigures(pk=pk, level=level, code=code, released_at=released_at, pledge_count=pledge_count)
        for pk, level, code, released_at, pledge_count in Release.objects.filter(campaign=campaign)
        .order_by("-released_at", "-pk")
        .values_list("pk", "level", "code", "released_at", "pledge_count")
    )
    return DashboardSnapshot(
        campaign_id=campaign.pk,
        computed_at=now,
        day=day,
        fingerprint=fingerprint,
        settled=previous is not None and previous.fingerprint == fingerprint,
        departments=departments_figures,
        releases=releases,
        version=hashlib.sha256(repr((departments_figures, releases)).encode()).hexdigest()[:16],
    )


def dashboard_daily_compute(*, campaign: Campaign, until: date) -> DailyCounts:
    """Pledges per department and day of signing before `until` (local days), in one query.

    Grouping a million rows by local day costs about a second on PostgreSQL; a past day's figure
    never changes (the day a pledge was signed stays its day), so this runs once a day.
    """
    start = timezone.make_aware(datetime.combine(until, time.min))
    code_of = dict(Department.objects.values_list("pk", "code"))
    national: dict[date, int] = defaultdict(int)
    by_department: dict[str, list[tuple[date, int]]] = defaultdict(list)
    for department_id, day, n in (
        Pledge.objects.filter(campaign=campaign, created_at__lt=start)
        .annotate(day=TruncDate("created_at", tzinfo=timezone.get_current_timezone()))
        .values("department_id", "day")
        .annotate(n=Count("pk"))
        .values_list("department_id", "day", "n")
        .order_by("department_id", "day")
    ):
        national[day] += n
        by_department[code_of.get(department_id, "")].append((day, n))
    return DailyCounts(
        until=until,
        national=tuple(sorted(national.items())),
        by_department={code: tuple(days) for code, days in by_department.items()},
    )


# --- Locking and storing -----------------------------------------------------------------------


@contextmanager
def _campaign_lock(campaign_id: int, *, wait: bool) -> Iterator[bool]:
    """Hold the campaign's snapshot lock for the block; yields False if busy and not waiting.

    PostgreSQL: a transaction-level advisory lock, so every process (web and worker) agrees and
    a crash cannot leave it taken. Elsewhere (development on SQLite, one process): a thread lock.
    """
    if connection.vendor == "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            function = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
            cursor.execute(f"SELECT {function}(%s, %s)", [SNAPSHOT_LOCK_CLASS, campaign_id])
            acquired = wait or bool(cursor.fetchone()[0])
            yield acquired
        return
    with _local_locks_guard:
        lock = _local_locks.setdefault(campaign_id, threading.Lock())
    acquired = lock.acquire(blocking=wait)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()


def _usable(snapshot: DashboardSnapshot | None, *, now: datetime) -> bool:
    return snapshot is not None and snapshot.age_seconds(now=now) <= stale_seconds()


def _store(snapshot: DashboardSnapshot) -> None:
    cache.set(snapshot_key(snapshot.campaign_id), snapshot, watch_seconds() + stale_seconds())


def _compute_locked(
    *, campaign: Campaign, wait: bool, fingerprint: tuple | None = None, use_lock: bool = True
) -> DashboardSnapshot | None:
    """Compute and store the snapshot under the campaign's lock; None when busy and not waiting.

    A waiter finds what the lock holder stored and returns it without aggregating again.
    `use_lock=False` exists only for the control test that shows concurrent first loads each
    aggregating when nothing serialises them.
    """
    with _campaign_lock(campaign.pk, wait=wait) if use_lock else nullcontext(True) as acquired:
        if not acquired:
            return None
        previous = cache.get(snapshot_key(campaign.pk))
        if wait and _usable(previous, now=timezone.now()):
            return previous
        snapshot = dashboard_snapshot_compute(campaign=campaign, fingerprint=fingerprint, previous=previous)
        _store(snapshot)
        return snapshot


def _daily_locked(
    *, campaign: Campaign, until: date, wait: bool, replace: bool = False
) -> DailyCounts | None:
    """The past days before `until`, computed under the campaign's lock unless cached (or `replace`)."""
    with _campaign_lock(campaign.pk, wait=wait) as acquired:
        if not acquired:
            return None
        key = daily_key(campaign.pk, until)
        daily = None if replace else cache.get(key)
        if daily is None:
            daily = dashboard_daily_compute(campaign=campaign, until=until)
            cache.set(key, daily, _DAILY_CACHE_SECONDS)
        return daily


# --- Reading (requests) ------------------------------------------------------------------------


def dashboard_page_get(
    *, campaign: Campaign, fragment_key: str | None = None, use_lock: bool = True
) -> tuple[DashboardSnapshot, str | None]:
    """The campaign's snapshot, and the HTML cached under `fragment_key` for its version, if any.

    One cache round trip when both are there (the common case). The snapshot is computed here
    only when there is none or beat let it go stale. Marks the campaign watched, so that beat
    keeps its snapshot fresh for the next requests. `use_lock=False`: see _compute_locked.
    """
    keys = [snapshot_key(campaign.pk), watch_key(campaign.pk)]
    if fragment_key:
        keys.append(fragment_key)
    found = cache.get_many(keys)
    now = timezone.now()
    watched_at = found.get(watch_key(campaign.pk))
    # Written again once half its life is gone, rather than on every request.
    if watched_at is None or now.timestamp() - watched_at > watch_seconds() / 2:
        cache.set(watch_key(campaign.pk), now.timestamp(), watch_seconds())
    snapshot = found.get(snapshot_key(campaign.pk))
    if not _usable(snapshot, now=now):
        return _compute_locked(campaign=campaign, wait=True, use_lock=use_lock), None
    cached = found.get(fragment_key) if fragment_key else None
    html = cached[1] if cached is not None and cached[0] == snapshot.version else None
    return snapshot, html


def dashboard_fragment_set(*, key: str, snapshot: DashboardSnapshot, html: str) -> None:
    """Cache HTML rendered from `snapshot` under `key`: served until the snapshot's version changes."""
    cache.set(key, (snapshot.version, html), stale_seconds())


def dashboard_snapshot_get(*, campaign: Campaign, use_lock: bool = True) -> DashboardSnapshot:
    """The campaign's snapshot (see dashboard_page_get)."""
    return dashboard_page_get(campaign=campaign, use_lock=use_lock)[0]


def dashboard_daily_get(*, campaign: Campaign, until: date) -> DailyCounts:
    """Pledges per day before `until`, from the cache; computed once a day under the campaign's lock."""
    daily = cache.get(daily_key(campaign.pk, until))
    if daily is not None:
        return daily
    return _daily_locked(campaign=campaign, until=until, wait=True)


# --- Refreshing (beat) -------------------------------------------------------------------------


def _daily_matches(daily: DailyCounts | None, snapshot: DashboardSnapshot) -> bool:
    """Whether the cached past days still add up to the snapshot's pledges signed before its day."""
    if daily is None or daily.until != snapshot.day:
        return False
    return all(
        sum(n for _day, n in daily.by_department.get(department.code, ())) == department.signed_before
        for department in snapshot.departments
    )


def dashboard_snapshot_refresh(*, campaign: Campaign, watched: bool = True, force: bool = False) -> bool:
    """Recompute one campaign's snapshot if due; True when it was recomputed.

    Due, for a watched campaign, when the snapshot is at least DASHBOARD_REFRESH_SECONDS old and
    its fingerprint moved, it is unsettled or of another day; for any campaign, when it is
    DASHBOARD_MAX_AGE_SECONDS old or missing. Never waits: a busy lock means another process is
    computing it right now. Then the chart's past days, if they no longer add up (step 6).
    """
    now = timezone.now()
    previous = cache.get(snapshot_key(campaign.pk))
    age = previous.age_seconds(now=now) if previous is not None else None
    if not force and age is not None and age < (refresh_seconds() if watched else max_age_seconds()):
        return False
    fingerprint = dashboard_fingerprint(campaign=campaign)
    if (
        not force
        and previous is not None
        and previous.settled
        and previous.fingerprint == fingerprint
        and previous.day == timezone.localdate(now)
        and age < max_age_seconds()
    ):
        return False
    snapshot = _compute_locked(campaign=campaign, wait=False, fingerprint=fingerprint)
    if snapshot is None:
        return False
    if not _daily_matches(cache.get(daily_key(campaign.pk, snapshot.day)), snapshot):
        _daily_locked(campaign=campaign, until=snapshot.day, wait=False, replace=True)
    return True


def dashboard_snapshots_refresh() -> int:
    """Refresh the snapshots of watched campaigns, and of open or paused ones; returns how many were recomputed."""
    campaigns = list(Campaign.objects.order_by("pk"))
    watched = cache.get_many([watch_key(campaign.pk) for campaign in campaigns])
    refreshed = 0
    for campaign in campaigns:
        is_watched = watch_key(campaign.pk) in watched
        if not is_watched and campaign.status not in _LIVE_CAMPAIGN_STATUSES:
            continue
        refreshed += dashboard_snapshot_refresh(campaign=campaign, watched=is_watched)
    return refreshed
