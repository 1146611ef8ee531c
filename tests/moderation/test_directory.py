"""RPPS directory: streaming import in the real format, malformed files, memory, verification."""

import tracemalloc
from unittest import mock

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from pledges import directory
from pledges.directory import (
    DirectoryFormatError,
    directory_header_parse,
    directory_import_run,
    directory_upload_store,
    pledge_verification_run,
)
from pledges.enums import BundleStatus, VerificationStatus
from pledges.models import DirectoryEntry, DirectoryImport, Pledge
from tests.moderation import directory_files
from tests.moderation.directory_files import activity
from tests.moderation.factories import pledge_make, rpps_next
from tests.pledges.signing_support import eager_celery

pytestmark = pytest.mark.django_db
eager_celery = eager_celery

DOCTOR = "10000000009"  # valid Luhn numbers, as DOMAIN.md builds them
NURSE = "10000000017"


def stored_import(path, user=None) -> DirectoryImport:
    return DirectoryImport.objects.create(
        file_name=path.name, stored_path=str(path), bytes_total=path.stat().st_size, uploaded_by=user
    )


def run(path, **kwargs) -> DirectoryImport:
    return directory_import_run(import_id=stored_import(path).pk, **kwargs)


# --- Import -------------------------------------------------------------------------------------


def test_activities_are_aggregated_per_physician_and_only_physicians_are_kept(tmp_path):
    path = directory_files.write(
        tmp_path / "PS_LibreAcces_Personne_activite_202403130000.txt",
        [
            activity(DOCTOR, mode="S", skill="", department="01"),
            activity(DOCTOR, mode="L", skill="SM54", department="", postal_code="69003"),
            activity(DOCTOR, mode="S", skill="", department="2A"),
            activity(NURSE, profession="60"),
            activity("123456789", id_type="0"),  # ADELI: not an RPPS
        ],
    )

    size = path.stat().st_size

    result = run(path)

    assert result.status == BundleStatus.DONE
    assert (result.rows_read, result.physicians_kept, result.bytes_done, result.bytes_total) == (
        5,
        1,
        size,
        size,
    )
    entry = DirectoryEntry.objects.get()
    assert (entry.rpps, entry.last_name, entry.first_name, entry.profession_code) == (
        DOCTOR,
        "MARTIN",
        "ELISE",
        "10",
    )
    assert (entry.is_liberal, entry.is_general_practice) == (True, True)
    assert entry.department_codes == ["01", "2A", "69"]
    assert entry.directory_import == result
    assert not path.exists(), "the stored file is deleted once imported"


def test_a_non_physician_rpps_is_kept_only_when_a_pledge_uses_it(tmp_path, campaign):
    pledge_make(campaign=campaign, rpps=NURSE)
    other_nurse = rpps_next()
    path = directory_files.write(
        tmp_path / "a.txt", [activity(NURSE, profession="60"), activity(other_nurse, profession="60")]
    )

    run(path)

    nurse = DirectoryEntry.objects.get()
    assert (nurse.rpps, nurse.profession_code, nurse.last_name, nurse.department_codes) == (
        NURSE,
        "60",
        "",
        [],
    )


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("8|10000000009|810000000009|too|few|\n", "5 columns where the header has 52."),
        ("8|10000000009|" + "|" * 60 + "\n", "62 columns where the header has 52."),
        ("x" * 70_000 + "\n", "the line is too long for this file."),
    ],
    ids=["too-few-columns", "too-many-columns", "too-long"],
)
def test_a_malformed_line_rejects_the_whole_file_with_its_line_number_and_changes_nothing(
    tmp_path, raw, problem
):
    DirectoryEntry.objects.create(
        rpps="10000000025",
        last_name="ANCIEN",
        first_name="A",
        profession_code="10",
        is_liberal=True,
        is_general_practice=True,
        department_codes=["01"],
    )
    path = directory_files.write(
        tmp_path / "bad.txt", [activity(DOCTOR), activity(rpps_next()), raw, activity(NURSE)]
    )

    result = run(path, batch_lines=1)

    assert (result.status, result.error) == (BundleStatus.FAILED, f"Line 4: {problem}")
    assert list(DirectoryEntry.objects.values_list("rpps", "last_name")) == [("10000000025", "ANCIEN")]


def test_a_line_that_is_not_utf8_rejects_the_file(tmp_path):
    path = directory_files.write(tmp_path / "latin1.txt", [activity(DOCTOR)])
    names = directory_files.columns()
    with path.open("ab") as file:
        file.write(directory_files.line(activity(NURSE, last_name="HÉLÈNE"), names).encode("latin-1"))

    result = run(path)

    assert (result.status, result.error) == (BundleStatus.FAILED, "Line 3: the text is not UTF-8.")
    assert not DirectoryEntry.objects.exists()


def test_an_rpps_that_is_not_eleven_digits_rejects_the_file(tmp_path):
    path = directory_files.write(tmp_path / "short.txt", [activity(DOCTOR), activity("1234")])

    result = run(path)

    assert result.error == "Line 3: the RPPS identifier is not 11 digits."
    assert not DirectoryEntry.objects.exists()


def test_a_wrong_header_is_refused_at_upload_and_by_the_import(tmp_path, campaign, national):
    names = ["Type d'identifiant PP", "Identifiant PP", "Code profession", "Nom d'exercice"]
    path = directory_files.write(tmp_path / "PS_LibreAcces_Personne_savoirfaire.txt", [], names=names)

    with pytest.raises(DirectoryFormatError) as raised:
        directory_header_parse(path.read_bytes())
    assert raised.value.line == 1
    assert "“Prénom d'exercice”" in raised.value.problem

    upload = SimpleUploadedFile(path.name, path.read_bytes())
    with pytest.raises(ValidationError) as refused:
        directory_upload_store(uploaded_file=upload, uploaded_by=national, campaign=campaign)
    assert refused.value.message_dict["file"][0].startswith("Line 1: the header lacks the columns")
    assert not DirectoryImport.objects.exists()
    assert run(path).error.startswith("Line 1: the header lacks the columns")


def test_progress_is_committed_after_every_batch(tmp_path):
    path = directory_files.write(tmp_path / "d.txt", [activity(rpps_next()) for _index in range(10)])
    seen = []
    original = directory._stage_batch

    def record(**kwargs):
        original(**kwargs)
        seen.append(DirectoryImport.objects.values_list("bytes_done", "rows_read").get())

    with mock.patch.object(directory, "_stage_batch", side_effect=record):
        result = run(path, batch_lines=3)

    assert [rows for _bytes, rows in seen] == [3, 6, 9, 10]
    assert [done for done, _rows in seen] == sorted({done for done, _rows in seen})
    assert seen[-1][0] == result.bytes_total


def test_a_file_far_larger_than_a_batch_is_imported_in_bounded_memory(tmp_path):
    rows = []
    for index in range(6000):
        rpps = rpps_next()
        rows.append(activity(rpps, last_name=f"NOM{index}", department="01"))
        rows.append(activity(rpps, mode="S", department="69"))
    path = directory_files.write(tmp_path / "big.txt", rows)
    size = path.stat().st_size
    directory_import = stored_import(path)

    tracemalloc.start()
    try:
        result = directory_import_run(import_id=directory_import.pk, batch_lines=500)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert result.status == BundleStatus.DONE
    assert (result.rows_read, result.physicians_kept) == (12_000, 6000)
    assert DirectoryEntry.objects.count() == 6000
    assert size > 4_000_000
    # A batch of 500 lines and a page of 1,000 entries, whatever the file's size.
    assert peak < 3_000_000, f"peak {peak} bytes for a {size}-byte file"


# --- Verification -------------------------------------------------------------------------------


@pytest.fixture
def load_directory(tmp_path):
    """One liberal GP in Ain (Le Gall-Hervé), one salaried physician, one nurse, one specialist."""

    def load(*rows):
        return run(directory_files.write(tmp_path / f"dir-{DirectoryImport.objects.count()}.txt", list(rows)))

    return load


def test_every_verification_reason(campaign, load_directory):
    signers = {
        "verified": pledge_make(campaign=campaign, last_name="Le Gall-Hervé", first_name="Élise"),
        "rpps_unknown": pledge_make(campaign=campaign),
        "not_physician": pledge_make(campaign=campaign),
        "not_liberal": pledge_make(campaign=campaign),
        "department_differs": pledge_make(campaign=campaign, department="75"),
        "name_differs": pledge_make(campaign=campaign, last_name="Durand"),
        "not_general_practice": pledge_make(campaign=campaign),
    }
    load_directory(
        activity(signers["verified"].rpps, last_name="LE GALL HERVE", first_name="ELISE"),
        activity(signers["not_physician"].rpps, profession="60"),
        activity(signers["not_liberal"].rpps, mode="S"),
        activity(signers["department_differs"].rpps, department="01"),
        activity(signers["name_differs"].rpps),
        activity(signers["not_general_practice"].rpps, skill="SM02"),
    )

    counts = pledge_verification_run(campaign_id=campaign.pk)

    assert counts == {"verified": 1, "mismatched": 6}
    for expected, pledge in signers.items():
        pledge.refresh_from_db()
        assert pledge.verified_at is not None
        if expected == "verified":
            assert (pledge.verification_status, pledge.verification_reason) == (
                VerificationStatus.VERIFIED,
                "",
            )
        else:
            assert (pledge.verification_status, pledge.verification_reason) == (
                VerificationStatus.MISMATCHED,
                expected,
            )


def test_several_reasons_are_all_recorded(campaign, load_directory):
    pledge = pledge_make(campaign=campaign, department="75", last_name="Autre")
    load_directory(activity(pledge.rpps, mode="S", department="01"))

    pledge_verification_run()

    pledge.refresh_from_db()
    assert pledge.verification_reason == "not_liberal;department_differs;name_differs"


def test_reimporting_a_newer_file_updates_entries_and_marks(campaign, load_directory):
    pledge = pledge_make(campaign=campaign)
    gone = rpps_next()
    load_directory(activity(pledge.rpps, mode="S"), activity(gone))
    pledge_verification_run()
    pledge.refresh_from_db()
    assert pledge.verification_reason == "not_liberal"

    second = load_directory(activity(pledge.rpps, mode="L"))
    pledge_verification_run()

    pledge.refresh_from_db()
    assert (pledge.verification_status, pledge.verification_reason) == (VerificationStatus.VERIFIED, "")
    assert list(DirectoryEntry.objects.values_list("rpps", "directory_import")) == [(pledge.rpps, second.pk)]


def test_withdrawn_pledges_without_rpps_are_left_alone(campaign, load_directory):
    withdrawn = pledge_make(campaign=campaign, rpps="", status="withdrawn")
    load_directory(activity(DOCTOR))

    pledge_verification_run()

    withdrawn.refresh_from_db()
    assert (withdrawn.verification_status, withdrawn.verified_at) == (VerificationStatus.UNVERIFIED, None)


# --- Upload page --------------------------------------------------------------------------------


@pytest.mark.parametrize("in_memory_up_to", [2_621_440, 100], ids=["in-memory-upload", "streamed-to-disk"])
def test_uploading_stores_the_file_privately_imports_it_and_verifies_every_pledge(
    tmp_path,
    settings,
    campaign,
    national,
    as_user,
    eager_celery,
    django_capture_on_commit_callbacks,
    in_memory_up_to,
):
    # Above FILE_UPLOAD_MAX_MEMORY_SIZE Django streams the upload to a temporary file, which is moved.
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = in_memory_up_to
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    pledge = pledge_make(campaign=campaign, last_name="Martin", first_name="Élise")
    path = directory_files.write(
        tmp_path / "PS_LibreAcces_Personne_activite_202403130000.txt", [activity(pledge.rpps)]
    )
    client = as_user(national)

    with django_capture_on_commit_callbacks(execute=True), path.open("rb") as upload:
        response = client.post(
            reverse("pledges:organizer_directory", kwargs={"slug": campaign.slug}), {"file": upload}
        )

    directory_import = DirectoryImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "pledges:organizer_directory_detail", kwargs={"slug": campaign.slug, "import_id": directory_import.pk}
    )
    assert directory_import.file_name == path.name
    assert directory_import.status == BundleStatus.DONE
    assert directory_import.uploaded_by == national
    assert (
        list((settings.PRIVATE_MEDIA_ROOT / "directory").iterdir()) == []
    )  # moved there, deleted once imported
    pledge.refresh_from_db()
    assert pledge.verification_status == VerificationStatus.VERIFIED
    status = client.get(
        reverse(
            "pledges:organizer_directory_status",
            kwargs={"slug": campaign.slug, "import_id": directory_import.pk},
        )
    ).json()
    assert (status["finished"], status["percent"], status["status_label"]) == (True, 100, "Done")
    assert (status["done"], status["total"], status["rows_read"]) == (
        path.stat().st_size,
        path.stat().st_size,
        1,
    )


def test_a_wrong_file_is_refused_on_the_upload_page(tmp_path, campaign, national, as_user):
    client = as_user(national)
    upload = SimpleUploadedFile("notes.txt", b"hello|world|\n1|2|\n")

    response = client.post(
        reverse("pledges:organizer_directory", kwargs={"slug": campaign.slug}), {"file": upload}
    )

    assert response.status_code == 400
    assert "Line 1: the header lacks the columns" in response.context["form"].errors["file"][0]
    assert not DirectoryImport.objects.exists()


def test_verify_again_needs_an_imported_directory(campaign, national, as_user):
    client = as_user(national)

    response = client.post(
        reverse("pledges:organizer_directory_verify", kwargs={"slug": campaign.slug}), follow=True
    )

    assert b"Import the RPPS directory first." in response.content
    assert not Pledge.objects.exclude(verified_at=None).exists()
