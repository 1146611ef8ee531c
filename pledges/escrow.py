"""Escrow bundles: a release's letters in one ZIP with a manifest, for the bailiff (huissier).

An organizer requests a bundle (escrow_bundle_request); the task pledges.escrow_bundle_build
builds it (escrow_bundle_build):

1. Claim the bundle: a conditional UPDATE from queued to running, so a redelivered task does
   not build it twice.
2. Stream each letter of the release into a ZIP written to a temporary file: one letter in
   memory at a time, whatever the size of the release. Each letter's bytes are hashed on the
   way and must equal Letter.sha256: a file changed on disk fails the bundle instead of
   handing the bailiff something other than what the ledger recorded.
3. Add manifest.csv and manifest.json (RPPS, last name, first name, caisse, file name, SHA-256),
   CSV cells made safe for spreadsheets (deconv.csvsafe).
4. Rename the ZIP into place, store its SHA-256, mark the bundle done. progress_done and
   progress_total move as letters are added, for the organizer's progress bar.
The claim goes through pledges.jobs: one runner at a time; a bundle whose worker died is built
again from the start by the next delivery of its task (the recovery beat job sends one).

Erasure. A withdrawal or an account erasure deletes the signer's letter (letters_pipeline.
letter_erase); escrow_bundles_forget_signer then deletes the files of the bundles that may hold
it, those of the signer's releases, and stops one being built. Why not keep them as evidence of
a sent act: what proves the act is the registered letter the physician sent and its
acknowledgement, which the platform never held, and the ledger, which keeps each letter's hash
and identifies no one. A bundle on our disk is a convenience copy for the bailiff; keeping the
signer's letter and name in it would undo the deletion the signer asked for. A bundle already
handed to the bailiff is theirs and beyond our reach. The bundle row stays (date, SHA-256,
count) and its page says why the file went; a new bundle, one click, holds the letters still
released.
"""

import csv
import hashlib
import io
import json
import logging
import os
import zipfile
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deconv.csvsafe import csv_safe
from pledges.enums import BundleStatus, PledgeStatus
from pledges.jobs import ESCROW, job_claim, job_files_forget
from pledges.letters_pipeline import letter_path
from pledges.models import EscrowBundle, Letter, Release

logger = logging.getLogger(__name__)

MANIFEST_FIELDS = ("rpps", "last_name", "first_name", "caisse", "file_name", "sha256")
# Progress is written every this many letters: the bar moves, the database is not hammered.
PROGRESS_EVERY = 25
# EscrowBundle.error of a bundle stopped by an erasure; the page explains it.
SIGNER_ERASED = "signer_erased"
_READ_CHUNK = 1024 * 1024


class LetterFileMismatch(RuntimeError):
    """A letter file on disk is missing or differs from the SHA-256 stored when it was generated."""


def escrow_root() -> Path:
    return Path(settings.PRIVATE_MEDIA_ROOT) / "escrow"


def escrow_bundle_path(*, bundle: EscrowBundle) -> Path | None:
    """The finished ZIP on disk, or None when the bundle has no file yet."""
    if not bundle.file_name:
        return None
    return escrow_root() / bundle.file_name


def escrow_letters(*, release: Release):
    """The letters that go in a release's bundle: those of pledges still released (not withdrawn)."""
    return (
        Letter.objects.filter(release=release, pledge__status=PledgeStatus.RELEASED)
        .select_related("pledge__caisse")
        .order_by("file_name")
    )


def escrow_bundle_request(*, release: Release, user) -> EscrowBundle:
    """Create a queued bundle and dispatch its build after the commit."""
    from deconv.tasks import dispatch_safely
    from pledges.tasks import escrow_bundle_build_task

    bundle = EscrowBundle.objects.create(
        release=release,
        requested_by=user if user is not None and user.is_authenticated else None,
        progress_total=escrow_letters(release=release).count(),
    )
    bundle_id = bundle.pk
    transaction.on_commit(lambda: dispatch_safely(escrow_bundle_build_task, bundle_id=bundle_id))
    return bundle


def _manifest_row(letter: Letter) -> dict[str, str]:
    pledge = letter.pledge
    return {
        "rpps": pledge.rpps,
        "last_name": pledge.last_name,
        "first_name": pledge.first_name,
        "caisse": pledge.caisse.name if pledge.caisse else "",
        "file_name": _member_name(letter),
        "sha256": letter.sha256,
    }


def _member_name(letter: Letter) -> str:
    """The letter's name inside the ZIP: letters/<receipt id>.pdf (no personal data in file names)."""
    return f"letters/{Path(letter.file_name).name}"


def manifest_csv(rows: list[dict[str, str]]) -> str:
    output = io.StringIO()
    writer = csv.writer(output, lineterminator="\r\n")
    writer.writerow(MANIFEST_FIELDS)
    for row in rows:
        writer.writerow([csv_safe(row[field]) for field in MANIFEST_FIELDS])
    return output.getvalue()


def _zip_add_letter(*, archive: zipfile.ZipFile, letter: Letter) -> None:
    """Copy the letter's file into the archive in chunks, checking its SHA-256 on the way."""
    source = letter_path(file_name=letter.file_name)
    digest = hashlib.sha256()
    try:
        # PDFs are already compressed: storing them costs no space and saves the CPU.
        with source.open("rb") as handle, archive.open(_member_name(letter), "w") as member:
            while chunk := handle.read(_READ_CHUNK):
                digest.update(chunk)
                member.write(chunk)
    except FileNotFoundError as error:
        raise LetterFileMismatch(f"letter {letter.pk}: file missing") from error
    if digest.hexdigest() != letter.sha256:
        raise LetterFileMismatch(f"letter {letter.pk}: file differs from its recorded SHA-256")


def _progress(bundle_id: int, **fields) -> None:
    EscrowBundle.objects.filter(pk=bundle_id).update(**fields)


def _temp_path(*, release_id: int, bundle_id: int) -> Path:
    # One name per bundle, not per run: a resumed run overwrites what a dead one left.
    return escrow_root() / str(release_id) / f".bundle-{bundle_id}.tmp"


def escrow_bundle_leftovers_remove(bundle_id: int) -> None:
    """Remove the ZIP a dead run left half written (pledges.jobs calls it when it gives up)."""
    release_id = EscrowBundle.objects.filter(pk=bundle_id).values_list("release_id", flat=True).first()
    if release_id is not None:
        _temp_path(release_id=release_id, bundle_id=bundle_id).unlink(missing_ok=True)


def escrow_bundle_build(*, bundle_id: int) -> bool:
    """Build a queued bundle (module docstring); False when this run did not build it (taken
    by another worker, done, failed, gone, or stopped by an erasure)."""
    with job_claim(ESCROW, bundle_id) as claimed:
        return claimed and _build(bundle_id)


def _build(bundle_id: int) -> bool:
    bundle = EscrowBundle.objects.select_related("release").get(pk=bundle_id)
    release = bundle.release
    letters = escrow_letters(release=release)
    total = letters.count()
    _progress(bundle_id, progress_total=total, progress_done=0)
    file_name = f"{release.pk}/escrow-release-{release.pk}-bundle-{bundle.pk}.zip"
    final = escrow_root() / file_name
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = _temp_path(release_id=release.pk, bundle_id=bundle.pk)
    running = EscrowBundle.objects.filter(pk=bundle_id, status=BundleStatus.RUNNING)
    try:
        rows = []
        with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_STORED) as archive:
            for done, letter in enumerate(letters.iterator(chunk_size=200), start=1):
                _zip_add_letter(archive=archive, letter=letter)
                rows.append(_manifest_row(letter))
                if done % PROGRESS_EVERY == 0:
                    _progress(bundle_id, progress_done=done)
            archive.writestr("manifest.csv", manifest_csv(rows), compress_type=zipfile.ZIP_DEFLATED)
            archive.writestr(
                "manifest.json",
                json.dumps(
                    {
                        "release": {
                            "id": release.pk,
                            "level": release.level,
                            "code": release.code,
                            "released_at": release.released_at.isoformat(),
                        },
                        "letters": rows,
                    },
                    ensure_ascii=False,
                    indent=2,
                ),
                compress_type=zipfile.ZIP_DEFLATED,
            )
        digest = hashlib.sha256()
        with temp.open("rb") as handle:
            while chunk := handle.read(_READ_CHUNK):
                digest.update(chunk)
        os.replace(temp, final)
    except Exception as error:
        temp.unlink(missing_ok=True)
        # The message names letter ids at most, never a person.
        running.update(status=BundleStatus.FAILED, error=str(error)[:1000], finished_at=timezone.now())
        logger.exception("escrow bundle %s failed", bundle_id)
        return False
    built = running.update(
        status=BundleStatus.DONE,
        progress_done=len(rows),
        progress_total=len(rows),
        file_name=file_name,
        sha256=digest.hexdigest(),
        finished_at=timezone.now(),
        error="",
    )
    if not built:
        # Stopped meanwhile by an erasure: the ZIP may hold the erased signer's letter.
        final.unlink(missing_ok=True)
        return False
    return True


# --- Erasure -------------------------------------------------------------------------------------


def escrow_bundles_forget_signer(*, release_ids: Iterable[int]) -> int:
    """A signer of these releases was erased (or withdrew): no bundle may keep their letter.

    Returns how many files are deleted. Call it in the erasure's transaction, with the releases
    of the signer's pledges (Pledge.release_id): pledges.jobs.job_files_forget says how queued,
    running and finished bundles are treated.
    """
    release_ids = [release_id for release_id in release_ids if release_id is not None]
    if not release_ids:
        return 0
    deleted, stopped = job_files_forget(
        jobs=EscrowBundle.objects.filter(release_id__in=release_ids),
        directory=escrow_root(),
        error=SIGNER_ERASED,
    )
    if deleted or stopped:
        logger.info("escrow: %d bundles deleted and %d builds stopped after an erasure", deleted, stopped)
    return deleted
