"""Crossings, confirmation rounds, responses and releases.

A territory at the campaign's release level moves COLLECTING -> CONFIRMING (a crossing opened a
round) -> RELEASED, or back to COLLECTING when the round fails; AWAITING_APPROVAL sits between a
successful round and the release when organizers approve releases; EXPIRED when the campaign
closes first (pledges.lifecycle).

Locks, always taken in this order so two jobs never wait on each other in a cycle:
round -> territory state -> pledges. Crossing takes the state first (its round does not exist yet).

Pause (the kill switch): while a campaign is paused no territory crosses, no round closes and
nothing is released, not even on an organizer's approval. Signers may still answer an open round
(answering sends nothing). A round whose end passes during the pause closes at the first run
after the campaign reopens, with the answers given until its end.
"""

import logging
import zlib
from collections.abc import Callable
from datetime import timedelta

from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from deconv.models import AuditEntry
from pledges import notifications
from pledges.conditions import Explanation, campaign_conditions, campaign_conditions_fingerprints
from pledges.counting import NATION_CODE
from pledges.enums import (
    CampaignStatus,
    PledgeEventKind,
    PledgeStatus,
    RoundAnswer,
    RoundOutcome,
    TerritoryLevel,
    TerritoryStatus,
)
from pledges.events import DELTAS, pledge_event_record
from pledges.models import (
    Campaign,
    ConfirmationRound,
    Crossing,
    Pledge,
    PledgeEvent,
    Release,
    RoundResponse,
    TerritoryState,
)
from territories.models import Department

logger = logging.getLogger(__name__)

# territory_cross results.
CROSSED = "crossed"
SKIPPED = "skipped"
LOST_RACE = "lost_race"

# round_close results.
ROUND_RELEASED = "released"
ROUND_AWAITING_APPROVAL = "awaiting_approval"
ROUND_FAILED = "failed"

ROUND_LINK_SALT = "pledges.round-link"
# First key of the two-key advisory lock of round invitations (b"rinv"); the second is a hash of
# the territory. The one-key locks (counting, ledger) live in another key space.
ROUND_INVITATION_LOCK_CLASS = 0x72696E76
# The evaluation is skipped while nothing it reads has changed; remembered this long at most, so
# what the fingerprint does not cover (a reference population re-imported) is seen within minutes.
FINGERPRINT_TTL_SECONDS = 600


# --- Territories and their signers ----------------------------------------------------------


def territory_code_of(*, pledge: Pledge, level: str) -> str:
    """The code of the territory of `level` the pledge belongs to."""
    if level == TerritoryLevel.DEPARTMENT:
        return pledge.department.code
    if level == TerritoryLevel.REGION:
        return pledge.department.region.code
    return NATION_CODE


def territory_pledges(*, campaign_id: int, level: str, code: str) -> QuerySet[Pledge]:
    """Every pledge of the campaign in the territory, whatever its status."""
    pledges = Pledge.objects.filter(campaign_id=campaign_id)
    if level == TerritoryLevel.DEPARTMENT:
        return pledges.filter(department__code=code)
    if level == TerritoryLevel.REGION:
        return pledges.filter(department__region__code=code)
    return pledges


def pledge_events_record_many(*, pledge_ids: list[int], kind: PledgeEventKind) -> None:
    """pledge_event_record for many pledges at once (delta-0 kinds: the ledger reads them)."""
    rows = Pledge.objects.filter(pk__in=pledge_ids).values_list("pk", "campaign_id", "department_id")
    PledgeEvent.objects.bulk_create(
        [
            PledgeEvent(
                campaign_id=campaign_id,
                department_id=department_id,
                pledge_id=pk,
                kind=kind,
                delta=DELTAS[kind],
            )
            for pk, campaign_id, department_id in rows
        ]
    )


# --- Crossings --------------------------------------------------------------------------------


def conditions_evaluate(
    *,
    campaign_ids: list[int] | None = None,
    force: bool = False,
    use_lock: bool = True,
    after_check: Callable[[], None] | None = None,
) -> int:
    """Open a round (or release) for every territory that meets its condition; returns crossings made.

    Called by the counting tick after each counts_update, outside its transaction.
    1. Campaigns open for signing (not paused, not past their closing date).
    2. Skip a campaign whose fingerprint (settings, rules, counts, states) is the one remembered
       from the last evaluation: nothing it depends on changed. `force` evaluates anyway.
    3. Evaluate every territory (pledges.conditions.campaign_conditions, a fixed number of queries).
    4. For each territory at the release level, COLLECTING and releasable, and with more
       signatures than at its previous crossing (a failed round is not re-opened with the same
       signatures): territory_cross.

    `use_lock` and `after_check` are test hooks passed on to territory_cross.
    """
    now = timezone.now()
    campaigns = Campaign.objects.filter(status=CampaignStatus.OPEN).filter(
        Q(closes_at__isnull=True) | Q(closes_at__gt=now)
    )
    if campaign_ids is not None:
        campaigns = campaigns.filter(pk__in=campaign_ids)
    campaigns = list(campaigns)
    fingerprints = campaign_conditions_fingerprints(campaign_ids=[campaign.pk for campaign in campaigns])
    crossed = 0
    for campaign in campaigns:
        key = f"pledges:conditions:fingerprint:{campaign.pk}"
        fingerprint = repr(fingerprints.get(campaign.pk))
        if not force and cache.get(key) == fingerprint:
            continue
        crossed += _campaign_evaluate(campaign=campaign, use_lock=use_lock, after_check=after_check)
        cache.set(key, fingerprint, FINGERPRINT_TTL_SECONDS)
    return crossed


def _campaign_evaluate(*, campaign: Campaign, use_lock: bool, after_check: Callable[[], None] | None) -> int:
    explanations = campaign_conditions(campaign=campaign)
    candidates = [
        explanation
        for explanation in explanations.values()
        if explanation.level == campaign.release_level
        and explanation.status == TerritoryStatus.COLLECTING
        and explanation.releasable
    ]
    if not candidates:
        return 0
    previous = _previous_crossing_counts(campaign=campaign)
    crossed = 0
    for explanation in candidates:
        if explanation.count <= previous.get((explanation.level, explanation.code), -1):
            continue
        result = territory_cross(
            campaign=campaign, explanation=explanation, use_lock=use_lock, after_check=after_check
        )
        crossed += result == CROSSED
    return crossed


def _previous_crossing_counts(*, campaign: Campaign) -> dict[tuple[str, str], int]:
    """(level, code) -> signatures at the territory's latest crossing, in one query."""
    latest: dict[tuple[str, str], int] = {}
    for level, code, count in (
        Crossing.objects.filter(campaign=campaign)
        .order_by("level", "code", "-round_number")
        .values_list("level", "code", "count_at_crossing")
    ):
        latest.setdefault((level, code), count)
    return latest


def territory_cross(
    *,
    campaign: Campaign,
    explanation: Explanation,
    use_lock: bool = True,
    after_check: Callable[[], None] | None = None,
) -> str:
    """Record that a territory met its condition and open its round, exactly once per round.

    In one transaction:
    1. Lock the TerritoryState row (created if missing) and re-check under the lock that it is
       still COLLECTING and has more signatures than at its previous crossing: a concurrent
       evaluation that got the lock first has already moved it on.
    2. Insert Crossing(round_number = previous + 1) in a savepoint: the unique constraint
       (campaign, level, code, round_number) is the last guard, an IntegrityError means another
       evaluation won (LOST_RACE).
    3. Open the round (CONFIRMING, every active signer asked) or, without confirmation rounds,
       close it at once and release (or await approval).

    `use_lock=False` skips the lock and the re-check (the check is then the caller's stale read):
    it exists only for the control test showing two evaluations both passing the check, the
    constraint alone stopping the second. `after_check` is called between check and insert.
    """
    level, code = explanation.level, explanation.code
    with transaction.atomic():
        if use_lock:
            state, _created = TerritoryState.objects.select_for_update().get_or_create(
                campaign=campaign, level=level, code=code
            )
            if state.status != TerritoryStatus.COLLECTING:
                return SKIPPED
            last_count = (
                Crossing.objects.filter(
                    campaign=campaign, level=level, code=code, round_number=state.round_number
                )
                .values_list("count_at_crossing", flat=True)
                .first()
            )
            if last_count is not None and explanation.count <= last_count:
                return SKIPPED
        else:
            state, _created = TerritoryState.objects.get_or_create(campaign=campaign, level=level, code=code)
        if after_check is not None:
            after_check()

        now = timezone.now()
        try:
            with transaction.atomic():
                crossing = Crossing.objects.create(
                    campaign=campaign,
                    level=level,
                    code=code,
                    round_number=state.round_number + 1,
                    crossed_at=now,
                    count_at_crossing=explanation.count,
                    target_at_crossing=explanation.target or 1,
                    national_count_at_crossing=explanation.national_count,
                )
        except IntegrityError:
            return LOST_RACE
        state.round_number = crossing.round_number
        state.status = TerritoryStatus.CONFIRMING
        state.save()
        _round_open(campaign=campaign, crossing=crossing, state=state, now=now)
    logger.info(
        "territory crossed: campaign=%s level=%s code=%s round=%s",
        campaign.pk,
        level,
        code,
        crossing.round_number,
    )
    return CROSSED


def _round_open(*, campaign: Campaign, crossing: Crossing, state: TerritoryState, now) -> ConfirmationRound:
    # Before reading who signed: a signer committing now is either read below or sees the round.
    round_invitation_lock(campaign_id=campaign.pk, level=crossing.level, code=crossing.code, shared=False)
    active = territory_pledges(campaign_id=campaign.pk, level=crossing.level, code=crossing.code).filter(
        status=PledgeStatus.ACTIVE
    )
    if campaign.confirmation_round:
        round = ConfirmationRound.objects.create(
            crossing=crossing, opened_at=now, ends_at=now + timedelta(days=campaign.round_days)
        )
        notifications.round_opened(round=round, pledges=active.select_related("user"))
        return round
    # No confirmation asked: a round closed at once records the decision like any other.
    round = ConfirmationRound.objects.create(
        crossing=crossing,
        opened_at=now,
        ends_at=now,
        closed_at=now,
        outcome=RoundOutcome.SUCCEEDED,
        confirmed_count=active.count(),
    )
    if campaign.approval_required:
        state.status = TerritoryStatus.AWAITING_APPROVAL
        state.save()
    else:
        territory_release(round=round)
    return round


# --- Rounds: who is asked, links, answers ---------------------------------------------------------


def round_open_for_pledge(*, pledge: Pledge) -> ConfirmationRound | None:
    """The open round of the pledge's territory at its campaign's release level, if any."""
    campaign = pledge.campaign
    level = campaign.release_level
    return (
        ConfirmationRound.objects.filter(
            outcome=RoundOutcome.OPEN,
            crossing__campaign_id=campaign.pk,
            crossing__level=level,
            crossing__code=territory_code_of(pledge=pledge, level=level),
        )
        .select_related("crossing__campaign")
        .first()
    )


def round_invitation_lock(*, campaign_id: int, level: str, code: str, shared: bool) -> None:
    """Order a signer joining a territory with the opening of that territory's round.

    Without it, a signer and a round opening at the same moment can miss each other: the
    signer's transaction looks for an open round before the opening commits, the opening reads
    the territory's signers before the signer commits, and the signer is never invited. Signers
    take the lock shared (they never wait for each other), the opening exclusive, both until
    their commit, each before its read: whichever comes second sees what the first committed.

    A PostgreSQL transaction-level advisory lock, no row: the territory may not have a state row
    yet. SQLite runs one write transaction at a time, so nothing to do there.
    """
    if connection.vendor != "postgresql":
        return
    territory = zlib.crc32(f"{campaign_id}:{level}:{code}".encode())
    # pg_advisory_xact_lock*(int4, int4): the hash as a signed 32-bit integer.
    territory = territory - (1 << 32) if territory >= 1 << 31 else territory
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, %s)", [ROUND_INVITATION_LOCK_CLASS, territory])


def round_invite_new_signer(*, pledge: Pledge) -> bool:
    """A pledge created while its territory confirms is asked too; True when an invitation was queued.

    Called by pledges.services.pledge_create in the pledge's transaction, after the pledge's
    INSERT. The invitation is an outbox row rendered by the worker, under the round fan-out's
    dedupe key: a signer the opening also read is invited once. The shared lock
    (round_invitation_lock) waits only for a round opening in this territory, never for
    other signers.
    """
    campaign = pledge.campaign
    level = campaign.release_level
    code = territory_code_of(pledge=pledge, level=level)
    round_invitation_lock(campaign_id=campaign.pk, level=level, code=code, shared=True)
    # Its id is all the invitation needs: the worker reads the round when it renders the email.
    round = (
        ConfirmationRound.objects.filter(
            outcome=RoundOutcome.OPEN,
            crossing__campaign_id=campaign.pk,
            crossing__level=level,
            crossing__code=code,
        )
        .only("pk")
        .first()
    )
    if round is None:
        return False
    return notifications.round_opened_late(round=round, pledge=pledge)


def round_link_token(*, round: ConfirmationRound, pledge: Pledge) -> str:
    """The signed part of the link in round emails: names the round and the pledge, dated."""
    return signing.dumps({"r": round.pk, "p": pledge.pk}, salt=ROUND_LINK_SALT, compress=True)


def round_link_load(*, token: str) -> tuple[ConfirmationRound, Pledge] | None:
    """The round and pledge a link names, or None when it is forged, unknown or older than a round.

    A link lives as long as a round lasts (campaign.round_days): the signature is checked first
    without an age to learn the campaign, then again with its round length.
    """
    try:
        data = signing.loads(token, salt=ROUND_LINK_SALT)
        round_id, pledge_id = int(data["r"]), int(data["p"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    round = ConfirmationRound.objects.select_related("crossing__campaign").filter(pk=round_id).first()
    pledge = (
        Pledge.objects.select_related("campaign", "letter_version", "department__region", "caisse")
        .filter(pk=pledge_id)
        .first()
    )
    if round is None or pledge is None or pledge.campaign_id != round.crossing.campaign_id:
        return None
    try:
        signing.loads(token, salt=ROUND_LINK_SALT, max_age=timedelta(days=round.crossing.campaign.round_days))
    except signing.BadSignature:
        return None
    return round, pledge


def round_answer_of(*, round: ConfirmationRound, pledge: Pledge) -> str | None:
    return RoundResponse.objects.filter(round=round, pledge=pledge).values_list("answer", flat=True).first()


def round_respond(*, round: ConfirmationRound, pledge: Pledge, answer: str) -> RoundResponse:
    """Record (or change) a signer's answer; raises ValidationError when it cannot be accepted.

    Accepted only while the round is open (before its end) and the pledge is active and in the
    round's territory. Side effects, in one transaction: the RoundResponse (update_or_create: the
    same answer twice changes nothing but its date), a CONFIRMED PledgeEvent (delta 0, for the
    ledger) when the answer becomes "confirmed". Then, with early release on, a confirmation
    that makes the round meet its condition closes it (round_close, its own transaction).
    """
    if answer not in RoundAnswer.values:
        raise ValidationError(_("Choose one of the two answers."), code="bad_answer")
    with transaction.atomic():
        # Serialise answers with the round's closing: a close that got the row first is seen here.
        locked_round = (
            ConfirmationRound.objects.select_for_update(no_key=True, of=("self",))
            .select_related("crossing__campaign")
            .get(pk=round.pk)
        )
        locked_pledge = (
            Pledge.objects.select_for_update().select_related("department__region").get(pk=pledge.pk)
        )
        crossing = locked_round.crossing
        if locked_round.outcome != RoundOutcome.OPEN or timezone.now() >= locked_round.ends_at:
            raise ValidationError(_("This confirmation round is over."), code="round_closed")
        if locked_pledge.status != PledgeStatus.ACTIVE:
            raise ValidationError(_("This pledge can no longer be confirmed."), code="pledge_not_active")
        if (
            locked_pledge.campaign_id != crossing.campaign_id
            or territory_code_of(pledge=locked_pledge, level=crossing.level) != crossing.code
        ):
            raise ValidationError(_("This pledge is not part of this round."), code="pledge_not_in_round")
        previous = round_answer_of(round=locked_round, pledge=locked_pledge)
        response, _created = RoundResponse.objects.update_or_create(
            round=locked_round,
            pledge=locked_pledge,
            defaults={"answer": answer, "answered_at": timezone.now()},
        )
        if answer == RoundAnswer.CONFIRMED and previous != RoundAnswer.CONFIRMED:
            pledge_event_record(pledge=locked_pledge, kind=PledgeEventKind.CONFIRMED)
    if answer == RoundAnswer.CONFIRMED and crossing.campaign.early_release:
        round_close(round_id=locked_round.pk, early=True)
    return response


def round_evaluate(*, round: ConfirmationRound) -> tuple[Explanation, int]:
    """The round's territory evaluated with its confirmed signatures, and their number.

    Confirmed = answers "confirmed" of pledges still active. Same targets and gates as the
    crossing: the territory's own count (and, for a region, its departments' counts) become the
    confirmed ones; gates keep the published counts.
    """
    crossing = round.crossing
    campaign = crossing.campaign
    per_department = {
        row["pledge__department__code"]: row["n"]
        for row in RoundResponse.objects.filter(
            round=round, answer=RoundAnswer.CONFIRMED, pledge__status=PledgeStatus.ACTIVE
        )
        .values("pledge__department__code")
        .annotate(n=Count("pk"))
        .order_by()
    }
    confirmed = sum(per_department.values())
    override = {(crossing.level, crossing.code): confirmed}
    if crossing.level == TerritoryLevel.REGION:
        for code in Department.objects.filter(region__code=crossing.code).values_list("code", flat=True):
            override[(TerritoryLevel.DEPARTMENT.value, code)] = per_department.get(code, 0)
    explanation = campaign_conditions(campaign=campaign, counts_override=override)[
        (crossing.level, crossing.code)
    ]
    return explanation, confirmed


# --- Closing and releasing ----------------------------------------------------------------------


def round_close(*, round_id: int, early: bool = False) -> str | None:
    """Close a round that is due (or, `early`, one whose confirmations already meet the condition).

    Returns ROUND_RELEASED, ROUND_AWAITING_APPROVAL, ROUND_FAILED, or None when nothing was done
    (already closed, not due, campaign not open, early but not met yet).
    1. Lock the round and check it is still OPEN: each close is claimed once.
    2. Skip unless the campaign is open: paused rounds wait, closed campaigns are expired by
       pledges.lifecycle.
    3. Evaluate the confirmed signatures (round_evaluate).
    4. Met: outcome succeeded, then release (territory_release) or, when organizers approve
       releases, AWAITING_APPROVAL. Not met: outcome failed, territory back to COLLECTING (a
       later crossing opens the next round). Either way every signer is told (round_result).
    """
    with transaction.atomic():
        round = (
            ConfirmationRound.objects.select_for_update(of=("self",))
            .select_related("crossing__campaign")
            .filter(pk=round_id)
            .first()
        )
        if round is None or round.outcome != RoundOutcome.OPEN:
            return None
        crossing = round.crossing
        campaign = crossing.campaign
        if campaign.status != CampaignStatus.OPEN:
            return None
        now = timezone.now()
        if not early and now < round.ends_at:
            return None
        explanation, confirmed = round_evaluate(round=round)
        if early and not explanation.releasable:
            return None

        round.closed_at = now
        round.confirmed_count = confirmed
        round.outcome = RoundOutcome.SUCCEEDED if explanation.releasable else RoundOutcome.FAILED
        round.save()
        state = TerritoryState.objects.select_for_update().get(
            campaign=campaign, level=crossing.level, code=crossing.code
        )
        if round.outcome == RoundOutcome.FAILED:
            state.status = TerritoryStatus.COLLECTING
            state.save()
            result = ROUND_FAILED
        elif campaign.approval_required:
            state.status = TerritoryStatus.AWAITING_APPROVAL
            state.save()
            result = ROUND_AWAITING_APPROVAL
        else:
            territory_release(round=round)
            result = ROUND_RELEASED
        signers = territory_pledges(campaign_id=campaign.pk, level=crossing.level, code=crossing.code).filter(
            status__in=(PledgeStatus.ACTIVE, PledgeStatus.RELEASED)
        )
        notifications.round_result(round=round, pledges=signers.select_related("user"), outcome=result)
    logger.info("round closed: round=%s outcome=%s confirmed=%s", round_id, result, confirmed)
    return result


def rounds_close_due() -> int:
    """Close every open round past its end in an open campaign; returns how many were closed."""
    due = ConfirmationRound.objects.filter(
        outcome=RoundOutcome.OPEN, ends_at__lte=timezone.now(), crossing__campaign__status=CampaignStatus.OPEN
    ).values_list("pk", flat=True)
    return sum(1 for round_id in list(due) if round_close(round_id=round_id) is not None)


def rounds_remind() -> int:
    """Remind, once per round and from its halfway point, the signers who have not answered.

    The reminder is claimed by a conditional UPDATE of reminder_sent_at (one winner however many
    jobs run), in the transaction that queues the emails. Returns the number of rounds reminded.
    """
    now = timezone.now()
    reminded = 0
    due = ConfirmationRound.objects.filter(
        outcome=RoundOutcome.OPEN,
        reminder_sent_at__isnull=True,
        ends_at__gt=now,
        crossing__campaign__status=CampaignStatus.OPEN,
    ).select_related("crossing__campaign")
    for round in due:
        if now < round.opened_at + (round.ends_at - round.opened_at) / 2:
            continue
        with transaction.atomic():
            claimed = ConfirmationRound.objects.filter(
                pk=round.pk, reminder_sent_at__isnull=True, outcome=RoundOutcome.OPEN
            ).update(reminder_sent_at=now)
            if not claimed:
                continue
            crossing = round.crossing
            silent = (
                territory_pledges(campaign_id=crossing.campaign_id, level=crossing.level, code=crossing.code)
                .filter(status=PledgeStatus.ACTIVE)
                .exclude(pk__in=RoundResponse.objects.filter(round=round).values("pledge_id"))
                .select_related("user")
            )
            notifications.round_reminder(round=round, pledges=silent)
        reminded += 1
    return reminded


def territory_release(*, round: ConfirmationRound, approved_by=None) -> Release:
    """Release a territory after its successful round: irreversible, once.

    In one transaction:
    1. Lock the round, then the territory state. A territory already released returns its
       Release unchanged.
    2. Refuse (ValidationError) unless the round succeeded, the territory is confirming or
       awaiting approval (awaiting approval needs `approved_by`), and the campaign is open.
    3. Lock the pledges released: those that confirmed in the round and are still active (every
       active pledge of the territory when the campaign asks no confirmation).
    4. Insert the Release (unique per territory: the last guard), mark those pledges RELEASED
       with their release, one RELEASED PledgeEvent each (delta 0), the territory RELEASED.
    5. With an approver: the round's approved_by/at and an AuditEntry.
    6. After commit, hand the release to the letters and emails pipeline.
    Withdrawals later change pledges, never the territory's status nor the Release row.
    """
    with transaction.atomic():
        round = (
            ConfirmationRound.objects.select_for_update(of=("self",))
            .select_related("crossing__campaign")
            .get(pk=round.pk)
        )
        crossing = round.crossing
        campaign = crossing.campaign
        state = TerritoryState.objects.select_for_update().get(
            campaign=campaign, level=crossing.level, code=crossing.code
        )
        existing = Release.objects.filter(campaign=campaign, level=crossing.level, code=crossing.code).first()
        if existing is not None:
            return existing
        if round.outcome != RoundOutcome.SUCCEEDED:
            raise ValidationError(_("Only a successful round can be released."), code="round_not_succeeded")
        if state.status not in (TerritoryStatus.CONFIRMING, TerritoryStatus.AWAITING_APPROVAL):
            raise ValidationError(
                _("This territory cannot be released any more."), code="territory_not_releasable"
            )
        if state.status == TerritoryStatus.AWAITING_APPROVAL and approved_by is None:
            raise ValidationError(_("This release awaits an organizer's approval."), code="approval_required")
        if campaign.status != CampaignStatus.OPEN:
            raise ValidationError(
                _("The campaign is not open (paused or closed): nothing is released."),
                code="campaign_not_open",
            )

        if campaign.confirmation_round:
            released = Pledge.objects.filter(
                status=PledgeStatus.ACTIVE,
                round_responses__round=round,
                round_responses__answer=RoundAnswer.CONFIRMED,
            )
        else:
            released = territory_pledges(
                campaign_id=campaign.pk, level=crossing.level, code=crossing.code
            ).filter(status=PledgeStatus.ACTIVE)
        pledge_ids = list(
            released.select_for_update(of=("self",)).order_by("pk").values_list("pk", flat=True)
        )
        now = timezone.now()
        try:
            with transaction.atomic():
                release = Release.objects.create(
                    campaign=campaign,
                    level=crossing.level,
                    code=crossing.code,
                    round=round,
                    released_at=now,
                    pledge_count=len(pledge_ids),
                    approved_by=approved_by,
                )
        except IntegrityError:
            return Release.objects.get(campaign=campaign, level=crossing.level, code=crossing.code)
        Pledge.objects.filter(pk__in=pledge_ids).update(
            status=PledgeStatus.RELEASED, release=release, updated_at=now
        )
        pledge_events_record_many(pledge_ids=pledge_ids, kind=PledgeEventKind.RELEASED)
        state.status = TerritoryStatus.RELEASED
        state.released_at = now
        state.save()
        if approved_by is not None:
            round.approved_by = approved_by
            round.approved_at = now
            round.save(update_fields=["approved_by", "approved_at"])
            AuditEntry.objects.create(
                actor=approved_by,
                action="release.approve",
                campaign_id=campaign.pk,
                territory_code=crossing.code,
                object_type="ConfirmationRound",
                object_id=str(round.pk),
                details={
                    "level": crossing.level,
                    "round_number": crossing.round_number,
                    "confirmed_count": round.confirmed_count,
                    "released_pledges": len(pledge_ids),
                    "release_id": release.pk,
                },
            )
        _release_dispatch(release_id=release.pk)
    logger.info(
        "territory released: campaign=%s level=%s code=%s pledges=%s",
        campaign.pk,
        crossing.level,
        crossing.code,
        len(pledge_ids),
    )
    return release


def round_approve(*, round: ConfirmationRound, user) -> Release:
    """An organizer approves the release of a round awaiting approval (see territory_release)."""
    return territory_release(round=round, approved_by=user)


def _release_dispatch(*, release_id: int) -> None:
    """After commit, start the letters pipeline (task "pledges.release_process") if it is installed.

    The Release row is the durable hand-off: a pipeline that is not deployed yet, or a lost
    message, leaves letters_done_at empty for the pipeline's own sweep to find.
    """
    import pledges.tasks  # noqa: F401 (registers the tasks with the app)
    from deconv.celery import app

    task = app.tasks.get("pledges.release_process")
    if task is None:
        logger.warning(
            "no pledges.release_process task: release %s waits for the letters pipeline", release_id
        )
        return
    from deconv.tasks import dispatch_safely

    transaction.on_commit(lambda: dispatch_safely(task, release_id=release_id))
