"""Personal data goes away when it should, from every table and file, and never into the logs.

After an account's erasure and after a campaign's purge, every column of every table is searched
(raw SQL, so tables without a model are searched too) for the signer's distinctive name, RPPS
number and email, and so is every file under PRIVATE_MEDIA_ROOT (PDF text, archive members).
A full signing journey runs with every logger at DEBUG: no record names the signer.
"""

import io
import logging
import re
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.db import connection
from django.test import Client
from django.utils import timezone
from pypdf import PdfReader

from deconv import tasks
from deconv.logging import PersonalDataFilter, personal_data_mask
from deconv.models import EmailStatus, OutgoingEmail
from deconv.outbox import outbox_send
from pledges.access import organizer_scope
from pledges.enums import CampaignStatus, PledgeStatus
from pledges.exports import export_build, export_request
from pledges.letters_pipeline import letter_path
from pledges.lifecycle import campaign_purge
from pledges.models import Letter, Pledge, Release
from pledges.services import account_erase
from tests.pledges.signing_support import form_data
from tests.security.world import SIGNER

# --- Where personal data could hide ---------------------------------------------------------------


def tables_containing(secrets: tuple[str, ...]) -> dict[str, list[str]]:
    """{table: [secrets found]} over every column of every table, cast to text (PostgreSQL)."""
    quote = connection.ops.quote_name
    found: dict[str, list[str]] = {}
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            columns = [
                column.name for column in connection.introspection.get_table_description(cursor, table)
            ]
            matches = " OR ".join(f"CAST({quote(column)} AS TEXT) ILIKE %s" for column in columns)
            for secret in secrets:
                cursor.execute(
                    f"SELECT 1 FROM {quote(table)} WHERE {matches} LIMIT 1",  # noqa: S608 (our own table names)
                    [f"%{secret}%"] * len(columns),
                )
                if cursor.fetchone():
                    found.setdefault(table, []).append(secret)
    return found


def file_text(path: Path) -> str:
    data = path.read_bytes()
    if data.startswith(b"%PDF"):
        return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    if data.startswith(b"PK"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "\n".join(file_text_bytes(archive.read(name)) for name in archive.namelist())
    return data.decode(errors="replace")


def file_text_bytes(data: bytes) -> str:
    if data.startswith(b"%PDF"):
        return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    return data.decode(errors="replace")


def files_containing(secrets: tuple[str, ...]) -> dict[str, list[str]]:
    root = Path(settings.PRIVATE_MEDIA_ROOT)
    found = {}
    for path in sorted(root.rglob("*")) if root.exists() else []:
        if path.is_file():
            text = file_text(path)
            hits = [secret for secret in secrets if secret in text]
            if hits:
                found[str(path.relative_to(root))] = hits
    return found


def outbox_deliver() -> None:
    """What the workers would do: send every queued email (locmem backend)."""
    ids = list(OutgoingEmail.objects.filter(status=EmailStatus.QUEUED).values_list("pk", flat=True))
    if ids:
        outbox_send(ids=ids)


@pytest.fixture
def mailbox(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


# --- Erasure ----------------------------------------------------------------------------------


@pytest.fixture
def erased_world(world, mailbox):
    """The signer's data everywhere it goes: pledges, a released letter, emails, an organizer's export."""
    national = world.users["national"]
    outbox_deliver()
    export = export_request(
        campaign=world.beta,
        scope=organizer_scope(user=national, campaign=world.beta),
        user=national,
        file_format="csv",
    )
    export_build(export_id=export.pk)
    assert tables_containing(SIGNER.secrets), "the search must first find the signer"
    letter = world.pledges["signer_released"].letter
    assert letter_path(file_name=letter.file_name).is_file()
    return world


@pytest.mark.postgres  # ILIKE over every column
def test_account_erasure_leaves_the_signer_in_no_table(erased_world, figures):
    signer = erased_world.users["signer"]
    before = tables_containing(SIGNER.secrets)

    account_erase(user=signer)
    outbox_deliver()  # the "data deleted" email: sent, then its address and text blanked

    after = tables_containing(SIGNER.secrets)
    figures(
        "erasure_tables",
        {"tables_with_signer_data_before": len(before), "tables_with_signer_data_after": len(after)},
    )
    assert after == {}
    assert [message.to for message in mail.outbox][-1] == [SIGNER.email]
    assert Pledge.objects.filter(last_name=SIGNER.last_name).count() == 0


@pytest.mark.postgres
def test_account_erasure_deletes_the_signers_letter_file(erased_world, django_capture_on_commit_callbacks):
    letter = erased_world.pledges["signer_released"].letter
    path = letter_path(file_name=letter.file_name)

    with django_capture_on_commit_callbacks(execute=True):
        account_erase(user=erased_world.users["signer"])

    assert not Letter.objects.filter(pk=letter.pk).exists()
    assert not path.exists()


@pytest.mark.postgres
def test_account_erasure_leaves_the_signer_in_no_file(
    erased_world, figures, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        account_erase(user=erased_world.users["signer"])
    leftovers = files_containing(SIGNER.secrets)
    figures("erasure_files", {"files_still_naming_the_signer": len(leftovers), "files": " ".join(leftovers)})
    assert leftovers == {}


# --- Purge after the campaign ---------------------------------------------------------------------


def _close_long_ago(campaign) -> None:
    """Closed longer ago than its retention period: due for the purge."""
    campaign.status = CampaignStatus.CLOSED
    campaign.closes_at = timezone.now() - timedelta(days=campaign.purge_after_days + 1)
    campaign.opens_at = campaign.closes_at - timedelta(days=90)
    campaign.save()


@pytest.mark.postgres  # ILIKE over every column
def test_the_post_campaign_purge_leaves_the_pledges_personal_data_in_no_table(world, mailbox, figures):
    campaign = world.beta
    outbox_deliver()
    _close_long_ago(campaign)

    assert campaign_purge(campaign=campaign)

    beta = Pledge.objects.filter(campaign=campaign)
    assert set(beta.values_list("rpps", "last_name", "first_name", "user")) == {("", "", "", None)}
    assert all(
        status in (PledgeStatus.RELEASED, PledgeStatus.EXPIRED)
        for status in beta.values_list("status", flat=True)
    )
    leftovers = {
        table: hits
        for table, hits in tables_containing((SIGNER.last_name, SIGNER.rpps)).items()
        if table != "pledges_pledge"
    }
    figures("purge_tables", {"other_tables_with_pledge_data": len(leftovers)})
    # The signer's active pledge in the other campaign (and its RPPS claim) legitimately stay.
    assert set(leftovers) <= {"pledges_rppsclaim"}, leftovers
    assert Pledge.objects.filter(rpps=SIGNER.rpps).exclude(campaign=campaign).count() == 1


def test_the_post_campaign_purge_deletes_the_released_letters(world, django_capture_on_commit_callbacks):
    campaign = world.beta
    _close_long_ago(campaign)
    paths = [
        letter_path(file_name=letter.file_name)
        for letter in Letter.objects.filter(release__campaign=campaign)
    ]
    assert paths and all(path.is_file() for path in paths)

    with django_capture_on_commit_callbacks(execute=True):
        campaign_purge(campaign=campaign)

    assert not Letter.objects.filter(release__campaign=campaign).exists()
    assert not any(path.exists() for path in paths)


# --- Logs -------------------------------------------------------------------------------------


def test_the_masking_filter_hides_emails_and_rpps_numbers_in_messages_arguments_and_tracebacks():
    record = logging.LogRecord(
        "x",
        logging.ERROR,
        __file__,
        1,
        "refused %s (RPPS %s) at %s",
        (SIGNER.email, "104 815 162 38", 42),
        None,
    )
    try:
        raise ValueError(f"Key (email)=({SIGNER.email}) already exists; rpps {SIGNER.rpps}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()

    assert PersonalDataFilter().filter(record) is True
    assert record.getMessage() == "refused <email> (RPPS <rpps>) at 42"
    assert SIGNER.email not in record.exc_text and SIGNER.rpps not in record.exc_text
    assert "<email>" in record.exc_text and "<rpps>" in record.exc_text
    # Longer digit runs (ids, timestamps in ms) are not RPPS numbers.
    assert personal_data_mask("took 1732300000123 ms, id 10000000009") == "took 1732300000123 ms, id <rpps>"


def test_every_configured_log_handler_masks_personal_data():
    handlers = settings.LOGGING["handlers"]
    assert handlers and all("personal_data" in handler.get("filters", []) for handler in handlers.values())
    assert settings.LOGGING["filters"]["personal_data"]["()"] == "deconv.logging.PersonalDataFilter"
    root = logging.getLogger()
    configured = [
        handler
        for handler in root.handlers
        if any(isinstance(f, PersonalDataFilter) for f in handler.filters)
    ]
    assert configured, "the root logger's console handler carries the filter"


_LINK = re.compile(r"https?://[^\s]+")


@pytest.fixture
def run_after_commit(django_capture_on_commit_callbacks, monkeypatch):
    """Each request's after-commit work runs at its end; the outbox sends in this process."""
    monkeypatch.setattr(
        tasks.outbox_send,
        "apply_async",
        lambda kwargs=None, **options: tasks.outbox_send.apply(kwargs=kwargs),
    )

    def run(call, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return call(*args, **kwargs)

    return run


def test_a_whole_signing_journey_logs_no_email_rpps_or_name(
    db, mailbox, private_cache, run_after_commit, caplog, figures
):
    from django.core.management import call_command

    from tests.pledges.factories import CampaignFactory, LetterVersionFactory

    call_command("load_territories", stdout=io.StringIO())
    campaign = CampaignFactory()
    LetterVersionFactory(campaign=campaign)
    client = Client(raise_request_exception=False)
    password = "Un-mot-de-passe-solide-42"
    pledge_data = form_data(rpps=SIGNER.rpps, last_name=SIGNER.last_name, first_name=SIGNER.first_name)

    with caplog.at_level(logging.DEBUG):
        run_after_commit(
            client.post,
            "/accounts/signup/",
            {"email": SIGNER.email, "password1": password, "password2": password},
        )
        confirm = _LINK.search(mail.outbox[-1].body).group(0)
        confirm_path = "/" + confirm.split("/", 3)[3]
        run_after_commit(client.post, confirm_path)
        run_after_commit(client.post, "/accounts/logout/")
        # A mistyped password, a failed login: the address goes through the login machinery.
        run_after_commit(client.post, "/accounts/login/", {"login": SIGNER.email, "password": "faux"})
        run_after_commit(client.post, "/accounts/login/", {"login": SIGNER.email, "password": password})
        sign = f"/campaigns/{campaign.slug}/sign/"
        run_after_commit(client.post, sign, {**pledge_data, "rpps": "12345678901"})  # invalid
        run_after_commit(client.post, sign, pledge_data)
        run_after_commit(client.post, sign, pledge_data)  # twice: the duplicate path
        run_after_commit(
            client.post,
            f"/campaigns/{campaign.slug}/my-pledge/edit/",
            {**pledge_data, "city": "Ambérieu-en-Bugey"},
        )
        client.get(f"/campaigns/{campaign.slug}/my-pledge/letter.pdf")
        client.get("/me/data.json")
        run_after_commit(client.post, f"/campaigns/{campaign.slug}/my-pledge/withdraw/")
        run_after_commit(client.post, "/accounts/password/reset/", {"email": SIGNER.email})
        # Refused and missing pages are logged (django.request): with their paths only.
        client.get(f"/organizer/{campaign.slug}/")
        client.get("/campaigns/no-such-campaign/")
        run_after_commit(client.post, "/me/delete/", {"confirm": "on"})
        outbox_deliver()

    secrets = (*SIGNER.secrets, SIGNER.first_name)
    texts = [record.getMessage() + (record.exc_text or "") for record in caplog.records]
    leaking = [text for text in texts if any(secret in text for secret in secrets)]
    figures("journey_logs", {"log_records": len(texts), "records_with_personal_data": len(leaking)})
    assert len(mail.outbox) >= 4
    assert Pledge.objects.filter(status=PledgeStatus.WITHDRAWN).count() == 1
    assert not leaking, "\n".join(leaking[:10])


def test_withdrawing_a_released_pledge_blanks_every_personal_field_of_its_row(world):
    from pledges.services import pledge_withdraw

    pledge = world.pledges["signer_released"]
    pledge_withdraw(pledge=pledge)
    pledge.refresh_from_db()
    assert (pledge.rpps, pledge.last_name, pledge.first_name, pledge.signed_ip) == ("", "", "", None)
    assert Release.objects.filter(pk=pledge.release_id).exists()
