"""The ANS RPPS directory: upload, streaming import, and verification of signers against it.

The file is `PS_LibreAcces_Personne_activite_<timestamp>.txt` (DOMAIN.md section 3): UTF-8, `|`
separated, no quoting, a header row, a trailing `|`, one row per activity; about 2 million rows
and 1 GB. We keep, per RPPS, only what verification needs (DirectoryEntry): names, profession,
whether any activity is liberal or general practice, and the departments of the activities.

Import, memory bounded whatever the file's size:
1. Stream the file line by line (a line is read with a length limit) and write the rows we keep
   to a TEMPORARY staging table, private to this database session, a batch at a time. Progress
   (bytes, rows) is committed after each batch so the organizer's page can follow it.
2. In ONE transaction, read the staging table grouped by RPPS, page by page (keyset on the RPPS:
   every page costs the same), upsert DirectoryEntry in batches (bulk_create update_conflicts on
   rpps), and delete the entries the new file no longer has.
A malformed line (bad encoding, wrong column count, an RPPS that is not 11 digits) stops step 1:
the import fails with the line number, the staging table is dropped, and DirectoryEntry is as it
was. Why staging rather than one transaction around everything: progress written inside that
transaction would be invisible until the end; and aggregating the activities in Python would
hold every physician (~300,000) in memory.

Non-physicians are not kept, except the RPPS numbers some pledge uses: for those we store the
profession code alone, so that verification can say "not a physician" rather than "unknown".
"""

import logging
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.move import file_move_safe
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.text import get_valid_filename
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from deconv.models import AuditEntry
from pledges.enums import BundleStatus, Specialty, VerificationStatus
from pledges.jobs import DIRECTORY, job_claim
from pledges.models import Campaign, DirectoryEntry, DirectoryImport, Pledge
from pledges.moderation import text_fold
from territories.postal import departments_for_postal_code

logger = logging.getLogger(__name__)

DIRECTORY_FOLDER = "directory"
# A real line is under 1 KB; a longer one means this is not the file we expect.
MAX_LINE_BYTES = 64 * 1024
# Lines per staging insert and progress update; tests lower it to cross many batches.
IMPORT_BATCH_LINES = 5000
UPSERT_BATCH = 1000
VERIFY_BATCH = 1000

RPPS_ID_TYPE = "8"
PHYSICIAN = "10"
LIBERAL_MODE = "L"
GENERAL_PRACTICE_SKILLS = frozenset({"SM53", "SM54", "SM26"})

# The columns we read, found by name in the header (their position may change between releases).
COLUMNS = {
    "id_type": "Type d'identifiant PP",
    "rpps": "Identifiant PP",
    "last_name": "Nom d'exercice",
    "first_name": "Prénom d'exercice",
    "profession": "Code profession",
    "skill": "Code savoir-faire",
    "mode": "Code mode exercice",
    "postal_code": "Code postal (coord. structure)",
    "department": "Code Département (structure)",
}
_DEPARTMENT_CODE = re.compile(r"[0-9]{2,3}|2[AB]")
_STAGING = "deconv_directory_staging"
# Serialises step 2 of concurrent imports (b"deconvdi" as a signed 64-bit integer).
_PUBLISH_LOCK_KEY = 0x6465636F6E766469

VERIFICATION_REASON_LABELS = {
    "rpps_unknown": _("RPPS number not in the directory"),
    "not_physician": _("not a physician in the directory"),
    "not_liberal": _("no liberal activity in the directory"),
    "department_differs": _("department of practice differs from the directory"),
    "name_differs": _("name differs from the directory"),
    "not_general_practice": _("no general practice qualification in the directory"),
}


class DirectoryFormatError(Exception):
    """The file is not the expected directory; `line` is 1-based (1 is the header)."""

    def __init__(self, *, line: int, problem: str):
        super().__init__(f"line {line}: {problem}")
        self.line = line
        self.problem = problem

    def message(self) -> str:
        return gettext("Line %(line)s: %(problem)s") % {"line": self.line, "problem": self.problem}


@dataclass(frozen=True)
class DirectoryHeader:
    positions: dict[str, int]
    width: int


def _split(raw: bytes, *, line: int) -> list[str]:
    if len(raw) > MAX_LINE_BYTES:
        raise DirectoryFormatError(line=line, problem=gettext("the line is too long for this file."))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DirectoryFormatError(line=line, problem=gettext("the text is not UTF-8.")) from None
    text = text.rstrip("\r\n")
    fields = text.split("|")
    if text.endswith("|"):
        fields.pop()  # the trailing separator ends every line
    return fields


def directory_header_parse(raw: bytes) -> DirectoryHeader:
    """Where the columns we read are; DirectoryFormatError (line 1) when the header is not this file's."""
    names = [name.strip() for name in _split(raw.removeprefix(b"\xef\xbb\xbf"), line=1)]
    missing = [name for name in COLUMNS.values() if name not in names]
    if missing:
        raise DirectoryFormatError(
            line=1,
            problem=gettext(
                "the header lacks the columns %(columns)s: is this the PS_LibreAcces_Personne_activite file?"
            )
            % {"columns": ", ".join(f"“{name}”" for name in missing)},
        )
    return DirectoryHeader(
        positions={key: names.index(name) for key, name in COLUMNS.items()}, width=len(names)
    )


def _department_codes(department: str, postal_code: str) -> list[str]:
    """The structure's department, else the one(s) its postal code names."""
    code = department.strip().upper()
    if code.isdigit() and len(code) == 1:
        code = f"0{code}"
    if _DEPARTMENT_CODE.fullmatch(code):
        return [code]
    return sorted(departments_for_postal_code(postal_code))


# A staging row: (rpps, last_name, first_name, profession, liberal, general_practice, department).
StagingRow = tuple[str, str, str, str, int, int, str]


def _staging_rows(
    fields: list[str], *, header: DirectoryHeader, line: int, pledged: frozenset[str]
) -> list[StagingRow]:
    """The staging rows one activity line gives: none, or one per department of the activity."""
    if len(fields) != header.width:
        raise DirectoryFormatError(
            line=line,
            problem=gettext("%(found)s columns where the header has %(expected)s.")
            % {"found": len(fields), "expected": header.width},
        )
    at = header.positions
    if fields[at["id_type"]].strip() != RPPS_ID_TYPE:
        return []
    rpps = fields[at["rpps"]].strip()
    profession = fields[at["profession"]].strip()
    if profession != PHYSICIAN and rpps not in pledged:
        return []
    if len(rpps) != 11 or not rpps.isascii() or not rpps.isdigit():
        raise DirectoryFormatError(line=line, problem=gettext("the RPPS identifier is not 11 digits."))
    if profession != PHYSICIAN:
        return [(rpps, "", "", profession[:4], 0, 0, "")]
    last_name = fields[at["last_name"]].strip()[:100]
    first_name = fields[at["first_name"]].strip()[:100]
    liberal = int(fields[at["mode"]].strip() == LIBERAL_MODE)
    general_practice = int(fields[at["skill"]].strip() in GENERAL_PRACTICE_SKILLS)
    departments = _department_codes(fields[at["department"]], fields[at["postal_code"]]) or [""]
    return [
        (rpps, last_name, first_name, profession, liberal, general_practice, department)
        for department in departments
    ]


def _lines(file) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes) from the second line on; each read is bounded by MAX_LINE_BYTES."""
    number = 1
    while True:
        raw = file.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        yield number, raw


# --- Staging (step 1) ---------------------------------------------------------------------------


def _staging_create() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_STAGING}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {_STAGING} ("
            "rpps varchar(11) NOT NULL, last_name varchar(100) NOT NULL, first_name varchar(100) NOT NULL, "
            "profession varchar(4) NOT NULL, liberal smallint NOT NULL, general_practice smallint NOT NULL, "
            "department varchar(3) NOT NULL)"
        )


def _staging_drop() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_STAGING}")


# Rows per multi-row INSERT: 7 parameters each, far below SQLite's limit of 32,766 (one statement
# per row, even pipelined, is several times slower).
_STAGING_INSERT_ROWS = 500


def _staging_insert(rows: list[StagingRow]) -> None:
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _STAGING_INSERT_ROWS):
            chunk = rows[start : start + _STAGING_INSERT_ROWS]
            placeholders = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(chunk))
            cursor.execute(
                f"INSERT INTO {_STAGING} VALUES {placeholders}",  # noqa: S608 (our table, values as parameters)
                [value for row in chunk for value in row],
            )


def _pledged_rpps() -> frozenset[str]:
    # Bounded by the number of pledges, not by the file.
    return frozenset(Pledge.objects.exclude(rpps="").values_list("rpps", flat=True).distinct().iterator())


def _stage_file(*, directory_import: DirectoryImport, path: Path, batch_lines: int) -> None:
    """Step 1: every kept row into the staging table; progress committed per batch."""
    pledged = _pledged_rpps()
    with path.open("rb") as file:
        header = directory_header_parse(file.readline(MAX_LINE_BYTES + 1))
        rows: list[StagingRow] = []
        lines_read = 0
        for number, raw in _lines(file):
            fields = _split(raw, line=number)
            if fields != [""]:  # a blank line (e.g. at the very end) carries nothing
                rows.extend(_staging_rows(fields, header=header, line=number, pledged=pledged))
            lines_read += 1
            if lines_read % batch_lines == 0:
                _stage_batch(
                    directory_import=directory_import, rows=rows, bytes_done=file.tell(), rows_read=lines_read
                )
                rows = []
        _stage_batch(
            directory_import=directory_import, rows=rows, bytes_done=file.tell(), rows_read=lines_read
        )


def _stage_batch(
    *, directory_import: DirectoryImport, rows: list[StagingRow], bytes_done: int, rows_read: int
) -> None:
    with transaction.atomic():
        _staging_insert(rows)
        DirectoryImport.objects.filter(pk=directory_import.pk).update(
            bytes_done=bytes_done, rows_read=rows_read
        )


# --- Publishing (step 2) ------------------------------------------------------------------------


def _aggregate_sql(*, bounded: bool) -> str:
    departments = (
        "string_agg(DISTINCT NULLIF(department, ''), ',')"
        if connection.vendor == "postgresql"
        else "group_concat(DISTINCT NULLIF(department, ''))"
    )
    upper = "AND rpps <= %s " if bounded else ""
    # MIN(profession): "10" sorts before every other profession code, so a physician stays one.
    return (
        f"SELECT rpps, MIN(last_name), MIN(first_name), MIN(profession), MAX(liberal), MAX(general_practice), "  # noqa: S608
        f"{departments} FROM {_STAGING} WHERE rpps > %s {upper}GROUP BY rpps ORDER BY rpps"
    )


def _staging_pages(*, batch: int) -> Iterator[list[tuple]]:
    """The staging rows grouped by RPPS, about `batch` activities per page, in RPPS order.

    Each page is a range of the rpps index: first find the range's upper end (`batch` rows
    further on), then aggregate that range only. A GROUP BY ... LIMIT could make the database
    aggregate the whole table for every page.
    """
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE INDEX {_STAGING}_rpps ON {_STAGING} (rpps)")
        if connection.vendor == "postgresql":
            cursor.execute(f"ANALYZE {_STAGING}")  # temporary tables are never analysed automatically
    upper_sql = f"SELECT rpps FROM {_STAGING} WHERE rpps > %s ORDER BY rpps LIMIT 1 OFFSET %s"  # noqa: S608
    last = ""
    while True:
        with connection.cursor() as cursor:
            cursor.execute(upper_sql, [last, batch - 1])
            upper = cursor.fetchone()
            if upper is None:
                cursor.execute(_aggregate_sql(bounded=False), [last])
            else:
                cursor.execute(_aggregate_sql(bounded=True), [last, upper[0]])
            rows = cursor.fetchall()
        if rows:
            yield rows
        if upper is None:
            return
        last = upper[0]


def _publish(*, directory_import: DirectoryImport, batch: int) -> int:
    """Step 2, one transaction: upsert the grouped staging rows, drop entries the file lacks."""
    physicians = 0
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PUBLISH_LOCK_KEY])
        for rows in _staging_pages(batch=batch):
            entries = [
                DirectoryEntry(
                    rpps=rpps,
                    last_name=last_name,
                    first_name=first_name,
                    profession_code=profession,
                    is_liberal=bool(liberal),
                    is_general_practice=bool(general_practice),
                    department_codes=sorted(set((departments or "").split(",")) - {""}),
                    directory_import=directory_import,
                )
                for rpps, last_name, first_name, profession, liberal, general_practice, departments in rows
            ]
            physicians += sum(1 for entry in entries if entry.profession_code == PHYSICIAN)
            DirectoryEntry.objects.bulk_create(
                entries,
                update_conflicts=True,
                unique_fields=["rpps"],
                update_fields=[
                    "last_name",
                    "first_name",
                    "profession_code",
                    "is_liberal",
                    "is_general_practice",
                    "department_codes",
                    "directory_import",
                ],
            )
        # The file is a full snapshot: whoever it lacks has left the directory.
        DirectoryEntry.objects.exclude(directory_import=directory_import).delete()
    return physicians


# --- The import job -----------------------------------------------------------------------------


def directory_folder() -> Path:
    return Path(settings.PRIVATE_MEDIA_ROOT) / DIRECTORY_FOLDER


def directory_upload_store(
    *, uploaded_file: UploadedFile, uploaded_by, campaign: Campaign
) -> DirectoryImport:
    """Check the header, move the upload to PRIVATE_MEDIA_ROOT/directory/ and queue its import.

    Raises ValidationError (field "file") when the header is not the directory's: nothing is
    stored. Side effects: the file moved (not copied into memory: Django streamed the upload to a
    temporary file); a DirectoryImport; an audit entry on `campaign`; after commit, the
    pledges.directory_import task.
    """
    uploaded_file.seek(0)
    try:
        directory_header_parse(uploaded_file.readline(MAX_LINE_BYTES + 1))
    except DirectoryFormatError as error:
        raise ValidationError({"file": error.message()}, code="directory_header") from None
    uploaded_file.seek(0)
    folder = directory_folder()
    folder.mkdir(parents=True, exist_ok=True)
    destination = folder / f"{uuid.uuid4().hex}.txt"
    if hasattr(uploaded_file, "temporary_file_path"):
        file_move_safe(uploaded_file.temporary_file_path(), str(destination))
    else:
        with destination.open("wb") as out:
            for chunk in uploaded_file.chunks():
                out.write(chunk)
    file_name = get_valid_filename(Path(uploaded_file.name or "directory.txt").name)[:200]
    with transaction.atomic():
        directory_import = DirectoryImport.objects.create(
            file_name=file_name,
            stored_path=str(destination),
            bytes_total=destination.stat().st_size,
            uploaded_by=uploaded_by,
        )
        AuditEntry.objects.create(
            actor=uploaded_by,
            action="directory.upload",
            campaign_id=campaign.pk,
            object_type="directoryimport",
            object_id=str(directory_import.pk),
            details={"bytes": directory_import.bytes_total},
        )
        transaction.on_commit(lambda: _import_task_send(directory_import.pk))
    return directory_import


def _import_task_send(import_id: int) -> None:
    from deconv.tasks import dispatch_safely
    from pledges.tasks import directory_import

    dispatch_safely(directory_import, import_id)


def directory_import_leftovers_remove(import_id: int) -> None:
    """Delete the stored file of an import given up (pledges.jobs): nobody will read it again."""
    stored = DirectoryImport.objects.filter(pk=import_id).values_list("stored_path", flat=True).first()
    if stored:
        DirectoryImport.objects.filter(pk=import_id).update(stored_path="")
        Path(stored).unlink(missing_ok=True)


def directory_import_run(*, import_id: int, batch_lines: int = IMPORT_BATCH_LINES) -> DirectoryImport:
    """Import a stored directory file (module docstring: steps 1 and 2); safe to run twice.

    The claim goes through pledges.jobs: while one worker imports, a second delivery of the task
    does nothing (two imports of one file would race on its progress and on deleting it). An
    import whose worker died is started again from the top: staging was private to the dead
    session and step 2 replaces entries whole, in one transaction. A done or failed import is
    left alone. The stored file is deleted once the import ends (the entries hold what we need;
    the ANS republishes the file anyway).
    """
    with job_claim(DIRECTORY, import_id, bytes_done=0, rows_read=0, error="") as claimed:
        if not claimed:
            return DirectoryImport.objects.get(pk=import_id)
        return _import(import_id=import_id, batch_lines=batch_lines)


def _import(*, import_id: int, batch_lines: int) -> DirectoryImport:
    directory_import = DirectoryImport.objects.get(pk=import_id)
    path = Path(directory_import.stored_path)
    outcome = {"status": BundleStatus.DONE, "error": ""}
    try:
        _staging_create()
        _stage_file(directory_import=directory_import, path=path, batch_lines=batch_lines)
        outcome["physicians_kept"] = _publish(directory_import=directory_import, batch=UPSERT_BATCH)
    except DirectoryFormatError as error:
        outcome = {"status": BundleStatus.FAILED, "error": error.message()}
    except Exception:
        DirectoryImport.objects.filter(pk=import_id).update(
            status=BundleStatus.FAILED,
            error=gettext("The import failed; see the server log."),
            finished_at=timezone.now(),
        )
        logger.exception("directory import %s failed", import_id)
        raise
    finally:
        _staging_drop()
    DirectoryImport.objects.filter(pk=import_id).update(**outcome, stored_path="", finished_at=timezone.now())
    path.unlink(missing_ok=True)
    directory_import.refresh_from_db()
    AuditEntry.objects.create(
        action="directory.import",
        object_type="directoryimport",
        object_id=str(import_id),
        details={
            "status": directory_import.status,
            "rows_read": directory_import.rows_read,
            "physicians_kept": directory_import.physicians_kept,
        },
    )
    logger.info(
        "directory import %s: %s, %s rows, %s physicians",
        import_id,
        directory_import.status,
        directory_import.rows_read,
        directory_import.physicians_kept,
    )
    return directory_import


def directory_import_status(*, directory_import: DirectoryImport) -> dict:
    """What the progress page and its JSON poller (static/js/progress.js) show: bytes read."""
    done, total = directory_import.bytes_done, directory_import.bytes_total
    return {
        "status": directory_import.status,
        "status_label": str(directory_import.get_status_display()),
        "done": done,
        "total": total,
        "percent": 100
        if directory_import.status == BundleStatus.DONE
        else (done * 100 // total if total else 0),
        "rows_read": directory_import.rows_read,
        "physicians_kept": directory_import.physicians_kept,
        "finished": directory_import.status in (BundleStatus.DONE, BundleStatus.FAILED),
        "error": directory_import.error,
    }


def directory_is_loaded() -> bool:
    return DirectoryImport.objects.filter(status=BundleStatus.DONE).exists()


# --- Verification -------------------------------------------------------------------------------


def name_key(value: str) -> str:
    """Names compared without case, accents, hyphens, apostrophes nor spaces: "Le Gall-Hervé" = "LEGALL HERVE"."""
    return "".join(char for char in text_fold(value) if char.isalnum())


def pledge_verification_reasons(*, pledge: Pledge, entry: DirectoryEntry | None) -> list[str]:
    """Why a pledge does not match the directory (keys of VERIFICATION_REASON_LABELS); [] if it does."""
    if entry is None:
        return ["rpps_unknown"]
    if entry.profession_code != PHYSICIAN:
        return ["not_physician"]
    reasons = []
    if not entry.is_liberal:
        reasons.append("not_liberal")
    # No department in the directory (no address for any activity): nothing to compare.
    if entry.department_codes and pledge.department.code not in entry.department_codes:
        reasons.append("department_differs")
    if (name_key(pledge.last_name), name_key(pledge.first_name)) != (
        name_key(entry.last_name),
        name_key(entry.first_name),
    ):
        reasons.append("name_differs")
    if pledge.specialty == Specialty.GENERAL_PRACTICE and not entry.is_general_practice:
        reasons.append("not_general_practice")
    return reasons


def verification_reason_labels(reason: str) -> list[str]:
    """The stored reason ("not_liberal;name_differs") as sentences for organizers."""
    return [str(VERIFICATION_REASON_LABELS.get(key, key)) for key in reason.split(";") if key]


def pledge_verification_run(*, campaign_id: int | None = None, batch: int = VERIFY_BATCH) -> dict[str, int]:
    """Mark every pledge that has an RPPS (of one campaign, or all) verified or mismatched.

    Batches of `batch` pledges by keyset: one query for the pledges, one for their entries, one
    bulk update of the three verification fields only (a concurrent withdrawal is not undone).
    Returns the counts per verification status.
    """
    pledges = Pledge.objects.exclude(rpps="").select_related("department").order_by("pk")
    if campaign_id is not None:
        pledges = pledges.filter(campaign_id=campaign_id)
    pledges = pledges.only("pk", "rpps", "last_name", "first_name", "specialty", "department__code")
    counts = {VerificationStatus.VERIFIED.value: 0, VerificationStatus.MISMATCHED.value: 0}
    last = 0
    while True:
        page = list(pledges.filter(pk__gt=last)[:batch])
        if not page:
            break
        last = page[-1].pk
        entries = {
            entry.rpps: entry for entry in DirectoryEntry.objects.filter(rpps__in={p.rpps for p in page})
        }
        now = timezone.now()
        for pledge in page:
            reasons = pledge_verification_reasons(pledge=pledge, entry=entries.get(pledge.rpps))
            pledge.verification_status = (
                VerificationStatus.MISMATCHED if reasons else VerificationStatus.VERIFIED
            )
            pledge.verification_reason = ";".join(reasons)
            pledge.verified_at = now
            counts[pledge.verification_status] += 1
        Pledge.objects.bulk_update(page, ["verification_status", "verification_reason", "verified_at"])
    return counts


def directory_imports_recent(*, limit: int = 10) -> Iterable[DirectoryImport]:
    return DirectoryImport.objects.select_related("uploaded_by").order_by("-created_at", "-pk")[:limit]


def campaign_verification_counts(*, campaign: Campaign) -> dict[str, int]:
    """Pledges with an RPPS per verification status, in one aggregate."""
    counts = dict.fromkeys(VerificationStatus.values, 0)
    rows = (
        Pledge.objects.filter(campaign=campaign)
        .exclude(rpps="")
        .values("verification_status")
        .annotate(count=Count("pk"))
        .order_by()
    )
    for row in rows:
        counts[row["verification_status"]] = row["count"]
    return counts


def campaign_verification_queue(*, campaign: Campaign, actor) -> None:
    """Verify the campaign's pledges again (e.g. after many new signatures), in a task.

    Raises ValidationError when no directory was imported yet: every pledge would read "unknown".
    Side effects: an audit entry; after commit, the pledges.directory_verify task.
    """
    if not directory_is_loaded():
        raise ValidationError(_("Import the RPPS directory first."), code="no_directory")
    with transaction.atomic():
        AuditEntry.objects.create(actor=actor, action="directory.verify", campaign_id=campaign.pk)
        transaction.on_commit(lambda: _verify_task_send(campaign.pk))


def _verify_task_send(campaign_id: int) -> None:
    from deconv.tasks import dispatch_safely
    from pledges.tasks import directory_verify

    dispatch_safely(directory_verify, campaign_id)
