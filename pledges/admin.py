from django import forms
from django.contrib import admin, messages
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db.models import Count, Max, Q
from django.utils import formats, timezone
from django.utils.translation import gettext_lazy as _

from pledges import letter_text
from pledges.conditions import (
    CAMPAIGN_CONDITION_FIELDS,
    campaign_conditions_audit,
    threshold_rule_snapshot,
    threshold_rules_audit,
)
from pledges.counting import COUNTER_STATE_PK, LAST_RECONCILIATION_CACHE_KEY, NATION_CODE
from pledges.enums import (
    PledgeStatus,
    PracticeMode,
    Profession,
    RoundAnswer,
    Specialty,
    TerritoryLevel,
    TerritoryStatus,
)
from pledges.models import (
    Campaign,
    ConfirmationRound,
    CounterState,
    Crossing,
    LetterVersion,
    Release,
    TerritoryCount,
    TerritoryState,
    ThresholdRule,
)
from pledges.rounds import round_approve
from pledges.services import letter_version_create
from territories.models import Department, Region


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
            "release_level",
            "national_gate_min_total",
            "confirmation_round",
            "round_days",
            "early_release",
            "approval_required",
            "milestone_emails",
            "purge_after_days",
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


class ThresholdRuleForm(forms.ModelForm):
    class Meta:
        model = ThresholdRule
        fields = ("level", "territory_code", "min_count", "min_share_percent", "min_departments_met")

    def clean(self):
        cleaned = super().clean()
        level = cleaned.get("level")
        code = (cleaned.get("territory_code") or "").strip().upper()
        cleaned["territory_code"] = code
        if code and level == TerritoryLevel.DEPARTMENT and not Department.objects.filter(code=code).exists():
            self.add_error("territory_code", _("No department has this code."))
        if code and level == TerritoryLevel.REGION and not Region.objects.filter(code=code).exists():
            self.add_error("territory_code", _("No region has this code."))
        if code and level == TerritoryLevel.NATION and code != NATION_CODE:
            self.add_error("territory_code", _("Leave the code empty for the nation."))
        if cleaned.get("min_departments_met") is not None and level != TerritoryLevel.REGION:
            self.add_error("min_departments_met", _("Only a region rule counts departments."))
        return cleaned


class ThresholdRuleInline(admin.TabularInline):
    """The campaign's thresholds: one default per level (code empty) and per-territory overrides."""

    model = ThresholdRule
    form = ThresholdRuleForm
    extra = 0
    fields = (
        "level",
        "territory_code",
        "min_count",
        "min_share_percent",
        "min_departments_met",
        "updated_at",
    )
    readonly_fields = ("updated_at",)


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
    readonly_fields = ("created_at", "updated_at", "purged_at")
    inlines = [LetterVersionInline, ThresholdRuleInline]
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
        (
            _("Conditions and release"),
            {
                "description": _(
                    "Thresholds per territory are the rules below. Every change is recorded in the audit log."
                ),
                "fields": (
                    "release_level",
                    "national_gate_min_total",
                    "confirmation_round",
                    "round_days",
                    "early_release",
                    "approval_required",
                    "milestone_emails",
                    "purge_after_days",
                ),
            },
        ),
        (_("Letter"), {"fields": ("letter_title", "letter_body", "letter_legal_basis")}),
        (_("History"), {"fields": ("created_at", "updated_at", "purged_at")}),
    )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_current_version_number=Max("letter_versions__number"))

    @admin.display(description=_("letter version"), ordering="_current_version_number")
    def current_version_number(self, obj):
        return obj._current_version_number

    def save_model(self, request, obj, form, change):
        # The admin wraps the whole request in a transaction: campaign and letter save together.
        before = (
            Campaign.objects.filter(pk=obj.pk).values(*CAMPAIGN_CONDITION_FIELDS).first() if change else None
        )
        super().save_model(request, obj, form, change)
        if before is not None:
            campaign_conditions_audit(actor=request.user, campaign=obj, before=before)
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

    def save_formset(self, request, form, formset, change):
        if formset.model is not ThresholdRule:
            return super().save_formset(request, form, formset, change)
        # Rules decide when letters are released: every change leaves an audit row with the
        # values before and after.
        before = _rule_snapshots(campaign=form.instance)
        super().save_formset(request, form, formset, change)
        threshold_rules_audit(
            actor=request.user,
            campaign=form.instance,
            before=before,
            after=_rule_snapshots(campaign=form.instance),
        )


def _rule_snapshots(*, campaign: Campaign) -> dict[int, dict]:
    return {
        rule.pk: threshold_rule_snapshot(rule) for rule in ThresholdRule.objects.filter(campaign=campaign)
    }


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows the site writes (letter versions, counts, rounds, crossings, the audit log): read here, never edited."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LetterVersion)
class LetterVersionAdmin(ReadOnlyAdmin):
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
class TerritoryCountAdmin(ReadOnlyAdmin):
    """View only: counts are written by the counting job and repaired by the reconciliation."""

    list_display = ("campaign", "level", "code", "pledges", "updated_at")
    list_filter = ("campaign", "level")
    list_select_related = ("campaign",)
    search_fields = ("code",)
    ordering = ("campaign", "level", "code")
    fields = list_display
    readonly_fields = fields


# --- Organizer roles and the audit log ---------------------------------------------------------
# Imported here, not at the top: this section is appended to a module other parts of the work own.
from deconv.models import AuditEntry  # noqa: E402
from pledges.enums import OrganizerRoleKind  # noqa: E402
from pledges.models import OrganizerRole  # noqa: E402


def _role_audit(*, request, role: OrganizerRole, action: str) -> None:
    """Who gave or took whose role: roles decide who reads signers' data."""
    AuditEntry.objects.create(
        actor=request.user,
        action=action,
        campaign_id=role.campaign_id,
        # A regional delegate's code is a region code: kept in details, not as a department.
        territory_code=role.territory_code if role.kind == OrganizerRoleKind.DEPARTMENTAL else "",
        object_type="OrganizerRole",
        object_id=str(role.pk),
        details={"user_id": role.user_id, "kind": role.kind, "territory_code": role.territory_code},
    )


@admin.register(OrganizerRole)
class OrganizerRoleAdmin(admin.ModelAdmin):
    """Who organizes what: national, regional or departmental, or observer (read only)."""

    list_display = ("user", "campaign", "kind", "territory_code", "created_at")
    list_filter = ("kind", "campaign")
    list_select_related = ("user", "campaign")
    search_fields = ("user__email", "territory_code")
    raw_id_fields = ("user",)
    fields = ("user", "campaign", "kind", "territory_code")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        _role_audit(
            request=request, role=obj, action="organizer_role.update" if change else "organizer_role.create"
        )

    def delete_model(self, request, obj):
        _role_audit(request=request, role=obj, action="organizer_role.delete")
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for role in queryset:
            _role_audit(request=request, role=role, action="organizer_role.delete")
        super().delete_queryset(request, queryset)


if not admin.site.is_registered(AuditEntry):

    @admin.register(AuditEntry)
    class AuditEntryAdmin(ReadOnlyAdmin):
        """Read-only: the audit log is written by the site, never edited."""

        list_display = (
            "created_at",
            "action",
            "actor",
            "campaign_id",
            "territory_code",
            "object_type",
            "object_id",
        )
        list_filter = ("action", "created_at")
        search_fields = ("action", "territory_code", "object_id")
        date_hierarchy = "created_at"
        list_select_related = ("actor",)
        fields = (
            "created_at",
            "actor",
            "action",
            "campaign_id",
            "territory_code",
            "object_type",
            "object_id",
            "details",
        )
        readonly_fields = fields


@admin.register(TerritoryState)
class TerritoryStateAdmin(ReadOnlyAdmin):
    list_display = ("campaign", "level", "code", "status", "round_number", "released_at", "updated_at")
    list_filter = ("campaign", "level", "status")
    list_select_related = ("campaign",)
    search_fields = ("code",)
    ordering = ("campaign", "level", "code")


@admin.register(Crossing)
class CrossingAdmin(ReadOnlyAdmin):
    list_display = (
        "campaign",
        "level",
        "code",
        "round_number",
        "crossed_at",
        "count_at_crossing",
        "target_at_crossing",
        "national_count_at_crossing",
    )
    list_filter = ("campaign", "level")
    list_select_related = ("campaign",)
    search_fields = ("code",)


@admin.register(ConfirmationRound)
class ConfirmationRoundAdmin(ReadOnlyAdmin):
    """Rounds as they happen; a successful round awaiting approval is released by the action below."""

    list_display = (
        "territory",
        "round_number",
        "opened_at",
        "ends_at",
        "outcome",
        "confirmed_now",
        "confirmed_count",
        "target",
        "reminder_sent_at",
        "approved_by",
        "approved_at",
    )
    list_filter = ("outcome", "crossing__campaign")
    list_select_related = ("crossing__campaign", "approved_by")
    search_fields = ("crossing__code",)
    actions = ["approve_release"]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                _confirmed_now=Count(
                    "responses",
                    filter=Q(
                        responses__answer=RoundAnswer.CONFIRMED, responses__pledge__status=PledgeStatus.ACTIVE
                    ),
                )
            )
        )

    @admin.display(description=_("territory"))
    def territory(self, obj):
        return f"{obj.crossing.campaign} — {obj.crossing.get_level_display()} {obj.crossing.code}"

    @admin.display(description=_("round"), ordering="crossing__round_number")
    def round_number(self, obj):
        return obj.crossing.round_number

    @admin.display(description=_("target"))
    def target(self, obj):
        return obj.crossing.target_at_crossing

    @admin.display(description=_("confirmed and still active now"), ordering="_confirmed_now")
    def confirmed_now(self, obj):
        return obj._confirmed_now

    @admin.action(description=_("Approve the release of the selected rounds"))
    def approve_release(self, request, queryset):
        approved = 0
        for round in queryset.select_related("crossing__campaign"):
            state = TerritoryState.objects.filter(
                campaign=round.crossing.campaign, level=round.crossing.level, code=round.crossing.code
            ).first()
            if state is None or state.status != TerritoryStatus.AWAITING_APPROVAL:
                self.message_user(
                    request,
                    _("%(round)s is not awaiting approval: nothing done.") % {"round": self.territory(round)},
                    messages.WARNING,
                )
                continue
            try:
                round_approve(round=round, user=request.user)
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
                continue
            approved += 1
        if approved:
            self.message_user(
                request,
                _("%(count)s release(s) approved: the letters are being prepared.") % {"count": approved},
                messages.SUCCESS,
            )


@admin.register(Release)
class ReleaseAdmin(ReadOnlyAdmin):
    list_display = (
        "campaign",
        "level",
        "code",
        "released_at",
        "pledge_count",
        "approved_by",
        "letters_done_at",
        "emails_done_at",
    )
    list_filter = ("campaign", "level")
    list_select_related = ("campaign", "approved_by")
    search_fields = ("code",)
