"""Organizers' jobs (exports, escrow bundles, bulk invalidations, directory imports): lost
messages are sent again, a duplicate message runs nothing, a dead worker's job is taken up again,
and an erased signer's letter leaves the escrow bundles (pledges.jobs, pledges.escrow)."""

import inspect
import threading
import zipfile
from datetime import timedelta

import psycopg
import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from deconv.models import AuditEntry
from pledges import exports, jobs, tasks
from pledges.demo import DEMO_LETTER_BODY, DEMO_LETTER_TITLE
from pledges.enums import BundleStatus, PledgeEventKind, PledgeStatus
from pledges.escrow import (
    SIGNER_ERASED,
    escrow_bundle_build,
    escrow_bundle_path,
    escrow_bundle_request,
    escrow_bundles_forget_signer,
    escrow_root,
)
from pledges.exports import export_build, export_request, exports_forget_signer
from pledges.jobs import BULK, DIRECTORY, ESCROW, EXPORT, KINDS, MAX_RESUMES, jobs_recover
from pledges.letters_pipeline import release_process
from pledges.models import BulkInvalidation, DirectoryEntry, DirectoryImport, EscrowBundle, ExportJob, Pledge
from pledges.services import account_erase, letter_version_create
from tests.letters.factories import CaisseFactory, ReleasedPledgeFactory, ReleaseFactory
from tests.moderation import directory_files
from tests.moderation.factories import pledge_make
from tests.organizer.conftest import LEAKY_NAME
from tests.pledges.factories import CampaignFactory, UserFactory

pytestmark = pytest.mark.django_db

TASKS = {kind.name: getattr(tasks, kind.task) for kind in KINDS}
# Past the grace a queued job is given before it counts as lost.
LATER = timedelta(minutes=3)


class WorkerDied(BaseException):
    """What a killed worker amounts to for the job: its run stops, no except clause runs."""


class Broker:
    """Stands in for the broker: records what the four job tasks are sent, or refuses it."""

    def __init__(self):
        self.sent: list[tuple[str, tuple, dict]] = []
        self.down = False

    def deliver(self) -> None:
        """What the workers would do: run every message sent so far, once, in order."""
        sent, self.sent = self.sent, []
        for kind_name, args, kwargs in sent:
            TASKS[kind_name](*args, **kwargs)


@pytest.fixture
def broker(monkeypatch):
    fake = Broker()
    for kind in KINDS:

        def apply_async(args=None, kwargs=None, _kind=kind, **options):
            if fake.down:
                raise ConnectionRefusedError("broker down")
            fake.sent.append((_kind.name, tuple(args or ()), dict(kwargs or {})))

        monkeypatch.setattr(TASKS[kind.name], "apply_async", apply_async)
    return fake


def scope_all():
    from pledges.access import OrganizerScope

    return OrganizerScope(national=True, department_codes=frozenset(), can_act=True)


def queued_export(campaign, user) -> ExportJob:
    return export_request(campaign=campaign, scope=scope_all(), user=user, file_format="csv")


def hold_lock(kind, job_id) -> psycopg.Connection:
    """Another session holds the job's lock: a worker alive and running it."""
    other = psycopg.connect(**connection.get_connection_params(), autocommit=True)
    other.execute("SELECT pg_advisory_lock(%s, %s)", [kind.lock_class, job_id])
    return other


def resumes(kind, job_id) -> int:
    return AuditEntry.objects.filter(
        action="job.resume", object_type=kind.audit_type, object_id=str(job_id)
    ).count()


# --- Lost messages ------------------------------------------------------------------------------


def _queued_job(kind, campaign, user):
    if kind is EXPORT:
        return ExportJob.objects.create(campaign=campaign, file_format="csv", requested_by=user)
    if kind is ESCROW:
        return EscrowBundle.objects.create(release=ReleaseFactory(campaign=campaign))
    if kind is BULK:
        return BulkInvalidation.objects.create(
            campaign=campaign, rule={"email_domain": "x.example", "scope": None}, reason="x", preview_count=0
        )
    return DirectoryImport.objects.create(file_name="PS_LibreAcces.txt")


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
def test_every_kind_of_lost_job_is_sent_again_with_the_arguments_its_task_takes(
    kind, broker, campaign, national
):
    job = _queued_job(kind, campaign, national)

    assert jobs_recover() == dict.fromkeys(TASKS, 0), "still within its grace period"
    assert jobs_recover(now=timezone.now() + LATER)[kind.name] == 1

    [(name, args, kwargs)] = broker.sent
    assert (name, args, kwargs) == (kind.name, (), {kind.argument: job.pk})
    inspect.signature(TASKS[name].run).bind(*args, **kwargs)  # raises if the task takes no such argument


def test_the_recovery_job_costs_two_queries_per_kind_when_nothing_is_lost(
    broker, campaign, national, django_assert_num_queries
):
    job = _queued_job(EXPORT, campaign, national)  # within its grace period
    ExportJob.objects.create(campaign=campaign, file_format="csv", status=BundleStatus.DONE)

    with django_assert_num_queries(2 * len(KINDS)):
        assert sum(jobs_recover().values()) == 0
    assert job.status == BundleStatus.QUEUED and broker.sent == []


def test_a_job_sent_again_is_not_sent_again_within_its_lease(broker, campaign, national):
    _queued_job(EXPORT, campaign, national)

    assert jobs_recover(now=timezone.now() + LATER)["export"] == 1
    assert jobs_recover(now=timezone.now() + LATER)["export"] == 0
    assert len(broker.sent) == 1


def test_a_refused_dispatch_is_tried_again_at_the_next_run(broker, campaign, national):
    job = _queued_job(EXPORT, campaign, national)
    broker.down = True

    assert jobs_recover(now=timezone.now() + LATER)["export"] == 0

    broker.down = False
    assert jobs_recover(now=timezone.now() + LATER)["export"] == 1
    assert broker.sent == [("export", (), {"export_id": job.pk})]


def test_an_export_requested_while_the_broker_is_down_is_built_by_the_recovery_job(
    broker, client, campaign, pledges, national, django_capture_on_commit_callbacks
):
    client.force_login(national)
    broker.down = True
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("pledges:organizer_exports", kwargs={"slug": campaign.slug}), {"format": "csv"}
        )
    job = ExportJob.objects.get()
    assert response.status_code == 302 and job.status == BundleStatus.QUEUED
    assert broker.sent == []

    broker.down = False
    jobs_recover(now=timezone.now() + LATER)
    broker.deliver()

    job.refresh_from_db()
    assert (job.status, job.progress_done) == (BundleStatus.DONE, 11)
    assert LEAKY_NAME in exports.export_path(job).read_text(encoding="utf-8-sig")


# --- One runner: a duplicate message does nothing -----------------------------------------------


def _blocking_writer(monkeypatch, *, block_first_only=True):
    """The CSV writer of the first run waits for `proceed`; every call is counted."""
    original = exports._write_csv
    started, proceed, calls = threading.Event(), threading.Event(), []

    def writer(**kwargs):
        calls.append(threading.get_ident())
        if len(calls) == 1 or not block_first_only:
            started.set()
            assert proceed.wait(timeout=20)
        return original(**kwargs)

    monkeypatch.setattr(exports, "_write_csv", writer)
    return started, proceed, calls


def _in_thread(function, results: list) -> threading.Thread:
    def run():
        try:
            results.append(function())
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_duplicate_message_while_the_export_runs_does_nothing(campaign, pledges, national, monkeypatch):
    job = ExportJob.objects.create(campaign=campaign, file_format="csv", scope={"national": True})
    started, proceed, calls = _blocking_writer(monkeypatch)
    results = []
    first = _in_thread(lambda: export_build(export_id=job.pk), results)
    assert started.wait(timeout=20)

    assert export_build(export_id=job.pk) == BundleStatus.RUNNING
    assert tasks.export_build_task(job.pk) == BundleStatus.RUNNING

    proceed.set()
    first.join(timeout=20)
    job.refresh_from_db()
    assert results == [BundleStatus.DONE] and job.status == BundleStatus.DONE
    assert len(calls) == 1
    assert [path.name for path in exports.exports_dir().iterdir()] == [job.file_name]
    assert resumes(EXPORT, job.pk) == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_control_without_the_lock_a_duplicate_message_builds_the_export_a_second_time(
    campaign, pledges, national, monkeypatch
):
    """The guard off: the running job looks abandoned to the duplicate, which builds it again."""
    monkeypatch.setattr(jobs, "_lock_try", lambda kind, job_id: True)
    monkeypatch.setattr(jobs, "_lock_release", lambda kind, job_id: None)
    job = ExportJob.objects.create(campaign=campaign, file_format="csv", scope={"national": True})
    started, proceed, calls = _blocking_writer(monkeypatch)
    results = []
    first = _in_thread(lambda: export_build(export_id=job.pk), results)
    assert started.wait(timeout=20)

    assert export_build(export_id=job.pk) == BundleStatus.DONE

    proceed.set()
    first.join(timeout=20)
    assert len(calls) == 2
    assert resumes(EXPORT, job.pk) == 1


@pytest.mark.postgres
def test_a_running_job_whose_worker_is_alive_is_neither_sent_again_nor_taken_over(broker, campaign, national):
    job = queued_export(campaign, national)
    ExportJob.objects.filter(pk=job.pk).update(status=BundleStatus.RUNNING)
    alive = hold_lock(EXPORT, job.pk)
    try:
        assert jobs_recover(now=timezone.now() + timedelta(days=2))["export"] == 0
        assert export_build(export_id=job.pk) == BundleStatus.RUNNING
    finally:
        alive.close()
    assert not exports.exports_dir().exists() or not any(exports.exports_dir().iterdir())
    assert resumes(EXPORT, job.pk) == 0


# --- Dead workers -------------------------------------------------------------------------------


@pytest.mark.postgres
def test_an_export_left_running_by_a_dead_worker_is_built_again(
    broker, campaign, pledges, national, monkeypatch
):
    job = queued_export(campaign, national)
    original = exports._write_csv

    def dies_half_way(*, path, **kwargs):
        path.write_text("RPPS;Last name\n10000000009;Half-written\n")
        raise WorkerDied

    monkeypatch.setattr(exports, "_write_csv", dies_half_way)
    with pytest.raises(WorkerDied):
        export_build(export_id=job.pk)
    job.refresh_from_db()
    assert job.status == BundleStatus.RUNNING
    assert (exports.exports_dir() / f".export-{job.pk}.part").exists()

    monkeypatch.setattr(exports, "_write_csv", original)
    assert jobs_recover()["export"] == 1, "a running job whose lock is free needs no grace period"
    broker.deliver()

    job.refresh_from_db()
    assert (job.status, job.progress_done, job.progress_total) == (BundleStatus.DONE, 11, 11)
    assert sorted(path.name for path in exports.exports_dir().iterdir()) == [job.file_name]
    assert resumes(EXPORT, job.pk) == 1
    entry = AuditEntry.objects.get(action="job.resume")
    assert (entry.campaign_id, entry.object_type, entry.details) == (campaign.pk, "ExportJob", {"resume": 1})


@pytest.mark.postgres
def test_a_job_that_keeps_killing_its_worker_is_given_up_with_a_message(
    campaign, pledges, national, monkeypatch
):
    job = queued_export(campaign, national)

    def kills_the_worker(*, path, **kwargs):
        path.write_text("partial")
        raise WorkerDied

    monkeypatch.setattr(exports, "_write_csv", kills_the_worker)
    for _run in range(1 + MAX_RESUMES):
        with pytest.raises(WorkerDied):
            export_build(export_id=job.pk)

    assert export_build(export_id=job.pk) == BundleStatus.FAILED

    job.refresh_from_db()
    assert job.status == BundleStatus.FAILED and job.finished_at is not None
    assert f"interrompu {MAX_RESUMES + 1} fois" in job.error
    assert resumes(EXPORT, job.pk) == MAX_RESUMES
    assert AuditEntry.objects.filter(action="job.fail", object_id=str(job.pk)).count() == 1
    assert not any(exports.exports_dir().iterdir()), "the dead runs' partial file is removed"


@pytest.fixture
def spam(campaign):
    """7 active pledges from spam.example and 2 others, in Ain."""
    matching = [pledge_make(campaign=campaign, email=f"s{index}@spam.example") for index in range(7)]
    pledge_make(campaign=campaign, email="honest@ain.example")
    pledge_make(campaign=campaign, email="x@notspam.example")
    return matching


@pytest.mark.postgres
def test_a_bulk_invalidation_cut_short_continues_without_invalidating_anyone_twice(
    broker, campaign, national, spam
):
    from pledges.moderation import bulk_invalidation_run

    bulk = BulkInvalidation.objects.create(
        campaign=campaign,
        rule={"email_domain": "spam.example", "scope": None},
        reason="Robot",
        preview_count=7,
    )

    def die_after_first_batch(job):
        raise WorkerDied

    with pytest.raises(WorkerDied):
        bulk_invalidation_run(bulk_id=bulk.pk, batch_size=3, after_batch=die_after_first_batch)
    bulk.refresh_from_db()
    assert (bulk.status, bulk.progress_done) == (BundleStatus.RUNNING, 3)

    jobs_recover()
    broker.deliver()
    tasks.bulk_invalidate(bulk.pk)  # a late duplicate of the message: nothing more happens

    bulk.refresh_from_db()
    assert (bulk.status, bulk.progress_done) == (BundleStatus.DONE, 7)
    invalidated = Pledge.objects.filter(status=PledgeStatus.INVALIDATED)
    assert set(invalidated.values_list("pk", flat=True)) == {pledge.pk for pledge in spam}
    per_pledge = {
        pledge.pk: pledge.events.filter(kind=PledgeEventKind.INVALIDATED).count() for pledge in invalidated
    }
    assert set(per_pledge.values()) == {1}
    assert resumes(BULK, bulk.pk) == 1


@pytest.mark.postgres
def test_a_directory_import_left_running_is_imported_again_from_the_top(broker, campaign, tmp_path):
    path = directory_files.write(
        tmp_path / "PS_LibreAcces_Personne_activite_202403130000.txt",
        [directory_files.activity("10000000009"), directory_files.activity("10000000017", department="69")],
    )
    directory_import = DirectoryImport.objects.create(
        file_name=path.name,
        stored_path=str(path),
        bytes_total=path.stat().st_size,
        status=BundleStatus.RUNNING,
        bytes_done=123,
        rows_read=1,
    )
    alive = hold_lock(DIRECTORY, directory_import.pk)
    try:
        assert jobs_recover()["directory_import"] == 0
        assert tasks.directory_import(directory_import.pk)["status"] == BundleStatus.RUNNING
    finally:
        alive.close()
    directory_import.refresh_from_db()
    assert (directory_import.bytes_done, directory_import.rows_read) == (123, 1), "a live run is not reset"

    assert jobs_recover()["directory_import"] == 1
    broker.deliver()

    directory_import.refresh_from_db()
    assert (directory_import.status, directory_import.rows_read) == (BundleStatus.DONE, 2)
    assert directory_import.bytes_done == directory_import.bytes_total
    assert DirectoryEntry.objects.count() == 2
    assert not path.exists()


# --- Escrow bundles -----------------------------------------------------------------------------


@pytest.fixture
def release(db):
    """A released department with 3 letters; the first signer has an account and a distinctive name."""
    campaign = CampaignFactory(title="Campagne Ain")
    letter_version_create(campaign=campaign, title=DEMO_LETTER_TITLE, body=DEMO_LETTER_BODY)
    release = ReleaseFactory(campaign=campaign)
    caisse = CaisseFactory()
    ReleasedPledgeFactory(release=release, caisse=caisse, last_name="Quetzalcoatl", user=UserFactory())
    ReleasedPledgeFactory.create_batch(2, release=release, caisse=caisse)
    release_process(release_id=release.pk)
    return release


def zip_names(bundle) -> str:
    with zipfile.ZipFile(escrow_bundle_path(bundle=bundle)) as archive:
        return archive.read("manifest.csv").decode()


def request_bundle(release) -> EscrowBundle:
    with transaction.atomic():
        return escrow_bundle_request(release=release, user=None)


@pytest.mark.postgres
def test_an_escrow_bundle_left_running_is_built_again(broker, release):
    bundle = request_bundle(release)
    EscrowBundle.objects.filter(pk=bundle.pk).update(status=BundleStatus.RUNNING)
    stale = escrow_root() / str(release.pk) / f".bundle-{bundle.pk}.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a zip")

    jobs_recover()
    broker.deliver()

    bundle.refresh_from_db()
    assert (bundle.status, bundle.progress_done) == (BundleStatus.DONE, 3)
    assert "Quetzalcoatl" in zip_names(bundle)
    assert not stale.exists()
    assert resumes(ESCROW, bundle.pk) == 1


def _erase(user) -> None:
    """What account_erase is to do (the lead wires it): its files go in the same transaction."""
    pledges = list(Pledge.objects.filter(user=user))
    with transaction.atomic():
        account_erase(user=user)
        exports_forget_signer(campaign_ids={pledge.campaign_id for pledge in pledges})
        escrow_bundles_forget_signer(release_ids={pledge.release_id for pledge in pledges})


def _files_naming(root, secret: str) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes()
        if data.startswith(b"PK"):
            with zipfile.ZipFile(path) as archive:
                data = b"".join(
                    archive.read(name) for name in archive.namelist() if not name.endswith(".pdf")
                )
        if secret.encode() in data:
            found.append(str(path.relative_to(root)))
    return found


def test_erasing_a_signer_deletes_the_bundles_and_exports_that_name_them(
    release, client, django_capture_on_commit_callbacks, settings
):
    signer = Pledge.objects.get(last_name="Quetzalcoatl")
    other_release = ReleaseFactory(campaign=release.campaign, code="69")
    bundle = request_bundle(release)
    assert escrow_bundle_build(bundle_id=bundle.pk)
    other = request_bundle(other_release)
    assert escrow_bundle_build(bundle_id=other.pk)
    export = queued_export(release.campaign, None)
    export_build(export_id=export.pk)
    root = settings.PRIVATE_MEDIA_ROOT
    assert (
        len(_files_naming(root, "Quetzalcoatl")) == 2
    )  # the manifest and the export (the PDF is compressed)
    bundle.refresh_from_db()
    bundle_file = escrow_bundle_path(bundle=bundle)

    with django_capture_on_commit_callbacks(execute=True):
        _erase(signer.user)

    assert _files_naming(root, "Quetzalcoatl") == []
    bundle.refresh_from_db()
    assert (bundle.status, bundle.file_name, bundle.progress_total) == (BundleStatus.DONE, "", 3)
    assert bundle.sha256, "the fingerprint of what was handed over stays"
    assert not bundle_file.exists()
    other.refresh_from_db()
    assert other.file_name and escrow_bundle_path(bundle=other).exists(), "another release's bundle stays"

    staff = UserFactory(is_staff=True)
    client.force_login(staff)
    page = client.get(reverse("pledges:escrow", kwargs={"release_id": release.pk})).content.decode()
    assert "Le fichier de ce lot a été supprimé" in page
    assert reverse("pledges:escrow_download", kwargs={"bundle_id": bundle.pk}) not in page
    assert client.get(reverse("pledges:escrow_download", kwargs={"bundle_id": bundle.pk})).status_code == 404

    rebuilt = request_bundle(release)
    assert escrow_bundle_build(bundle_id=rebuilt.pk)
    rebuilt.refresh_from_db()
    assert rebuilt.progress_done == 2 and "Quetzalcoatl" not in zip_names(rebuilt)


def test_a_bundle_being_built_when_its_signer_is_erased_is_stopped_and_its_zip_deleted(
    release, monkeypatch, django_capture_on_commit_callbacks
):
    from pledges import escrow

    signer = Pledge.objects.get(last_name="Quetzalcoatl")
    bundle = request_bundle(release)
    original = escrow._zip_add_letter

    def erasure_during_the_build(*, archive, letter):
        original(archive=archive, letter=letter)
        if letter.pledge_id == signer.pk:
            escrow_bundles_forget_signer(release_ids=[release.pk])

    monkeypatch.setattr(escrow, "_zip_add_letter", erasure_during_the_build)
    with django_capture_on_commit_callbacks(execute=True):
        assert escrow_bundle_build(bundle_id=bundle.pk) is False

    bundle.refresh_from_db()
    assert (bundle.status, bundle.error, bundle.file_name) == (BundleStatus.FAILED, SIGNER_ERASED, "")
    assert [path for path in escrow_root().rglob("*") if path.is_file()] == []
