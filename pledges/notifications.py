"""Emails about conditions, rounds and the campaign's end: one function per kind, via the outbox.

Each function stores one outbox row per recipient (deconv.outbox) under a dedupe key naming the
round (or milestone, campaign) and the pledge, so a job that runs twice queues each email once.
Call them inside the transaction that changes the state they announce: the rows then exist if
and only if the change committed.

Recipients are signers with an account who have not used the stop link (Pledge.emails_stopped_at):
none of these emails is required by law, and a signer who stopped emails still finds the round on
"Mon engagement". Paper pledges without an account are reached by the organizers.
"""

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.urls import reverse

from deconv.outbox import EmailItem, email_queue_many
from pledges.counting import NATION_CODE
from pledges.enums import TerritoryLevel
from pledges.models import Campaign, ConfirmationRound, MilestoneNotice, Pledge
from pledges.selectors import NATION_NAME
from territories.models import Department, Region


def _absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def _campaign_links(campaign: Campaign) -> dict[str, str]:
    slug = {"slug": campaign.slug}
    return {
        "campaign_url": _absolute(reverse("pledges:campaign_detail", kwargs=slug)),
        "pledge_mine_url": _absolute(reverse("pledges:pledge_mine", kwargs=slug)),
        "pledge_withdraw_url": _absolute(reverse("pledges:pledge_withdraw", kwargs=slug)),
    }


def territory_name(*, level: str, code: str) -> str:
    """The display name of a territory ("Ain", "Bretagne", "France"); the code if unknown."""
    if level == TerritoryLevel.NATION or code == NATION_CODE:
        return NATION_NAME
    model = Department if level == TerritoryLevel.DEPARTMENT else Region
    return model.objects.filter(code=code).values_list("name", flat=True).first() or code


def _reachable(pledges: Iterable[Pledge]) -> list[Pledge]:
    return [pledge for pledge in pledges if pledge.user_id is not None and pledge.emails_stopped_at is None]


def _queue(items: list[dict]) -> int:
    """Store one outbox row per item (deduplicated, stopped addresses skipped); returns rows created."""
    if not items:
        return 0
    return email_queue_many(EmailItem(**item) for item in items)


def _item(*, kind: str, pledge: Pledge, context: dict, dedupe_key: str) -> dict:
    return {
        "kind": kind,
        "recipient": pledge.user.email,
        "context": context,
        "dedupe_key": dedupe_key,
        # No language preference is stored yet: the site's first language.
        "language": settings.LANGUAGE_CODE,
        "user": pledge.user,
    }


def _round_context(*, round: ConfirmationRound, pledge: Pledge, name: str) -> dict:
    from pledges.rounds import round_link_token

    campaign = round.crossing.campaign
    token = round_link_token(round=round, pledge=pledge)
    return {
        "campaign": campaign,
        "territory_name": name,
        "ends_at": round.ends_at,
        "target": round.crossing.target_at_crossing,
        "confirm_url": _absolute(
            reverse("pledges:round_confirm_link", kwargs={"slug": campaign.slug, "token": token})
        ),
        **_campaign_links(campaign),
    }


def round_opened(*, round: ConfirmationRound, pledges: Iterable[Pledge]) -> int:
    """ "Your territory reached its threshold: confirm or decline by <date>" to each signer asked."""
    crossing = round.crossing
    name = territory_name(level=crossing.level, code=crossing.code)
    return _queue(
        [
            _item(
                kind="round_opened",
                pledge=pledge,
                context=_round_context(round=round, pledge=pledge, name=name),
                dedupe_key=f"round-opened:{round.pk}:{pledge.pk}",
            )
            for pledge in _reachable(pledges)
        ]
    )


def round_reminder(*, round: ConfirmationRound, pledges: Iterable[Pledge]) -> int:
    """Halfway through the round, to signers who have not answered yet."""
    crossing = round.crossing
    name = territory_name(level=crossing.level, code=crossing.code)
    return _queue(
        [
            _item(
                kind="round_reminder",
                pledge=pledge,
                context=_round_context(round=round, pledge=pledge, name=name),
                dedupe_key=f"round-reminder:{round.pk}:{pledge.pk}",
            )
            for pledge in _reachable(pledges)
        ]
    )


def round_result(*, round: ConfirmationRound, pledges: Iterable[Pledge], outcome: str) -> int:
    """How the round ended: `outcome` is "failed", "awaiting_approval" or "released".

    Each signer also learns what it means for them: whether they had confirmed.
    """
    crossing = round.crossing
    campaign = crossing.campaign
    name = territory_name(level=crossing.level, code=crossing.code)
    pledges = _reachable(pledges)
    answers = dict(round.responses.filter(pledge__in=pledges).values_list("pledge_id", "answer"))
    links = _campaign_links(campaign)
    return _queue(
        [
            _item(
                kind="round_result",
                pledge=pledge,
                context={
                    "campaign": campaign,
                    "territory_name": name,
                    "outcome": outcome,
                    "answer": answers.get(pledge.pk),
                    "confirmed_count": round.confirmed_count,
                    "target": crossing.target_at_crossing,
                    **links,
                },
                dedupe_key=f"round-result:{round.pk}:{pledge.pk}",
            )
            for pledge in pledges
        ]
    )


def milestone(*, notice: MilestoneNotice, pledges: Iterable[Pledge], target: int) -> int:
    """ "Your territory reached <percent> % of its threshold" to signers who want these emails."""
    campaign = notice.campaign
    name = territory_name(level=notice.level, code=notice.code)
    links = _campaign_links(campaign)
    return _queue(
        [
            _item(
                kind="milestone",
                pledge=pledge,
                context={
                    "campaign": campaign,
                    "territory_name": name,
                    "percent": notice.percent,
                    "target": target,
                    **links,
                },
                dedupe_key=f"milestone:{notice.pk}:{pledge.pk}",
            )
            for pledge in _reachable(pledges)
            if pledge.milestone_emails
        ]
    )


def campaign_expired(*, campaign: Campaign, pledges: Iterable[Pledge]) -> int:
    """The campaign closed before the signer's territory was released: nothing will be sent."""
    links = _campaign_links(campaign)
    purge_on = campaign.closes_at + timedelta(days=campaign.purge_after_days) if campaign.closes_at else None
    return _queue(
        [
            _item(
                kind="campaign_expired",
                pledge=pledge,
                context={
                    "campaign": campaign,
                    "territory_name": pledge.department.name,
                    "purge_on": purge_on,
                    **links,
                },
                dedupe_key=f"campaign-expired:{campaign.pk}:{pledge.pk}",
            )
            for pledge in _reachable(pledges)
        ]
    )
