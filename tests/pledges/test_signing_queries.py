"""What one signature costs the database, and the departments and caisses read from memory."""

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from deconv.models import OutgoingEmail
from pledges.forms import PledgeForm
from pledges.models import ConfirmationRound, Crossing, Pledge
from territories.cache import reference_data
from territories.models import Caisse, Department
from tests.pledges import signing_support
from tests.pledges.signing_support import RPPS_B, form_data, verified_user

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_cache")]

territories = signing_support.territories
private_cache = signing_support.private_cache

# A successful POST on PostgreSQL, in the order they run:
#   session, user (authentication); campaign, its current letter version (read once per request);
#   the departments' and caisses' fingerprint (territories.cache);
#   [savepoint: the test's transaction stands for BEGIN] holders of the account and RPPS (one UNION),
#   RPPS claim, pledge, +1 event; receipt: stop check, savepoint, insert, release;
#   round invitation: shared advisory lock, open round [release: stands for COMMIT];
#   the page's navigation (organizer role).
SIGNING_POST_QUERIES = 18


def _url(campaign) -> str:
    return reverse("pledges:pledge_create", kwargs={"slug": campaign.slug})


def _expected() -> int:
    # SQLite takes no advisory lock: it runs one write transaction at a time.
    return SIGNING_POST_QUERIES if connection.vendor == "postgresql" else SIGNING_POST_QUERIES - 1


def test_a_successful_signature_costs_a_fixed_number_of_queries(
    client, campaign, territories, django_assert_num_queries
):
    signer = verified_user("signer@example.org")
    client.force_login(signer)
    # The form page loads the departments and caisses into this process.
    assert client.get(_url(campaign)).status_code == 200

    with django_assert_num_queries(_expected()):
        response = client.post(_url(campaign), form_data())

    assert response.status_code == 200
    assert b"notice--success" in response.content
    pledge = Pledge.objects.get(user=signer)
    assert (pledge.department.code, pledge.caisse.department.code) == ("01", "01")
    # The receipt is stored in the same transaction, unrendered (the worker renders it).
    receipt = OutgoingEmail.objects.get(dedupe_key=f"pledge-received:{pledge.pk}")
    assert (receipt.recipient, receipt.body_text) == ("signer@example.org", "")


def test_signing_into_a_territory_in_its_round_adds_only_the_invitation(
    client, campaign, territories, django_assert_num_queries
):
    """The round is looked up under a shared lock (signers never wait for each other) and the
    invitation is one more unrendered row: stop check, savepoint, insert, release."""
    now = timezone.now()
    crossing = Crossing.objects.create(
        campaign=campaign,
        level="department",
        code="01",
        round_number=1,
        crossed_at=now,
        count_at_crossing=5,
        target_at_crossing=5,
        national_count_at_crossing=5,
    )
    round = ConfirmationRound.objects.create(
        crossing=crossing, opened_at=now, ends_at=now + timedelta(days=14)
    )
    signer = verified_user("signer@example.org")
    client.force_login(signer)
    assert client.get(_url(campaign)).status_code == 200

    with django_assert_num_queries(_expected() + 4):
        response = client.post(_url(campaign), form_data())

    assert b"notice--success" in response.content
    pledge = Pledge.objects.get(user=signer)
    invitation = OutgoingEmail.objects.get(kind="round_opened")
    assert (invitation.dedupe_key, invitation.recipient) == (
        f"round-opened:{round.pk}:{pledge.pk}",
        signer.email,
    )


def test_the_form_reads_departments_and_caisses_once_per_process(
    campaign, territories, django_assert_num_queries
):
    reference_data()

    with django_assert_num_queries(1):  # the fingerprint only
        form = PledgeForm(form_data(), campaign=campaign, letter_version=None)
        assert form.is_valid(), form.errors
        choices = list(form.fields["department"].choices)
        caisse_choices = form.fields["caisse"].widget.choices

    assert form.cleaned_data["department"].code == "01"
    assert form.cleaned_data["caisse"] == Caisse.objects.get(department__code="01")
    assert len(choices) == Department.objects.count() + 1
    # Nord (59) offers a choice of caisses; Ain (01), with one, does not.
    groups = [label for label, _options in caisse_choices[1:]]
    assert str(Department.objects.get(code="59")) in groups
    assert str(Department.objects.get(code="01")) not in groups


def test_a_caisse_renamed_in_this_process_is_seen_at_once(campaign, territories):
    reference_data()
    caisse = Caisse.objects.filter(department__code="59").order_by("name").first()
    caisse.name = "CPAM renommée par un organisateur"
    caisse.save()

    form = PledgeForm(campaign=campaign, letter_version=None)

    options = dict(dict(form.fields["caisse"].widget.choices[1:])[str(caisse.department)])
    assert options[caisse.code] == "CPAM renommée par un organisateur"


def test_caisses_added_without_signals_are_seen_at_once(campaign, territories):
    """A bulk load (load_territories) sends no signal: the fingerprint changes all the same."""
    reference_data()
    ain = Department.objects.get(code="01")
    Caisse.objects.bulk_create(
        [Caisse(department=ain, code="cpam-ain-bis", kind="cpam", name="CPAM de l'Ain bis")]
    )

    form = PledgeForm(form_data(), campaign=campaign, letter_version=None)

    # Ain now has two caisses: the signer must choose one.
    assert not form.is_valid()
    assert form.has_error("caisse", "caisse_required")


def test_a_narrowed_department_queryset_still_asks_the_database(campaign, territories):
    """moderation.PaperPledgeForm narrows the departments to an organizer's scope."""
    form = PledgeForm(form_data(), campaign=campaign, letter_version=None)
    field = form.fields["department"]
    field.queryset = field.queryset.filter(code__in=["03"])

    assert not form.is_valid()
    assert form.has_error("department", "invalid_choice")
    assert [str(value) for value, _label in field.choices if value] == ["03"]


def test_an_unknown_department_code_is_refused_with_the_usual_message(campaign, territories):
    form = PledgeForm(form_data(department="999", rpps=RPPS_B), campaign=campaign, letter_version=None)

    assert not form.is_valid()
    assert form.errors["department"] == [
        str(PledgeForm.base_fields["department"].error_messages["invalid_choice"])
    ]
