"""The tasks and beat entries of the letters pipeline, and one release through a real worker."""

import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from deconv.celery import BEAT_SCHEDULE, app
from deconv.models import OutgoingEmail
from pledges import tasks
from pledges.letters_pipeline import release_process, releases_resume
from pledges.models import Letter, Release
from tests.letters.factories import ReleasedPledgeFactory, ReleaseFactory
from tests.letters.support import letter_bytes

OUR_TASKS = {
    "pledges.release_process",
    "pledges.release_letters_help",
    "pledges.releases_resume",
    "pledges.letters_refresh",
    "pledges.escrow_bundle_build",
    "pledges.followup_remind",
}


def test_tasks_are_registered_under_their_names_and_beat_runs_the_periodic_ones():
    assert set(app.tasks) >= OUR_TASKS
    scheduled = {entry["task"] for entry in BEAT_SCHEDULE.values()}
    assert {"pledges.releases_resume", "pledges.letters_refresh", "pledges.followup_remind"} <= scheduled
    for entry in BEAT_SCHEDULE.values():
        if entry["task"] in OUR_TASKS:
            assert entry["options"]["expires"] > 0


def test_release_process_task_takes_the_release_id_as_the_conditions_work_sends_it(release, make_pledges):
    make_pledges(2)
    # pledges.rounds dispatches task.delay(release_id=...): a keyword argument.
    result = tasks.release_process_task.apply(kwargs={"release_id": release.pk}).get()
    assert result == {"letters_created": 2, "finished": True}
    assert tasks.release_process_task.apply(args=[release.pk]).get() == {
        "letters_created": 0,
        "finished": True,
    }


def test_releases_resume_dispatches_unfinished_releases_only(release, make_pledges, monkeypatch):
    make_pledges(1)
    release_process(release_id=release.pk)
    stuck = ReleaseFactory(campaign=release.campaign, code="03", released_at=release.released_at)
    ReleaseFactory(campaign=release.campaign, code="07", released_at=timezone.now() - timedelta(minutes=1))
    dispatched = []
    monkeypatch.setattr("pledges.tasks.release_process_task.delay", lambda **kw: dispatched.append(kw))

    assert releases_resume() == [stuck.pk]
    assert dispatched == [{"release_id": stuck.pk}]


@pytest.fixture
def worker_var_dir(tmp_path, monkeypatch):
    """The worker's VAR_DIR is this test's tmp_path: it writes letters where the test reads them."""
    monkeypatch.setenv("DECONV_VAR_DIR", str(tmp_path))
    app.control.purge()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.worker
@pytest.mark.slow
def test_a_release_dispatched_like_the_conditions_work_is_processed_by_a_real_worker(
    worker_var_dir, celery_worker_process, campaign, caisse
):
    release = Release.objects.create(
        campaign=campaign,
        level="department",
        code="01",
        released_at="2026-03-02T10:00:00+01:00",
        pledge_count=3,
    )
    pledges = [ReleasedPledgeFactory(release=release, caisse=caisse) for _ in range(3)]

    app.tasks["pledges.release_process"].delay(release_id=release.pk)

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        release.refresh_from_db()
        if release.emails_done_at is not None:
            break
        time.sleep(0.2)
    assert release.letters_done_at is not None and release.emails_done_at is not None
    letters = list(Letter.objects.filter(release=release))
    assert sorted(letter.pledge_id for letter in letters) == sorted(p.pk for p in pledges)
    assert all(letter_bytes(letter).startswith(b"%PDF") for letter in letters)
    assert OutgoingEmail.objects.filter(kind="released").count() == 3
    connection.close()
