"""Organizer pages for moderation, bulk invalidation, trending, the RPPS directory and paper pledges.

Access (pledges.access), checked first by every view: anonymous visitors are sent to the login
page; an account without a role in the campaign gets 403; a delegate only reads and changes the
pledges of their departments (another department's pledge is a 404, as if it did not exist);
observers read, and every POST answers them 403. The directory covers the whole country: only
national organizers (and observers, to read) open its pages.
"""

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from deconv.ratelimit import ip_truncate
from pledges import directory, moderation
from pledges.access import OrganizerScope, organizer_scope_required
from pledges.enums import PledgeStatus, VerificationStatus
from pledges.forms import PledgeForm
from pledges.models import BulkInvalidation, Campaign, DirectoryImport, Pledge
from pledges.moderation import PledgeCriteria
from territories.models import Department

# --- Forms (they only validate; the services in pledges.moderation and pledges.directory write) ---


def _department_choices(scope: OrganizerScope) -> list[tuple[str, str]]:
    departments = Department.objects.order_by("position")
    if not scope.national:
        departments = departments.filter(code__in=scope.department_codes)
    return [("", _("Every department in your territory")), *((d.code, str(d)) for d in departments)]


class BulkRuleForm(forms.Form):
    """The criteria a bulk rule combines; the search form adds more."""

    email_domain = forms.CharField(label=_("Email domain"), required=False, max_length=253)
    ip = forms.CharField(
        label=_("IP address or network"),
        required=False,
        max_length=60,
        help_text=_("An address (203.0.113.7) or a network (203.0.113.0/24, 2001:db8::/48)."),
    )
    department = forms.ChoiceField(label=_("Department"), required=False)
    created_from = forms.DateField(
        label=_("Signed from"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    created_to = forms.DateField(
        label=_("Signed until"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args, scope: OrganizerScope, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["department"].choices = _department_choices(scope)

    def clean_email_domain(self) -> str:
        value = self.cleaned_data["email_domain"]
        if not value.strip():
            return ""
        domain = moderation.email_domain_normalize(value)
        if domain is None:
            raise forms.ValidationError(_("Type a domain name, for example exemple.fr."), code="domain")
        return domain

    def clean_ip(self) -> str:
        value = self.cleaned_data["ip"]
        if not value.strip():
            return ""
        network = moderation.ip_network_normalize(value)
        if network is None:
            raise forms.ValidationError(_("Type an IP address or a network in CIDR notation."), code="ip")
        return network

    def clean(self) -> dict:
        cleaned = super().clean()
        start, end = cleaned.get("created_from"), cleaned.get("created_to")
        if start and end and start > end:
            self.add_error(
                "created_to", forms.ValidationError(_("The end is before the start."), code="dates")
            )
        return cleaned

    def criteria(self) -> PledgeCriteria:
        data = self.cleaned_data
        return PledgeCriteria(
            rpps=data.get("rpps", ""),
            name=data.get("name", ""),
            email_domain=data["email_domain"],
            ip_network=data["ip"],
            department=data["department"],
            created_from=data["created_from"],
            created_to=data["created_to"],
            status=data.get("status", ""),
            verification=data.get("verification", ""),
            flagged={"yes": True, "no": False}.get(data.get("flagged", "")),
        )


class PledgeSearchForm(BulkRuleForm):
    rpps = forms.CharField(label=_("RPPS number"), required=False, max_length=30)
    name = forms.CharField(label=_("Name"), required=False, max_length=100)
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("Any")), *PledgeStatus.choices]
    )
    verification = forms.ChoiceField(
        label=_("Verification"), required=False, choices=[("", _("Any")), *VerificationStatus.choices]
    )
    flagged = forms.ChoiceField(
        label=_("Flag"),
        required=False,
        choices=[("", _("Any")), ("yes", _("Flagged")), ("no", _("Not flagged"))],
    )

    field_order = ["rpps", "name", "email_domain", "ip", "department", "created_from", "created_to"]


class BulkConfirmForm(BulkRuleForm):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=moderation.REASON_MAX_LENGTH,
        help_text=_("Signers can read it in their data export: state the facts, neutrally."),
    )
    preview_count = forms.IntegerField(min_value=0, widget=forms.HiddenInput)


class ReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=moderation.REASON_MAX_LENGTH)


class DirectoryUploadForm(forms.Form):
    file = forms.FileField(
        label=_("Directory file"),
        help_text=_("PS_LibreAcces_Personne_activite_….txt, as published by the ANS (about 1 GB)."),
    )


class PaperPledgeForm(PledgeForm):
    """The signing form without the online consent boxes, plus the organizer's attestation."""

    attest = forms.BooleanField(
        required=True,
        label=_(
            "I attest that the paper letter carries this physician's handwritten signature and their consent "
            "to the pledge and to the processing of their data, and that it is kept by the organizers."
        ),
        error_messages={
            "required": _("Tick this box: a paper letter is only recorded with your attestation.")
        },
    )

    def __init__(self, *args, scope: OrganizerScope, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("consent_pledge", "consent_data", self.honeypot_field_name):
            del self.fields[name]
        if not scope.national:
            field = self.fields["department"]
            field.queryset = field.queryset.filter(code__in=scope.department_codes)

    @property
    def honeypot_filled(self) -> bool:
        return False


# --- Helpers ------------------------------------------------------------------------------------


def _campaign_and_scope(
    request: HttpRequest, slug: str, *, act: bool = False
) -> tuple[Campaign, OrganizerScope]:
    """The campaign (404) and the account's scope in it (403 without a role, or observing when `act`)."""
    campaign = get_object_or_404(Campaign, slug=slug)
    return campaign, organizer_scope_required(user=request.user, campaign=campaign, act=act)


def _national_scope(request: HttpRequest, slug: str, *, act: bool = False) -> tuple[Campaign, OrganizerScope]:
    campaign, scope = _campaign_and_scope(request, slug, act=act)
    if not scope.national:
        raise PermissionDenied
    return campaign, scope


def _context(campaign: Campaign, scope: OrganizerScope, tab: str, **extra) -> dict:
    return {"campaign": campaign, "scope": scope, "active_tab": tab, **extra}


def _error_text(error: ValidationError) -> str:
    return " ".join(str(message) for message in error.messages)


def _json(payload: dict) -> JsonResponse:
    response = JsonResponse(payload)
    response["Cache-Control"] = "no-store"
    return response


def _with_labels(pledges: list[Pledge]) -> list[Pledge]:
    for pledge in pledges:
        pledge.verification_labels = directory.verification_reason_labels(pledge.verification_reason)
    return pledges


# --- Search and one pledge ----------------------------------------------------------------------


@require_GET
@login_required
def moderation_search(request: HttpRequest, slug: str) -> HttpResponse:
    campaign, scope = _campaign_and_scope(request, slug)
    form = PledgeSearchForm(request.GET or None, scope=scope)
    criteria = form.criteria() if form.is_bound and form.is_valid() else PledgeCriteria()
    results = moderation.pledge_search(campaign=campaign, scope=scope, criteria=criteria)
    page = Paginator(results, moderation.SEARCH_PAGE_SIZE).get_page(request.GET.get("page"))
    _with_labels(page.object_list)
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "organizer/moderation_search.html",
        _context(campaign, scope, "moderation", form=form, page=page, query=query.urlencode()),
    )


@require_GET
@login_required
def moderation_pledge(request: HttpRequest, slug: str, pledge_id: int) -> HttpResponse:
    campaign, scope = _campaign_and_scope(request, slug)
    pledge = moderation.pledge_get_in_scope(campaign=campaign, scope=scope, pledge_id=pledge_id)
    _with_labels([pledge])
    return render(
        request,
        "organizer/moderation_pledge.html",
        _context(
            campaign,
            scope,
            "moderation",
            pledge=pledge,
            # Where it came from, as trending shows it (the network, not the address).
            network=ip_truncate(pledge.signed_ip),
            email_domain=pledge.user.email.rpartition("@")[2].lower() if pledge.user else "",
            # Two forms with a reason field on the page: distinct ids.
            flag_form=ReasonForm(auto_id="flag_%s"),
            invalidate_form=ReasonForm(auto_id="invalidate_%s"),
        ),
    )


def _pledge_action(request: HttpRequest, slug: str, pledge_id: int, action) -> HttpResponse:
    """POST glue shared by flag, unflag, invalidate and reinstate: scope, form, service, redirect."""
    campaign, scope = _campaign_and_scope(request, slug, act=True)
    pledge = moderation.pledge_get_in_scope(campaign=campaign, scope=scope, pledge_id=pledge_id)
    form = ReasonForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        message = action(pledge=pledge, reason=reason)
    except ValidationError as error:
        messages.error(request, _error_text(error))
    else:
        messages.success(request, message)
    return redirect("pledges:organizer_moderation_pledge", slug=campaign.slug, pledge_id=pledge.pk)


@require_POST
@login_required
def moderation_flag(request: HttpRequest, slug: str, pledge_id: int) -> HttpResponse:
    def flag(*, pledge, reason):
        moderation.pledge_flag(pledge=pledge, actor=request.user, reason=reason)
        return gettext("The pledge is flagged.")

    return _pledge_action(request, slug, pledge_id, flag)


@require_POST
@login_required
def moderation_unflag(request: HttpRequest, slug: str, pledge_id: int) -> HttpResponse:
    def unflag(*, pledge, reason):
        moderation.pledge_unflag(pledge=pledge, actor=request.user)
        return gettext("The flag is removed.")

    return _pledge_action(request, slug, pledge_id, unflag)


@require_POST
@login_required
def moderation_invalidate(request: HttpRequest, slug: str, pledge_id: int) -> HttpResponse:
    def invalidate(*, pledge, reason):
        moderation.pledge_invalidate(pledge=pledge, actor=request.user, reason=reason)
        return gettext("The pledge is invalidated: it leaves the counts at the next counting run.")

    return _pledge_action(request, slug, pledge_id, invalidate)


@require_POST
@login_required
def moderation_reinstate(request: HttpRequest, slug: str, pledge_id: int) -> HttpResponse:
    def reinstate(*, pledge, reason):
        moderation.pledge_reinstate(pledge=pledge, actor=request.user)
        return gettext("The pledge is active again: it counts from the next counting run.")

    return _pledge_action(request, slug, pledge_id, reinstate)


# --- Trending -----------------------------------------------------------------------------------

TRENDING_WINDOWS = {"hour": timedelta(hours=1), "day": timedelta(hours=24)}


@require_GET
@login_required
def moderation_trending(request: HttpRequest, slug: str) -> HttpResponse:
    campaign, scope = _campaign_and_scope(request, slug)
    window = request.GET.get("window", "hour")
    if window not in TRENDING_WINDOWS:
        window = "hour"
    since = timezone.now() - TRENDING_WINDOWS[window]
    return render(
        request,
        "organizer/moderation_trending.html",
        _context(
            campaign,
            scope,
            "moderation",
            window=window,
            networks=moderation.trending_networks(campaign=campaign, scope=scope, since=since),
            domains=moderation.trending_email_domains(campaign=campaign, scope=scope, since=since),
            abuse_events=moderation.rate_limit_events_recent(scope=scope),
        ),
    )


# --- Bulk invalidation --------------------------------------------------------------------------


def _bulk_get(campaign: Campaign, scope: OrganizerScope, bulk_id: int) -> BulkInvalidation:
    """A bulk job of this campaign whose departments are all within the scope, else 404."""
    bulk = get_object_or_404(BulkInvalidation, campaign=campaign, pk=bulk_id)
    departments = bulk.rule.get("scope")
    if not scope.national and (departments is None or not set(departments) <= scope.department_codes):
        raise Http404
    return bulk


@require_http_methods(["GET", "POST"])
@login_required
def bulk_invalidation_new(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: the rule form, and with a rule the preview (count and sample). POST: confirm it.

    The confirmation carries the count the organizer saw; if the matching set changed since,
    nothing starts and the new preview is shown instead.
    """
    campaign, scope = _campaign_and_scope(request, slug, act=request.method == "POST")
    confirm_form = None
    if request.method == "POST":
        confirm_form = BulkConfirmForm(request.POST, scope=scope)
        if confirm_form.is_valid():
            try:
                bulk = moderation.bulk_invalidation_create(
                    campaign=campaign,
                    scope=scope,
                    actor=request.user,
                    criteria=confirm_form.criteria(),
                    reason=confirm_form.cleaned_data["reason"],
                    preview_count=confirm_form.cleaned_data["preview_count"],
                )
            except ValidationError as error:
                messages.error(request, _error_text(error))
            else:
                return redirect("pledges:organizer_bulk_detail", slug=campaign.slug, bulk_id=bulk.pk)
        form = BulkRuleForm(request.POST, scope=scope)
    else:
        form = BulkRuleForm(request.GET or None, scope=scope)
    preview = None
    if form.is_bound and form.is_valid():
        try:
            preview = moderation.bulk_invalidation_preview(
                campaign=campaign, scope=scope, criteria=form.criteria()
            )
        except ValidationError as error:
            form.add_error(None, error)
    if preview is not None and (confirm_form is None or confirm_form.is_valid()):
        confirm_form = BulkConfirmForm(
            initial={
                **form.cleaned_data,
                "preview_count": preview.count,
                "reason": request.POST.get("reason", ""),
            },
            scope=scope,
        )
    recent = BulkInvalidation.objects.filter(campaign=campaign).order_by("-created_at")[:10]
    return render(
        request,
        "organizer/bulk_new.html",
        _context(
            campaign,
            scope,
            "moderation",
            form=form,
            preview=preview,
            sample=_with_labels(preview.sample) if preview else [],
            confirm_form=confirm_form if preview is not None else None,
            recent=[bulk for bulk in recent if _bulk_visible(bulk, scope)],
        ),
    )


def _bulk_visible(bulk: BulkInvalidation, scope: OrganizerScope) -> bool:
    departments = bulk.rule.get("scope")
    return scope.national or (departments is not None and set(departments) <= scope.department_codes)


@require_GET
@login_required
def bulk_invalidation_detail(request: HttpRequest, slug: str, bulk_id: int) -> HttpResponse:
    campaign, scope = _campaign_and_scope(request, slug)
    bulk = _bulk_get(campaign, scope, bulk_id)
    return render(
        request,
        "organizer/bulk_detail.html",
        _context(
            campaign,
            scope,
            "moderation",
            bulk=bulk,
            progress=moderation.bulk_invalidation_status(bulk=bulk),
            status_url=reverse(
                "pledges:organizer_bulk_status", kwargs={"slug": campaign.slug, "bulk_id": bulk.pk}
            ),
        ),
    )


@require_GET
@login_required
def bulk_invalidation_status(request: HttpRequest, slug: str, bulk_id: int) -> JsonResponse:
    campaign, scope = _campaign_and_scope(request, slug)
    return _json(moderation.bulk_invalidation_status(bulk=_bulk_get(campaign, scope, bulk_id)))


@require_POST
@login_required
def bulk_invalidation_cancel(request: HttpRequest, slug: str, bulk_id: int) -> HttpResponse:
    campaign, scope = _campaign_and_scope(request, slug, act=True)
    bulk = _bulk_get(campaign, scope, bulk_id)
    if moderation.bulk_invalidation_cancel(bulk=bulk, actor=request.user):
        messages.success(request, gettext("Cancellation requested: the job stops after its current batch."))
    else:
        messages.error(request, gettext("This job has already ended."))
    return redirect("pledges:organizer_bulk_detail", slug=campaign.slug, bulk_id=bulk.pk)


# --- RPPS directory -----------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
def directory_index(request: HttpRequest, slug: str) -> HttpResponse:
    """The imports, this campaign's verification figures; POST uploads a new directory file.

    The upload is streamed to a temporary file by Django's upload handlers (anything over
    FILE_UPLOAD_MAX_MEMORY_SIZE), then moved, never read into memory.
    """
    campaign, scope = _national_scope(request, slug, act=request.method == "POST")
    form = DirectoryUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            directory_import = directory.directory_upload_store(
                uploaded_file=form.cleaned_data["file"], uploaded_by=request.user, campaign=campaign
            )
        except ValidationError as error:
            form.add_error("file", error.message_dict.get("file", error.messages))
        else:
            return redirect(
                "pledges:organizer_directory_detail", slug=campaign.slug, import_id=directory_import.pk
            )
    return render(
        request,
        "organizer/directory_index.html",
        _context(
            campaign,
            scope,
            "directory",
            form=form,
            imports=directory.directory_imports_recent(),
            verification=directory.campaign_verification_counts(campaign=campaign),
            loaded=directory.directory_is_loaded(),
        ),
        status=400 if form.is_bound and form.errors else 200,
    )


@require_GET
@login_required
def directory_detail(request: HttpRequest, slug: str, import_id: int) -> HttpResponse:
    campaign, scope = _national_scope(request, slug)
    directory_import = get_object_or_404(DirectoryImport, pk=import_id)
    return render(
        request,
        "organizer/directory_detail.html",
        _context(
            campaign,
            scope,
            "directory",
            directory_import=directory_import,
            progress=directory.directory_import_status(directory_import=directory_import),
            status_url=reverse(
                "pledges:organizer_directory_status", kwargs={"slug": campaign.slug, "import_id": import_id}
            ),
        ),
    )


@require_GET
@login_required
def directory_status(request: HttpRequest, slug: str, import_id: int) -> JsonResponse:
    _national_scope(request, slug)
    directory_import = get_object_or_404(DirectoryImport, pk=import_id)
    return _json(directory.directory_import_status(directory_import=directory_import))


@require_POST
@login_required
def directory_verify(request: HttpRequest, slug: str) -> HttpResponse:
    campaign, _scope = _national_scope(request, slug, act=True)
    try:
        directory.campaign_verification_queue(campaign=campaign, actor=request.user)
    except ValidationError as error:
        messages.error(request, _error_text(error))
    else:
        messages.success(request, gettext("Verification queued: the figures below update when it ends."))
    return redirect("pledges:organizer_directory", slug=campaign.slug)


# --- Paper pledges ------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
def paper_pledge_new(request: HttpRequest, slug: str) -> HttpResponse:
    campaign, scope = _campaign_and_scope(request, slug, act=request.method == "POST")
    form = PaperPledgeForm(
        request.POST or None, campaign=campaign, letter_version=campaign.current_letter_version, scope=scope
    )
    if request.method == "POST" and form.is_valid():
        try:
            pledge = moderation.paper_pledge_create(
                campaign=campaign, organizer=request.user, data=form.pledge_data()
            )
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                for field, errors in error.error_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                form.add_error(None, error)
        else:
            messages.success(
                request, gettext("The paper letter is recorded and counts from the next counting run.")
            )
            return redirect(
                f"{reverse('pledges:organizer_paper', kwargs={'slug': campaign.slug})}?recorded={pledge.pk}"
            )
    recent = (
        moderation.pledge_search(campaign=campaign, scope=scope, criteria=PledgeCriteria())
        .filter(source="paper")
        .select_related("entered_by")[:20]
    )
    return render(
        request,
        "organizer/paper_new.html",
        _context(campaign, scope, "paper", form=form, recent=recent),
        status=400 if form.is_bound and form.errors else 200,
    )
