"""The dashboard's snapshot: equal to the pledge rows, scoped on reading, refreshed on change, computed once."""

import re
import threading
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from pledges import dashboard_snapshot
from pledges.access import OrganizerScope
from pledges.dashboard_snapshot import (
    PROJECTION_WINDOW_DAYS,
    dashboard_snapshot_compute,
    dashboard_snapshot_get,
    dashboard_snapshot_refresh,
    dashboard_snapshots_refresh,
    snapshot_key,
)
from pledges.enums import COUNTED_STATUSES, CampaignStatus, PledgeEventKind, PledgeStatus, RoundAnswer
from pledges.events import pledge_event_record
from pledges.models import ConfirmationRound, Crossing, Letter, Pledge, Release, RoundResponse
from pledges.selectors_organizer import campaign_dashboard, effective_cutoff
from tests.organizer.conftest import LEAKY_NAME
from tests.organizer.factories import PledgeFactory
from tests.pledges.factories import CampaignFactory, LetterVersionFactory

PARIS = ZoneInfo("Europe/Paris")
NATIONAL = OrganizerScope(national=True, department_codes=frozenset(), can_act=True)
RHONE = OrganizerScope(national=False, department_codes=frozenset({"69"}), can_act=True)


def dashboard_url(campaign, **params) -> str:
    url = reverse("pledges:organizer_dashboard", kwargs={"slug": campaign.slug})
    return url + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


def _letter(pledge, release, *, sent_on=None, acknowledged_on=None) -> Letter:
    return Letter.objects.create(
        pledge=pledge,
        release=release,
        file_name=f"{pledge.pk}.pdf",
        sha256="0" * 64,
        inputs_sha256="0" * 64,
        size_bytes=1,
        generated_at=timezone.now(),
        sent_on=sent_on,
        acknowledged_on=acknowledged_on,
    )


@pytest.fixture
def varied(campaign, pledges):
    """Every status, answers both ways, letters at every stage, patient lists, an old pledge."""
    now = timezone.now()
    rhone, paris, ain = pledges["69"], pledges["75"], pledges["01"]
    crossing = Crossing.objects.create(
        campaign=campaign,
        level="department",
        code="69",
        round_number=1,
        crossed_at=now,
        count_at_crossing=7,
        target_at_crossing=10,
        national_count_at_crossing=11,
    )
    round_ = ConfirmationRound.objects.create(
        crossing=crossing, opened_at=now, ends_at=now + timedelta(days=14)
    )
    release = Release.objects.create(
        campaign=campaign, level="department", code="69", released_at=now, pledge_count=2
    )
    for pledge in (rhone[0], rhone[1], rhone[2], paris[0]):
        RoundResponse.objects.create(
            round=round_, pledge=pledge, answer=RoundAnswer.CONFIRMED, answered_at=now
        )
    RoundResponse.objects.create(round=round_, pledge=rhone[3], answer=RoundAnswer.DECLINED, answered_at=now)
    for pledge in (rhone[0], rhone[4]):
        pledge.status = PledgeStatus.RELEASED
        pledge.save()
    _letter(rhone[0], release, sent_on=date(2026, 1, 20), acknowledged_on=date(2026, 2, 1))
    _letter(rhone[4], release, sent_on=date(2026, 3, 2))
    paris[0].status = PledgeStatus.EXPIRED
    paris[0].save()
    rhone[1].patient_list_size = 1000
    rhone[1].save()
    paris[1].patient_list_size = 500
    paris[1].save()
    PledgeFactory(campaign=campaign, department="69", status=PledgeStatus.WITHDRAWN, patient_list_size=9999)
    PledgeFactory(campaign=campaign, department="75", status=PledgeStatus.INVALIDATED, last_name=LEAKY_NAME)
    Pledge.objects.filter(pk=ain[0].pk).update(created_at=now - timedelta(days=PROJECTION_WINDOW_DAYS + 1))
    return pledges


def _direct(campaign) -> dict[str, dict]:
    """The figures per department counted row by row in Python: what the snapshot must equal."""
    since = timezone.now() - timedelta(days=PROJECTION_WINDOW_DAYS)
    confirmed_ids = set(
        RoundResponse.objects.filter(answer=RoundAnswer.CONFIRMED).values_list("pledge_id", flat=True)
    )
    figures: dict[str, dict] = {}
    for pledge in Pledge.objects.filter(campaign=campaign).select_related("department"):
        row = figures.setdefault(
            pledge.department.code,
            {
                "counted": 0,
                "active": 0,
                "released": 0,
                "expired": 0,
                "withdrawn": 0,
                "invalidated": 0,
                "confirmed": 0,
                "recent": 0,
                "patients": 0,
                "with_list": 0,
                "signed_today": 0,
                "signed_before": 0,
                "sent": 0,
                "acknowledged": [],
            },
        )
        row[pledge.status] += 1
        counted = pledge.status in COUNTED_STATUSES
        row["counted"] += counted
        row["confirmed"] += pledge.status == PledgeStatus.RELEASED or (
            pledge.status in (PledgeStatus.ACTIVE, PledgeStatus.EXPIRED) and pledge.pk in confirmed_ids
        )
        row["recent"] += counted and pledge.created_at >= since
        row["signed_today"] += timezone.localdate(pledge.created_at) == timezone.localdate()
        row["signed_before"] += timezone.localdate(pledge.created_at) < timezone.localdate()
        if counted and pledge.patient_list_size is not None:
            row["patients"] += pledge.patient_list_size
            row["with_list"] += 1
        letter = Letter.objects.filter(pledge=pledge).first()
        if letter is not None:
            row["sent"] += letter.sent_on is not None
            if letter.acknowledged_on is not None:
                row["acknowledged"].append(letter.acknowledged_on)
    return figures


@pytest.mark.django_db
def test_the_snapshot_equals_the_figures_counted_row_by_row(campaign, varied):
    snapshot = dashboard_snapshot_compute(campaign=campaign)
    direct = _direct(campaign)
    assert {"69", "75", "01"} <= set(direct)
    assert len(snapshot.departments) == 101
    for department in snapshot.departments:
        expected = direct.get(department.code)
        if expected is None:
            assert (department.counted, department.withdrawn, department.sent) == (0, 0, 0)
            continue
        for name, value in expected.items():
            if name == "acknowledged":
                assert sorted(d for d, n in department.acknowledged for _ in range(n)) == sorted(value)
            else:
                assert getattr(department, name) == value, (department.code, name)
    rhone = next(d for d in snapshot.departments if d.code == "69")
    # Released rhone[0] confirmed too: counted once; rhone[3] declined; rhone[4] released.
    assert (rhone.counted, rhone.confirmed, rhone.released, rhone.withdrawn) == (7, 4, 2, 1)
    assert rhone.effective(cutoff=date(2026, 3, 1)) == 1
    assert rhone.effective(cutoff=date(2026, 1, 31)) == 0
    assert rhone.target == 10 and rhone.population


@pytest.mark.django_db
def test_the_dashboard_figures_add_up_the_snapshot_in_scope(campaign, varied):
    today = date(2026, 3, 2)
    figures = campaign_dashboard(campaign=campaign, scope=NATIONAL, today=today)
    assert figures.totals == {
        "pledged": 11,
        "active": 11 - 2 - 1,
        "confirmed": 5,  # rhone 0-2 and 4, paris[0] (expired, confirmed)
        "released": 2,
        "sent": 2,
        "effective": 1,  # acknowledged 1 February: in effect from 1 March
        "expired": 1,
        "withdrawn": 1,
        "invalidated": 1,
    }
    assert effective_cutoff(today=today) >= date(2026, 2, 1)
    rhone = campaign_dashboard(campaign=campaign, scope=RHONE, today=today)
    assert [r.code for r in rhone.rows] == ["69"]
    assert rhone.totals["pledged"] == 7
    assert rhone.totals["invalidated"] == 0  # Paris's invalidated pledge is not Rhône's
    assert rhone.patients.declared == 1000


@pytest.mark.django_db
def test_the_snapshot_costs_the_same_queries_for_one_or_three_territories(
    campaign, django_assert_num_queries
):
    PledgeFactory.create_batch(3, campaign=campaign, department="69")
    # Fingerprint (latest event, conditions' 4), departments, populations, conditions (6),
    # pledges, confirmations, letters, releases.
    with django_assert_num_queries(17):
        one = dashboard_snapshot_compute(campaign=campaign)
    for code in ("01", "38"):
        PledgeFactory.create_batch(5, campaign=campaign, department=code)
    with django_assert_num_queries(17):
        three = dashboard_snapshot_compute(campaign=campaign)
    assert sum(d.counted for d in one.departments) == 3
    assert sum(d.counted for d in three.departments) == 13
    assert one.version != three.version


@pytest.mark.django_db
def test_a_delegate_reads_only_their_department_from_a_snapshot_of_every_department(
    client, campaign, varied, national, delegate_69
):
    # Paris: a leaky name (invalidated), a patient list of 987654, pledges on a day of their own.
    paris = varied["75"]
    paris[2].patient_list_size = 987654
    paris[2].save()
    Pledge.objects.filter(pk__in=[p.pk for p in paris]).update(created_at=timezone.now() - timedelta(days=3))
    lonely_day = timezone.localdate() - timedelta(days=3)

    # The national organizer loads first: the snapshot (every department) and the national
    # fragments are in the cache when the delegate comes.
    client.force_login(national)
    national_body = client.get(dashboard_url(campaign)).content.decode()
    assert f'<time datetime="{lonely_day:%Y-%m-%d}">' in national_body
    assert client.get(dashboard_url(campaign, sort="-count")).status_code == 200
    assert campaign_dashboard(campaign=campaign, scope=NATIONAL).patients.declared == 1000 + 500 + 987654

    client.force_login(delegate_69)
    for params in ({}, {"sort": "-count"}):
        body = client.get(dashboard_url(campaign, **params)).content.decode()
        assert body.count('id="department-') == 1
        assert 'id="department-69"' in body
        # As numbers of their own ("987 654", "989 ..."), not inside a timestamp or a token.
        assert not re.search(r"(?<!\d)98[79](?!\d)", body) and "987654" not in body
        assert LEAKY_NAME not in body
        assert f'<time datetime="{lonely_day:%Y-%m-%d}">' not in body
        assert '<span class="funnel__value">7</span>' in body
        assert '<span class="funnel__value">11</span>' not in body


@pytest.mark.django_db
def test_the_page_says_when_its_figures_were_aggregated(client, campaign, pledges, national):
    client.force_login(national)
    with time_machine.travel(datetime(2026, 3, 10, 14, 5, 9, tzinfo=PARIS), tick=False):
        body = client.get(dashboard_url(campaign)).content.decode()
    assert "Chiffres à 14:05:09" in body


@pytest.mark.django_db
def test_the_snapshot_refreshes_after_a_change_and_not_without_one(campaign, pledges):
    def rhone_withdrawn() -> int:
        snapshot = dashboard_snapshot.cache.get(snapshot_key(campaign.pk))
        return next(d.withdrawn for d in snapshot.departments if d.code == "69")

    with time_machine.travel(datetime(2026, 3, 10, 12, 0, tzinfo=PARIS), tick=False) as clock:
        first = dashboard_snapshot_get(campaign=campaign)
        assert first.settled is False
        assert dashboard_snapshot_refresh(campaign=campaign) is False  # younger than the interval
        clock.shift(20)
        # Computed once more after its first computation (step 4: late commits), then settled.
        assert dashboard_snapshot_refresh(campaign=campaign) is True
        assert dashboard_snapshot.cache.get(snapshot_key(campaign.pk)).settled is True
        clock.shift(20)
        assert dashboard_snapshot_refresh(campaign=campaign) is False
        assert dashboard_snapshot_get(campaign=campaign).computed_at == timezone.now() - timedelta(seconds=20)

        withdrawn = pledges["69"][0]
        withdrawn.status = PledgeStatus.WITHDRAWN
        withdrawn.save()
        pledge_event_record(pledge=withdrawn, kind=PledgeEventKind.WITHDRAWN)
        assert rhone_withdrawn() == 0  # readers keep the snapshot until beat recomputes it
        clock.shift(20)
        assert dashboard_snapshot_refresh(campaign=campaign) is True
        assert rhone_withdrawn() == 1
        assert campaign_dashboard(campaign=campaign, scope=NATIONAL).totals["pledged"] == 10
        clock.shift(20)
        assert dashboard_snapshot_refresh(campaign=campaign) is True  # settling
        clock.shift(20)
        assert dashboard_snapshot_refresh(campaign=campaign) is False
        # Unchanged, but as old as the maximum age: recomputed (letters, answers, lists).
        clock.shift(dashboard_snapshot.max_age_seconds())
        assert dashboard_snapshot_refresh(campaign=campaign) is True


@pytest.mark.django_db
def test_beat_follows_watched_campaigns_and_keeps_open_ones_within_the_maximum_age(campaign, pledges):
    watched = campaign
    open_unwatched = CampaignFactory(slug="ouverte")
    closed = CampaignFactory(slug="fermee", status=CampaignStatus.CLOSED)
    for other in (open_unwatched, closed):
        LetterVersionFactory(campaign=other)
        PledgeFactory(campaign=other, department="69")

    def computed_at(campaign):
        snapshot = dashboard_snapshot.cache.get(snapshot_key(campaign.pk))
        return snapshot and snapshot.computed_at

    with time_machine.travel(datetime(2026, 3, 10, 12, 0, tzinfo=PARIS), tick=False) as clock:
        dashboard_snapshot_get(campaign=watched)
        # The open campaign gets its first snapshot; the watched one settles; the closed one waits.
        assert dashboard_snapshots_refresh() == 1
        assert computed_at(open_unwatched) == timezone.now()
        assert computed_at(closed) is None
        clock.shift(20)
        assert dashboard_snapshots_refresh() == 1
        assert computed_at(watched) == timezone.now()
        for each in (open_unwatched, watched):
            PledgeFactory(campaign=each, department="01")
            pledge_event_record(pledge=each.pledges.latest("pk"), kind=PledgeEventKind.PLEDGED)
        clock.shift(20)
        assert dashboard_snapshots_refresh() == 1  # the watched one: its fingerprint moved
        assert computed_at(open_unwatched) == timezone.now() - timedelta(seconds=40)
        clock.shift(dashboard_snapshot.max_age_seconds())
        assert dashboard_snapshots_refresh() == 2
        assert computed_at(open_unwatched) == timezone.now()
    assert computed_at(closed) is None


@pytest.mark.django_db
def test_beat_recomputes_the_past_days_when_they_no_longer_add_up(campaign, pledges):
    today = timezone.localdate()
    dashboard_snapshot_refresh(campaign=campaign, force=True)
    assert campaign_dashboard(campaign=campaign, scope=NATIONAL).daily == [(today, 11)]
    # Demo data inserted with past dates: a past day changed.
    backdated = PledgeFactory(campaign=campaign, department="75")
    Pledge.objects.filter(pk=backdated.pk).update(created_at=timezone.now() - timedelta(days=2))
    pledge_event_record(pledge=backdated, kind=PledgeEventKind.PLEDGED)
    dashboard_snapshot_refresh(campaign=campaign, force=True)
    daily = campaign_dashboard(campaign=campaign, scope=NATIONAL).daily
    assert daily == [(today - timedelta(days=2), 1), (today, 11)]


@pytest.mark.django_db
def test_just_after_midnight_the_chart_counts_the_snapshots_day_once(campaign, territories):
    with time_machine.travel(datetime(2026, 3, 10, 23, 59, 30, tzinfo=PARIS), tick=False) as clock:
        PledgeFactory.create_batch(2, campaign=campaign, department="69")
        snapshot = dashboard_snapshot_get(campaign=campaign)
        assert campaign_dashboard(campaign=campaign, scope=NATIONAL).daily == [(date(2026, 3, 10), 2)]
        clock.shift(60)  # 00:00:30, the snapshot still of the 10th
        figures = campaign_dashboard(campaign=campaign, scope=NATIONAL, snapshot=snapshot)
        assert figures.today == date(2026, 3, 11)
        assert figures.daily == [(date(2026, 3, 10), 2)]


# --- Concurrent first loads (PostgreSQL: the advisory lock) ---------------------------------


def _first_loads(campaign, *, threads: int, use_lock: bool, monkeypatch) -> tuple[int, set[str]]:
    """`threads` requests finding no snapshot at once; (aggregations made, versions they got)."""
    aggregations = []
    original = dashboard_snapshot.dashboard_snapshot_compute

    def slow_compute(**kwargs):
        aggregations.append(1)
        time.sleep(0.3)  # a million pledges: the window in which the others arrive
        return original(**kwargs)

    monkeypatch.setattr(dashboard_snapshot, "dashboard_snapshot_compute", slow_compute)
    start = threading.Barrier(threads)
    versions, errors = [], []

    def load():
        try:
            start.wait(timeout=10)
            versions.append(dashboard_snapshot_get(campaign=campaign, use_lock=use_lock).version)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    workers = [threading.Thread(target=load) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert not errors, errors
    assert len(versions) == threads
    return len(aggregations), set(versions)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_loads_aggregate_once(campaign, pledges, monkeypatch):
    aggregations, versions = _first_loads(campaign, threads=4, use_lock=True, monkeypatch=monkeypatch)
    assert aggregations == 1
    assert len(versions) == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_control_without_the_lock_concurrent_first_loads_each_aggregate(campaign, pledges, monkeypatch):
    aggregations, _versions = _first_loads(campaign, threads=4, use_lock=False, monkeypatch=monkeypatch)
    assert aggregations > 1


@pytest.mark.django_db
def test_the_beat_task_refreshes_through_the_service(campaign, pledges):
    from deconv.celery import BEAT_SCHEDULE
    from pledges.tasks import dashboard_snapshots_refresh_task

    entry = BEAT_SCHEDULE["pledges-dashboard-snapshots-refresh"]
    assert entry["task"] == dashboard_snapshots_refresh_task.name
    assert dashboard_snapshots_refresh_task() == {"refreshed": 1}  # the open campaign's first
    assert dashboard_snapshots_refresh_task() == {"refreshed": 0}
