"""Released letters, their follow-through, and the escrow bundles organizers hand the bailiff."""

from datetime import date

from dateutil.relativedelta import relativedelta
from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from pledges.enums import BundleStatus, LetterStatus


class Letter(models.Model):
    """The PDF a released signatory prints, signs and posts: one per pledge, generated once.

    Stored under PRIVATE_MEDIA_ROOT; `inputs_sha256` covers what the PDF was made from, so a
    change before sending (and only then) regenerates it.
    """

    pledge = models.OneToOneField(
        "pledges.Pledge", on_delete=models.CASCADE, related_name="letter", verbose_name=_("pledge")
    )
    release = models.ForeignKey(
        "pledges.Release", on_delete=models.PROTECT, related_name="letters", verbose_name=_("release")
    )
    status = models.CharField(
        _("status"), max_length=16, choices=LetterStatus.choices, default=LetterStatus.GENERATED
    )
    file_name = models.CharField(_("file"), max_length=200)
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    inputs_sha256 = models.CharField(_("SHA-256 of the inputs"), max_length=64)
    size_bytes = models.PositiveIntegerField(_("size (bytes)"))
    generated_at = models.DateTimeField(_("generated at"))
    # Follow-through, reported by the signer.
    sent_on = models.DateField(_("sent on"), null=True, blank=True)
    registered_mail_number = models.CharField(_("registered mail number"), max_length=40, blank=True)
    acknowledged_on = models.DateField(_("acknowledgement of receipt dated"), null=True, blank=True)
    followup_reminded_at = models.DateTimeField(_("follow-up reminder sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("letter")
        verbose_name_plural = _("letters")

    def __str__(self):
        return self.file_name

    @property
    def effective_on(self) -> date | None:
        """Leaving the convention takes effect one month after the caisse receives the letter."""
        if self.acknowledged_on is None:
            return None
        return self.acknowledged_on + relativedelta(months=1)


class EscrowBundle(models.Model):
    """A ZIP of a release's letters with a manifest, built by a task for the bailiff."""

    release = models.ForeignKey(
        "pledges.Release", on_delete=models.PROTECT, related_name="bundles", verbose_name=_("release")
    )
    status = models.CharField(
        _("status"), max_length=16, choices=BundleStatus.choices, default=BundleStatus.QUEUED
    )
    progress_done = models.PositiveIntegerField(_("letters added"), default=0)
    progress_total = models.PositiveIntegerField(_("letters to add"), default=0)
    file_name = models.CharField(_("file"), max_length=200, blank=True)
    sha256 = models.CharField(_("SHA-256"), max_length=64, blank=True)
    error = models.TextField(_("error"), blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("requested by"),
    )
    created_at = models.DateTimeField(_("requested at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("escrow bundle")
        verbose_name_plural = _("escrow bundles")

    def __str__(self):
        return self.file_name or f"bundle {self.pk}"
