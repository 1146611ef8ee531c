"""Organizers' exports of the pledges in their scope: CSV or XLSX, built by a task, audited.

Files go to PRIVATE_MEDIA_ROOT/exports/ (never served by the web server): the download view checks
that the account asking is the one who requested the export and that its scope still covers it.
Every cell goes through deconv.csvsafe.csv_safe, in XLSX too: a signer named "=HYPERLINK(...)"
must not run in an organizer's spreadsheet.

A file names signers, so it does not outlive its use:
- exports_purge_expired (a beat job, hourly) deletes each file EXPORT_RETENTION_HOURS after it
  was finished (72 h unless configured), and whatever a dead run left in the folder. The job row
  stays, its file_name cleared: the page says the file was deleted, and the audit log keeps
  who exported what and when.
- exports_forget_signer, called when an account is erased, deletes at once every file of the
  campaigns the signer pledged on, and fails an export being written at that moment (it may have
  read the signer's row already). Exports of the whole campaign, not only of the signer's
  department: an export holds the departments of its scope *when it was built*, and a pledge's
  department may have been corrected since. The cost is a new export, one click.
Building claims the job through pledges.jobs (one runner; a dead one's job is resumed, from the
start, by the recovery beat job).
"""

import contextlib
import csv
import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_lazy

from deconv.csvsafe import csv_safe
from deconv.models import AuditEntry
from pledges.access import OrganizerScope, scope_filter
from pledges.enums import (
    BundleStatus,
    ConventionSector,
    PledgeSource,
    PledgeStatus,
    PracticeMode,
    Specialty,
    VerificationStatus,
)
from pledges.jobs import EXPORT, job_claim, job_files_forget
from pledges.models import Campaign, ExportJob, Pledge

logger = logging.getLogger(__name__)

CSV = "csv"
XLSX = "xlsx"
FORMATS = (CSV, XLSX)
# Progress is written every this many rows: a few dozen UPDATEs for a national export.
PROGRESS_EVERY = 2000
# Files are deleted this long after they are finished (settings.EXPORT_RETENTION_HOURS): long
# enough to download a file requested on a Friday evening on Monday morning.
DEFAULT_RETENTION_HOURS = 72
# ExportJob.error of an export stopped by an erasure; the page explains it (the other values are
# exception names, for the technical team).
SIGNER_ERASED = "signer_erased"
_CONTENT_TYPES = {
    CSV: "text/csv; charset=utf-8",
    XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}

# (column title, Pledge field or lookup). Withdrawn and erased pledges keep blank personal fields.
COLUMNS = (
    (gettext_lazy("RPPS"), "rpps"),
    (gettext_lazy("Last name"), "last_name"),
    (gettext_lazy("First name"), "first_name"),
    (gettext_lazy("Specialty"), "specialty"),
    (gettext_lazy("Mode of practice"), "practice_mode"),
    (gettext_lazy("Sector"), "sector"),
    (gettext_lazy("Department"), "department__code"),
    (gettext_lazy("Postal code"), "postal_code"),
    (gettext_lazy("City"), "city"),
    (gettext_lazy("Caisse"), "caisse__name"),
    (gettext_lazy("Status"), "status"),
    (gettext_lazy("Verification"), "verification_status"),
    (gettext_lazy("Source"), "source"),
    (gettext_lazy("Signed at"), "created_at"),
)
# Network data identifies a connection, not a physician's practice: national organizers only.
NETWORK_COLUMNS = (
    (gettext_lazy("IP address at signing"), "signed_ip"),
    (gettext_lazy("Browser at signing"), "signed_user_agent"),
)
_LABELS = {
    "specialty": Specialty,
    "practice_mode": PracticeMode,
    "sector": ConventionSector,
    "status": PledgeStatus,
    "verification_status": VerificationStatus,
    "source": PledgeSource,
}


def exports_dir() -> Path:
    return Path(settings.PRIVATE_MEDIA_ROOT) / "exports"


def export_path(job: ExportJob) -> Path | None:
    """Where the finished file is; None before it exists."""
    if not job.file_name:
        return None
    return exports_dir() / job.file_name


def export_content_type(job: ExportJob) -> str:
    return _CONTENT_TYPES.get(job.file_format, "application/octet-stream")


def export_download_name(job: ExportJob) -> str:
    stamp = timezone.localtime(job.created_at).strftime("%Y%m%d-%H%M")
    return f"{job.campaign.slug}-{stamp}.{job.file_format}"


def _scope_snapshot(scope: OrganizerScope) -> dict:
    return {"national": scope.national, "department_codes": sorted(scope.department_codes)}


def export_scope(job: ExportJob) -> OrganizerScope:
    """The scope the export was requested with (the task exports that, not today's)."""
    return OrganizerScope(
        national=bool(job.scope.get("national")),
        department_codes=frozenset(job.scope.get("department_codes", [])),
        can_act=False,
    )


def export_covered_by(job: ExportJob, scope: OrganizerScope) -> bool:
    """Whether `scope` still sees every pledge the export holds (roles can be withdrawn meanwhile)."""
    exported = export_scope(job)
    if scope.national:
        return True
    return not exported.national and exported.department_codes <= scope.department_codes


def _audit_territory(scope: OrganizerScope) -> str:
    # One department: its code, so that this department's delegates read the entry.
    if not scope.national and len(scope.department_codes) == 1:
        return next(iter(scope.department_codes))
    return ""


def export_request(*, campaign: Campaign, scope: OrganizerScope, user, file_format: str) -> ExportJob:
    """Queue an export of the pledges in `scope`.

    Side effects: an ExportJob row, an AuditEntry "pledges.export_request", and the
    pledges.export_build task once the transaction commits.
    """
    if file_format not in FORMATS:
        raise ValueError(f"unknown export format {file_format!r}")
    from deconv.tasks import dispatch_safely
    from pledges.tasks import export_build_task

    with transaction.atomic():
        job = ExportJob.objects.create(
            campaign=campaign,
            file_format=file_format,
            scope={
                **_scope_snapshot(scope),
                "language": translation.get_language() or settings.LANGUAGE_CODE,
            },
            requested_by=user,
        )
        AuditEntry.objects.create(
            actor=user,
            action="pledges.export_request",
            campaign_id=campaign.pk,
            territory_code=_audit_territory(scope),
            object_type="ExportJob",
            object_id=str(job.pk),
            details={"format": file_format, **_scope_snapshot(scope)},
        )
        transaction.on_commit(lambda: dispatch_safely(export_build_task, job.pk))
    return job


def export_download_audit(*, job: ExportJob, user) -> None:
    """Record that the file left the server."""
    scope = export_scope(job)
    AuditEntry.objects.create(
        actor=user,
        action="pledges.export_download",
        campaign_id=job.campaign_id,
        territory_code=_audit_territory(scope),
        object_type="ExportJob",
        object_id=str(job.pk),
        details={"format": job.file_format, "rows": job.progress_total},
    )


def _columns(scope: OrganizerScope) -> tuple:
    return COLUMNS + NETWORK_COLUMNS if scope.national else COLUMNS


def _cell(field: str, value) -> str:
    if value is None:
        return ""
    if field in _LABELS and value:
        # A value no longer among the choices is exported as stored.
        with contextlib.suppress(ValueError):
            value = _LABELS[field](value).label
    elif field == "created_at":
        value = timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
    return csv_safe(value)


def export_rows(*, campaign: Campaign, scope: OrganizerScope) -> tuple[list[str], int, Iterator[list[str]]]:
    """(header, row count, rows): every pledge of the campaign in scope, oldest first, cells made safe."""
    columns = _columns(scope)
    fields = [name for _, name in columns]
    pledges = scope_filter(Pledge.objects.filter(campaign=campaign), scope).order_by("created_at", "pk")
    total = pledges.count()
    header = [csv_safe(str(title)) for title, _ in columns]

    def rows() -> Iterator[list[str]]:
        for values in pledges.values_list(*fields).iterator(chunk_size=PROGRESS_EVERY):
            yield [_cell(name, value) for name, value in zip(fields, values, strict=True)]

    return header, total, rows()


def export_retention() -> timedelta:
    return timedelta(hours=getattr(settings, "EXPORT_RETENTION_HOURS", DEFAULT_RETENTION_HOURS))


def _partial_path(export_id: int) -> Path:
    # One name per job, not per run: a resumed run overwrites what the dead one left.
    return exports_dir() / f".export-{export_id}.part"


def export_leftovers_remove(export_id: int) -> None:
    """Remove the partial file a dead run left (pledges.jobs calls it when it gives the job up)."""
    _partial_path(export_id).unlink(missing_ok=True)


def export_build(*, export_id: int) -> str:
    """Write the export's file, moving `progress_done` along; returns the final status.

    1. Claim the job (pledges.jobs.job_claim): a job another worker runs, or already finished,
       is left alone; one whose worker died is built again from the start.
    2. Count the rows (progress_total), write them to a temporary file, updating progress_done
       every PROGRESS_EVERY rows so the page's progress bar advances.
    3. Rename the file into place, mark the job done, unless it stopped running meanwhile (an
       account erased while the rows were read fails the job, exports_forget_signer): the file
       is deleted then. Any error marks it failed (the message is kept for organizers; it holds
       no personal data) and removes the partial file.
    """
    with job_claim(EXPORT, export_id, progress_done=0, progress_total=0, error="") as claimed:
        if not claimed:
            return (
                ExportJob.objects.filter(pk=export_id).values_list("status", flat=True).first() or "missing"
            )
        return _build(export_id)


def _build(export_id: int) -> str:
    job = ExportJob.objects.select_related("campaign").get(pk=export_id)
    scope = export_scope(job)
    file_name = f"{job.campaign.slug}-{job.pk}-{secrets.token_hex(8)}.{job.file_format}"
    directory = exports_dir()
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / file_name
    partial = _partial_path(job.pk)
    running = ExportJob.objects.filter(pk=job.pk, status=BundleStatus.RUNNING)
    try:
        with translation.override(job.scope.get("language") or settings.LANGUAGE_CODE):
            header, total, rows = export_rows(campaign=job.campaign, scope=scope)
            ExportJob.objects.filter(pk=job.pk).update(progress_total=total)
            writer = _write_xlsx if job.file_format == XLSX else _write_csv
            written = writer(path=partial, header=header, rows=rows, job_id=job.pk, sheet=gettext("Pledges"))
        os.replace(partial, final)
    except Exception as error:
        partial.unlink(missing_ok=True)
        logger.exception("export %s failed", job.pk)
        running.update(status=BundleStatus.FAILED, error=type(error).__name__, finished_at=timezone.now())
        return BundleStatus.FAILED
    done = running.update(
        status=BundleStatus.DONE,
        file_name=file_name,
        progress_done=written,
        progress_total=written,
        finished_at=timezone.now(),
    )
    if not done:
        # Failed meanwhile by an erasure: the file may name the erased signer.
        final.unlink(missing_ok=True)
        return ExportJob.objects.filter(pk=job.pk).values_list("status", flat=True).first() or "missing"
    return BundleStatus.DONE


def _progress(job_id: int, done: int) -> None:
    ExportJob.objects.filter(pk=job_id).update(progress_done=done)


def _write_csv(*, path: Path, header: list[str], rows: Iterator[list[str]], job_id: int, sheet: str) -> int:
    written = 0
    # utf-8-sig: the BOM makes Excel read accents right; semicolons are what French Excel expects.
    with path.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            written += 1
            if written % PROGRESS_EVERY == 0:
                _progress(job_id, written)
    return written


def _write_xlsx(*, path: Path, header: list[str], rows: Iterator[list[str]], job_id: int, sheet: str) -> int:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    worksheet = workbook.create_sheet(title=sheet[:31])

    def text_cells(values: list[str]) -> list:
        cells = []
        for value in values:
            cell = WriteOnlyCell(worksheet, value=value)
            # Strings stay strings: openpyxl would otherwise store "=..." as a formula.
            cell.data_type = "s"
            cells.append(cell)
        return cells

    worksheet.append(text_cells(header))
    written = 0
    for row in rows:
        worksheet.append(text_cells(row))
        written += 1
        if written % PROGRESS_EVERY == 0:
            _progress(job_id, written)
    workbook.save(path)
    return written


# --- Retention and erasure -----------------------------------------------------------------------


def exports_purge_expired(*, now=None) -> int:
    """Delete the files past their retention (module docstring); returns how many files went.

    1. Finished jobs older than the retention lose their file_name (one UPDATE each, fenced on the
       name read), then their file.
    2. Any other file in the folder older than the retention and named by no job is deleted: the
       partial file of a run that died, a file whose UPDATE committed but unlink did not happen.
    """
    cutoff = (now or timezone.now()) - export_retention()
    removed = 0
    expired = ExportJob.objects.filter(status=BundleStatus.DONE, finished_at__lt=cutoff).exclude(file_name="")
    for job_id, file_name in expired.values_list("pk", "file_name"):
        if ExportJob.objects.filter(pk=job_id, file_name=file_name).update(file_name=""):
            (exports_dir() / file_name).unlink(missing_ok=True)
            removed += 1
    directory = exports_dir()
    if directory.is_dir():
        named = set(ExportJob.objects.exclude(file_name="").values_list("file_name", flat=True))
        for path in directory.iterdir():
            if path.is_file() and path.name not in named and path.stat().st_mtime < cutoff.timestamp():
                path.unlink(missing_ok=True)
                removed += 1
    if removed:
        logger.info("exports: %d files past their retention deleted", removed)
    return removed


def exports_forget_signer(*, campaign_ids: Iterable[int]) -> int:
    """An account is erased: no export of its campaigns may keep naming it; returns files deleted.

    Call it in the erasure's transaction: pledges.jobs.job_files_forget says how queued,
    running and finished exports are treated.
    """
    campaign_ids = list(campaign_ids)
    if not campaign_ids:
        return 0
    deleted, stopped = job_files_forget(
        jobs=ExportJob.objects.filter(campaign_id__in=campaign_ids),
        directory=exports_dir(),
        error=SIGNER_ERASED,
    )
    if deleted or stopped:
        logger.info("exports: %d files deleted and %d runs stopped after an erasure", deleted, stopped)
    return deleted
