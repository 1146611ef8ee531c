"""Released letters: each generated exactly once, each signer told once, the release recorded once.

The conditions work creates a Release (and sets its pledges to released) in one transaction, then
dispatches `pledges.release_process`. release_process is safe to run twice, at the same time
in several workers, and again after a crash at any point:

1. Letters: claim a batch of the release's released pledges that have no Letter yet, render the
   batch (pledges.letters_batch: the text they share laid out once, each signer's blocks stamped
   in), store each PDF. On PostgreSQL the batch is claimed with SELECT ... FOR UPDATE SKIP
   LOCKED, so workers share the batches instead of rendering the same ones; whatever happens,
   the OneToOne on Letter.pledge lets one row per pledge exist (letter_store).
2. When no letter is missing: ledger_append_release and letters_done_at, in one transaction
   claimed by a conditional UPDATE (only one worker does it, a crash undoes both).
3. Then the "released" emails, queued in the outbox under the key released:<pledge id>, and
   emails_done_at, also claimed by a conditional UPDATE in the same transaction.

A release of thousands of letters is shared by letter_tasks() tasks (release_process dispatches
the extra ones), so two worker processes render it on two cores. The beat job releases_resume picks
up a release left unfinished (worker lost, broker down at dispatch).
"""

import hashlib
import logging
import os
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from pledges.enums import LetterStatus, PledgeStatus
from pledges.letter_frames import LetterFrames
from pledges.letters import caisse_address_lines, french_date, letter_inputs_sha256
from pledges.letters_batch import RenderedLetter, letters_render_batch
from pledges.models import Letter, Pledge, Release

logger = logging.getLogger(__name__)

# Letters per claim, and per layout of signer blocks. 100 keeps the number of claims low while a
# batch's row locks last about two seconds (bench/letters.py --batch-size measures other sizes).
BATCH_SIZE = 100
# The signed download link in the "released" email.
DOWNLOAD_SALT = "letter-download"
DOWNLOAD_MAX_AGE = timedelta(days=30)
# A release still unfinished this long after it was created is taken up again by releases_resume.
RESUME_AFTER = timedelta(minutes=15)


# --- Storage -------------------------------------------------------------------------------------


def letters_root() -> Path:
    return Path(settings.PRIVATE_MEDIA_ROOT) / "letters"


def letter_path(*, file_name: str) -> Path:
    return letters_root() / file_name


def letter_file_name(*, pledge: Pledge) -> str:
    """Deterministic: a second generation of the same letter lands on the same name."""
    return f"{pledge.release_id}/{pledge.receipt_id}.pdf"


def release_letter_date(*, release: Release) -> date:
    """The date printed on a released letter: the day of the release, so a regeneration prints the same."""
    return timezone.localdate(release.released_at)


def _temp_write(*, final: Path, data: bytes) -> Path:
    """Write `data` next to `final` under a unique name (os.replace is atomic within a folder)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=final.parent, prefix=f".{final.stem}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return Path(temp)


def letter_store(
    *, pledge: Pledge, release: Release, rendered: RenderedLetter, inputs_sha256: str
) -> Letter | None:
    """Create the pledge's Letter and put its file in place; None when another worker did first.

    The file is written to a temporary name, then the row is inserted in a savepoint: the
    OneToOne on Letter.pledge lets one insert win. The winner renames its file into place before
    its transaction commits (a racer's insert waits on the unique index until then, then fails
    and deletes its own temporary file), so the file at the final name is always the committed
    row's. A crash before the commit leaves a file without a row, overwritten by the next run.
    """
    file_name = letter_file_name(pledge=pledge)
    final = letter_path(file_name=file_name)
    temp = _temp_write(final=final, data=rendered.pdf)
    try:
        with transaction.atomic():
            letter = Letter.objects.create(
                pledge=pledge,
                release=release,
                status=LetterStatus.GENERATED,
                file_name=file_name,
                sha256=hashlib.sha256(rendered.pdf).hexdigest(),
                inputs_sha256=inputs_sha256,
                size_bytes=len(rendered.pdf),
                generated_at=timezone.now(),
            )
            os.replace(temp, final)
    except IntegrityError:
        temp.unlink(missing_ok=True)
        return None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return letter


# --- Generation ----------------------------------------------------------------------------------


def release_missing_pledges(*, release: Release) -> QuerySet[Pledge]:
    """The release's released pledges without a letter (a withdrawn one is not released any more)."""
    return Pledge.objects.filter(release=release, status=PledgeStatus.RELEASED, letter__isnull=True)


def _batches_locked() -> bool:
    """Whether batches are claimed with row locks (PostgreSQL) or only guarded by the OneToOne (SQLite)."""
    return connection.features.has_select_for_update_skip_locked


def _claim_batch(*, release: Release, size: int, lock: bool) -> list[Pledge]:
    queryset = release_missing_pledges(release=release).select_related("letter_version", "caisse")
    if lock:
        # of=self: the letter join is an outer join, whose nullable side cannot be locked.
        queryset = queryset.select_for_update(skip_locked=True, of=("self",))
    return list(queryset.order_by("pk")[:size])


def release_letters_generate(*, release: Release, batch_size: int = BATCH_SIZE) -> int:
    """Render and store the release's missing letters, a batch at a time; returns how many this call made.

    On PostgreSQL each batch stays locked (FOR UPDATE SKIP LOCKED) while it renders, a few
    seconds, so concurrent calls take different batches. SQLite has no row locks, and an
    IMMEDIATE transaction would block every writer while rendering: there each letter is
    stored in its own transaction, and concurrent calls may render a letter twice (the second
    copy is discarded by letter_store).
    """
    today = release_letter_date(release=release)
    lock_batches = _batches_locked()
    # The batches of this call share their frames: a release has one text and a few caisses.
    frames = LetterFrames()
    created = 0
    while True:
        with transaction.atomic() if lock_batches else nullcontext():
            pledges = _claim_batch(release=release, size=batch_size, lock=lock_batches)
            rendered = letters_render_batch(pledges=pledges, today=today, frames=frames)
            for pledge, letter_pdf in zip(pledges, rendered, strict=True):
                stored = letter_store(
                    pledge=pledge,
                    release=release,
                    rendered=letter_pdf,
                    inputs_sha256=letter_inputs_sha256(pledge=pledge, today=today),
                )
                created += stored is not None
        # Without row locks a short batch was the last; with them, an empty claim is.
        if not pledges or (not lock_batches and len(pledges) < batch_size):
            break
    # What printing cost (frames laid out, letters laid out whole...): no personal data.
    logger.info("release %s: %d letters made by this call, %s", release.pk, created, dict(frames.counts))
    return created


# --- Finishing: ledger, emails -------------------------------------------------------------------


def _ledger_append(*, release: Release) -> None:
    try:
        from pledges.ledger import ledger_append_release
    except ImportError:
        # The ledger lands in a separate piece of work; until then the release is only not recorded.
        logger.warning(
            "release %s: pledges.ledger.ledger_append_release is missing; not recorded", release.pk
        )
        return
    ledger_append_release(release=release)


def letter_download_token(*, letter: Letter) -> str:
    return signing.TimestampSigner(salt=DOWNLOAD_SALT).sign(str(letter.pk))


def letter_download_url(*, letter: Letter) -> str:
    path = reverse("pledges:letter_download_signed", kwargs={"token": letter_download_token(letter=letter)})
    return f"{settings.SITE_URL}{path}"


def letter_id_from_token(*, token: str) -> int:
    """The letter a download token names; raises signing.SignatureExpired or signing.BadSignature."""
    value = signing.TimestampSigner(salt=DOWNLOAD_SALT).unsign(
        token, max_age=DOWNLOAD_MAX_AGE.total_seconds()
    )
    if not value.isdigit():
        raise signing.BadSignature("not a letter id")
    return int(value)


def released_email_items(*, release: Release):
    """One "released" EmailItem per released pledge of the release that has an account and a letter."""
    from deconv.outbox import EmailItem

    campaign = release.campaign
    pledge_mine_url = settings.SITE_URL + reverse("pledges:pledge_mine", kwargs={"slug": campaign.slug})
    expires_on = french_date(timezone.localdate() + DOWNLOAD_MAX_AGE)
    letters = (
        Letter.objects.filter(
            release=release, pledge__status=PledgeStatus.RELEASED, pledge__user__isnull=False
        )
        .select_related("pledge__user", "pledge__caisse", "pledge__department")
        .order_by("pk")
    )
    for letter in letters.iterator(chunk_size=500):
        pledge = letter.pledge
        yield EmailItem(
            kind="released",
            recipient=pledge.user.email,
            dedupe_key=f"released:{pledge.pk}",
            user=pledge.user,
            context={
                "campaign_title": campaign.title,
                "department_name": pledge.department.name,
                "caisse_name": pledge.caisse.name if pledge.caisse else "",
                "caisse_address_lines": caisse_address_lines(pledge.caisse),
                "download_url": letter_download_url(letter=letter),
                "download_expires_on": expires_on,
                "pledge_mine_url": pledge_mine_url,
            },
        )


def release_finish(*, release: Release) -> bool:
    """Once every letter exists: the ledger entry, then the emails, each exactly once; True when done."""
    if release_missing_pledges(release=release).exists():
        # Another worker is still storing a batch; the last one to finish gets here with none missing.
        return False
    with transaction.atomic():
        if Release.objects.filter(pk=release.pk, letters_done_at__isnull=True).update(
            letters_done_at=timezone.now()
        ):
            _ledger_append(release=release)
    with transaction.atomic():
        if Release.objects.filter(pk=release.pk, emails_done_at__isnull=True).update(
            emails_done_at=timezone.now()
        ):
            from deconv.outbox import email_queue_many

            queued = email_queue_many(released_email_items(release=release))
            logger.info("release %s: %d released emails queued", release.pk, queued)
    return True


# --- Entry points --------------------------------------------------------------------------------


def letter_tasks() -> int:
    """How many tasks render one release together: one per worker process that should take part.

    Rendering is CPU-bound and linear in processes (bench/README.md): 2 on the reference two-core
    machine; settings.LETTERS_RENDER_TASKS raises it where more worker processes run.
    """
    return max(1, int(getattr(settings, "LETTERS_RENDER_TASKS", 2)))


@dataclass(frozen=True)
class ReleaseResult:
    letters_created: int
    finished: bool


def release_process(*, release_id: int, helpers: bool = True) -> ReleaseResult:
    """Generate the missing letters of a release, then its ledger entry and emails (module docstring).

    With `helpers`, a release of more than one batch also dispatches letter_tasks() - 1
    `pledges.release_letters_help` tasks that render batches alongside this one.
    """
    release = Release.objects.select_related("campaign").get(pk=release_id)
    tasks = letter_tasks()
    if helpers and tasks > 1 and release_missing_pledges(release=release).count() > BATCH_SIZE:
        from pledges.tasks import release_letters_help

        for _ in range(tasks - 1):
            release_letters_help.delay(release_id=release.pk)
    created = release_letters_generate(release=release)
    return ReleaseResult(letters_created=created, finished=release_finish(release=release))


def releases_resume() -> list[int]:
    """Dispatch again the releases still unfinished a while after their creation; returns their ids."""
    from pledges.tasks import release_process_task

    stale = list(
        Release.objects.filter(released_at__lte=timezone.now() - RESUME_AFTER, emails_done_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for release_id in stale:
        release_process_task.delay(release_id=release_id)
    return stale


# --- Regeneration --------------------------------------------------------------------------------


def letter_regenerate_if_changed(*, letter: Letter) -> bool:
    """Render the letter again if what it is made from changed, only while it is not sent; True if it was.

    What the physician may already have posted is evidence: once they report it sent, the letter
    never changes. The new file replaces the old one under the same name, atomically, while the
    row is locked, and the row gets the new hashes in the same transaction.
    """
    if letter.status != LetterStatus.GENERATED:
        return False
    pledge = Pledge.objects.select_related("letter_version", "caisse").get(pk=letter.pledge_id)
    today = release_letter_date(release=letter.release)
    inputs_sha256 = letter_inputs_sha256(pledge=pledge, today=today)
    if inputs_sha256 == letter.inputs_sha256:
        return False
    (rendered,) = letters_render_batch(pledges=[pledge], today=today)
    final = letter_path(file_name=letter.file_name)
    temp = _temp_write(final=final, data=rendered.pdf)
    try:
        with transaction.atomic():
            locked = Letter.objects.select_for_update().get(pk=letter.pk)
            if locked.status != LetterStatus.GENERATED or locked.inputs_sha256 == inputs_sha256:
                # Reported sent, or regenerated by someone else, while we were rendering.
                temp.unlink()
                return False
            locked.sha256 = hashlib.sha256(rendered.pdf).hexdigest()
            locked.inputs_sha256 = inputs_sha256
            locked.size_bytes = len(rendered.pdf)
            locked.generated_at = timezone.now()
            locked.save(update_fields=["sha256", "inputs_sha256", "size_bytes", "generated_at"])
            os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    for field in ("sha256", "inputs_sha256", "size_bytes", "generated_at"):
        setattr(letter, field, getattr(locked, field))
    return True


def letters_refresh(*, release: Release | None = None) -> int:
    """Regenerate the not-yet-sent letters whose inputs changed (a corrected caisse address); returns how many."""
    letters = Letter.objects.filter(status=LetterStatus.GENERATED, pledge__status=PledgeStatus.RELEASED)
    if release is not None:
        letters = letters.filter(release=release)
    letters = letters.select_related("release", "pledge__letter_version", "pledge__caisse")
    regenerated = 0
    for letter in letters.order_by("pk").iterator(chunk_size=500):
        # The hash first, in memory: only a changed letter costs a query and a rendering.
        today = release_letter_date(release=letter.release)
        if letter_inputs_sha256(pledge=letter.pledge, today=today) != letter.inputs_sha256:
            regenerated += letter_regenerate_if_changed(letter=letter)
    return regenerated


# --- Erasure -------------------------------------------------------------------------------------


def letter_erase(*, pledge: Pledge) -> bool:
    """Delete a withdrawn or erased pledge's letter: its row now, its file once the transaction commits.

    Call it in the transaction that withdraws or erases the pledge (a withdrawal deletes the
    pledge's letter, DOMAIN.md section 5). The ledger keeps only the receipt id and the hash,
    which identify no one. Returns whether there was a letter.
    """
    letter = Letter.objects.filter(pledge=pledge).first()
    if letter is None:
        return False
    path = letter_path(file_name=letter.file_name)
    letter.delete()
    transaction.on_commit(lambda: path.unlink(missing_ok=True))
    return True
