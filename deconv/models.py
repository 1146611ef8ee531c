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
