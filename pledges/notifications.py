"""Emails about pledges, conditions, rounds and the campaign's end: one function per kind, via the outbox.

Each function stores one outbox row per recipient (deconv.outbox) under a dedupe key naming the
round (or milestone, campaign) and the pledge, so a job that runs twice queues each email once.
Call them inside the transaction that changes the state they announce: the rows then exist if
and only if the change committed.

The receipt of a pledge and the round invitations are queued unrendered: the request that signs
(and the crossing that opens a round to thousands of signers) only inserts rows, and the worker
renders each when it sends it, from the context builders at the end of this module, which read
the pledge and round named by the row's dedupe key.

Recipients are signers with an account who have not used the stop link (Pledge.emails_stopped_at):
none of these emails is required by law, and a signer who stopped emails still finds the round on
"Mon engagement". Paper pledges without an account are reached by the organizers.
"""

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import translation

from deconv.models import OutgoingEmail
from deconv.outbox import EmailItem, email_context_builder_register, email_queue_later, email_queue_many
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


def _queue(items: list[dict], *, render_later: bool = False) -> int:
    """Store one outbox row per item (deduplicated, stopped addresses skipped); returns rows created."""
    if not items:
        return 0
    return email_queue_many((EmailItem(**item) for item in items), render_later=render_later)


def _key_ids(dedupe_key: str) -> list[int]:
    """The ids a dedupe key names, in order: "round-opened:12:345" -> [12, 345]."""
    return [int(part) for part in dedupe_key.split(":")[1:]]


# --- "We have received your pledge" -------------------------------------------------------------


def pledge_received_key(pledge_id: int) -> str:
    # pledges.emails.pledge_withdrawn_queue cancels a receipt still waiting by this key.
    return f"pledge-received:{pledge_id}"


def pledge_received(*, pledge: Pledge) -> bool:
    """Once per pledge, in the signer's language; not when the account has no address.

    Queued unrendered in the signing transaction; True when a row was stored.
    """
    if pledge.user is None or not pledge.user.email:
        return False
    row = email_queue_later(
        kind="pledge_received",
        recipient=pledge.user.email,
        # The language the signer reads the site in, as the request chose it.
        language=translation.get_language() or settings.LANGUAGE_CODE,
        user=pledge.user,
        dedupe_key=pledge_received_key(pledge.pk),
    )
    return row is not None


def _pledge_received_contexts(rows: list[OutgoingEmail]) -> dict[int, dict | None]:
    pledge_ids = {row.pk: _key_ids(row.dedupe_key)[0] for row in rows}
    pledges = (
        Pledge.objects.select_related("campaign", "letter_version", "department")
        # What the templates and links read: rendered in the worker for each signature.
        .only(
            "campaign__title",
            "campaign__slug",
            "letter_version__number",
            "department__name",
            "department__code",
        )
        .in_bulk(set(pledge_ids.values()))
    )
    account_url = _absolute(reverse("pledges:account_overview"))
    links: dict[int, dict[str, str]] = {}
    contexts: dict[int, dict | None] = {}
    for row_id, pledge_id in pledge_ids.items():
        pledge = pledges.get(pledge_id)
        if pledge is None:
            contexts[row_id] = None
            continue
        if pledge.campaign_id not in links:
            links[pledge.campaign_id] = _campaign_links(pledge.campaign)
        contexts[row_id] = {
            "campaign": pledge.campaign,
            "letter_version_number": pledge.letter_version.number,
            "department": pledge.department,
            **links[pledge.campaign_id],
            "account_url": account_url,
        }
    return contexts


# --- Rounds ----------------------------------------------------------------------------------


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


def _round_context(
    *, round: ConfirmationRound, pledge: Pledge, name: str, links: dict[str, str] | None = None
) -> dict:
    """`links`: the campaign's _campaign_links, when the caller builds many contexts of one round."""
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
        **(links if links is not None else _campaign_links(campaign)),
    }


def round_opened(*, round: ConfirmationRound, pledges: Iterable[Pledge]) -> int:
    """ "Your territory reached its threshold: confirm or decline by <date>" to each signer asked.

    Queued unrendered (_round_opened_contexts renders them): the crossing that opens a round and a
    signer who joins it only insert rows.
    """
    return _queue(
        [
            _item(
                kind="round_opened",
                pledge=pledge,
                context={},
                dedupe_key=f"round-opened:{round.pk}:{pledge.pk}",
            )
            for pledge in _reachable(pledges)
        ],
        render_later=True,
    )


def round_opened_late(*, round: ConfirmationRound, pledge: Pledge) -> bool:
    """round_opened for one pledge created while its round is open; True when a row was stored.

    Same kind and dedupe key as the fan-out (a signer it also read is invited once), queued as
    the signing request's receipt is: one row, gathered with other requests' for the broker.
    """
    if not _reachable([pledge]):
        return False
    item = _item(
        kind="round_opened", pledge=pledge, context={}, dedupe_key=f"round-opened:{round.pk}:{pledge.pk}"
    )
    row = email_queue_later(
        kind=item["kind"],
        recipient=item["recipient"],
        dedupe_key=item["dedupe_key"],
        language=item["language"],
        user=item["user"],
    )
    return row is not None


def _round_opened_contexts(rows: list[OutgoingEmail]) -> dict[int, dict | None]:
    ids = {row.pk: _key_ids(row.dedupe_key) for row in rows}
    rounds = ConfirmationRound.objects.select_related("crossing__campaign").in_bulk(
        {round_id for round_id, _pledge_id in ids.values()}
    )
    # The link's token names the pledge by its id: nothing else of the row is read.
    pledges = Pledge.objects.only("pk").in_bulk({pledge_id for _round_id, pledge_id in ids.values()})
    names = {
        round.pk: territory_name(level=round.crossing.level, code=round.crossing.code)
        for round in rounds.values()
    }
    links = {round.pk: _campaign_links(round.crossing.campaign) for round in rounds.values()}
    contexts: dict[int, dict | None] = {}
    for row_id, (round_id, pledge_id) in ids.items():
        round, pledge = rounds.get(round_id), pledges.get(pledge_id)
        contexts[row_id] = (
            None
            if round is None or pledge is None
            else _round_context(round=round, pledge=pledge, name=names[round_id], links=links[round_id])
        )
    return contexts


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


email_context_builder_register("pledge_received", _pledge_received_contexts)
email_context_builder_register("round_opened", _round_opened_contexts)
