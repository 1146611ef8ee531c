"""A campaign's life after signing: closing, expiring, purging personal data, milestones.

Every function here is a beat job's body and is safe to run twice (or by two workers at once):
each change is claimed by a conditional UPDATE, a row lock with a status check, or a unique
constraint, and emails go through the outbox under dedupe keys.

Pausing (status paused) is the kill switch: signing stops (pledges.services), no territory
crosses, no round closes and nothing is released (pledges.rounds); milestones wait too. Closing
still happens at closes_at, paused or not: the deadline was announced to signers.
"""

import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from pledges import notifications
from pledges.conditions import campaign_conditions, territory_codes
from pledges.enums import (
    LIVE_STATUSES,
    CampaignStatus,
    PledgeEventKind,
    PledgeStatus,
    RoundOutcome,
    TerritoryStatus,
)
from pledges.escrow import escrow_bundles_forget_signer
from pledges.exports import exports_forget_signer
from pledges.letters_pipeline import letter_erase
from pledges.models import (
    Campaign,
    ConfirmationRound,
    MilestoneNotice,
    Pledge,
    Release,
    RppsClaim,
    TerritoryState,
)
from pledges.rounds import pledge_events_record_many, territory_pledges
from pledges.selectors import SMALL_COUNT_THRESHOLD
from pledges.services import PLEDGE_PERSONAL_BLANKS

logger = logging.getLogger(__name__)

MILESTONE_PERCENTS = (25, 50, 75, 100)


def campaigns_close_due() -> list[int]:
    """Close open or paused campaigns whose closing date has passed; returns their ids.

    A conditional UPDATE per campaign: when two jobs run, one changes the row, the other none.
    """
    now = timezone.now()
    closed = []
    for pk in list(
        Campaign.objects.filter(
            status__in=(CampaignStatus.OPEN, CampaignStatus.PAUSED), closes_at__lte=now
        ).values_list("pk", flat=True)
    ):
        if Campaign.objects.filter(pk=pk, status__in=(CampaignStatus.OPEN, CampaignStatus.PAUSED)).update(
            status=CampaignStatus.CLOSED, updated_at=now
        ):
            closed.append(pk)
            logger.info("campaign closed at its closing date: campaign=%s", pk)
    return closed


def campaigns_expire(*, campaign_ids: list[int] | None = None) -> int:
    """Expire what a closed campaign did not release; returns the number of pledges expired.

    For each closed campaign not purged yet, in one transaction:
    1. Open rounds are cancelled (a round cannot outlive its campaign).
    2. Every territory of the release level that is not released becomes EXPIRED (rows are
       created for territories that never had one, so the page shows the final state).
    3. Every active pledge (whether its territory released without it or never released)
       becomes EXPIRED with an EXPIRED PledgeEvent (delta 0: it stays in the final count), and
       its signer gets one campaign_expired email.
    A second run finds nothing active and nothing left to expire.
    """
    campaigns = Campaign.objects.filter(status=CampaignStatus.CLOSED, purged_at__isnull=True)
    if campaign_ids is not None:
        campaigns = campaigns.filter(pk__in=campaign_ids)
    expired = 0
    for campaign in campaigns:
        expired += _campaign_expire(campaign=campaign)
    return expired


def _campaign_expire(*, campaign: Campaign) -> int:
    active = Pledge.objects.filter(campaign=campaign, status=PledgeStatus.ACTIVE)
    pending_states = TerritoryState.objects.filter(campaign=campaign).exclude(
        status__in=(TerritoryStatus.RELEASED, TerritoryStatus.EXPIRED)
    )
    if not active.exists() and not pending_states.exists() and _states_complete(campaign=campaign):
        return 0
    now = timezone.now()
    with transaction.atomic():
        # Locks in the order of pledges.rounds: rounds, then states, then pledges.
        ConfirmationRound.objects.filter(crossing__campaign=campaign, outcome=RoundOutcome.OPEN).update(
            outcome=RoundOutcome.CANCELLED, closed_at=now
        )
        level = campaign.release_level
        codes = territory_codes(level=level)
        TerritoryState.objects.bulk_create(
            [
                TerritoryState(campaign=campaign, level=level, code=code, status=TerritoryStatus.EXPIRED)
                for code in codes
            ],
            ignore_conflicts=True,
        )
        TerritoryState.objects.filter(campaign=campaign).exclude(
            status__in=(TerritoryStatus.RELEASED, TerritoryStatus.EXPIRED)
        ).update(status=TerritoryStatus.EXPIRED, updated_at=now)
        pledge_ids = list(active.select_for_update().order_by("pk").values_list("pk", flat=True))
        Pledge.objects.filter(pk__in=pledge_ids).update(status=PledgeStatus.EXPIRED, updated_at=now)
        pledge_events_record_many(pledge_ids=pledge_ids, kind=PledgeEventKind.EXPIRED)
        notifications.campaign_expired(
            campaign=campaign,
            pledges=Pledge.objects.filter(pk__in=pledge_ids).select_related("user", "department"),
        )
    logger.info("campaign expired: campaign=%s pledges=%s", campaign.pk, len(pledge_ids))
    return len(pledge_ids)


def _states_complete(*, campaign: Campaign) -> bool:
    return TerritoryState.objects.filter(campaign=campaign, level=campaign.release_level).exists()


def campaigns_purge_due() -> list[int]:
    """Purge the personal data of campaigns closed for `purge_after_days`; returns their ids.

    The closing moment is closes_at, or the last change of a campaign closed without a date.
    """
    now = timezone.now()
    purged = []
    for campaign in Campaign.objects.filter(status=CampaignStatus.CLOSED, purged_at__isnull=True):
        closed_at = campaign.closes_at if campaign.closes_at is not None else campaign.updated_at
        if closed_at + timedelta(days=campaign.purge_after_days) <= now and campaign_purge(campaign=campaign):
            purged.append(campaign.pk)
    return purged


def campaign_purge(*, campaign: Campaign) -> bool:
    """Erase every signer's personal data from a closed campaign; False if already purged.

    In one transaction, under the campaign's row lock (purged_at checked again: one purge):
    1. Expire what is still active (campaigns_expire), so nothing is left mid-way.
    2. Delete the RppsClaim of each signer who has no live pledge in another campaign.
    3. Blank every pledge's personal fields as a withdrawal does (PLEDGE_PERSONAL_BLANKS) and
       unlink its account; status, department and dates stay for the counts and the ledger.
       Delete the released letters (rows and files), the organizers' export files and the
       escrow bundles (rows kept with their hashes, files deleted on commit).
    4. Set purged_at.
    Released pledges keep their status; the "one live pledge per RPPS" constraint ignores blank
    numbers, so blanking them all is allowed.
    """
    if campaign.status != CampaignStatus.CLOSED:
        return False
    campaigns_expire(campaign_ids=[campaign.pk])
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if locked.purged_at is not None:
            return False
        pledges = Pledge.objects.filter(campaign=locked)
        user_ids = set(pledges.exclude(user__isnull=True).values_list("user_id", flat=True))
        keep = set(
            Pledge.objects.filter(user_id__in=user_ids, status__in=LIVE_STATUSES)
            .exclude(campaign=locked)
            .values_list("user_id", flat=True)
        )
        RppsClaim.objects.filter(user_id__in=user_ids - keep).delete()
        now = timezone.now()
        pledges.update(**PLEDGE_PERSONAL_BLANKS, user=None, updated_at=now)
        # Letters carry names and addresses: their rows go now, their files on commit. The
        # ledger keeps the hashes, which identify no one.
        for pledge in pledges.filter(letter__isnull=False).only("pk"):
            letter_erase(pledge=pledge)
        # Organizer exports and escrow bundles copy names and letters: they go with them.
        exports_forget_signer(campaign_ids=[locked.pk])
        escrow_bundles_forget_signer(
            release_ids=Release.objects.filter(campaign=locked).values_list("pk", flat=True)
        )
        locked.purged_at = now
        locked.save(update_fields=["purged_at"])
    logger.info("campaign purged: campaign=%s", campaign.pk)
    return True


def milestones_announce(*, campaign_ids: list[int] | None = None) -> int:
    """Announce 25, 50, 75 and 100 % of each territory's target, at most once each; returns notices made.

    For open campaigns with milestone emails, territories at the release level with a target:
    1. A MilestoneNotice per milestone reached and not announced yet (the unique constraint
       decides between two jobs: only the one that inserted it emails).
    2. One email per territory, for its highest new milestone (a territory that jumps from 0 to
       60 % gets "50 %", not two emails), to its active signers who want milestone emails.
    Nothing is announced while the count is under SMALL_COUNT_THRESHOLD: a milestone would tell
    how many signed where the public page does not.
    """
    campaigns = Campaign.objects.filter(status=CampaignStatus.OPEN, milestone_emails=True)
    if campaign_ids is not None:
        campaigns = campaigns.filter(pk__in=campaign_ids)
    made = 0
    for campaign in campaigns:
        made += _campaign_milestones(campaign=campaign)
    return made


def _campaign_milestones(*, campaign: Campaign) -> int:
    level = campaign.release_level
    announced = set(
        MilestoneNotice.objects.filter(campaign=campaign, level=level).values_list("code", "percent")
    )
    reached: list[tuple[str, int, int]] = []  # (code, percent, target)
    for (lvl, code), explanation in campaign_conditions(campaign=campaign).items():
        if lvl != level or explanation.target is None or explanation.count < SMALL_COUNT_THRESHOLD:
            continue
        for percent in MILESTONE_PERCENTS:
            if explanation.count * 100 >= percent * explanation.target and (code, percent) not in announced:
                reached.append((code, percent, explanation.target))
    made = 0
    highest: dict[str, tuple[MilestoneNotice, int]] = {}
    now = timezone.now()
    with transaction.atomic():
        for code, percent, target in reached:
            try:
                with transaction.atomic():
                    notice = MilestoneNotice.objects.create(
                        campaign=campaign, level=level, code=code, percent=percent, reached_at=now
                    )
            except IntegrityError:
                continue  # another job announced it
            made += 1
            if code not in highest or highest[code][0].percent < percent:
                highest[code] = (notice, target)
        for code, (notice, target) in highest.items():
            recipients = (
                territory_pledges(campaign_id=campaign.pk, level=level, code=code)
                .filter(status=PledgeStatus.ACTIVE, milestone_emails=True, emails_stopped_at__isnull=True)
                .select_related("user")
            )
            notifications.milestone(notice=notice, pledges=recipients, target=target)
    return made
