"""Crossings exactly once, confirmation rounds, answers, closing, approval and release."""

import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from deconv.models import AuditEntry, OutgoingEmail
from deconv.outbox import outbox_send
from pledges import notifications, rounds, services
from pledges.conditions import territory_explain
from pledges.counting import counts_update
from pledges.enums import PledgeEventKind, PledgeStatus, RoundOutcome, TerritoryStatus
from pledges.models import (
    ConfirmationRound,
    Crossing,
    Pledge,
    PledgeEvent,
    Release,
    RoundResponse,
    TerritoryState,
)
from pledges.rounds import (
    CROSSED,
    LOST_RACE,
    SKIPPED,
    conditions_evaluate,
    round_close,
    round_link_load,
    round_link_token,
    round_respond,
    rounds_close_due,
    rounds_remind,
    territory_cross,
    territory_release,
)
from territories.models import Department
from tests.pledges import conditions_support
from tests.pledges.conditions_support import campaign_with_letter, count, dedupe_keys, emails, rule, sign
from tests.pledges.factories import UserFactory

geo = conditions_support.geo

CONFIRMED, DECLINED = "confirmed", "declined"


def state_of(campaign, code="01", level="department") -> TerritoryState:
    return TerritoryState.objects.get(campaign=campaign, level=level, code=code)


def crossed(campaign, code="01", n=5, **campaign_fields):
    """A department with `n` signers (rule: 5) that has just crossed; returns (round, pledges)."""
    rule(campaign, "department", count=5)
    pledges = sign(campaign, Department.objects.get(code=code), n)
    count()
    assert conditions_evaluate() == 1
    return ConfirmationRound.objects.get(crossing__campaign=campaign, crossing__code=code), pledges


def answer(round, pledges, value=CONFIRMED):
    for pledge in pledges:
        round_respond(round=round, pledge=pledge, answer=value)


def after_end(round):
    return time_machine.travel(round.ends_at + timedelta(minutes=1), tick=False)


def sent_as_the_worker_does(rows: list[OutgoingEmail]) -> list[OutgoingEmail]:
    """Send outbox rows (the test mail backend keeps them) and read them back, rendered."""
    assert outbox_send(ids=[row.pk for row in rows]).sent == len(rows)
    return [OutgoingEmail.objects.get(pk=row.pk) for row in rows]


# --- Crossing -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_crossing_opens_a_round_and_asks_every_active_signer_who_can_be_emailed(geo):
    campaign = campaign_with_letter(round_days=14)
    rule(campaign, "department", count=5)
    pledges = sign(campaign, geo["01"], 6)
    stopped = pledges[5]
    stopped.emails_stopped_at = timezone.now()
    stopped.save()
    count()

    assert conditions_evaluate() == 1

    state = state_of(campaign)
    round = ConfirmationRound.objects.get()
    crossing = round.crossing
    assert (state.status, state.round_number) == (TerritoryStatus.CONFIRMING, 1)
    assert (
        crossing.code,
        crossing.round_number,
        crossing.count_at_crossing,
        crossing.target_at_crossing,
    ) == (
        "01",
        1,
        6,
        5,
    )
    assert round.ends_at - round.opened_at == timedelta(days=14)
    assert round.outcome == RoundOutcome.OPEN
    assert dedupe_keys("round_opened") == {f"round-opened:{round.pk}:{pledge.pk}" for pledge in pledges[:5]}
    [queued] = [email for email in emails("round_opened") if email.recipient == pledges[0].user.email]
    # Queued unrendered: the worker renders it when it sends it.
    assert (queued.subject, queued.body_text) == ("", "")
    [first] = sent_as_the_worker_does([queued])
    # The email's link names this round and this signer (its token is dated: compared by content).
    prefix = f"/campaigns/{campaign.slug}/round/"
    token = first.body_text.split(prefix, 1)[1].split("/", 1)[0]
    assert round_link_load(token=token) == (round, pledges[0])
    # A second evaluation changes nothing: the territory is confirming.
    assert conditions_evaluate(force=True) == 0
    assert Crossing.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_evaluations_and_pledges_cross_each_territory_exactly_once(geo):
    campaign = campaign_with_letter()
    rule(campaign, "department", count=5)
    sign(campaign, geo["01"], 5)
    sign(campaign, geo["03"], 5)
    count()
    barrier = threading.Barrier(10, timeout=30)
    results, errors = [], []

    def evaluate():
        try:
            barrier.wait()
            results.append(conditions_evaluate(force=True))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    def pledge_and_count():
        try:
            barrier.wait()
            sign(campaign, geo["01"], 1)
            sign(campaign, geo["75"], 5)
            counts_result = counts_update()
            if not counts_result.skipped:
                results.append(conditions_evaluate(force=True))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(8)]
    threads += [threading.Thread(target=pledge_and_count) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    count()
    results.append(conditions_evaluate(force=True))

    assert errors == []
    # Ain and Allier from the start, Paris once the concurrent signers are counted: once each.
    assert sorted(Crossing.objects.values_list("code", "round_number")) == [("01", 1), ("03", 1), ("75", 1)]
    assert sum(results) == 3
    assert ConfirmationRound.objects.count() == 3
    assert list(TerritoryState.objects.order_by("code").values_list("code", "status", "round_number")) == [
        ("01", "confirming", 1),
        ("03", "confirming", 1),
        ("75", "confirming", 1),
    ]
    # One invitation per signer and round (dedupe keys are unique), and every signature the
    # crossing counted was invited. (sign() bypasses pledge_create, so a signer added after the
    # opening gets no invitation here; test_a_physician_who_signs_during_the_round covers that.)
    invitations = list(emails("round_opened"))
    assert len(invitations) == len({email.dedupe_key for email in invitations})
    for round in ConfirmationRound.objects.select_related("crossing"):
        invited = [email for email in invitations if email.dedupe_key.startswith(f"round-opened:{round.pk}:")]
        assert len(invited) >= round.crossing.count_at_crossing
    assert len(invitations) <= Pledge.objects.count()


def _two_crossers(*, campaign, use_lock: bool, hold_seconds: float = 0.0):
    """Two threads run territory_cross for Ain on the same evaluation; returns (results, checks passed)."""
    explanation = territory_explain(campaign=campaign, level="department", code="01")
    barrier = threading.Barrier(2, timeout=10)
    passed, results, errors = [], [], []

    def after_check():
        passed.append(threading.get_ident())
        if use_lock:
            time.sleep(hold_seconds)  # hold the row lock: the other thread waits on it
        else:
            barrier.wait()  # both have checked before either inserts: the race, made certain

    def cross():
        try:
            start.wait()
            results.append(
                territory_cross(
                    campaign=campaign, explanation=explanation, use_lock=use_lock, after_check=after_check
                )
            )
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    start = threading.Barrier(2, timeout=10)
    threads = [threading.Thread(target=cross) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return sorted(results), passed


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_with_the_row_lock_the_second_crosser_sees_the_territory_confirming_and_skips(geo):
    campaign = campaign_with_letter()
    rule(campaign, "department", count=5)
    sign(campaign, geo["01"], 5)
    count()
    TerritoryState.objects.create(campaign=campaign, level="department", code="01")

    results, passed = _two_crossers(campaign=campaign, use_lock=True, hold_seconds=0.5)

    assert results == sorted([CROSSED, SKIPPED])
    assert len(passed) == 1  # only one thread ever got past the check
    assert Crossing.objects.count() == 1
    assert len(emails("round_opened")) == 5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_control_without_the_lock_both_crossers_pass_the_check_and_only_the_constraint_stops_one(geo):
    """The race the lock prevents, shown happening.

    Without the row lock and the re-check, both evaluations read the territory as COLLECTING and
    both go on to insert Crossing(round 1): `passed` has two entries. Only the unique constraint
    (campaign, level, code, round_number) turns the second insert into LOST_RACE. Without that
    constraint too, the second thread would have opened a second round and emailed every signer
    a second time.
    """
    campaign = campaign_with_letter()
    rule(campaign, "department", count=5)
    sign(campaign, geo["01"], 5)
    count()
    # Committed before the race: neither thread inserts the state row (which would serialise them).
    TerritoryState.objects.create(campaign=campaign, level="department", code="01")

    results, passed = _two_crossers(campaign=campaign, use_lock=False)

    assert len(passed) == 2
    assert results == sorted([CROSSED, LOST_RACE])
    assert Crossing.objects.count() == 1
    assert ConfirmationRound.objects.count() == 1
    assert len(emails("round_opened")) == 5


# --- A round's life -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_successful_round_releases_the_confirmed_signers_once(geo):
    campaign = campaign_with_letter()
    round, pledges = crossed(campaign, n=7)
    answer(round, pledges[:5])
    answer(round, pledges[5:6], DECLINED)

    assert rounds_close_due() == 0  # not over yet
    with after_end(round):
        assert rounds_close_due() == 1
        assert rounds_close_due() == 0

    round.refresh_from_db()
    assert (round.outcome, round.confirmed_count) == (RoundOutcome.SUCCEEDED, 5)
    release = Release.objects.get()
    assert (release.campaign, release.level, release.code, release.round, release.pledge_count) == (
        campaign,
        "department",
        "01",
        round,
        5,
    )
    released = set(
        Pledge.objects.filter(status=PledgeStatus.RELEASED, release=release).values_list("pk", flat=True)
    )
    assert released == {pledge.pk for pledge in pledges[:5]}
    assert Pledge.objects.filter(status=PledgeStatus.ACTIVE).count() == 2
    assert PledgeEvent.objects.filter(kind=PledgeEventKind.RELEASED, delta=0).count() == 5
    assert PledgeEvent.objects.filter(kind=PledgeEventKind.CONFIRMED, delta=0).count() == 5
    state = state_of(campaign)
    assert state.status == TerritoryStatus.RELEASED
    assert state.released_at == release.released_at
    # Everyone asked learns the result, each with what it means for them.
    results = {email.recipient: email for email in emails("round_result")}
    assert set(results) == {pledge.user.email for pledge in pledges}
    # Emails go out in French, the product's first language.
    assert "votre lettre fait partie de la" in results[pledges[0].user.email].body_text
    assert "rien n'est envoyé pour vous" in results[pledges[6].user.email].body_text


@pytest.mark.django_db
def test_a_failed_round_returns_to_collecting_and_a_later_crossing_opens_a_second_round_that_succeeds(geo):
    campaign = campaign_with_letter()
    first, pledges = crossed(campaign, n=5)
    answer(first, pledges[:3])

    with after_end(first):
        assert round_close(round_id=first.pk) == "failed"

    first.refresh_from_db()
    assert (first.outcome, first.confirmed_count) == (RoundOutcome.FAILED, 3)
    assert state_of(campaign).status == TerritoryStatus.COLLECTING
    assert not Release.objects.exists()
    assert dedupe_keys("round_result") == {f"round-result:{first.pk}:{pledge.pk}" for pledge in pledges}
    assert "confirmations insuffisantes" in emails("round_result")[0].subject
    # The same signatures do not cross again.
    assert conditions_evaluate(force=True) == 0

    newcomer = sign(campaign, geo["01"], 1)[0]
    count()
    assert conditions_evaluate() == 1

    second = ConfirmationRound.objects.get(crossing__round_number=2)
    assert (second.crossing.count_at_crossing, state_of(campaign).round_number) == (6, 2)
    assert {f"round-opened:{second.pk}:{pledge.pk}" for pledge in [*pledges, newcomer]} <= dedupe_keys(
        "round_opened"
    )
    answer(second, [*pledges[:4], newcomer])
    with after_end(second):
        assert rounds_close_due() == 1

    assert Release.objects.get().round == second
    assert Pledge.objects.filter(status=PledgeStatus.RELEASED).count() == 5


@pytest.mark.django_db
def test_early_release_closes_the_round_as_soon_as_the_confirmations_meet_the_condition(geo):
    campaign = campaign_with_letter(early_release=True)
    round, pledges = crossed(campaign, n=6)

    answer(round, pledges[:4])
    round.refresh_from_db()
    assert round.outcome == RoundOutcome.OPEN

    answer(round, pledges[4:5])

    round.refresh_from_db()
    assert (round.outcome, round.confirmed_count) == (RoundOutcome.SUCCEEDED, 5)
    assert timezone.now() < round.ends_at
    assert state_of(campaign).status == TerritoryStatus.RELEASED
    assert Release.objects.get().pledge_count == 5
    with pytest.raises(ValidationError) as refused:
        round_respond(round=round, pledge=pledges[5], answer=CONFIRMED)
    assert refused.value.code == "round_closed"


@pytest.mark.django_db
def test_an_organizer_approves_a_successful_round_in_the_admin_and_the_approval_is_audited(client, geo):
    campaign = campaign_with_letter(approval_required=True)
    round, pledges = crossed(campaign, n=5)
    answer(round, pledges)
    with after_end(round):
        assert rounds_close_due() == 1
    assert state_of(campaign).status == TerritoryStatus.AWAITING_APPROVAL
    assert not Release.objects.exists()
    with pytest.raises(ValidationError):
        territory_release(round=round)  # not without an approver
    organizer = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(organizer)

    response = client.post(
        reverse("admin:pledges_confirmationround_changelist"),
        {"action": "approve_release", "_selected_action": [str(round.pk)]},
    )

    assert response.status_code == 302
    release = Release.objects.get()
    round.refresh_from_db()
    assert (release.approved_by, release.pledge_count, round.approved_by) == (organizer, 5, organizer)
    assert round.approved_at == release.released_at
    assert state_of(campaign).status == TerritoryStatus.RELEASED
    entry = AuditEntry.objects.get(action="release.approve")
    assert (entry.actor, entry.campaign_id, entry.territory_code, entry.object_id) == (
        organizer,
        campaign.pk,
        "01",
        str(round.pk),
    )
    assert entry.details["released_pledges"] == 5
    # Approving again does nothing more.
    client.post(
        reverse("admin:pledges_confirmationround_changelist"),
        {"action": "approve_release", "_selected_action": [str(round.pk)]},
    )
    assert Release.objects.count() == 1
    assert AuditEntry.objects.filter(action="release.approve").count() == 1


@pytest.mark.django_db
def test_a_release_is_irreversible_a_withdrawal_afterwards_changes_neither_the_territory_nor_the_release(geo):
    campaign = campaign_with_letter()
    round, pledges = crossed(campaign, n=5)
    answer(round, pledges)
    with after_end(round):
        rounds_close_due()
    release = Release.objects.get()
    before = Release.objects.values().get(pk=release.pk)

    services.pledge_withdraw(pledge=pledges[0])
    count()

    assert Pledge.objects.get(pk=pledges[0].pk).status == PledgeStatus.WITHDRAWN
    assert state_of(campaign).status == TerritoryStatus.RELEASED
    assert Release.objects.values().get(pk=release.pk) == before
    assert conditions_evaluate(force=True) == 0
    assert territory_release(round=round) == release
    assert Crossing.objects.count() == 1


@pytest.mark.django_db
def test_without_confirmation_rounds_a_crossing_releases_every_active_signer_at_once(geo):
    campaign = campaign_with_letter(confirmation_round=False)
    round, _pledges = crossed(campaign, n=6)

    assert (round.outcome, round.confirmed_count) == (RoundOutcome.SUCCEEDED, 6)
    assert Release.objects.get().pledge_count == 6
    assert state_of(campaign).status == TerritoryStatus.RELEASED
    assert emails("round_opened") == []


@pytest.mark.django_db
def test_a_region_round_checks_k_of_n_departments_with_their_confirmed_signatures(geo):
    campaign = campaign_with_letter(release_level="region")
    rule(campaign, "department", count=2)
    rule(campaign, "region", k=2)
    ain = sign(campaign, geo["01"], 2)
    allier = sign(campaign, geo["03"], 2)
    count()
    assert conditions_evaluate() == 1
    round = ConfirmationRound.objects.get()
    assert (round.crossing.level, round.crossing.code) == ("region", "84")
    # Four confirmations in the region, but only Ain's two meet Ain's condition: 1 department of 2.
    answer(round, [*ain, allier[0]])

    with after_end(round):
        assert rounds_close_due() == 1

    round.refresh_from_db()
    assert (round.outcome, round.confirmed_count) == (RoundOutcome.FAILED, 3)


# --- Reminders -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_reminder_goes_once_from_halfway_to_those_who_have_not_answered(geo):
    campaign = campaign_with_letter(round_days=14)
    round, pledges = crossed(campaign, n=6)
    answer(round, pledges[:2])
    stopped = pledges[5]
    Pledge.objects.filter(pk=stopped.pk).update(emails_stopped_at=timezone.now())

    with time_machine.travel(round.opened_at + timedelta(days=6), tick=False):
        assert rounds_remind() == 0
    with time_machine.travel(round.opened_at + timedelta(days=7, minutes=1), tick=False):
        assert rounds_remind() == 1
        assert rounds_remind() == 0
    with time_machine.travel(round.opened_at + timedelta(days=10), tick=False):
        assert rounds_remind() == 0

    round.refresh_from_db()
    assert round.reminder_sent_at == round.opened_at + timedelta(days=7, minutes=1)
    assert dedupe_keys("round_reminder") == {
        f"round-reminder:{round.pk}:{pledge.pk}" for pledge in pledges[2:5]
    }


# --- Answers: the page, the link, the rules -------------------------------------------------------


@pytest.mark.django_db
def test_opening_the_emailed_link_records_nothing_and_only_a_post_answers(client, geo):
    campaign = campaign_with_letter()
    round, pledges = crossed(campaign, n=5)
    url = reverse(
        "pledges:round_confirm_link",
        kwargs={"slug": campaign.slug, "token": round_link_token(round=round, pledge=pledges[0])},
    )

    for method in (client.get, client.head):
        response = method(url, HTTP_ACCEPT_LANGUAGE="en")
        assert response.status_code == 200
    page = client.get(url, HTTP_ACCEPT_LANGUAGE="en")
    html = page.content.decode()
    assert "Je soussigné(e) Élise Martin" in html  # the letter that would be released
    assert 'value="confirmed"' in html and 'value="declined"' in html
    assert page["Cache-Control"] == "private, no-store"
    assert page["Referrer-Policy"] == "no-referrer"
    assert not RoundResponse.objects.exists()
    assert not PledgeEvent.objects.filter(kind=PledgeEventKind.CONFIRMED).exists()

    response = client.post(url, {"answer": CONFIRMED})
    assert response.status_code == 302
    assert response["Location"] == url
    client.post(url, {"answer": CONFIRMED})
    assert RoundResponse.objects.get().answer == CONFIRMED
    assert PledgeEvent.objects.filter(kind=PledgeEventKind.CONFIRMED).count() == 1

    client.post(url, {"answer": DECLINED})
    assert RoundResponse.objects.get().answer == DECLINED
    assert client.post(url, {"answer": "maybe"}).status_code == 409
    assert RoundResponse.objects.get().answer == DECLINED


@pytest.mark.django_db
def test_a_forged_or_expired_link_shows_a_plain_404_page(client, geo):
    campaign = campaign_with_letter(round_days=3)
    round, pledges = crossed(campaign, n=5)
    token = round_link_token(round=round, pledge=pledges[0])

    def status(token: str) -> int:
        return client.get(
            reverse("pledges:round_confirm_link", kwargs={"slug": campaign.slug, "token": token})
        ).status_code

    assert status(token) == 200
    assert status(token[:-2] + "xx") == 404
    assert status("not-a-token") == 404
    with time_machine.travel(timezone.now() + timedelta(days=3, minutes=1), tick=False):
        assert status(token) == 404
    other = campaign_with_letter()
    assert (
        client.get(
            reverse("pledges:round_confirm_link", kwargs={"slug": other.slug, "token": token})
        ).status_code
        == 404
    )
    assert not RoundResponse.objects.exists()


@pytest.mark.django_db
def test_my_pledge_shows_the_round_and_leads_to_the_answer_page(client, geo):
    campaign = campaign_with_letter()
    _round, pledges = crossed(campaign, n=5)
    client.force_login(pledges[0].user)

    mine = client.get(
        reverse("pledges:pledge_mine", kwargs={"slug": campaign.slug}), HTTP_ACCEPT_LANGUAGE="en"
    )
    html = mine.content.decode()
    assert "Ain has reached its threshold: confirm by" in html
    answer_url = reverse("pledges:round_confirm", kwargs={"slug": campaign.slug})
    assert answer_url in html

    assert client.get(answer_url).status_code == 200
    assert not RoundResponse.objects.exists()
    assert client.post(answer_url, {"answer": CONFIRMED}).status_code == 302
    assert RoundResponse.objects.get(pledge=pledges[0]).answer == CONFIRMED
    html = client.get(
        reverse("pledges:pledge_mine", kwargs={"slug": campaign.slug}), HTTP_ACCEPT_LANGUAGE="en"
    )
    assert "You have confirmed your participation" in html.content.decode()


@pytest.mark.django_db
def test_answers_are_refused_after_the_end_for_inactive_pledges_and_outside_the_territory(geo):
    campaign = campaign_with_letter()
    round, pledges = crossed(campaign, n=6)
    outsider = sign(campaign, geo["03"], 1)[0]
    services.pledge_withdraw(pledge=pledges[1])

    def refusal(pledge) -> str:
        with pytest.raises(ValidationError) as refused:
            round_respond(round=round, pledge=pledge, answer=CONFIRMED)
        return refused.value.code

    assert refusal(outsider) == "pledge_not_in_round"
    assert refusal(pledges[1]) == "pledge_not_active"
    with after_end(round):
        assert refusal(pledges[0]) == "round_closed"
    assert not RoundResponse.objects.exists()


@pytest.mark.django_db
def test_a_physician_who_signs_during_the_round_is_asked_too(geo):
    campaign = campaign_with_letter()
    round, _pledges = crossed(campaign, n=5)
    user = UserFactory()

    result = services.pledge_create(
        campaign=campaign,
        user=user,
        data={
            "rpps": "12345678903",
            "last_name": "Durand",
            "first_name": "Paul",
            "specialty": "general_practice",
            "practice_mode": "liberal",
            "sector": "1",
            "department": geo["01"],
            "practice_address": "2 place Carriat",
            "postal_code": "01000",
            "city": "Bourg-en-Bresse",
            "caisse": None,
            "patient_list_size": None,
        },
        ip="192.0.2.1",
        user_agent="pytest",
    )

    assert result.created
    [invitation] = [email for email in emails("round_opened") if email.recipient == user.email]
    assert invitation.dedupe_key == f"round-opened:{round.pk}:{result.pledge.pk}"
    round_respond(round=round, pledge=result.pledge, answer=CONFIRMED)


def _late_signer_data(department) -> dict:
    return {
        "rpps": "12345678903",
        "last_name": "Durand",
        "first_name": "Paul",
        "specialty": "general_practice",
        "practice_mode": "liberal",
        "sector": "1",
        "department": department,
        "practice_address": "2 place Carriat",
        "postal_code": "01000",
        "city": "Bourg-en-Bresse",
        "caisse": None,
        "patient_list_size": None,
    }


def _sign_while_the_round_opens(*, campaign, department, signer_first: bool, monkeypatch) -> Pledge:
    """A signer and the opening of Ain's round in two transactions that overlap; returns the pledge.

    signer_first: the signer has looked for an open round (none yet) and waits up to a second
    before committing while the round opens. Otherwise the opening has started its fan-out and
    waits half a second while the signer comes in.
    """
    user = UserFactory()
    signer_looked, opening_started, opening_done = threading.Event(), threading.Event(), threading.Event()
    results, errors = [], []
    real_invite, real_round_opened = services.round_invite_new_signer, notifications.round_opened
    opener = []

    def invite_then_wait(*, pledge):
        invited = real_invite(pledge=pledge)
        signer_looked.set()
        opening_done.wait(timeout=1)  # with the lock, the opening waits for this commit instead
        return invited

    def round_opened_slowly(*, round, pledges):
        if threading.get_ident() in opener:
            opening_started.set()
            time.sleep(0.5)
        return real_round_opened(round=round, pledges=pledges)

    monkeypatch.setattr(services, "round_invite_new_signer", invite_then_wait)
    monkeypatch.setattr(notifications, "round_opened", round_opened_slowly)

    def sign_late():
        try:
            if not signer_first:
                opening_started.wait(timeout=10)
            results.append(
                services.pledge_create(
                    campaign=campaign,
                    user=user,
                    data=_late_signer_data(department),
                    ip=None,
                    user_agent="race",
                )
            )
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            signer_looked.set()
            connection.close()

    def open_round():
        opener.append(threading.get_ident())
        try:
            if signer_first:
                signer_looked.wait(timeout=10)
            results.append(conditions_evaluate(force=True))
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            opening_done.set()
            opening_started.set()
            connection.close()

    threads = [threading.Thread(target=sign_late), threading.Thread(target=open_round)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    return Pledge.objects.get(user=user)


def _invitations_of(pledge) -> list[str]:
    return [
        email.dedupe_key for email in emails("round_opened") if email.dedupe_key.endswith(f":{pledge.pk}")
    ]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("signer_first", [True, False], ids=["signer-first", "opening-first"])
def test_a_signer_committing_while_the_round_opens_is_invited_exactly_once(geo, monkeypatch, signer_first):
    campaign = campaign_with_letter()
    rule(campaign, "department", count=5)
    sign(campaign, geo["01"], 5)
    count()

    pledge = _sign_while_the_round_opens(
        campaign=campaign, department=geo["01"], signer_first=signer_first, monkeypatch=monkeypatch
    )

    round = ConfirmationRound.objects.get()
    assert _invitations_of(pledge) == [f"round-opened:{round.pk}:{pledge.pk}"]
    assert len(emails("round_opened")) == 6


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_control_without_the_invitation_lock_a_signer_committing_while_the_round_opens_is_never_invited(
    geo, monkeypatch
):
    """The race the lock closes: each transaction reads before the other commits."""
    monkeypatch.setattr(rounds, "round_invitation_lock", lambda **kwargs: None)
    campaign = campaign_with_letter()
    rule(campaign, "department", count=5)
    sign(campaign, geo["01"], 5)
    count()

    pledge = _sign_while_the_round_opens(
        campaign=campaign, department=geo["01"], signer_first=True, monkeypatch=monkeypatch
    )

    assert ConfirmationRound.objects.count() == 1
    assert _invitations_of(pledge) == []
    assert len(emails("round_opened")) == 5


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_signers_share_the_invitation_lock_and_only_a_round_opening_waits_for_it():
    holding, release = threading.Event(), threading.Event()

    def hold_shared():
        with transaction.atomic():
            rounds.round_invitation_lock(campaign_id=1, level="department", code="01", shared=True)
            holding.set()
            release.wait(timeout=10)
        connection.close()

    holder = threading.Thread(target=hold_shared)
    holder.start()
    try:
        assert holding.wait(timeout=10)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '200ms'")
            # Another signer of the territory does not wait.
            rounds.round_invitation_lock(campaign_id=1, level="department", code="01", shared=True)
        with pytest.raises(OperationalError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '200ms'")
            # The opening of its round does.
            rounds.round_invitation_lock(campaign_id=1, level="department", code="01", shared=False)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '200ms'")
            # Nor does the opening of another territory's round.
            rounds.round_invitation_lock(campaign_id=1, level="department", code="03", shared=False)
    finally:
        release.set()
        holder.join(timeout=10)


@pytest.mark.django_db
def test_a_paused_campaign_closes_and_releases_nothing_until_it_reopens(geo):
    campaign = campaign_with_letter()
    round, pledges = crossed(campaign, n=5)
    answer(round, pledges)
    campaign.status = "paused"
    campaign.save()

    with after_end(round):
        assert rounds_close_due() == 0
        assert round_close(round_id=round.pk) is None
        round.refresh_from_db()
        assert round.outcome == RoundOutcome.OPEN
        # Nor does anything cross while paused.
        sign(campaign, geo["03"], 5)
        count()
        assert conditions_evaluate(force=True) == 0

        campaign.status = "open"
        campaign.save()
        assert rounds_close_due() == 1

    assert state_of(campaign).status == TerritoryStatus.RELEASED
