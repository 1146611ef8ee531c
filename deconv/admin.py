from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from deconv.models import OutgoingEmail, RateLimitEvent
from deconv.outbox import outbox_requeue_failed


@admin.register(RateLimitEvent)
class RateLimitEventAdmin(admin.ModelAdmin):
    """Read-only: events are evidence written by the site, not by organizers."""

    list_display = ["created_at", "kind", "scope", "ip", "user"]
    list_filter = ["kind", "scope", "created_at"]
    search_fields = ["scope", "ip"]
    date_hierarchy = "created_at"
    list_select_related = ["user"]
    readonly_fields = ["created_at", "kind", "scope", "ip", "user"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(OutgoingEmail)
class OutgoingEmailAdmin(admin.ModelAdmin):
    """Read-only: the outbox is written by the site (deconv.outbox). One action: requeue failed rows."""

    list_display = [
        "created_at",
        "kind",
        "recipient",
        "status",
        "attempts",
        "sent_at",
        "next_attempt_at",
        "last_error",
    ]
    list_filter = ["status", "kind", "created_at"]
    search_fields = ["recipient"]
    search_help_text = _("A domain (example.org) or a full address.")
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    actions = ["requeue_failed"]
    fields = [
        "kind",
        "recipient",
        "language",
        "subject",
        "status",
        "attempts",
        "last_error",
        "dedupe_key",
        "user",
        "created_at",
        "dispatched_at",
        "claimed_at",
        "next_attempt_at",
        "sent_at",
        "body_text",
        "body_html",
    ]
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term):
        """By domain (the end of the address) or by full address; no substring search of addresses."""
        term = search_term.strip().lower()
        if not term:
            return queryset, False
        if "@" in term.lstrip("@"):
            return queryset.filter(recipient__iexact=term), False
        return queryset.filter(recipient__iendswith=f"@{term.lstrip('@')}"), False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_requeue_permission(self, request):
        return request.user.has_perm("deconv.change_outgoingemail")

    @admin.action(description=_("Send the selected failed emails again"), permissions=["requeue"])
    def requeue_failed(self, request, queryset):
        requeued = outbox_requeue_failed(ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(
            request,
            ngettext(
                "%(count)d failed email queued again.", "%(count)d failed emails queued again.", requeued
            )
            % {"count": requeued},
            messages.SUCCESS,
        )
