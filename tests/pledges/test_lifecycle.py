"""Closing, expiring, purging and milestones: each job safe to run twice."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from deconv.celery import BEAT_SCHEDULE, app
from pledges.enums import CampaignStatus, PledgeEventKind, PledgeStatus, RoundOutcome, TerritoryStatus
from pledges.lifecycle import (
    campaign_purge,
    campaigns_close_due,
    campaigns_expire,
    campaigns_purge_due,
    milestones_announce,
)
from pledges.models import (
    Campaign,
    ConfirmationRound,
    MilestoneNotice,
    Pledge,
    PledgeEvent,
    RppsClaim,
    TerritoryCount,
    TerritoryState,
)
from pledges.rounds import conditions_evaluate, round_close, round_respond, rounds_close_due
from pledges.services import PLEDGE_PERSONAL_BLANKS
from pledges.tasks import counts_tick
from tests.pledges import conditions_support
from tests.pledges.conditions_support import campaign_with_letter, count, dedupe_keys, emails, rule, sign

geo = conditions_support.geo

pytestmark = pytest.mark.django_db


def closing_soon(days: int = 20, **fields) -> Campaign:
    now = timezone.now()
    return campaign_with_letter(
        opens_at=now - timedelta(days=30), closes_at=now + timedelta(days=days), **fields
    )


def closed(campaign: Campaign) -> Campaign:
    with time_machine.travel(campaign.closes_at + timedelta(minutes=1), tick=False):
        assert campaigns_close_due() == [campaign.pk]
    campaign.refresh_from_db()
    return campaign


# --- Closing and expiring ------------------------------------------------------------------------


def test_campaigns_close_at_their_date_paused_or_not_and_only_once(geo):
    open_one = closing_soon()
    paused = closing_soon(status=CampaignStatus.PAUSED)
    later = campaign_with_letter()

    assert campaigns_close_due() == []
    with time_machine.travel(open_one.closes_at + timedelta(minutes=1), tick=False):
        assert sorted(campaigns_close_due()) == sorted([open_one.pk, paused.pk])
        assert campaigns_close_due() == []

    assert list(Campaign.objects.order_by("pk").values_list("status", flat=True)) == [
        "closed",
        "closed",
        "open",
    ]
    assert later.status == CampaignStatus.OPEN


def test_expiring_a_closed_campaign_expires_what_was_not_released_once(geo):
    campaign = closing_soon()
    rule(campaign, "department", count=5)
    released = sign(campaign, geo["01"], 5)
    confirming = sign(campaign, geo["03"], 5)
    collecting = sign(campaign, geo["07"], 2)
    count()
    conditions_evaluate()
    ain_round, allier_round = ConfirmationRound.objects.order_by("crossing__code")
    for pledge in released:
        round_respond(round=ain_round, pledge=pledge, answer="confirmed")
    round_respond(round=allier_round, pledge=confirming[0], answer="confirmed")
    with time_machine.travel(ain_round.ends_at + timedelta(minutes=1), tick=False):
        # Allier's round ends at the same time: close Ain's only, Allier's stays open.
        assert round_close(round_id=ain_round.pk) == "released"
    campaign = closed(campaign)

    assert campaigns_expire() == 5 + 2
    assert campaigns_expire() == 0

    states = dict(TerritoryState.objects.filter(campaign=campaign).values_list("code", "status"))
    assert states == {
        "01": TerritoryStatus.RELEASED,
        "03": TerritoryStatus.EXPIRED,
        "07": TerritoryStatus.EXPIRED,
        "75": TerritoryStatus.EXPIRED,
    }
    allier_round.refresh_from_db()
    assert allier_round.outcome == RoundOutcome.CANCELLED
    assert Pledge.objects.filter(status=PledgeStatus.RELEASED).count() == 5
    expired = {pledge.pk for pledge in [*confirming, *collecting]}
    assert set(Pledge.objects.filter(status=PledgeStatus.EXPIRED).values_list("pk", flat=True)) == expired
    assert (
        set(
            PledgeEvent.objects.filter(kind=PledgeEventKind.EXPIRED, delta=0).values_list(
                "pledge_id", flat=True
            )
        )
        == expired
    )
    assert PledgeEvent.objects.filter(kind=PledgeEventKind.EXPIRED).count() == 7
    assert dedupe_keys("campaign_expired") == {f"campaign-expired:{campaign.pk}:{pk}" for pk in expired}
    # Expired pledges stay in the final count.
    count()
    assert TerritoryCount.objects.get(campaign=campaign, level="nation").pledges == 12
    # Nothing crosses nor closes in a closed campaign.
    assert conditions_evaluate(force=True) == 0
    with time_machine.travel(allier_round.ends_at + timedelta(minutes=1), tick=False):
        assert rounds_close_due() == 0


# --- Purge ---------------------------------------------------------------------------------------


def test_the_purge_leaves_no_personal_data_and_keeps_claims_still_in_use(geo):
    campaign = closing_soon(purge_after_days=30)
    rule(campaign, "department", count=2)
    rule(campaign, "department", "03", count=5)
    released = sign(campaign, geo["01"], 2)
    active = sign(campaign, geo["03"], 2)
    count()
    conditions_evaluate()
    round = ConfirmationRound.objects.get()
    for pledge in released:
        round_respond(round=round, pledge=pledge, answer="confirmed")
    with time_machine.travel(round.ends_at + timedelta(minutes=1), tick=False):
        rounds_close_due()
    # One signer also signs another campaign, still open: their RPPS claim must stay.
    other = campaign_with_letter()
    busy = released[0]
    sign(other, geo["75"], 1, rpps="19999999998")
    Pledge.objects.filter(campaign=other).update(user=busy.user)
    for pledge in [*released, *active]:
        RppsClaim.objects.create(user=pledge.user, rpps=pledge.rpps)
    campaign = closed(campaign)

    with time_machine.travel(campaign.closes_at + timedelta(days=29), tick=False):
        assert campaigns_purge_due() == []
    with time_machine.travel(campaign.closes_at + timedelta(days=30, minutes=1), tick=False):
        assert campaigns_purge_due() == [campaign.pk]
        assert campaigns_purge_due() == []
    assert campaign_purge(campaign=campaign) is False

    campaign.refresh_from_db()
    assert campaign.purged_at is not None
    personal = [*PLEDGE_PERSONAL_BLANKS, "user_id"]
    for row in Pledge.objects.filter(campaign=campaign).values(*personal, "pk", "status"):
        assert row["user_id"] is None
        for name, blank in PLEDGE_PERSONAL_BLANKS.items():
            if name == "rpps":
                assert row["rpps"] == ""
            else:
                assert row[name] == blank, name
    assert sorted(Pledge.objects.filter(campaign=campaign).values_list("status", flat=True)) == [
        "expired",
        "expired",
        "released",
        "released",
    ]
    assert list(RppsClaim.objects.values_list("user_id", flat=True)) == [busy.user_id]
    assert Pledge.objects.get(campaign=other).last_name == "Martin"


# --- Milestones ----------------------------------------------------------------------------------


def test_milestones_are_announced_at_most_once_to_signers_who_want_them(geo):
    campaign = campaign_with_letter()
    rule(campaign, "department", count=20)
    pledges = sign(campaign, geo["01"], 4)
    count()

    # 4 of 20 is 20 %, and small counts are never announced anyway.
    assert milestones_announce() == 0

    pledges += sign(campaign, geo["01"], 1)  # 25 %
    opted_out = sign(campaign, geo["01"], 1, milestone_emails=False)[0]
    stopped = sign(campaign, geo["01"], 1, emails_stopped_at=timezone.now())[0]
    count()
    assert milestones_announce() == 1
    assert milestones_announce() == 0

    notice = MilestoneNotice.objects.get()
    assert (notice.level, notice.code, notice.percent) == ("department", "01", 25)
    assert dedupe_keys("milestone") == {f"milestone:{notice.pk}:{pledge.pk}" for pledge in pledges}
    assert opted_out.pk not in {pledge.pk for pledge in pledges} and stopped.pk not in {p.pk for p in pledges}

    # A jump from 35 % to 60 % makes the 50 % notice and one email each, not two.
    pledges += sign(campaign, geo["01"], 5)
    count()
    assert milestones_announce() == 1
    fifty = MilestoneNotice.objects.get(percent=50)
    assert len(emails("milestone")) == 5 + 10
    assert {
        email.dedupe_key
        for email in emails("milestone")
        if email.dedupe_key.startswith(f"milestone:{fifty.pk}:")
    } == {f"milestone:{fifty.pk}:{pledge.pk}" for pledge in pledges}


def test_milestones_wait_while_paused_and_respect_the_campaign_switch(geo):
    paused = campaign_with_letter(status=CampaignStatus.PAUSED)
    quiet = campaign_with_letter(milestone_emails=False)
    for campaign in (paused, quiet):
        rule(campaign, "department", count=10)
        sign(campaign, geo["01"], 5)
    count()

    assert milestones_announce() == 0
    assert not MilestoneNotice.objects.exists()


# --- Wiring --------------------------------------------------------------------------------------


def test_the_counting_tick_evaluates_conditions_after_counting(geo):
    campaign = campaign_with_letter()
    rule(campaign, "department", count=5)
    sign(campaign, geo["01"], 5)

    assert counts_tick()["due"] is True

    assert ConfirmationRound.objects.get().crossing.code == "01"


def test_beat_runs_every_lifecycle_job_by_name():
    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in BEAT_SCHEDULE.values()}

    jobs = {
        "pledges.rounds_close_due",
        "pledges.rounds_remind",
        "pledges.milestones_announce",
        "pledges.campaigns_close",
        "pledges.campaigns_purge",
    }
    assert jobs <= scheduled
    assert jobs | {"pledges.conditions_evaluate"} <= set(app.tasks)
