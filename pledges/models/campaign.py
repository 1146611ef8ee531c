from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from pledges import letter_text
from pledges.enums import (
    CampaignStatus,
    PracticeMode,
    Profession,
    ReferencePopulationKind,
    Specialty,
    TerritoryLevel,
)
from pledges.validators import ChoiceListValidator


def default_professions() -> list[str]:
    return [Profession.PHYSICIAN]


def default_practice_modes() -> list[str]:
    return [PracticeMode.LIBERAL, PracticeMode.MIXED]


class Campaign(models.Model):
    slug = models.SlugField(_("slug"), max_length=80, unique=True)
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT
    )
    opens_at = models.DateTimeField(_("opens at"), null=True, blank=True)
    closes_at = models.DateTimeField(_("closes at"), null=True, blank=True)
    eligible_professions = models.JSONField(
        _("eligible professions"),
        default=default_professions,
        validators=[ChoiceListValidator(Profession)],
    )
    eligible_specialties = models.JSONField(
        _("eligible specialties"),
        default=list,
        blank=True,
        validators=[ChoiceListValidator(Specialty)],
        help_text=_("Leave empty to accept every specialty."),
    )
    eligible_practice_modes = models.JSONField(
        _("eligible practice modes"),
        default=default_practice_modes,
        validators=[ChoiceListValidator(PracticeMode)],
    )
    reference_population_kind = models.CharField(
        _("reference population"),
        max_length=32,
        choices=ReferencePopulationKind.choices,
        default=ReferencePopulationKind.LIBERAL_PHYSICIANS,
        help_text=_("The population each territory's threshold is a share of."),
    )
    # --- Conditions and release (pledges.conditions). Thresholds are ThresholdRule rows. ---
    release_level = models.CharField(
        _("release level"),
        max_length=16,
        choices=TerritoryLevel.choices,
        default=TerritoryLevel.DEPARTMENT,
        help_text=_("The territories whose signatories are released together: departments by default."),
    )
    national_gate_min_total = models.PositiveIntegerField(
        _("national gate: minimum national total"),
        default=0,
        help_text=_("No territory is released before the national total reaches this number (0: no gate)."),
    )
    confirmation_round = models.BooleanField(
        _("confirmation round"),
        default=True,
        help_text=_("Ask the signatories of a territory that meets its condition to confirm before release."),
    )
    round_days = models.PositiveIntegerField(_("length of a confirmation round (days)"), default=14)
    early_release = models.BooleanField(
        _("early release"),
        default=False,
        help_text=_("Release as soon as enough signatories have confirmed, before the round ends."),
    )
    approval_required = models.BooleanField(
        _("organizer approval required"),
        default=False,
        help_text=_("A successful round waits for an organizer's approval before release."),
    )
    milestone_emails = models.BooleanField(
        _("milestone emails"),
        default=True,
        help_text=_("Tell signatories at 25, 50, 75 and 100 % of the target."),
    )
    purge_after_days = models.PositiveIntegerField(_("purge personal data after closing (days)"), default=183)
    followup_reminder_days = models.PositiveIntegerField(
        _("remind to report the letter sent after (days)"), default=10
    )
    purged_at = models.DateTimeField(_("personal data purged at"), null=True, blank=True, editable=False)

    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        constraints = [
            models.CheckConstraint(
                condition=Q(closes_at__isnull=True)
                | Q(opens_at__isnull=True)
                | Q(closes_at__gt=F("opens_at")),
                name="pledges_campaign_closes_after_opens",
                violation_error_code="closes_before_opens",
                violation_error_message=_("The closing date must be after the opening date."),
            ),
            models.CheckConstraint(
                condition=Q(status__in=CampaignStatus.values),
                name="pledges_campaign_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(reference_population_kind__in=ReferencePopulationKind.values),
                name="pledges_campaign_reference_population_kind_valid",
            ),
        ]

    def __str__(self):
        return self.title

    @property
    def current_letter_version(self) -> "LetterVersion | None":
        # Not cached: the admin creates a version and re-reads it on the same instance.
        return self.letter_versions.order_by("-number").first()

    @property
    def is_open_for_signing(self) -> bool:
        now = timezone.now()
        return (
            self.status == CampaignStatus.OPEN
            and (self.opens_at is None or self.opens_at <= now)
            and (self.closes_at is None or now < self.closes_at)
        )


class LetterVersionImmutableError(Exception):
    """A letter version is evidence of what physicians signed: it is never changed nor deleted."""


class LetterVersion(models.Model):
    """One immutable text of a campaign's letter; editing the letter creates the next version.

    `body` may contain the placeholders documented in pledges.letter_text.
    """

    # PROTECT: pledges will point at the version they signed; a campaign with a letter stays.
    campaign = models.ForeignKey(
        Campaign, on_delete=models.PROTECT, related_name="letter_versions", verbose_name=_("campaign")
    )
    number = models.PositiveIntegerField(_("version"))
    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("letter text"), validators=[letter_text.validate_placeholders])
    legal_basis = models.TextField(_("legal basis"), blank=True, default=letter_text.default_legal_basis)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    content_sha256 = models.CharField(_("content SHA-256"), max_length=64, editable=False)

    class Meta:
        verbose_name = _("letter version")
        verbose_name_plural = _("letter versions")
        ordering = ["campaign_id", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "number"], name="pledges_letterversion_unique_number"
            ),
            models.CheckConstraint(condition=Q(number__gte=1), name="pledges_letterversion_number_positive"),
        ]

    def __str__(self):
        return f"{self.campaign} — v{self.number}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise LetterVersionImmutableError(
                f"Letter version {self.pk} is immutable: create a new version with letter_version_create()."
            )
        # Recomputed here rather than trusted from the caller: the hash must match the stored text.
        self.content_sha256 = self.compute_content_sha256()
        # force_insert: an instance built with the pk of an existing row must not overwrite it.
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise LetterVersionImmutableError(f"Letter version {self.pk} cannot be deleted.")

    def compute_content_sha256(self) -> str:
        return letter_text.content_sha256(title=self.title, body=self.body, legal_basis=self.legal_basis)
