"""Counting without a hot row: pledges append events, a periodic job folds them into counts.

UK e-petitions learned during two national surges that updating one counter row per signature
serialises every signer on that row. Here the request path only inserts a `PledgeEvent` in the
same transaction as the pledge change; `pledges.counting.counts_update` (one runner at a time)
adds up the events of a lagging time window into `TerritoryCount`.
"""

from django.db import models
from django.db.models.functions import Now
from django.utils.translation import gettext_lazy as _

from pledges.enums import PledgeEventKind, TerritoryLevel


class PledgeEvent(models.Model):
    """+1 or -1 on a campaign's department count, written with the pledge change it records.

    Changes that keep a pledge counted (confirmed, released, expired) are events with delta 0:
    the counting job ignores them, the tamper-evident ledger records them.
    """

    campaign = models.ForeignKey(
        "pledges.Campaign", on_delete=models.CASCADE, related_name="+", verbose_name=_("campaign")
    )
    department = models.ForeignKey(
        "territories.Department", on_delete=models.PROTECT, related_name="+", verbose_name=_("department")
    )
    pledge = models.ForeignKey(
        "pledges.Pledge",
        on_delete=models.SET_NULL,
        null=True,
        related_name="events",
        verbose_name=_("pledge"),
    )
    kind = models.CharField(_("kind"), max_length=16, choices=PledgeEventKind.choices)
    delta = models.SmallIntegerField(_("change in count"))
    # The database's clock, not the web server's: every process then agrees on the window.
    occurred_at = models.DateTimeField(_("occurred at"), db_default=Now())

    class Meta:
        verbose_name = _("pledge event")
        verbose_name_plural = _("pledge events")
        indexes = [models.Index(fields=["occurred_at"], name="pledges_event_occurred_at")]
        # The ledger walks events in (occurred_at, id) order: pledges.ledger.
        constraints = [
            models.CheckConstraint(condition=models.Q(delta__in=[-1, 0, 1]), name="pledges_event_delta_unit"),
        ]

    def __str__(self):
        return f"{self.kind} {self.delta:+d} @ {self.occurred_at}"


class TerritoryCount(models.Model):
    """The published count of a campaign in one territory, as of the last counting run."""

    campaign = models.ForeignKey(
        "pledges.Campaign",
        on_delete=models.CASCADE,
        related_name="territory_counts",
        verbose_name=_("campaign"),
    )
    level = models.CharField(_("level"), max_length=16, choices=TerritoryLevel.choices)
    # Department or region code; "FR" for the nation.
    code = models.CharField(_("code"), max_length=3)
    pledges = models.IntegerField(_("pledges"), default=0)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("territory count")
        verbose_name_plural = _("territory counts")
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "level", "code"], name="pledges_territorycount_unique"
            ),
        ]

    def __str__(self):
        return f"{self.campaign_id} {self.level} {self.code}: {self.pledges}"


class CounterState(models.Model):
    """The counting job's bookmark and settings (a single row, pk=1)."""

    counted_until = models.DateTimeField(_("events counted up to"), null=True, blank=True)
    interval_seconds = models.PositiveIntegerField(
        _("counting interval (seconds)"),
        default=5,
        help_text=_("How often counts are updated. Public counts are at most this late, plus the lag."),
    )
    lag_seconds = models.PositiveIntegerField(
        _("lag (seconds)"),
        default=2,
        help_text=_("Events younger than this wait for the next run, so that slow commits are not missed."),
    )
    last_run_at = models.DateTimeField(_("last run"), null=True, blank=True)
    last_run_events = models.PositiveIntegerField(_("events in the last run"), default=0)
    last_run_ms = models.PositiveIntegerField(_("duration of the last run (ms)"), default=0)

    class Meta:
        verbose_name = _("counter state")
        verbose_name_plural = _("counter state")

    def __str__(self):
        return f"counted until {self.counted_until}"
