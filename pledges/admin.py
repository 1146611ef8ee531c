from django import forms
from django.contrib import admin, messages
from django.core.cache import cache
from django.db.models import Max
from django.utils import formats, timezone
from django.utils.translation import gettext_lazy as _

from pledges import letter_text
from pledges.counting import COUNTER_STATE_PK, LAST_RECONCILIATION_CACHE_KEY
from pledges.enums import PracticeMode, Profession, Specialty
from pledges.models import Campaign, CounterState, LetterVersion, TerritoryCount
from pledges.services import letter_version_create


class CampaignAdminForm(forms.ModelForm):
    """The campaign's fields plus its letter, edited as text; a changed text becomes a new version."""

    eligible_professions = forms.MultipleChoiceField(
        label=_("eligible professions"), choices=Profession.choices, widget=forms.CheckboxSelectMultiple
    )
    eligible_specialties = forms.MultipleChoiceField(
        label=_("eligible specialties"),
        choices=Specialty.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text=_("Leave empty to accept every specialty."),
    )
    eligible_practice_modes = forms.MultipleChoiceField(
        label=_("eligible practice modes"), choices=PracticeMode.choices, widget=forms.CheckboxSelectMultiple
    )
    letter_title = forms.CharField(
        label=_("letter title"), max_length=200, initial=letter_text.DEFAULT_LETTER_TITLE
    )
    letter_body = forms.CharField(
        label=_("letter text"),
        widget=forms.Textarea(attrs={"rows": 30, "cols": 100}),
        validators=[letter_text.validate_placeholders],
    )
    letter_legal_basis = forms.CharField(
        label=_("legal basis"),
        widget=forms.Textarea(attrs={"rows": 5, "cols": 100}),
        required=False,
        initial=letter_text.DEFAULT_LEGAL_BASIS,
    )

    class Meta:
        model = Campaign
        fields = (
            "title",
            "slug",
            "status",
            "description",
            "opens_at",
            "closes_at",
            "eligible_professions",
            "eligible_specialties",
            "eligible_practice_modes",
            "reference_population_kind",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        placeholders = ", ".join("{" + name + "}" for name in letter_text.PLACEHOLDERS)
        self.fields["letter_body"].help_text = _(
            "Plain text, paragraphs separated by a blank line. Placeholders: %(placeholders)s. "
            "Saving a changed text creates a new version; earlier versions stay as they were."
        ) % {"placeholders": placeholders}
        version = self.instance.current_letter_version if self.instance.pk else None
        if version is not None:
            self.fields["letter_title"].initial = version.title
            self.fields["letter_body"].initial = version.body
            self.fields["letter_legal_basis"].initial = version.legal_basis


class LetterVersionInline(admin.TabularInline):
    """The letter's history: read only, since a version is never edited nor deleted."""

    model = LetterVersion
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ("-number",)
    fields = ("number", "title", "created_at", "created_by", "content_sha256")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    form = CampaignAdminForm
    list_display = ("title", "slug", "status", "opens_at", "closes_at", "current_version_number")
    list_filter = ("status",)
    search_fields = ("title", "slug")
    prepopulated_fields = {"slug": ("title",)}
    readonly_fields = ("created_at", "updated_at")
    inlines = [LetterVersionInline]
    fieldsets = (
        (None, {"fields": ("title", "slug", "status", "description")}),
        (_("Dates"), {"fields": ("opens_at", "closes_at")}),
        (
            _("Eligibility"),
            {
                "fields": (
                    "eligible_professions",
                    "eligible_specialties",
                    "eligible_practice_modes",
                    "reference_population_kind",
                )
            },
        ),
        (_("Letter"), {"fields": ("letter_title", "letter_body", "letter_legal_basis")}),
        (_("History"), {"fields": ("created_at", "updated_at")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_current_version_number=Max("letter_versions__number"))

    @admin.display(description=_("letter version"), ordering="_current_version_number")
    def current_version_number(self, obj):
        return obj._current_version_number

    def save_model(self, request, obj, form, change):
        # The admin wraps the whole request in a transaction: campaign and letter save together.
        super().save_model(request, obj, form, change)
        previous = obj.current_letter_version
        version = letter_version_create(
            campaign=obj,
            title=form.cleaned_data["letter_title"],
            body=form.cleaned_data["letter_body"],
            legal_basis=form.cleaned_data["letter_legal_basis"],
            created_by=request.user,
        )
        if previous is None or version.pk != previous.pk:
            self.message_user(
                request,
                _("Letter version %(number)s saved.") % {"number": version.number},
                messages.SUCCESS,
            )


@admin.register(LetterVersion)
class LetterVersionAdmin(admin.ModelAdmin):
    """View only: a new version is made by editing the campaign's letter text."""

    list_display = ("campaign", "number", "title", "created_at", "created_by")
    list_filter = ("campaign",)
    list_select_related = ("campaign", "created_by")
    search_fields = ("campaign__title", "title")
    fields = (
        "campaign",
        "number",
        "title",
        "body",
        "legal_basis",
        "created_at",
        "created_by",
        "content_sha256",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(CounterState)
class CounterStateAdmin(admin.ModelAdmin):
    """The counting job's settings: organizers tune the interval and lag; the rest is its record."""

    list_display = (
        "__str__",
        "interval_seconds",
        "lag_seconds",
        "last_run_at",
        "last_run_events",
        "last_run_ms",
    )
    fields = (
        "interval_seconds",
        "lag_seconds",
        "counted_until",
        "last_run_at",
        "last_run_events",
        "last_run_ms",
        "last_reconciliation",
    )
    readonly_fields = (
        "counted_until",
        "last_run_at",
        "last_run_events",
        "last_run_ms",
        "last_reconciliation",
    )

    def has_add_permission(self, request):
        # One row (pk=1); the first counting run creates it, the admin only before that.
        return not CounterState.objects.filter(pk=COUNTER_STATE_PK).exists()

    def has_delete_permission(self, request, obj=None):
        # Deleting the bookmark would count every event again.
        return False

    def save_model(self, request, obj, form, change):
        obj.pk = COUNTER_STATE_PK
        super().save_model(request, obj, form, change)

    @admin.display(description=_("last reconciliation"))
    def last_reconciliation(self, obj):
        last = cache.get(LAST_RECONCILIATION_CACHE_KEY)
        if last is None:
            return _("Not recorded in this cache: see the worker's log.")
        return _("%(when)s: %(drifts)s counts repaired") % {
            "when": formats.localize(timezone.localtime(last["at"])),
            "drifts": last["drifts"],
        }


@admin.register(TerritoryCount)
class TerritoryCountAdmin(admin.ModelAdmin):
    """View only: counts are written by the counting job and repaired by the reconciliation."""

    list_display = ("campaign", "level", "code", "pledges", "updated_at")
    list_filter = ("campaign", "level")
    list_select_related = ("campaign",)
    search_fields = ("code",)
    ordering = ("campaign", "level", "code")
    fields = list_display
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
