"""Who may see what, and the organizers' long-running work (directory imports, bulk invalidations)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from pledges.enums import BundleStatus, OrganizerRoleKind


class OrganizerRole(models.Model):
    """An organizer's role in one campaign (or every campaign), scoped to a territory.

    National organizers and observers see the whole country; a regional delegate sees the
    departments of `territory_code` (a region code); a departmental delegate one department.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="organizer_roles",
        verbose_name=_("account"),
    )
    campaign = models.ForeignKey(
        "pledges.Campaign",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="organizer_roles",
        verbose_name=_("campaign"),
        help_text=_("Empty: every campaign."),
    )
    kind = models.CharField(_("role"), max_length=16, choices=OrganizerRoleKind.choices)
    territory_code = models.CharField(
        _("territory code"),
        max_length=3,
        blank=True,
        help_text=_("Region code for a regional delegate, department code for a departmental delegate."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("organizer role")
        verbose_name_plural = _("organizer roles")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "campaign", "kind", "territory_code"], name="pledges_organizerrole_unique"
            ),
            # Delegates need a territory; national organizers and observers must not have one.
            models.CheckConstraint(
                condition=(Q(kind__in=["regional", "departmental"]) & ~Q(territory_code=""))
                | (Q(kind__in=["national", "observer"]) & Q(territory_code="")),
                name="pledges_organizerrole_territory_matches_kind",
            ),
        ]

    def __str__(self):
        return f"{self.user} {self.kind} {self.territory_code}".strip()


class DirectoryImport(models.Model):
    """One upload of the ANS RPPS directory (PS_LibreAcces_Personne_activite), imported by a task."""

    file_name = models.CharField(_("file"), max_length=200)
    stored_path = models.CharField(_("stored at"), max_length=300, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=BundleStatus.choices, default=BundleStatus.QUEUED
    )
    bytes_total = models.PositiveBigIntegerField(_("size (bytes)"), default=0)
    bytes_done = models.PositiveBigIntegerField(_("bytes read"), default=0)
    rows_read = models.PositiveIntegerField(_("rows read"), default=0)
    physicians_kept = models.PositiveIntegerField(_("physicians kept"), default=0)
    error = models.TextField(_("error"), blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("uploaded by"),
    )
    created_at = models.DateTimeField(_("uploaded at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("directory import")
        verbose_name_plural = _("directory imports")

    def __str__(self):
        return self.file_name


class DirectoryEntry(models.Model):
    """What verification needs from the directory about one RPPS, and nothing more."""

    rpps = models.CharField(_("RPPS number"), max_length=11, unique=True)
    last_name = models.CharField(_("last name"), max_length=100)
    first_name = models.CharField(_("first name"), max_length=100)
    profession_code = models.CharField(_("profession code"), max_length=4)
    is_liberal = models.BooleanField(_("liberal practice"))
    is_general_practice = models.BooleanField(_("general practice"))
    # Every department where the physician has an activity (one row per activity in the file).
    department_codes = models.JSONField(_("departments of practice"), default=list)
    directory_import = models.ForeignKey(
        DirectoryImport, on_delete=models.SET_NULL, null=True, related_name="+", verbose_name=_("import")
    )

    class Meta:
        verbose_name = _("directory entry")
        verbose_name_plural = _("directory entries")

    def __str__(self):
        return self.rpps


class BulkInvalidation(models.Model):
    """Invalidating every pledge that matches a rule, after a preview; cancellable while it runs."""

    campaign = models.ForeignKey(
        "pledges.Campaign", on_delete=models.CASCADE, related_name="+", verbose_name=_("campaign")
    )
    # {"email_domain": ..., "ip_network": ..., "created_from": ..., "created_to": ..., "department": ...}
    rule = models.JSONField(_("rule"))
    reason = models.CharField(_("reason"), max_length=300)
    preview_count = models.PositiveIntegerField(_("matching pledges at preview"))
    status = models.CharField(
        _("status"), max_length=16, choices=BundleStatus.choices, default=BundleStatus.QUEUED
    )
    progress_done = models.PositiveIntegerField(_("pledges invalidated"), default=0)
    cancel_requested_at = models.DateTimeField(_("cancellation requested at"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+", verbose_name=_("by")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("bulk invalidation")
        verbose_name_plural = _("bulk invalidations")

    def __str__(self):
        return f"{self.reason} ({self.preview_count})"


class ExportJob(models.Model):
    """A CSV or XLSX export of the pledges in an organizer's scope, built by a task."""

    campaign = models.ForeignKey(
        "pledges.Campaign", on_delete=models.CASCADE, related_name="+", verbose_name=_("campaign")
    )
    file_format = models.CharField(_("format"), max_length=8)
    scope = models.JSONField(_("scope"), default=dict)
    status = models.CharField(
        _("status"), max_length=16, choices=BundleStatus.choices, default=BundleStatus.QUEUED
    )
    progress_done = models.PositiveIntegerField(_("rows written"), default=0)
    progress_total = models.PositiveIntegerField(_("rows to write"), default=0)
    file_name = models.CharField(_("file"), max_length=200, blank=True)
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
        verbose_name = _("export")
        verbose_name_plural = _("exports")

    def __str__(self):
        return self.file_name or f"export {self.pk}"
