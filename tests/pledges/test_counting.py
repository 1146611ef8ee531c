"""counts_update and counts_reconcile: exact under concurrency, one runner at a time, late commits repaired."""

import logging
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from deconv.celery import BEAT_SCHEDULE, app
from pledges.counting import Drift, counts_reconcile, counts_update
from pledges.enums import PledgeEventKind, PledgeStatus
from pledges.models import CounterState, Pledge, PledgeEvent, TerritoryCount
from pledges.tasks import counts_tick
from territories.models import Department, Region
from tests.pledges.counting_support import (
    counter_settings,
    pledge_sign,
    pledge_withdraw,
    published,
    run_in_threads,
    surge_signer,
)
from tests.pledges.factories import CampaignFactory, LetterVersionFactory

# --- helpers ------------------------------------------------------------------------------


@pytest.fixture
def departments():
    """Three departments in two regions, as the real data has them."""
    ara = Region.objects.create(code="84", name="Auvergne-Rhône-Alpes")
    idf = Region.objects.create(code="11", name="Île-de-France")
    return {
        "01": Department.objects.create(code="01", name="Ain", region=ara, position=1),
        "03": Department.objects.create(code="03", name="Allier", region=ara, position=3),
        "75": Department.objects.create(code="75", name="Paris", region=idf, position=76),
    }


@pytest.fixture
def campaign_with_letter():
    campaign = CampaignFactory()
    LetterVersionFactory(campaign=campaign)
    return campaign


def from_rows(campaign) -> dict[tuple[str, str], int]:
    """The counts recomputed from the pledge rows, independently of the counting code."""
    expected: dict[tuple[str, str], int] = {}
    for pledge in Pledge.objects.filter(campaign=campaign, status=PledgeStatus.ACTIVE).select_related(
        "department__region"
    ):
        for key in (
            ("department", pledge.department.code),
            ("region", pledge.department.region.code),
            ("nation", "FR"),
        ):
            expected[key] = expected.get(key, 0) + 1
    return expected


# --- on any database (SQLite in the embedded default) --------------------------------------


@pytest.mark.django_db
def test_counts_update_counts_pledges_and_withdrawals_and_reconcile_agrees(departments, campaign_with_letter):
    campaign = campaign_with_letter
    counter_settings(lag_seconds=0)
    signed = [
        pledge_sign(campaign=campaign, department=departments[code]) for code in ("01", "01", "03", "75")
    ]
    pledge_withdraw(pledge_id=signed[0].pk)

    result = counts_update()

    assert result.skipped is False
    assert result.events == 5
    assert published(campaign) == {
        ("department", "01"): 1,
        ("department", "03"): 1,
        ("department", "75"): 1,
        ("region", "84"): 2,
        ("region", "11"): 1,
        ("nation", "FR"): 3,
    }
    assert published(campaign) == from_rows(campaign)
    assert counts_update().events == 0
    assert published(campaign) == from_rows(campaign)
    assert counts_reconcile() == []


@pytest.mark.django_db
def test_counts_update_leaves_events_younger_than_the_lag_for_a_later_run(departments, campaign_with_letter):
    campaign = campaign_with_letter
    counter_settings(lag_seconds=3600)
    pledge_sign(campaign=campaign, department=departments["01"])

    early = counts_update()

    assert early.events == 0
    assert published(campaign) == {}
    assert CounterState.objects.get().counted_until == early.window_end

    counter_settings(lag_seconds=0)
    late = counts_update()

    assert late.window_start == early.window_end
    assert late.events == 1
    assert published(campaign)[("nation", "FR")] == 1


@pytest.mark.django_db
def test_counts_update_does_nothing_when_a_raised_lag_puts_the_window_end_before_its_start(
    departments, campaign_with_letter
):
    counter_settings(lag_seconds=0)
    pledge_sign(campaign=campaign_with_letter, department=departments["01"])
    first = counts_update()
    counter_settings(lag_seconds=3600)

    second = counts_update()

    assert second.events == 0
    assert CounterState.objects.get().counted_until == first.window_end
    assert published(campaign_with_letter)[("nation", "FR")] == 1


@pytest.mark.django_db
def test_counts_update_costs_the_same_queries_for_one_event_or_many(departments, campaign_with_letter):
    counter_settings(lag_seconds=0)
    pledge_sign(campaign=campaign_with_letter, department=departments["01"])
    with CaptureQueriesContext(connection) as one_event:
        counts_update()
    other = CampaignFactory()
    LetterVersionFactory(campaign=other)
    for index in range(30):
        pledge_sign(
            campaign=(campaign_with_letter, other)[index % 2],
            department=departments[("01", "03", "75")[index % 3]],
        )
    with CaptureQueriesContext(connection) as many_events:
        result = counts_update()

    assert result.events == 30
    assert len(many_events.captured_queries) == len(one_event.captured_queries) <= 8


@pytest.mark.django_db
def test_counts_reconcile_repairs_a_tampered_count_and_its_roll_up(departments, campaign_with_letter, caplog):
    campaign = campaign_with_letter
    counter_settings(lag_seconds=0)
    for code in ("01", "03", "03"):
        pledge_sign(campaign=campaign, department=departments[code])
    counts_update()
    TerritoryCount.objects.filter(campaign=campaign, level="department", code="03").update(pledges=7)
    TerritoryCount.objects.filter(campaign=campaign, level="nation").delete()

    with caplog.at_level(logging.WARNING, logger="pledges.counting"):
        drifts = counts_reconcile()

    assert drifts == [
        Drift(campaign_id=campaign.pk, level="department", code="03", counted=7, expected=2),
        Drift(campaign_id=campaign.pk, level="nation", code="FR", counted=0, expected=3),
    ]
    assert published(campaign) == from_rows(campaign)
    assert f"campaign={campaign.pk} level=department code=03 counted=7 expected=2" in caplog.text
    assert counts_reconcile() == []


@pytest.mark.django_db
def test_counts_tick_counts_only_once_the_interval_has_passed(departments, campaign_with_letter):
    counter_settings(lag_seconds=0, interval_seconds=3600, last_run_at=timezone.now())
    pledge_sign(campaign=campaign_with_letter, department=departments["01"])

    assert counts_tick() == {"due": False}
    assert published(campaign_with_letter) == {}

    # The organizer shortens the interval in the admin: the next tick applies it.
    counter_settings(interval_seconds=5, last_run_at=timezone.now() - timedelta(seconds=6))

    assert counts_tick() == {"due": True, "skipped": False, "events": 1}
    assert published(campaign_with_letter)[("nation", "FR")] == 1
    assert counts_tick() == {"due": False}


@pytest.mark.django_db
def test_counts_tick_runs_on_a_fresh_database_and_creates_the_counter_state():
    assert counts_tick() == {"due": True, "skipped": False, "events": 0}
    assert CounterState.objects.get(pk=1).last_run_at is not None


def test_beat_schedule_runs_the_counting_tasks_by_name():
    app.loader.import_default_modules()
    tasks = {entry["task"]: entry for entry in BEAT_SCHEDULE.values()}

    assert tasks["pledges.counts_tick"]["schedule"] == 1.0
    assert "pledges.counts_reconcile" in tasks
    assert {"pledges.counts_tick", "pledges.counts_update", "pledges.counts_reconcile"} <= set(app.tasks)


@pytest.mark.django_db
def test_organizer_can_change_the_interval_and_lag_but_not_the_bookmark(client, organizer):
    counter_settings(interval_seconds=5, lag_seconds=2)
    client.force_login(organizer)
    url = reverse("admin:pledges_counterstate_change", args=[1])

    response = client.post(url, {"interval_seconds": "10", "lag_seconds": "3", "counted_until": "2020-01-01"})

    assert response.status_code == 302
    state = CounterState.objects.get()
    assert (state.interval_seconds, state.lag_seconds, state.counted_until) == (10, 3, None)
    assert client.get(reverse("admin:pledges_territorycount_changelist")).status_code == 200


# --- PostgreSQL: concurrency --------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_counts_equal_the_rows_after_a_concurrent_surge_of_pledges_and_withdrawals(
    departments, campaign_with_letter
):
    campaign = campaign_with_letter
    counter_settings(lag_seconds=1)
    stop = threading.Event()
    counter_runs = []
    signer = surge_signer(campaign=campaign, departments=departments, actions=50)

    def counter():
        # Counting runs during the surge, as beat would make it.
        try:
            while not stop.is_set():
                counter_runs.append(counts_update())
                time.sleep(0.05)
        finally:
            connection.close()

    counter_thread = threading.Thread(target=counter)
    counter_thread.start()
    try:
        run_in_threads(signer, 8)
    finally:
        stop.set()
        counter_thread.join(timeout=60)
    counter_settings(lag_seconds=0)  # every signer has committed: count up to now
    counts_update()

    assert sum(run.events for run in counter_runs) > 0  # counted during the surge, not only after
    expected = from_rows(campaign)
    assert expected[("nation", "FR")] == Pledge.objects.filter(status=PledgeStatus.ACTIVE).count() > 0
    assert published(campaign) == expected
    assert counts_reconcile() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_counters_under_the_advisory_lock_never_count_twice(departments, campaign_with_letter):
    campaign = campaign_with_letter
    counter_settings(lag_seconds=0)
    runs = []
    for round_number in range(1, 4):
        for _ in range(10):
            pledge_sign(campaign=campaign, department=departments["75"])
        start = threading.Barrier(4)

        def count(_index, start=start):
            start.wait(timeout=10)
            # Holding the lock a little makes the others arrive while it is held.
            return counts_update(after_window_read=lambda: time.sleep(0.2))

        results = run_in_threads(count, 4)
        runs.extend(results)

        assert sum(result.events for result in results if not result.skipped) == 10
        assert published(campaign)[("nation", "FR")] == 10 * round_number
        assert published(campaign)[("department", "75")] == 10 * round_number
    assert any(run.skipped for run in runs)
    assert counts_reconcile() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_control_without_the_lock_two_counters_count_the_same_window_twice(departments, campaign_with_letter):
    campaign = campaign_with_letter
    counter_settings(lag_seconds=0)
    for _ in range(10):
        pledge_sign(campaign=campaign, department=departments["75"])
    both_read_the_bookmark = threading.Barrier(2)

    results = run_in_threads(
        lambda _index: counts_update(
            use_lock=False, after_window_read=lambda: both_read_the_bookmark.wait(timeout=10)
        ),
        2,
    )

    assert [result.events for result in results] == [10, 10]
    assert published(campaign)[("nation", "FR")] == 20  # the race the lock prevents
    assert len(counts_reconcile()) == 3  # and the reconciliation repairs it
    assert published(campaign)[("nation", "FR")] == 10


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_event_committed_after_its_window_was_counted_is_repaired_by_reconcile(
    departments, campaign_with_letter, caplog
):
    campaign = campaign_with_letter
    counter_settings(lag_seconds=0)
    inserted, commit = threading.Event(), threading.Event()

    def slow_signer(_index):
        # The event's occurred_at is set at INSERT; the commit comes after the counting run.
        with transaction.atomic():
            pledge = pledge_sign(campaign=campaign, department=departments["01"])
            inserted.set()
            assert commit.wait(timeout=10)
        return pledge

    signer = threading.Thread(target=lambda: run_in_threads(slow_signer, 1))
    signer.start()
    assert inserted.wait(timeout=10)
    missed = counts_update()
    commit.set()
    signer.join(timeout=30)

    assert missed.events == 0
    assert counts_update().events == 0  # its occurred_at is behind the bookmark now
    assert published(campaign) == {}

    with caplog.at_level(logging.WARNING, logger="pledges.counting"):
        drifts = counts_reconcile()

    assert drifts == [
        Drift(campaign_id=campaign.pk, level="department", code="01", counted=0, expected=1),
        Drift(campaign_id=campaign.pk, level="region", code="84", counted=0, expected=1),
        Drift(campaign_id=campaign.pk, level="nation", code="FR", counted=0, expected=1),
    ]
    assert [record.levelname for record in caplog.records] == ["WARNING"] * 3
    rpps = Pledge.objects.get().rpps
    assert rpps not in caplog.text
    assert published(campaign) == {("department", "01"): 1, ("region", "84"): 1, ("nation", "FR"): 1}
    assert counts_update().events == 0
    assert counts_reconcile() == []
    assert published(campaign)[("nation", "FR")] == 1


def plan_rows(node: dict, relation: str) -> int:
    """Rows an EXPLAIN (ANALYZE, FORMAT JSON) plan read from `relation`, over all its loops."""
    own = node["Actual Rows"] * node["Actual Loops"] if node.get("Relation Name") == relation else 0
    return own + sum(plan_rows(child, relation) for child in node.get("Plans", []))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_counts_update_reads_territory_codes_per_department_not_per_event(departments, campaign_with_letter):
    # Statistics taken before the window: the planner expects about one event in it (the
    # window lies beyond the analysed histogram), the case where looking codes up per event wins.
    campaign = campaign_with_letter
    counter_settings(lag_seconds=0)
    day_ago = timezone.now() - timedelta(days=1)
    PledgeEvent.objects.bulk_create(
        PledgeEvent(
            campaign=campaign,
            department=departments["01"],
            kind=PledgeEventKind.PLEDGED,
            delta=1,
            occurred_at=day_ago + timedelta(seconds=index),
        )
        for index in range(300)
    )
    assert counts_update().events == 300
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE pledges_pledgeevent")
    PledgeEvent.objects.bulk_create(
        PledgeEvent(campaign=campaign, department=department, kind=PledgeEventKind.PLEDGED, delta=1)
        for department in list(departments.values()) * 200
    )
    with CaptureQueriesContext(connection) as queries:
        assert counts_update().events == 600
    (window_sql,) = [q["sql"] for q in queries.captured_queries if "SUM(" in q["sql"].upper()]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + window_sql)
        plan = cursor.fetchone()[0][0]["Plan"]

    assert plan_rows(plan, "pledges_pledgeevent") == 600
    assert plan_rows(plan, "territories_department") <= len(departments)
