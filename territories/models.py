"""Regions, departments, the caisses physicians write to, and reference populations."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from territories.enums import CaisseKind, PopulationKind


class Region(models.Model):
    code = models.CharField(_("INSEE code"), max_length=2, unique=True)
    name = models.CharField(_("name"), max_length=100)
    is_overseas = models.BooleanField(_("overseas"), default=False)

    class Meta:
        ordering = ["code"]
        verbose_name = _("region")
        verbose_name_plural = _("regions")

    def __str__(self):
        return self.name


class Department(models.Model):
    code = models.CharField(
        _("INSEE code"),
        max_length=3,
        unique=True,
        help_text=_("01 to 95 with 2A and 2B for Corsica, 971 to 976 overseas."),
    )
    name = models.CharField(_("name"), max_length=100)
    region = models.ForeignKey(
        Region, on_delete=models.PROTECT, related_name="departments", verbose_name=_("region")
    )
    is_overseas = models.BooleanField(_("overseas"), default=False)
    # Codes do not sort as text or as numbers ("2A", "2B" belong between 19 and 21).
    position = models.PositiveSmallIntegerField(
        _("position"), help_text=_("Rank in the official list: 2A and 2B come between 19 and 21.")
    )

    class Meta:
        ordering = ["position"]
        verbose_name = _("department")
        verbose_name_plural = _("departments")

    def __str__(self):
        return f"{self.name} ({self.code})"


class Caisse(models.Model):
    """The fund that receives a physician's letter: CPAM, or CGSS/CSSM overseas."""

    department = models.ForeignKey(
        Department, on_delete=models.PROTECT, related_name="caisses", verbose_name=_("department")
    )
    code = models.SlugField(_("code"), max_length=80, unique=True)
    kind = models.CharField(_("kind"), max_length=4, choices=CaisseKind.choices)
    name = models.CharField(
        _("name"),
        max_length=200,
        help_text=_(
            "Loaded from seeds/caisses.csv until an organizer corrects it here; their correction is kept."
        ),
    )
    # Several names in the reference are unverified: an organizer's correction must survive
    # every load_territories run, while seed corrections still reach untouched rows.
    name_edited_by_organizer = models.BooleanField(
        _("name corrected by an organizer"), default=False, editable=False
    )
    # No published list of postal addresses was found: organizers fill and verify them.
    address_line1 = models.CharField(_("address line 1"), max_length=200, blank=True)
    address_line2 = models.CharField(_("address line 2"), max_length=200, blank=True)
    postal_code = models.CharField(_("postal code"), max_length=10, blank=True)
    city = models.CharField(_("city"), max_length=100, blank=True)
    address_verified = models.BooleanField(
        _("address verified"),
        default=False,
        help_text=_("Tick once an organizer has checked the postal address with the caisse."),
    )
    notes = models.TextField(
        _("notes"), blank=True, help_text=_("Where the name comes from and whether it was verified.")
    )

    class Meta:
        ordering = ["department__position", "code"]
        verbose_name = _("caisse")
        verbose_name_plural = _("caisses")

    def __str__(self):
        return self.name


class ReferencePopulation(models.Model):
    """How many physicians of a kind practise in a department: the denominator of a threshold."""

    department = models.ForeignKey(
        Department,
        on_delete=models.CASCADE,
        related_name="reference_populations",
        verbose_name=_("department"),
    )
    kind = models.CharField(_("kind"), max_length=32, choices=PopulationKind.choices)
    year = models.PositiveSmallIntegerField(_("year"), help_text=_("Physicians active on 31 December."))
    count = models.PositiveIntegerField(_("count"))
    source = models.CharField(
        _("source"),
        max_length=255,
        help_text=_(
            "Where the figure comes from. Loading the seeds replaces only figures with the seed's source."
        ),
    )

    class Meta:
        ordering = ["department__position", "kind", "-year"]
        verbose_name = _("reference population")
        verbose_name_plural = _("reference populations")
        constraints = [
            models.UniqueConstraint(
                fields=["department", "kind", "year"],
                name="territories_refpop_one_per_department_kind_year",
            )
        ]

    def __str__(self):
        return f"{self.get_kind_display()}, {self.year}: {self.count}"
