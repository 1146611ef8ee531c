"""Counting jobs in separate processes: two at once, and one killed (SIGKILL) while it holds the
counting lock. No pledge is counted twice nor missed, and reconciliation finds no drift.
"""

import subprocess
import sys

import pytest

from pledges.counting import NATION_CODE, counts_reconcile
from pledges.enums import COUNTED_STATUSES, PledgeStatus, TerritoryLevel
from pledges.models import CounterState, Pledge, TerritoryCount
from pledges.services import pledge_withdraw
from tests.moderation.factories import pledge_make
from tests.pledges.factories import CampaignFactory, LetterVersionFactory
from tests.reliability.servers import ROOT, kill_process, run_app, wait_until


def _counted() -> dict[tuple[str, str], int]:
    return {(row.level, row.code): row.pledges for row in TerritoryCount.objects.all()}


def _expected(campaign) -> dict[tuple[str, str], int]:
    live = Pledge.objects.filter(campaign=campaign, status__in=COUNTED_STATUSES).select_related(
        "department__region"
    )
    expected: dict[tuple[str, str], int] = {}
    for pledge in live:
        for key in (
            (TerritoryLevel.DEPARTMENT.value, pledge.department.code),
            (TerritoryLevel.REGION.value, pledge.department.region.code),
            (TerritoryLevel.NATION.value, NATION_CODE),
        ):
            expected[key] = expected.get(key, 0) + 1
    return expected


@pytest.mark.slow
@pytest.mark.postgres
def test_counting_twice_at_once_and_after_a_runner_killed_holding_the_lock_counts_each_pledge_once(
    territories_loaded, base_env, figures
):
    campaign = CampaignFactory()
    LetterVersionFactory(campaign=campaign)
    CounterState.objects.update_or_create(pk=1, defaults={"lag_seconds": 0, "interval_seconds": 1})
    before = [pledge_make(campaign=campaign, department=code) for code in ("01", "01", "69", "75", "2A")]
    env = {**base_env}
    env.pop("REDIS_URL", None)

    # A runner that reads its window, then holds the lock until it is killed.
    holder = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.appctl", "counts_update_holding", "120"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    holding = wait_until(lambda: holder.stdout.readline().startswith("holding"), timeout=60)
    # Signing goes on meanwhile (never blocked by the counting lock) ...
    during = [pledge_make(campaign=campaign, department=code) for code in ("01", "13", "971")]
    pledge_withdraw(pledge=before[0])
    # ... and a second runner started at the same time skips: the first one owns the window.
    concurrent = run_app("counts_update", env=env)
    kill_process(holder)
    counted_after_kill = _counted()

    after = [pledge_make(campaign=campaign, department=code) for code in ("69", "59")]
    fresh = run_app("counts_update", env=env)
    again = run_app("counts_update", env=env)
    drifts = counts_reconcile()

    live = Pledge.objects.filter(campaign=campaign, status__in=COUNTED_STATUSES).count()
    counted = _counted()
    figures(
        "counting_faults",
        {
            "pledges_signed": len(before) + len(during) + len(after),
            "withdrawn": Pledge.objects.filter(status=PledgeStatus.WITHDRAWN).count(),
            "live_pledges": live,
            "concurrent_run_skipped": concurrent["skipped"],
            "counts_written_by_killed_runner": sum(counted_after_kill.values()),
            "events_counted_by_fresh_run": fresh["events"],
            "events_counted_by_next_run": again["events"],
            "national_count": counted.get((TerritoryLevel.NATION.value, NATION_CODE)),
            "reconcile_drifts": len(drifts),
        },
    )
    assert holding
    assert concurrent == {"events": 0, "skipped": True}
    assert counted_after_kill == {}, "the killed runner's transaction must leave nothing behind"
    assert fresh["skipped"] is False
    assert fresh["events"] == len(before) + len(during) + 1 + len(after)  # +1: the withdrawal's -1
    assert again == {"events": 0, "skipped": False}
    assert counted == _expected(campaign)
    assert counted[(TerritoryLevel.NATION.value, NATION_CODE)] == live == 9
    assert drifts == []
