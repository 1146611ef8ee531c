from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from territories.models import Caisse, Department, ReferencePopulation, Region

CAISSE_ADDRESS_FIELDS = ("address_line1", "address_line2", "postal_code", "city", "address_verified")


class ViewOnlyMixin:
    """Regions and departments are INSEE facts loaded from seeds/: the admin only shows them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Region)
class RegionAdmin(ViewOnlyMixin, admin.ModelAdmin):
    list_display = ("code", "name", "is_overseas")
    list_filter = ("is_overseas",)
    search_fields = ("code", "name")


class ListInline(admin.TabularInline):
    """A read-only list on the department page: rows are edited on their own pages."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class CaisseInline(ListInline):
    model = Caisse
    fields = ("name", "kind", "city", "address_verified")
    readonly_fields = fields
    show_change_link = True


class ReferencePopulationInline(ListInline):
    model = ReferencePopulation
    fields = ("kind", "year", "count", "source")
    readonly_fields = fields
    ordering = ("kind", "-year")


@admin.register(Department)
class DepartmentAdmin(ViewOnlyMixin, admin.ModelAdmin):
    list_display = ("code", "name", "region", "is_overseas")
    list_filter = ("region", "is_overseas")
    list_select_related = ("region",)
    search_fields = ("code", "name")
    inlines = (CaisseInline, ReferencePopulationInline)


@admin.register(Caisse)
class CaisseAdmin(admin.ModelAdmin):
    list_display = ("name", "code", "kind", "department", "postal_code", "city", "address_verified")
    list_filter = ("kind", "address_verified", "department")
    list_select_related = ("department",)
    search_fields = ("name", "code", "city", "postal_code", "department__code", "department__name")
    # Code, kind and department come from seeds/caisses.csv. Organizers own the address and
    # notes, and the name once they correct it (see territories.services._caisse_changes).
    readonly_fields = ("code", "kind", "department")
    fieldsets = (
        (None, {"fields": ("code", "kind", "department", "name")}),
        (_("Postal address"), {"fields": CAISSE_ADDRESS_FIELDS}),
        (None, {"fields": ("notes",)}),
    )

    def has_add_permission(self, request):
        return False

    def save_model(self, request, obj, form, change):
        if "name" in form.changed_data:
            obj.name_edited_by_organizer = True
        super().save_model(request, obj, form, change)


@admin.register(ReferencePopulation)
class ReferencePopulationAdmin(admin.ModelAdmin):
    list_display = ("department", "kind", "year", "count", "source")
    list_filter = ("kind", "year")
    list_select_related = ("department",)
    search_fields = ("department__code", "department__name", "source")
