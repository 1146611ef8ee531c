"""Conditions per territory, the rounds that confirm them, and the releases they lead to.

A territory is identified by (level, code): a department or region code, "FR" for the nation.
The logic lives in pledges.conditions; these are the rows it reads and writes.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from pledges.enums import RoundAnswer, RoundOutcome, TerritoryLevel, TerritoryStatus


class ThresholdRule(models.Model):
    """A territory's condition: at least `min_count` signatures AND `min_share` % of its population.

    With a blank `territory_code` the rule is the default for its level; with a code it
    overrides that default for one territory.
    """

    campaign = models.ForeignKey(
        "pledges.Campaign",
        on_delete=models.CASCADE,
        related_name="threshold_rules",
        verbose_name=_("campaign"),
    )
    level = models.CharField(_("level"), max_length=16, choices=TerritoryLevel.choices)
    territory_code = models.CharField(
        _("territory code"),
        max_length=3,
        blank=True,
        help_text=_("Empty: the default for every territory of this level."),
    )
    min_count = models.PositiveIntegerField(_("minimum number of signatures"), default=0)
    min_share_percent = models.DecimalField(
        _("minimum share of the reference population (%)"), max_digits=5, decimal_places=2, default=0
    )
    min_departments_met = models.PositiveIntegerField(
        _("departments that must meet their condition"),
        null=True,
        blank=True,
        help_text=_("Region rules only: how many of the region's departments must meet their own condition."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("threshold rule")
        verbose_name_plural = _("threshold rules")
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "level", "territory_code"], name="pledges_thresholdrule_unique"
            ),
            models.CheckConstraint(
                condition=Q(min_share_percent__gte=0) & Q(min_share_percent__lte=100),
                name="pledges_thresholdrule_share_percent",
            ),
        ]

    def __str__(self):
        return f"{self.level} {self.territory_code or '*'}: {self.min_count} / {self.min_share_percent} %"


class TerritoryState(models.Model):
    """Where one territory of a campaign stands: collecting, confirming, released or expired."""

    campaign = models.ForeignKey(
        "pledges.Campaign",
        on_delete=models.CASCADE,
        related_name="territory_states",
        verbose_name=_("campaign"),
    )
    level = models.CharField(_("level"), max_length=16, choices=TerritoryLevel.choices)
    code = models.CharField(_("code"), max_length=3)
    status = models.CharField(
        _("status"), max_length=20, choices=TerritoryStatus.choices, default=TerritoryStatus.COLLECTING
    )
    round_number = models.PositiveIntegerField(_("rounds opened"), default=0)
    released_at = models.DateTimeField(_("released at"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("territory state")
        verbose_name_plural = _("territory states")
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "level", "code"], name="pledges_territorystate_unique"
            ),
        ]

    def __str__(self):
        return f"{self.campaign_id} {self.level} {self.code}: {self.status}"


class Crossing(models.Model):
    """The moment a territory met its condition: exactly once per territory and round."""

    campaign = models.ForeignKey(
        "pledges.Campaign", on_delete=models.CASCADE, related_name="crossings", verbose_name=_("campaign")
    )
    level = models.CharField(_("level"), max_length=16, choices=TerritoryLevel.choices)
    code = models.CharField(_("code"), max_length=3)
    round_number = models.PositiveIntegerField(_("round"))
    crossed_at = models.DateTimeField(_("crossed at"))
    count_at_crossing = models.PositiveIntegerField(_("signatures at the crossing"))
    target_at_crossing = models.PositiveIntegerField(_("target at the crossing"))
    national_count_at_crossing = models.PositiveIntegerField(_("national total at the crossing"))

    class Meta:
        verbose_name = _("crossing")
        verbose_name_plural = _("crossings")
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "level", "code", "round_number"], name="pledges_crossing_once_per_round"
            ),
        ]

    def __str__(self):
        return f"{self.campaign_id} {self.level} {self.code} round {self.round_number}"


class ConfirmationRound(models.Model):
    """Signatories of a crossed territory confirm they still take part before anything is sent."""

    crossing = models.OneToOneField(
        Crossing, on_delete=models.CASCADE, related_name="confirmation_round", verbose_name=_("crossing")
    )
    opened_at = models.DateTimeField(_("opened at"))
    ends_at = models.DateTimeField(_("ends at"))
    reminder_sent_at = models.DateTimeField(_("reminder sent at"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    outcome = models.CharField(
        _("outcome"), max_length=16, choices=RoundOutcome.choices, default=RoundOutcome.OPEN
    )
    confirmed_count = models.PositiveIntegerField(_("confirmed signatures at closing"), null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("approved by"),
    )
    approved_at = models.DateTimeField(_("approved at"), null=True, blank=True)

    class Meta:
        verbose_name = _("confirmation round")
        verbose_name_plural = _("confirmation rounds")
        indexes = [models.Index(fields=["outcome", "ends_at"], name="pledges_round_open_ends")]

    def __str__(self):
        return f"round {self.crossing}"


class RoundResponse(models.Model):
    """A signatory's answer in a round; answering again replaces the answer."""

    round = models.ForeignKey(
        ConfirmationRound, on_delete=models.CASCADE, related_name="responses", verbose_name=_("round")
    )
    pledge = models.ForeignKey(
        "pledges.Pledge", on_delete=models.CASCADE, related_name="round_responses", verbose_name=_("pledge")
    )
    answer = models.CharField(_("answer"), max_length=16, choices=RoundAnswer.choices)
    answered_at = models.DateTimeField(_("answered at"))

    class Meta:
        verbose_name = _("round response")
        verbose_name_plural = _("round responses")
        constraints = [
            models.UniqueConstraint(fields=["round", "pledge"], name="pledges_roundresponse_once"),
        ]

    def __str__(self):
        return f"{self.pledge_id} {self.answer}"


class Release(models.Model):
    """The durable hand-off from a released territory to the letters and emails pipeline.

    Created in the same transaction as the territory's change to released, so a crash between
    the two loses nothing; the pipeline marks `letters_done_at` / `emails_done_at` when finished.
    """

    campaign = models.ForeignKey(
        "pledges.Campaign", on_delete=models.PROTECT, related_name="releases", verbose_name=_("campaign")
    )
    level = models.CharField(_("level"), max_length=16, choices=TerritoryLevel.choices)
    code = models.CharField(_("code"), max_length=3)
    round = models.OneToOneField(
        ConfirmationRound,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="release",
        verbose_name=_("round"),
    )
    released_at = models.DateTimeField(_("released at"))
    pledge_count = models.PositiveIntegerField(_("released signatures"))
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("approved by"),
    )
    letters_done_at = models.DateTimeField(_("letters generated at"), null=True, blank=True)
    emails_done_at = models.DateTimeField(_("emails queued at"), null=True, blank=True)

    class Meta:
        verbose_name = _("release")
        verbose_name_plural = _("releases")
        constraints = [
            # Release is irreversible and happens once per territory.
            models.UniqueConstraint(fields=["campaign", "level", "code"], name="pledges_release_once"),
        ]

    def __str__(self):
        return f"{self.campaign_id} {self.level} {self.code} released {self.released_at:%Y-%m-%d}"


class MilestoneNotice(models.Model):
    """A milestone (25, 50, 75, 100 % of a territory's target) announced at most once."""

    campaign = models.ForeignKey(
        "pledges.Campaign", on_delete=models.CASCADE, related_name="+", verbose_name=_("campaign")
    )
    level = models.CharField(_("level"), max_length=16, choices=TerritoryLevel.choices)
    code = models.CharField(_("code"), max_length=3)
    percent = models.PositiveSmallIntegerField(_("percent of target"))
    reached_at = models.DateTimeField(_("reached at"))

    class Meta:
        verbose_name = _("milestone")
        verbose_name_plural = _("milestones")
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "level", "code", "percent"], name="pledges_milestone_once"
            ),
        ]

    def __str__(self):
        return f"{self.level} {self.code} {self.percent} %"
