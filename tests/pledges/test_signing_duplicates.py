"""A second pledge with a known RPPS or account: same page as a success, nothing written, owner told."""

import threading

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse

from pledges.enums import PledgeStatus
from pledges.models import Pledge, PledgeEvent, RppsClaim
from pledges.services import pledge_create, pledge_withdraw
from tests.pledges import signing_support
from tests.pledges.factories import CampaignFactory, LetterVersionFactory, UserFactory
from tests.pledges.signing_support import (
    RPPS_A,
    RPPS_B,
    form_data,
    pledge_for,
    service_data,
    verified_user,
    without_csrf,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("private_cache")]

# Shared fixtures, bound here so that pytest finds them in this module.
territories = signing_support.territories
private_cache = signing_support.private_cache
eager_celery = signing_support.eager_celery


def _sign_url(campaign) -> str:
    return reverse("pledges:pledge_create", kwargs={"slug": campaign.slug})


def _client_for(client_class, user):
    client = client_class(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def _rows() -> tuple[int, int, int]:
    return Pledge.objects.count(), RppsClaim.objects.count(), PledgeEvent.objects.count()


def test_same_rpps_from_another_account_gets_the_success_page_and_the_owner_an_email(
    client, campaign, territories, eager_celery, django_capture_on_commit_callbacks
):
    owner = verified_user("owner@example.org")
    newcomer_one = verified_user("first-try@example.org")
    newcomer_two = verified_user("second-try@example.org")

    # A first signature with an unknown RPPS, by a fresh account: the success page.
    with django_capture_on_commit_callbacks(execute=True):
        success = _client_for(type(client), owner).post(_sign_url(campaign), form_data(rpps=RPPS_A))
    assert Pledge.objects.get().user == owner
    rows_before = _rows()
    mail.outbox.clear()

    # Another account with the same RPPS, other details: the page is the same, byte for byte.
    with django_capture_on_commit_callbacks(execute=True):
        duplicate = _client_for(type(client), newcomer_one).post(
            _sign_url(campaign),
            form_data(
                rpps="123 456 789 03",
                last_name="Usurpateur",
                department="59",
                postal_code="59000",
                caisse="cpam-59-hainaut",
            ),
        )

    assert duplicate.status_code == success.status_code == 200
    assert without_csrf(duplicate.content) == without_csrf(success.content)
    assert _rows() == rows_before
    assert not RppsClaim.objects.filter(user=newcomer_one).exists()
    assert [message.to for message in mail.outbox] == [["owner@example.org"]]
    assert campaign.title in mail.outbox[0].subject
    # In the site's language (French), whatever the submitter's: the owner's is unknown.
    assert "rien n'a été modifié" in mail.outbox[0].body

    # A third account, valid unknown RPPS: still the same page (a real success this time).
    with django_capture_on_commit_callbacks(execute=True):
        other_success = _client_for(type(client), newcomer_two).post(
            _sign_url(campaign), form_data(rpps=RPPS_B)
        )
    assert without_csrf(other_success.content) == without_csrf(success.content)


def test_same_account_signing_twice_gets_the_same_page_and_one_email_to_itself(
    client, campaign, territories, eager_celery, django_capture_on_commit_callbacks
):
    signer = verified_user("twice@example.org")
    signer_client = _client_for(type(client), signer)

    with django_capture_on_commit_callbacks(execute=True):
        first = signer_client.post(_sign_url(campaign), form_data())
    rows_before = _rows()
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        second = signer_client.post(_sign_url(campaign), form_data(rpps=RPPS_B, last_name="Autre"))

    assert without_csrf(second.content) == without_csrf(first.content)
    assert _rows() == rows_before
    pledge = Pledge.objects.get()
    assert (pledge.rpps, pledge.last_name) == (RPPS_A, "Martin")
    assert [message.to for message in mail.outbox] == [["twice@example.org"]]
    assert "tentative" in mail.outbox[0].subject.lower()


def test_repeated_attempts_send_the_owner_one_email_per_hour(
    campaign, territories, eager_celery, django_capture_on_commit_callbacks
):
    owner = verified_user("owner@example.org")
    pledge_for(campaign=campaign, user=owner)
    mail.outbox.clear()

    for attempt in range(3):
        intruder = verified_user(f"intruder{attempt}@example.org")
        with django_capture_on_commit_callbacks(execute=True):
            result = pledge_create(
                campaign=campaign, user=intruder, data=service_data(), ip=None, user_agent=""
            )
        assert result.created is False and result.pledge is None

    assert [message.to for message in mail.outbox] == [["owner@example.org"]]


def test_account_already_linked_to_another_rpps_is_told_so(campaign, territories):
    signer = verified_user()
    pledge_for(campaign=campaign, user=signer, rpps=RPPS_A)
    other = CampaignFactory()
    LetterVersionFactory(campaign=other)

    with pytest.raises(ValidationError) as error:
        pledge_create(campaign=other, user=signer, data=service_data(rpps=RPPS_B), ip=None, user_agent="")

    [message] = error.value.message_dict["rpps"]
    assert message.startswith("Your account is already linked to another RPPS number")
    assert Pledge.objects.filter(campaign=other).count() == 0


def test_same_rpps_in_another_campaign_by_its_owner_is_accepted(campaign, territories):
    signer = verified_user()
    pledge_for(campaign=campaign, user=signer)
    other = CampaignFactory()
    LetterVersionFactory(campaign=other)

    pledge = pledge_for(campaign=other, user=signer)

    assert pledge.rpps == RPPS_A
    assert RppsClaim.objects.get().user == signer


def test_signing_again_after_withdrawal_creates_a_new_pledge(campaign, territories):
    signer = verified_user()
    first = pledge_for(campaign=campaign, user=signer)
    pledge_withdraw(pledge=first)

    second = pledge_for(campaign=campaign, user=signer)

    assert second.pk != first.pk
    assert sorted(Pledge.objects.values_list("status", flat=True)) == [
        PledgeStatus.ACTIVE,
        PledgeStatus.WITHDRAWN,
    ]


# --- Races, on PostgreSQL ---------------------------------------------------------------------


def _race(campaign, users, *, rpps_list) -> list:
    """Submit at the same moment from one thread per (user, rpps); return the results."""
    barrier = threading.Barrier(len(users))
    results, errors = [], []

    def submit(user, rpps):
        try:
            barrier.wait(timeout=10)
            results.append(
                pledge_create(
                    campaign=campaign, user=user, data=service_data(rpps=rpps), ip=None, user_agent="race"
                )
            )
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=submit, args=(user, rpps))
        for user, rpps in zip(users, rpps_list, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_of_one_rpps_by_many_accounts_create_one_pledge(
    campaign, territories, eager_celery
):
    users = [UserFactory() for _ in range(8)]

    results = _race(campaign, users, rpps_list=[RPPS_A] * len(users))

    assert sorted(result.created for result in results) == [False] * 7 + [True]
    assert Pledge.objects.count() == 1
    assert RppsClaim.objects.count() == 1
    assert RppsClaim.objects.get().user == Pledge.objects.get().user
    assert PledgeEvent.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_double_submission_by_one_account_creates_one_pledge(campaign, territories, eager_celery):
    user = UserFactory()

    results = _race(campaign, [user] * 6, rpps_list=[RPPS_A] * 6)

    assert sorted(result.created for result in results) == [False] * 5 + [True]
    assert Pledge.objects.filter(user=user).count() == 1
    assert PledgeEvent.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_unique_constraints_settle_the_race_when_every_precheck_passes(
    campaign, territories, eager_celery, monkeypatch
):
    """Every thread's pre-check sees no conflict (as when all read before any commits): the
    database constraints alone must leave one pledge, and the losers get the neutral answer."""
    from pledges import services

    real_check = services._pledge_conflict_owner
    seen = threading.local()
    integrity_paths = []

    def check_passing_first_time(**kwargs):
        if not getattr(seen, "done", False):
            seen.done = True
            return services._Holders(conflict=False, owner_id=None, claimed=False)
        integrity_paths.append(True)  # second call: the IntegrityError handler
        return real_check(**kwargs)

    monkeypatch.setattr(services, "_pledge_conflict_owner", check_passing_first_time)
    users = [UserFactory() for _ in range(6)]

    results = _race(campaign, users, rpps_list=[RPPS_A] * len(users))

    assert sorted(result.created for result in results) == [False] * 5 + [True]
    assert len(integrity_paths) == 5
    assert Pledge.objects.count() == RppsClaim.objects.count() == PledgeEvent.objects.count() == 1
