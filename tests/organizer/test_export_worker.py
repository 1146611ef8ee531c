"""The export runs in a real Celery worker and its progress reaches the total."""

import time

import pytest
from django.urls import reverse

from deconv.celery import app
from pledges.models import ExportJob
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
