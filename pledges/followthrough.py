"""What happens after a letter is released: sent, acknowledged, effective; reminders; the funnel.

The physician reports two dates on "Mon engagement": when they posted the registered letter and
the date on the acknowledgement of receipt. Leaving the convention takes effect one month after
the caisse received the letter (Letter.effective_on). The platform cannot see the post: these
are the signer's statements, and the funnel counts them as such.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from dateutil.relativedelta import relativedelta
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from pledges.counting import NATION_CODE
from pledges.enums import COUNTED_STATUSES, LetterStatus, PledgeStatus, RoundAnswer, TerritoryLevel
from pledges.letters import caisse_address_lines, french_date
from pledges.letters_pipeline import letter_download_url, release_letter_date
from pledges.models import Campaign, Letter, Pledge, RoundResponse

# --- Recording what the signer did ---------------------------------------------------------------


def followthrough_validate_sent(*, letter: Letter, sent_on: date, today: date | None = None) -> None:
    """A letter is posted after it was released and not in the future."""
    today = today or timezone.localdate()
    if sent_on > today:
        raise ValidationError(_("The date cannot be in the future."), code="future")
    if sent_on < release_letter_date(release=letter.release):
        raise ValidationError(
            _("The letter cannot have been sent before it was released."), code="before_release"
        )
    if letter.acknowledged_on is not None and sent_on > letter.acknowledged_on:
        raise ValidationError(
            _("The letter cannot have been sent after the date of its acknowledgement of receipt."),
            code="after_acknowledgement",
        )


def followthrough_validate_acknowledged(
    *, letter: Letter, acknowledged_on: date, today: date | None = None
) -> None:
    """The acknowledgement of receipt comes after sending and not in the future."""
    today = today or timezone.localdate()
    if letter.sent_on is None:
        raise ValidationError(_("Report first that you have sent your letter."), code="not_sent")
    if acknowledged_on > today:
        raise ValidationError(_("The date cannot be in the future."), code="future")
    if acknowledged_on < letter.sent_on:
        raise ValidationError(
            _("The acknowledgement of receipt cannot be dated before the letter was sent."),
            code="before_sent",
        )


def letter_sent_record(*, letter: Letter, sent_on: date, registered_mail_number: str = "") -> Letter:
    """The signer posted their letter: the date and, optionally, the registered-mail number.

    Side effects: sent_on and registered_mail_number stored; status sent (from generated; an
    acknowledged letter keeps its status, only the date is corrected). From then on the letter
    is never regenerated. Raises ValidationError for an impossible date.
    """
    with transaction.atomic():
        locked = Letter.objects.select_for_update().select_related("release").get(pk=letter.pk)
        followthrough_validate_sent(letter=locked, sent_on=sent_on)
        locked.sent_on = sent_on
        locked.registered_mail_number = registered_mail_number.strip()
        if locked.status == LetterStatus.GENERATED:
            locked.status = LetterStatus.SENT
        locked.save(update_fields=["sent_on", "registered_mail_number", "status"])
    return locked


def letter_acknowledged_record(*, letter: Letter, acknowledged_on: date) -> Letter:
    """The signer received the acknowledgement of receipt: its date sets the effective date.

    Side effects: acknowledged_on stored; status acknowledged. Raises ValidationError for a date
    before sending, in the future, or when sending was not reported.
    """
    with transaction.atomic():
        locked = Letter.objects.select_for_update().select_related("release").get(pk=letter.pk)
        followthrough_validate_acknowledged(letter=locked, acknowledged_on=acknowledged_on)
        locked.acknowledged_on = acknowledged_on
        locked.status = LetterStatus.ACKNOWLEDGED
        locked.save(update_fields=["acknowledged_on", "status"])
    return locked


class _DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self):
        # ISO: what <input type="date"> sends whatever the browser's language.
        super().__init__(format="%Y-%m-%d")


class LetterSentForm(forms.Form):
    sent_on = forms.DateField(label=_("Date you posted the letter"), widget=_DateInput())
    registered_mail_number = forms.CharField(
        label=_("Registered mail number (optional)"),
        max_length=40,
        required=False,
        help_text=_("The number on the registered-mail receipt, e.g. 1A 234 567 8901 2."),
    )

    def __init__(self, *args, letter: Letter, **kwargs):
        self.letter = letter
        super().__init__(*args, **kwargs)

    def clean_sent_on(self):
        sent_on = self.cleaned_data["sent_on"]
        followthrough_validate_sent(letter=self.letter, sent_on=sent_on)
        return sent_on


class LetterAcknowledgedForm(forms.Form):
    acknowledged_on = forms.DateField(
        label=_("Date on the acknowledgement of receipt"),
        widget=_DateInput(),
        help_text=_(
            "The date the caisse received your letter, as written on the acknowledgement of receipt."
        ),
    )

    def __init__(self, *args, letter: Letter, **kwargs):
        self.letter = letter
        super().__init__(*args, **kwargs)

    def clean_acknowledged_on(self):
        acknowledged_on = self.cleaned_data["acknowledged_on"]
        followthrough_validate_acknowledged(letter=self.letter, acknowledged_on=acknowledged_on)
        return acknowledged_on


def effective_date_text(*, letter: Letter) -> str:
    """ "1er mars 2026": the effective date as written in French, empty before the acknowledgement."""
    effective_on = letter.effective_on
    return french_date(effective_on) if effective_on else ""


# --- Reminders -----------------------------------------------------------------------------------


def followup_candidate_letters():
    """Letters whose sending is not reported and that were never reminded (followup_remind checks the delay)."""
    return (
        Letter.objects.filter(
            status=LetterStatus.GENERATED,
            sent_on__isnull=True,
            followup_reminded_at__isnull=True,
            pledge__status=PledgeStatus.RELEASED,
            pledge__user__isnull=False,
            # A signer who asked for no more emails from this campaign gets no reminder.
            pledge__emails_stopped_at__isnull=True,
        )
        .select_related("release__campaign", "pledge__user", "pledge__caisse")
        .order_by("pk")
    )


def followup_remind(*, now=None) -> int:
    """Queue one followup_reminder per due letter, at most once ever; returns how many were queued.

    Each letter is claimed by a conditional UPDATE of followup_reminded_at, in the same
    transaction as its outbox row: two concurrent runs never both remind, and a crash undoes
    both. The dedupe key followup_reminder:<letter id> is a second guard in the outbox.
    """
    from deconv.outbox import email_queue

    now = now or timezone.now()
    queued = 0
    for letter in followup_candidate_letters().iterator(chunk_size=500):
        campaign = letter.release.campaign
        # Per campaign, so compared here rather than in SQL (no portable interval arithmetic).
        if letter.release.released_at > now - timedelta(days=campaign.followup_reminder_days):
            continue
        with transaction.atomic():
            if not Letter.objects.filter(pk=letter.pk, followup_reminded_at__isnull=True).update(
                followup_reminded_at=now
            ):
                continue
            pledge = letter.pledge
            email_queue(
                kind="followup_reminder",
                recipient=pledge.user.email,
                user=pledge.user,
                dedupe_key=f"followup_reminder:{letter.pk}",
                context={
                    "campaign_title": campaign.title,
                    "caisse_name": pledge.caisse.name if pledge.caisse else "",
                    "caisse_address_lines": caisse_address_lines(pledge.caisse),
                    "download_url": letter_download_url(letter=letter),
                    "pledge_mine_url": settings.SITE_URL
                    + reverse("pledges:pledge_mine", kwargs={"slug": campaign.slug}),
                },
            )
            queued += 1
    return queued


# --- The funnel ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Funnel:
    pledged: int = 0
    confirmed: int = 0
    released: int = 0
    sent: int = 0
    acknowledged: int = 0
    effective: int = 0

    def __add__(self, other: "Funnel") -> "Funnel":
        return Funnel(
            **{name: getattr(self, name) + getattr(other, name) for name in self.__dataclass_fields__}
        )


def _latest_effective_acknowledgement(today: date) -> date:
    """The latest acknowledgement date whose effective date (ack + 1 month) is on or before `today`.

    ack + relativedelta(months=1) never decreases as ack grows, so "effective by today" is
    "ack <= this date", which SQL can compare directly (31 January + 1 month = 28/29 February
    would not survive SQL date arithmetic, which differs between PostgreSQL and SQLite).
    """
    candidate = today - relativedelta(months=1)
    while candidate + timedelta(days=1) + relativedelta(months=1) <= today:
        candidate += timedelta(days=1)
    return candidate


def release_funnel(*, campaign: Campaign, today: date | None = None) -> dict[tuple[str, str], Funnel]:
    """Per territory (department, region, nation): pledged, confirmed, released, sent, acknowledged, effective.

    One aggregate query over the pledges, grouped by department; regions and the nation are
    sums of their departments. Pledged counts the counted statuses (active, released, expired);
    confirmed, those that confirmed in a round or were released (a campaign may release without
    a round); sent and acknowledged are what released signers reported; effective, those whose
    acknowledgement is a month old or more.
    """
    today = today or timezone.localdate()
    effective_until = _latest_effective_acknowledgement(today)
    confirmed_in_round = RoundResponse.objects.filter(pledge=OuterRef("pk"), answer=RoundAnswer.CONFIRMED)
    released = Q(status=PledgeStatus.RELEASED)
    rows = (
        Pledge.objects.filter(campaign=campaign, status__in=COUNTED_STATUSES)
        .values("department__code", "department__region__code")
        .annotate(
            pledged=Count("pk"),
            confirmed=Count("pk", filter=released | Q(Exists(confirmed_in_round))),
            released=Count("pk", filter=released),
            sent=Count("pk", filter=released & Q(letter__sent_on__isnull=False)),
            acknowledged=Count("pk", filter=released & Q(letter__acknowledged_on__isnull=False)),
            effective=Count("pk", filter=released & Q(letter__acknowledged_on__lte=effective_until)),
        )
        .order_by()
    )
    totals: dict[tuple[str, str], Funnel] = defaultdict(Funnel)
    for row in rows:
        funnel = Funnel(
            pledged=row["pledged"],
            confirmed=row["confirmed"],
            released=row["released"],
            sent=row["sent"],
            acknowledged=row["acknowledged"],
            effective=row["effective"],
        )
        for key in (
            (TerritoryLevel.DEPARTMENT.value, row["department__code"]),
            (TerritoryLevel.REGION.value, row["department__region__code"]),
            (TerritoryLevel.NATION.value, NATION_CODE),
        ):
            totals[key] += funnel
    return dict(totals)
