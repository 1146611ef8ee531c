from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DeconvConfig(AppConfig):
    name = "deconv"
    verbose_name = _("Accounts and platform")

    def ready(self):
        from deconv import checks  # noqa: F401  (registers the system checks)
