import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from pledges.enums import (
    LIVE_STATUSES,
    ConventionSector,
    PledgeSource,
    PledgeStatus,
    PracticeMode,
    Specialty,
    VerificationStatus,
)


class Pledge(models.Model):
    """A physician's conditional pledge on one letter version of one campaign.

    Withdrawal and erasure keep the row (its status, campaign, department and dates: what the
    counts and the ledger need) and blank every personal field.
    """

    campaign = models.ForeignKey(
        "pledges.Campaign", on_delete=models.PROTECT, related_name="pledges", verbose_name=_("campaign")
    )
    letter_version = models.ForeignKey(
        "pledges.LetterVersion",
        on_delete=models.PROTECT,
        related_name="pledges",
        verbose_name=_("letter version"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="pledges",
        verbose_name=_("account"),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=PledgeStatus.choices, default=PledgeStatus.ACTIVE
    )
    source = models.CharField(
        _("source"), max_length=8, choices=PledgeSource.choices, default=PledgeSource.ONLINE
    )

    rpps = models.CharField(_("RPPS number"), max_length=11, blank=True)
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    specialty = models.CharField(_("specialty"), max_length=32, choices=Specialty.choices, blank=True)
    practice_mode = models.CharField(
        _("mode of practice"), max_length=16, choices=PracticeMode.choices, blank=True
    )
    sector = models.CharField(
        _("convention sector"), max_length=16, choices=ConventionSector.choices, blank=True
    )
    department = models.ForeignKey(
        "territories.Department",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("department of practice"),
    )
    caisse = models.ForeignKey(
        "territories.Caisse",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("caisse"),
    )
    practice_address = models.CharField(_("practice address"), max_length=200, blank=True)
    postal_code = models.CharField(_("postal code"), max_length=5, blank=True)
    city = models.CharField(_("city"), max_length=100, blank=True)
    patient_list_size = models.PositiveIntegerField(
        _("patients who chose you as médecin traitant"), null=True, blank=True
    )

    consented_pledge_at = models.DateTimeField(_("consent to the pledge"), null=True, blank=True)
    consented_data_at = models.DateTimeField(_("consent to data processing"), null=True, blank=True)
    signed_ip = models.GenericIPAddressField(_("IP address at signing"), null=True, blank=True)
    signed_user_agent = models.CharField(_("browser at signing"), max_length=300, blank=True)

    created_at = models.DateTimeField(_("signed at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    withdrawn_at = models.DateTimeField(_("withdrawn at"), null=True, blank=True)
    invalidated_at = models.DateTimeField(_("invalidated at"), null=True, blank=True)
    invalidation_reason = models.CharField(_("invalidation reason"), max_length=300, blank=True)

    # The signer's public receipt: lets them find their pledge in the ledger without revealing
    # who they are (pledges.ledger).
    receipt_id = models.UUIDField(_("receipt"), default=uuid.uuid4, unique=True, editable=False)
    release = models.ForeignKey(
        "pledges.Release",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="pledges",
        verbose_name=_("release"),
    )
    # Stop link in emails: honoured at once, for every email the law does not require.
    emails_stopped_at = models.DateTimeField(_("emails stopped at"), null=True, blank=True)
    milestone_emails = models.BooleanField(_("milestone emails"), default=True)

    # Moderation and verification (organizers).
    verification_status = models.CharField(
        _("verification"),
        max_length=16,
        choices=VerificationStatus.choices,
        default=VerificationStatus.UNVERIFIED,
    )
    verification_reason = models.CharField(_("verification detail"), max_length=200, blank=True)
    verified_at = models.DateTimeField(_("verified at"), null=True, blank=True)
    flagged = models.BooleanField(_("flagged"), default=False)
    flag_reason = models.CharField(_("flag reason"), max_length=300, blank=True)
    entered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("entered by (paper pledge)"),
    )

    class Meta:
        verbose_name = _("pledge")
        verbose_name_plural = _("pledges")
        constraints = [
            # One live pledge per physician and per account in a campaign; a withdrawn pledge
            # frees both, so the physician can sign again later.
            models.UniqueConstraint(
                fields=["campaign", "rpps"],
                # Purged pledges keep their status with a blank RPPS: those don't collide.
                condition=Q(status__in=LIVE_STATUSES) & ~Q(rpps=""),
                name="pledges_pledge_one_live_per_rpps",
            ),
            models.UniqueConstraint(
                fields=["campaign", "user"],
                condition=Q(status__in=LIVE_STATUSES),
                name="pledges_pledge_one_live_per_user",
            ),
            models.CheckConstraint(
                condition=Q(status__in=PledgeStatus.values), name="pledges_pledge_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["campaign", "status", "department"], name="pledges_pledge_counting"),
            models.Index(fields=["rpps"], name="pledges_pledge_rpps"),
            models.Index(fields=["campaign", "created_at"], name="pledges_pledge_created"),
        ]

    def __str__(self):
        return f"{self.campaign_id}/{self.pk} ({self.status})"


class RppsClaim(models.Model):
    """An RPPS number belongs to one account: a second account cannot pledge with it."""

    rpps = models.CharField(_("RPPS number"), max_length=11, unique=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="rpps_claim",
        verbose_name=_("account"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("RPPS claim")
        verbose_name_plural = _("RPPS claims")

    def __str__(self):
        return f"RPPS claim {self.pk}"
