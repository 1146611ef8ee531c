from django.contrib.auth.models import AbstractUser, BaseUserManager
from django.db import models
from django.utils.translation import gettext_lazy as _


class UserManager(BaseUserManager):
    """Users log in with their email address; there is no username."""

    use_in_migrations = True

    def _create_user(self, email, password, **extra_fields):
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra_fields)


class User(AbstractUser):
    username = None
    email = models.EmailField(_("email address"), unique=True)

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = UserManager()

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self):
        return self.email


class AbuseEventKind(models.TextChoices):
    RATE_LIMITED = "rate_limited", _("Rate limit reached")
    HONEYPOT = "honeypot", _("Hidden trap field filled in")


class RateLimitEvent(models.Model):
    """A refused or suspicious request, for organizers watching for abuse.

    Written by deconv.ratelimit at most once per client and time window, so a flood costs a
    handful of rows. The address is truncated (a /24 or /48 network): enough to see that
    requests come from one place, not enough to single out a person.
    """

    kind = models.CharField(
        _("kind"), max_length=16, choices=AbuseEventKind.choices, default=AbuseEventKind.RATE_LIMITED
    )
    scope = models.CharField(_("scope"), max_length=64, help_text=_("The action or form concerned."))
    ip = models.CharField(_("network"), max_length=49, blank=True, help_text=_("Truncated: /24 or /48."))
    user = models.ForeignKey(
        "deconv.User",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("account"),
    )
    created_at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("abuse event")
        verbose_name_plural = _("abuse events")
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.kind} {self.scope} {self.ip}"


class EmailStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")


class OutgoingEmail(models.Model):
    """Every email the platform sends, stored before it is sent (the outbox: deconv.outbox).

    `dedupe_key` is unique: a fan-out that runs twice creates each row once, so it sends once.
    """

    kind = models.CharField(_("kind"), max_length=40)
    recipient = models.EmailField(_("recipient"))
    language = models.CharField(_("language"), max_length=8, default="fr")
    subject = models.CharField(_("subject"), max_length=300)
    body_text = models.TextField(_("text part"))
    body_html = models.TextField(_("HTML part"), blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=EmailStatus.choices, default=EmailStatus.QUEUED
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    dedupe_key = models.CharField(_("deduplication key"), max_length=200, unique=True)
    user = models.ForeignKey(
        "deconv.User",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("account"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    # When a send task for this row was last handed to the broker: outbox_dispatch_due hands it
    # again only after a minute unclaimed, so a long backlog is not re-queued every few seconds.
    dispatched_at = models.DateTimeField(_("dispatched at"), null=True, blank=True)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("outgoing email")
        verbose_name_plural = _("outgoing emails")
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="deconv_outbox_due"),
            models.Index(fields=["status", "claimed_at"], name="deconv_outbox_claimed"),
        ]

    def __str__(self):
        return f"{self.kind} #{self.pk} ({self.status})"


class EmailStop(models.Model):
    """An address that asked for no more emails (the stop link in every email; deconv.outbox).

    Only a keyed hash of the lowercased address is kept (deconv.email_stops.email_stop_hash): a stop
    must outlive the account, yet the list must not become a list of addresses.
    """

    email_hash = models.CharField(_("address hash"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("stopped at"), auto_now_add=True)

    class Meta:
        verbose_name = _("email stop")
        verbose_name_plural = _("email stops")

    def __str__(self):
        return f"{self.email_hash[:12]}… ({self.created_at:%Y-%m-%d})"


class AuditEntry(models.Model):
    """An organizer's action (rule change, invalidation, approval, export, import), for organizers to read."""

    actor = models.ForeignKey(
        "deconv.User",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )
    action = models.CharField(_("action"), max_length=60)
    campaign_id = models.BigIntegerField(_("campaign"), null=True, blank=True)
    territory_code = models.CharField(_("territory"), max_length=3, blank=True)
    object_type = models.CharField(_("object type"), max_length=60, blank=True)
    object_id = models.CharField(_("object"), max_length=60, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)
    created_at = models.DateTimeField(_("at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit log")
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.action}"
