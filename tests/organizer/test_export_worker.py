"""The export runs in a real Celery worker and its progress reaches the total; an export whose
message never left (broker down) or whose worker was killed is built once recovery runs."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from deconv.celery import app
from deconv.models import AuditEntry
from pledges.jobs import jobs_recover
from pledges.models import ExportJob
from pledges.tasks import export_build_task
from tests.conftest import ROOT, _worker_env, wait_for_worker
from tests.organizer.conftest import LEAKY_NAME


@pytest.fixture
def worker_private_media(tmp_path, monkeypatch, settings):
    """The worker (a separate process) writes exports where this test reads them."""
    folder = tmp_path / "worker-private"
    monkeypatch.setenv("PRIVATE_MEDIA_ROOT", str(folder))
    settings.PRIVATE_MEDIA_ROOT = folder
    app.control.purge()  # tasks left in the broker by another run would go first
    return folder


def wait_for_status(job_id: int, timeout: float = 30.0) -> ExportJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ExportJob.objects.get(pk=job_id)
        if job.status in ("done", "failed"):
            return job
        time.sleep(0.2)
    return job


@pytest.mark.redis
@pytest.mark.worker
@pytest.mark.slow
def test_an_export_requested_on_the_page_is_built_by_the_worker(
    worker_private_media, celery_worker_process, client, campaign, pledges, delegate_69
):
    client.force_login(delegate_69)
    response = client.post(
        reverse("pledges:organizer_exports", kwargs={"slug": campaign.slug}), {"format": "csv"}
    )
    job_id = ExportJob.objects.get().pk
    assert response.status_code == 302

    job = wait_for_status(job_id)
    assert (job.status, job.progress_done, job.progress_total) == ("done", 7, 7)
    status = client.get(
        reverse("pledges:organizer_export_status", kwargs={"slug": campaign.slug, "export_id": job_id})
    ).json()
    assert (status["percent"], status["done"], status["total"]) == (100, 7, 7)
    content = (worker_private_media / "exports" / job.file_name).read_text(encoding="utf-8-sig")
    assert content.count("\n") == 8
    assert LEAKY_NAME not in content


def _worker_start() -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "deconv", "worker", "--pool=solo", "--loglevel=WARNING"],
        cwd=ROOT,
        env=_worker_env(),
        start_new_session=True,
    )
    assert wait_for_worker(), "the Celery worker did not answer pings within 30 s"
    return process


def _worker_kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.worker
@pytest.mark.slow
def test_an_export_requested_while_the_broker_is_down_is_built_once_the_recovery_job_runs(
    worker_private_media, celery_worker_process, client, campaign, pledges, national, monkeypatch
):
    client.force_login(national)

    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    with monkeypatch.context() as patch:
        patch.setattr(export_build_task, "apply_async", broker_down)
        client.post(reverse("pledges:organizer_exports", kwargs={"slug": campaign.slug}), {"format": "csv"})
    job_id = ExportJob.objects.get().pk
    time.sleep(1)
    assert ExportJob.objects.get(pk=job_id).status == "queued", "no message reached the worker"

    assert jobs_recover(now=timezone.now() + timedelta(minutes=3))["export"] == 1

    job = wait_for_status(job_id)
    assert (job.status, job.progress_done) == ("done", 11)
    assert LEAKY_NAME in (worker_private_media / "exports" / job.file_name).read_text(encoding="utf-8-sig")


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.worker
@pytest.mark.slow
def test_an_export_whose_worker_is_killed_mid_run_is_built_by_another_worker(
    worker_private_media, celery_worker_process, campaign, pledges, national
):
    """kill -9 while the worker reads the pledges: PostgreSQL drops its lock, recovery sends the job again."""
    job = ExportJob.objects.create(campaign=campaign, file_format="csv", scope={"national": True})
    # The pledges table locked: the worker claims the job, then waits at its first read of pledges.
    locker = psycopg.connect(**connection.get_connection_params())
    locker.execute("LOCK TABLE pledges_pledge IN ACCESS EXCLUSIVE MODE")
    second = None
    try:
        export_build_task.delay(job.pk)
        deadline = time.monotonic() + 30
        while ExportJob.objects.get(pk=job.pk).status != "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ExportJob.objects.get(pk=job.pk).status == "running"
        assert jobs_recover()["export"] == 0, "its worker is alive and holds the job"

        _worker_kill(celery_worker_process)
        locker.rollback()  # the dead worker's session gets its answer, finds no client, and ends
        deadline = time.monotonic() + 30
        while not jobs_recover()["export"] and time.monotonic() < deadline:
            time.sleep(0.2)
        second = _worker_start()

        job = wait_for_status(job.pk)
    finally:
        locker.close()
        if second is not None:
            _worker_kill(second)
    assert (job.status, job.progress_done) == ("done", 11)
    assert AuditEntry.objects.filter(action="job.resume", object_id=str(job.pk)).count() == 1
    assert sorted(path.name for path in (worker_private_media / "exports").iterdir()) == [job.file_name]
