from django.db import models
from django.utils.translation import gettext_lazy as _


class CaisseKind(models.TextChoices):
    """The three kinds of fund a physician writes to (CSS art. R.162-54-9)."""

    CPAM = "cpam", _("CPAM (primary health-insurance fund)")
    CGSS = "cgss", _("CGSS (general social security fund, overseas)")
    CSSM = "cssm", _("CSSM (Mayotte social security fund)")


class PopulationKind(models.TextChoices):
    LIBERAL_GPS = "liberal_gps", _("liberal GPs (excluding MEP)")
    LIBERAL_PHYSICIANS = "liberal_physicians", _("all liberal physicians")
