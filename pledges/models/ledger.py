"""A tamper-evident log of pledge events: each entry's hash covers the previous entry's hash.

No personal data goes in: a pledge appears only through its random receipt id.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class LedgerEntry(models.Model):
    campaign = models.ForeignKey(
        "pledges.Campaign",
        on_delete=models.PROTECT,
        related_name="ledger_entries",
        verbose_name=_("campaign"),
    )
    sequence = models.PositiveBigIntegerField(_("sequence"))
    kind = models.CharField(_("kind"), max_length=24)
    # The pledge's receipt id, or empty for entries about a territory (a release, a letter hash).
    receipt_id = models.CharField(_("receipt"), max_length=36, blank=True, db_index=True)
    department_code = models.CharField(_("department"), max_length=3, blank=True)
    # Canonical JSON of what the entry states (counts, letter hashes); hashed with the rest.
    payload = models.JSONField(_("payload"), default=dict)
    occurred_at = models.DateTimeField(_("occurred at"))
    previous_hash = models.CharField(_("previous hash"), max_length=64)
    entry_hash = models.CharField(_("hash"), max_length=64)

    class Meta:
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        constraints = [
            models.UniqueConstraint(fields=["campaign", "sequence"], name="pledges_ledger_sequence_unique"),
        ]

    def __str__(self):
        return f"{self.campaign_id}#{self.sequence} {self.kind}"


class LedgerDigest(models.Model):
    """Published at each count: the chain head and the counts it vouches for."""

    campaign = models.ForeignKey(
        "pledges.Campaign",
        on_delete=models.PROTECT,
        related_name="ledger_digests",
        verbose_name=_("campaign"),
    )
    sequence = models.PositiveBigIntegerField(_("last sequence"))
    head_hash = models.CharField(_("chain head"), max_length=64)
    counts = models.JSONField(_("counts per territory"), default=dict)
    published_at = models.DateTimeField(_("published at"))

    class Meta:
        verbose_name = _("ledger digest")
        verbose_name_plural = _("ledger digests")
        indexes = [models.Index(fields=["campaign", "-published_at"], name="pledges_digest_latest")]

    def __str__(self):
        return f"{self.campaign_id} digest @{self.sequence}"
