"""Organizers' background jobs: one runner at a time, and none left behind.

Four kinds of job row (KINDS below): escrow bundles (pledges.escrow), RPPS directory imports
(pledges.directory), bulk invalidations (pledges.moderation) and exports (pledges.exports). An
organizer's action creates the row, queued, and hands its task to the broker after the commit.

Claiming (job_claim, at the top of each job's service):
1. PostgreSQL: take the job's session advisory lock, without waiting. Not taken: another worker
   is running this job, and this message is a duplicate: nothing to do. The runner holds the
   lock to the end of its run, and PostgreSQL drops it by itself when the runner's connection
   closes: a worker that died holds nothing.
2. queued -> running, by a conditional UPDATE. A job found running instead, with its lock free,
   was left by a worker that died (killed, out of memory, hard time limit): this run resumes it,
   as each service says (the bulk invalidation continues where it stopped, the others start over).
   Each resume leaves an audit entry "job.resume"; after MAX_RESUMES the job is marked failed
   instead, with a message saying why: a job that kills its worker must not loop.
On SQLite (the embedded default: one machine, usually one worker) there are no advisory locks:
a running job counts as abandoned once it is SQLITE_STUCK_AFTER old.

Why a lock and not a timeout: a directory import or a national export legitimately runs for
many minutes, and requeueing a slow but live job after a timeout would run it twice at once. The
lock tells a dead worker from a slow one. A worker that hangs while alive keeps its lock: Celery's
hard time limit is what stops it (the child process is killed, its connection and lock go).

Recovery (jobs_recover, a beat job every minute) dispatches again:
- the jobs still queued QUEUED_GRACE after they were requested: their message was never sent
  (broker down at commit time) or was lost;
- the running jobs whose worker died (lock free), which the task then resumes (step 2).
A job is dispatched again at most once per DISPATCH_LEASE (a cache key), so a long queue does
not collect a duplicate a minute; the duplicates that do arrive are no-ops (step 1).
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.core.cache import cache
from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext

from deconv.models import AuditEntry
from pledges.enums import BundleStatus
from pledges.models import BulkInvalidation, DirectoryImport, EscrowBundle, ExportJob

logger = logging.getLogger(__name__)

# A job still queued this long after its request has lost its message (or never had one).
# Longer than a commit plus a broker round trip; short enough that an organizer waits minutes.
QUEUED_GRACE = timedelta(minutes=2)
# After a job is dispatched again, it is not dispatched again before this: a message waiting
# behind a long directory import is not lost.
DISPATCH_LEASE = timedelta(minutes=10)
# Resumes of a job whose worker died, before the job is marked failed.
MAX_RESUMES = 3
SQLITE_STUCK_AFTER = timedelta(hours=1)
# Jobs dispatched per kind and run: a backlog (the broker down for a day) drains over a few runs.
RECOVER_LIMIT = 200


@dataclass(frozen=True)
class JobKind:
    name: str
    model: type[models.Model]
    # The task, an attribute of pledges.tasks, and the keyword argument it takes the id by.
    task: str
    argument: str
    # First key of the two-key advisory lock (the job id is the second): the single-key locks
    # used elsewhere (counting, ledger, directory publishing) live in another key space.
    lock_class: int
    # object_type of the job's audit entries, as the service writes them.
    audit_type: str
    # Lookup of the job's campaign id, for its audit entries ("" when it has none).
    campaign_lookup: str = ""
    # Dotted path of a function(job_id) that removes what a dead run left on disk.
    leftovers: str = ""


ESCROW = JobKind(
    name="escrow_bundle",
    model=EscrowBundle,
    task="escrow_bundle_build_task",
    argument="bundle_id",
    lock_class=0x6A6F0001,
    audit_type="EscrowBundle",
    campaign_lookup="release__campaign_id",
    leftovers="pledges.escrow.escrow_bundle_leftovers_remove",
)
DIRECTORY = JobKind(
    name="directory_import",
    model=DirectoryImport,
    task="directory_import",
    argument="import_id",
    lock_class=0x6A6F0002,
    audit_type="directoryimport",
    leftovers="pledges.directory.directory_import_leftovers_remove",
)
BULK = JobKind(
    name="bulk_invalidation",
    model=BulkInvalidation,
    task="bulk_invalidate",
    argument="bulk_id",
    lock_class=0x6A6F0003,
    audit_type="bulkinvalidation",
    campaign_lookup="campaign_id",
)
EXPORT = JobKind(
    name="export",
    model=ExportJob,
    task="export_build_task",
    argument="export_id",
    lock_class=0x6A6F0004,
    audit_type="ExportJob",
    campaign_lookup="campaign_id",
    leftovers="pledges.exports.export_leftovers_remove",
)
KINDS = (ESCROW, DIRECTORY, BULK, EXPORT)


# --- The lock ------------------------------------------------------------------------------------


def _locks() -> bool:
    return connection.vendor == "postgresql"


def _lock_key(job_id: int) -> int:
    # The second key is a 32-bit integer: ids past 2**31 share locks with smaller ones, which
    # only makes two unrelated jobs wait for each other.
    return job_id % 2**31


def _lock_try(kind: JobKind, job_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [kind.lock_class, _lock_key(job_id)])
        return bool(cursor.fetchone()[0])


def _lock_release(kind: JobKind, job_id: int) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [kind.lock_class, _lock_key(job_id)])
    except DatabaseError:
        # The connection broke (and the lock went with the session), or the transaction is
        # aborted; closing the connection is what frees the lock then.
        logger.warning("jobs: could not release the lock of %s %s; closing the connection", kind.name, job_id)
        connection.close()


def job_runner_alive(kind: JobKind, job_id: int) -> bool:
    """Whether a worker holds the running job (PostgreSQL: its lock is taken)."""
    if not _locks():
        created_at = kind.model.objects.filter(pk=job_id).values_list("created_at", flat=True).first()
        return created_at is not None and created_at >= timezone.now() - SQLITE_STUCK_AFTER
    if not _lock_try(kind, job_id):
        return True
    _lock_release(kind, job_id)
    return False


# --- Claiming ------------------------------------------------------------------------------------


@contextmanager
def job_claim(kind: JobKind, job_id: int, **reset) -> Iterator[bool]:
    """True inside when this worker now runs the job (module docstring), False when it must not.

    `reset` holds the fields a (re)started run sets along with the status (progress back to 0).
    """
    if _locks() and not _lock_try(kind, job_id):
        yield False
        return
    try:
        yield _claim(kind, job_id, reset)
    finally:
        if _locks():
            _lock_release(kind, job_id)


def _claim(kind: JobKind, job_id: int, reset: dict) -> bool:
    rows = kind.model.objects.filter(pk=job_id)
    if rows.filter(status=BundleStatus.QUEUED).update(status=BundleStatus.RUNNING, **reset):
        return True
    abandoned = rows.filter(status=BundleStatus.RUNNING)
    if not _locks():
        abandoned = abandoned.filter(created_at__lt=timezone.now() - SQLITE_STUCK_AFTER)
    if not abandoned.exists():
        return False
    # Running, and nobody holds it: its worker died. We hold the lock, so nobody else resumes it.
    resumes = AuditEntry.objects.filter(
        action="job.resume", object_type=kind.audit_type, object_id=str(job_id)
    ).count()
    if resumes >= MAX_RESUMES:
        job_fail(
            kind,
            job_id,
            message=gettext(
                "The job was interrupted %(count)s times (its worker stopped each time): it was given up."
            )
            % {"count": resumes + 1},
            details={"resumes": resumes},
        )
        return False
    abandoned.update(status=BundleStatus.RUNNING, **reset)
    _audit(kind, job_id, action="job.resume", details={"resume": resumes + 1})
    logger.warning("jobs: %s %s resumed after its worker stopped (resume %d)", kind.name, job_id, resumes + 1)
    return True


def job_fail(kind: JobKind, job_id: int, *, message: str, details: dict | None = None) -> bool:
    """Mark an unfinished job failed with `message` (shown to organizers) and remove its leftovers."""
    fields = {"status": BundleStatus.FAILED, "finished_at": timezone.now()}
    if any(field.name == "error" for field in kind.model._meta.fields):
        fields["error"] = message
    failed = kind.model.objects.filter(
        pk=job_id, status__in=[BundleStatus.QUEUED, BundleStatus.RUNNING]
    ).update(**fields)
    if failed:
        _audit(kind, job_id, action="job.fail", details=details or {})
        logger.error("jobs: %s %s failed: %s", kind.name, job_id, message)
        if kind.leftovers:
            import_string(kind.leftovers)(job_id)
    return bool(failed)


def _audit(kind: JobKind, job_id: int, *, action: str, details: dict) -> None:
    campaign_id = None
    if kind.campaign_lookup:
        campaign_id = (
            kind.model.objects.filter(pk=job_id).values_list(kind.campaign_lookup, flat=True).first()
        )
    AuditEntry.objects.create(
        action=action,
        campaign_id=campaign_id,
        object_type=kind.audit_type,
        object_id=str(job_id),
        details=details,
    )


# --- Recovery ------------------------------------------------------------------------------------


def jobs_lost(kind: JobKind, *, now=None) -> list[int]:
    """Ids of the jobs of `kind` that no worker has and none will get without a new message."""
    now = now or timezone.now()
    jobs = kind.model.objects.order_by("pk")
    queued = list(
        jobs.filter(status=BundleStatus.QUEUED, created_at__lt=now - QUEUED_GRACE).values_list(
            "pk", flat=True
        )[:RECOVER_LIMIT]
    )
    running = jobs.filter(status=BundleStatus.RUNNING).values_list("pk", flat=True)[:RECOVER_LIMIT]
    return queued + [job_id for job_id in running if not job_runner_alive(kind, job_id)]


def _lease_key(kind: JobKind, job_id: int) -> str:
    return f"pledges:jobs:dispatched:{kind.name}:{job_id}"


def job_dispatch(kind: JobKind, job_id: int) -> bool:
    """Hand the job's task to the broker now; False (logged) when the broker refused it."""
    from pledges import tasks

    try:
        # No publish retries: the beat job tries again next minute.
        getattr(tasks, kind.task).apply_async(kwargs={kind.argument: job_id}, retry=False)
    except Exception:
        logger.warning("jobs: the broker refused %s %s", kind.name, job_id, exc_info=True)
        return False
    return True


def jobs_recover(*, now=None) -> dict[str, int]:
    """Dispatch again every lost job (module docstring); returns how many per kind.

    The lease is read before and written after a successful dispatch (not `add`ed before): with
    the cache down, reads miss and writes are dropped, so jobs are dispatched every run rather
    than never. A broker that refuses one message stops the run: the next minute tries again.
    """
    now = now or timezone.now()
    dispatched = {}
    for kind in KINDS:
        dispatched[kind.name] = 0
        for job_id in jobs_lost(kind, now=now):
            if cache.get(_lease_key(kind, job_id)):
                continue
            if not job_dispatch(kind, job_id):
                return dispatched
            cache.set(_lease_key(kind, job_id), 1, timeout=int(DISPATCH_LEASE.total_seconds()))
            dispatched[kind.name] += 1
            logger.info("jobs: %s %s dispatched again", kind.name, job_id)
    return dispatched


def job_files_forget(*, jobs: models.QuerySet, directory: Path, error: str) -> tuple[int, int]:
    """A signer these jobs' files may name was erased: (files deleted, runs stopped).

    For exports and escrow bundles alike; call it in the erasure's transaction. In it:
    1. Lock the unfinished jobs (FOR UPDATE): a worker claiming a queued one waits for the
       erasure to commit, then reads the data without the signer.
    2. Fail the running ones with `error`: they may have read the signer already. Their worker's
       final UPDATE (fenced on running) then finds nothing and deletes the file it wrote.
    3. Clear the file_name of the finished ones; their files are deleted once the erasure commits
       (a rollback keeps them, as it keeps the account).
    """
    with transaction.atomic():
        unfinished = list(
            jobs.select_for_update()
            .filter(status__in=[BundleStatus.QUEUED, BundleStatus.RUNNING])
            .values_list("pk", "status")
        )
        running = [pk for pk, status in unfinished if status == BundleStatus.RUNNING]
        if running:
            jobs.model.objects.filter(pk__in=running, status=BundleStatus.RUNNING).update(
                status=BundleStatus.FAILED, error=error, finished_at=timezone.now()
            )
        finished = list(
            jobs.select_for_update()
            .filter(status=BundleStatus.DONE)
            .exclude(file_name="")
            .values_list("pk", "file_name")
        )
        jobs.model.objects.filter(pk__in=[pk for pk, _name in finished]).update(file_name="")
        paths = [directory / file_name for _pk, file_name in finished]

        def unlink() -> None:
            for path in paths:
                path.unlink(missing_ok=True)

        transaction.on_commit(unlink)
    return len(paths), len(running)
