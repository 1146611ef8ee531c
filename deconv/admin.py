from django.contrib import admin

from deconv.models import RateLimitEvent


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
