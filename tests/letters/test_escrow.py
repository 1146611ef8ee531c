"""Escrow bundles: the ZIP the bailiff receives, its manifest, and who can get it."""

import csv
import hashlib
import io
import json
import zipfile

import pytest
from django.urls import reverse

from pledges.enums import BundleStatus
from pledges.escrow import escrow_bundle_build, escrow_bundle_path, escrow_bundle_request
from pledges.letters_pipeline import letter_path, release_process
from pledges.models import EscrowBundle, LedgerEntry, Letter
from tests.letters.factories import ReleasedPledgeFactory
from tests.pledges.factories import UserFactory


@pytest.fixture
def released(release, make_pledges):
    pledges = make_pledges(3)
    ReleasedPledgeFactory(
        release=release, caisse=pledges[0].caisse, last_name='=HYPERLINK("http://x")', first_name="@SUM(A1)"
    )
    release_process(release_id=release.pk)
    return release


def _build(release, user=None):
    bundle = escrow_bundle_request(release=release, user=user)
    assert escrow_bundle_build(bundle_id=bundle.pk) is True
    bundle.refresh_from_db()
    return bundle


def test_bundle_holds_every_letter_and_a_manifest_whose_hashes_match_the_letters_and_the_ledger(released):
    bundle = _build(released)

    assert bundle.status == BundleStatus.DONE
    assert (bundle.progress_done, bundle.progress_total) == (4, 4)
    data = escrow_bundle_path(bundle=bundle).read_bytes()
    assert bundle.sha256 == hashlib.sha256(data).hexdigest()
    archive = zipfile.ZipFile(io.BytesIO(data))
    letters = {
        f"letters/{letter.pledge.receipt_id}.pdf": letter
        for letter in Letter.objects.select_related("pledge")
    }
    assert sorted(archive.namelist()) == sorted([*letters, "manifest.csv", "manifest.json"])
    for name, letter in letters.items():
        member = archive.read(name)
        assert member == letter_path(file_name=letter.file_name).read_bytes()
        assert hashlib.sha256(member).hexdigest() == letter.sha256

    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["release"]["id"] == released.pk
    rows = {row["file_name"]: row for row in manifest["letters"]}
    assert {name: row["sha256"] for name, row in rows.items()} == {
        n: letter.sha256 for n, letter in letters.items()
    }
    for name, letter in letters.items():
        assert (rows[name]["rpps"], rows[name]["last_name"], rows[name]["caisse"]) == (
            letter.pledge.rpps,
            letter.pledge.last_name,
            "CPAM de l'Ain",
        )
    ledger = LedgerEntry.objects.get(kind="letters_released", payload__release_id=released.pk)
    by_receipt = dict(map(tuple, ledger.payload["letters"]))
    assert {str(letter.pledge.receipt_id): letter.sha256 for letter in letters.values()} == by_receipt
    csv_rows = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
    assert {row["file_name"]: row["sha256"] for row in csv_rows} == {n: r["sha256"] for n, r in rows.items()}


def test_manifest_csv_cells_cannot_run_as_spreadsheet_formulas(released):
    archive = zipfile.ZipFile(escrow_bundle_path(bundle=_build(released)))

    csv_rows = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
    hostile = next(row for row in csv_rows if "HYPERLINK" in row["last_name"])
    assert hostile["last_name"] == '\'=HYPERLINK("http://x")'
    assert hostile["first_name"] == "'@SUM(A1)"
    # The JSON manifest is data, not a spreadsheet: the name as typed.
    rows = json.loads(archive.read("manifest.json"))["letters"]
    assert any(row["last_name"] == '=HYPERLINK("http://x")' for row in rows)


def test_a_letter_changed_on_disk_fails_the_bundle(released):
    letter = Letter.objects.first()
    letter_path(file_name=letter.file_name).write_bytes(b"%PDF-tampered")
    bundle = escrow_bundle_request(release=released, user=None)

    assert escrow_bundle_build(bundle_id=bundle.pk) is False

    bundle.refresh_from_db()
    assert bundle.status == BundleStatus.FAILED
    assert f"letter {letter.pk}" in bundle.error
    assert letter.pledge.last_name not in bundle.error
    assert escrow_bundle_path(bundle=bundle) is None


def test_a_bundle_is_built_once_even_if_its_task_runs_twice(released):
    bundle = _build(released)
    sha = bundle.sha256

    assert escrow_bundle_build(bundle_id=bundle.pk) is False

    bundle.refresh_from_db()
    assert bundle.sha256 == sha and bundle.status == BundleStatus.DONE


# --- Pages -------------------------------------------------------------------------------------


def _page(release):
    return reverse("pledges:escrow", kwargs={"release_id": release.pk})


def test_staff_request_a_bundle_and_follow_its_progress(
    client, released, staff, django_capture_on_commit_callbacks, monkeypatch
):
    dispatched = []
    monkeypatch.setattr("pledges.tasks.escrow_bundle_build_task.delay", lambda **kw: dispatched.append(kw))
    client.force_login(staff)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(_page(released))

    assert response.status_code == 302 and response["Location"] == _page(released)
    bundle = EscrowBundle.objects.get()
    assert dispatched == [{"bundle_id": bundle.pk}]
    assert (bundle.status, bundle.progress_total, bundle.requested_by) == (BundleStatus.QUEUED, 4, staff)

    page = client.get(_page(released))
    assert page.status_code == 200
    html = page.content.decode()
    status_url = reverse("pledges:escrow_status", kwargs={"bundle_id": bundle.pk})
    assert f'data-progress-url="{status_url}"' in html
    assert "<progress" in html and "js/progress.js" in html
    assert _page(released) in html  # the refresh link, for browsers without JavaScript

    status = client.get(status_url).json()
    assert status.pop("status_label")
    assert status == {"status": "queued", "done": 0, "total": 4, "percent": 0, "download_url": ""}

    escrow_bundle_build(bundle_id=bundle.pk)
    status = client.get(status_url).json()
    download_url = reverse("pledges:escrow_download", kwargs={"bundle_id": bundle.pk})
    assert (status["status"], status["done"], status["percent"], status["download_url"]) == (
        "done",
        4,
        100,
        download_url,
    )
    response = client.get(download_url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Cache-Control"] == "private, no-store"
    assert (
        hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == EscrowBundle.objects.get().sha256
    )


def test_signers_and_anonymous_visitors_cannot_reach_bundles(client, released):
    bundle = _build(released)
    urls = [
        _page(released),
        reverse("pledges:escrow_status", kwargs={"bundle_id": bundle.pk}),
        reverse("pledges:escrow_download", kwargs={"bundle_id": bundle.pk}),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    signer = Letter.objects.first().pledge.user
    client.force_login(signer)
    for url in urls:
        assert client.get(url).status_code == 403
    assert client.post(_page(released)).status_code == 403
    client.force_login(UserFactory())
    for url in urls:
        assert client.get(url).status_code == 403
    assert EscrowBundle.objects.count() == 1


def test_a_bundle_not_ready_is_not_downloadable(client, released, staff):
    bundle = escrow_bundle_request(release=released, user=staff)
    client.force_login(staff)
    assert client.get(reverse("pledges:escrow_download", kwargs={"bundle_id": bundle.pk})).status_code == 404


def test_escrow_status_refuses_post(client, released, staff):
    bundle = _build(released)
    client.force_login(staff)
    assert client.post(reverse("pledges:escrow_status", kwargs={"bundle_id": bundle.pk})).status_code == 405
