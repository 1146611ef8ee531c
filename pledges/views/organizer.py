"""Organizer pages: dashboard, map, exports, audit log. Every view checks the scope first.

Access (pledges.access): anonymous visitors are sent to the login page; an account without a role
in the campaign gets 403; every figure is limited to the departments of the organizer's scope;
observers read but every POST answers 403.
"""

import json
from datetime import date
from functools import cached_property
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import get_language, gettext
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_GET, require_http_methods

from pledges.access import OrganizerScope, organizer_scope_required
from pledges.dashboard_snapshot import (
    DashboardSnapshot,
    dashboard_fragment_set,
    dashboard_page_get,
    refresh_seconds,
)
from pledges.enums import BundleStatus
from pledges.exports import (
    FORMATS,
    export_content_type,
    export_covered_by,
    export_download_audit,
    export_download_name,
    export_path,
    export_request,
)
from pledges.maps import daily_chart_svg, daily_series, department_map_svg
from pledges.models import Campaign, ExportJob
from pledges.selectors_organizer import (
    DEFAULT_SORT,
    Dashboard,
    audit_entries,
    campaign_dashboard,
    organizer_campaign_list,
    organizer_map_departments,
    scope_key,
    territory_rows_filter,
    territory_rows_sort,
    territory_sort_normalize,
)

AUDIT_PAGE_SIZE = 50
# The map's own policy: it is an SVG document with its own <style>, shown through <img>.
SVG_CONTENT_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'"


def _campaign_and_scope(
    request: HttpRequest, slug: str, *, act: bool = False
) -> tuple[Campaign, OrganizerScope]:
    """The campaign (404) and the account's scope in it (403 without a role, or observing when `act`)."""
    campaign = get_object_or_404(Campaign, slug=slug)
    return campaign, organizer_scope_required(user=request.user, campaign=campaign, act=act)


def svg_response(svg: bytes | str, *, cache_control: str) -> HttpResponse:
    response = HttpResponse(svg, content_type="image/svg+xml; charset=utf-8")
    response["Content-Security-Policy"] = SVG_CONTENT_SECURITY_POLICY
    response["Cache-Control"] = cache_control
    return response


@require_GET
@login_required
def campaign_list(request: HttpRequest) -> HttpResponse:
    campaigns = list(organizer_campaign_list(user=request.user))
    if not campaigns:
        raise PermissionDenied
    return render(request, "organizer/campaign_list.html", {"campaigns": campaigns})


# (sort key, column title, numeric): the territory table's sortable columns.
def _columns() -> list[tuple[str, str, bool]]:
    return [
        ("code", gettext("Code"), False),
        ("name", gettext("Department"), False),
        ("count", gettext("Signatures"), True),
        ("population", gettext("Reference population"), True),
        ("share", gettext("Share of population"), True),
        ("target", gettext("Target"), True),
        ("progress", gettext("Progress"), True),
        ("missing", gettext("Missing"), True),
        ("status", gettext("Status"), False),
        ("round", gettext("Round ends"), False),
        ("projection", gettext("Target reached around"), False),
    ]


def _sort_headers(*, sort: str, query: str) -> list[dict]:
    """Each column's title, its aria-sort and the link that sorts by it (again: the other way)."""
    current = sort.lstrip("-")
    descending = sort.startswith("-")
    headers = []
    for key, title, numeric in _columns():
        if key == current:
            next_sort = key if descending else f"-{key}"
            aria = "descending" if descending else "ascending"
        else:
            # Figures read best largest first; names and codes in order.
            next_sort = f"-{key}" if numeric else key
            aria = ""
        params = {"sort": next_sort}
        if query:
            params["q"] = query
        headers.append(
            {
                "key": key,
                "title": title,
                "numeric": numeric,
                "aria_sort": aria,
                "url": "?" + urlencode(params) + "#territories",
            }
        )
    return headers


class _DailyChart:
    """The chart and its table fallback, built on first use: a cached page fragment needs neither."""

    def __init__(self, figures: Dashboard):
        self.figures = figures

    @cached_property
    def series(self) -> list[tuple[date, int]]:
        return daily_series(self.figures.daily, today=self.figures.today)

    @cached_property
    def svg(self) -> str:
        chart = daily_chart_svg(
            series=self.series,
            title=gettext("New signatures per day"),
            description=gettext(
                "One bar per day of signing, including signatures withdrawn since. The table below gives the figures."
            ),
        )
        # Built from our own numbers and escaped labels only (pledges.maps).
        return mark_safe(chart)  # noqa: S308

    @cached_property
    def days(self) -> list[tuple[date, int]]:
        """Days with signatures, latest first, at most 60."""
        return [(day, n) for day, n in reversed(self.series) if n][:60]


@require_GET
@login_required
def dashboard(request: HttpRequest, slug: str) -> HttpResponse:
    campaign, scope = _campaign_and_scope(request, slug)
    query = request.GET.get("q", "")[:100]
    sort = territory_sort_normalize(request.GET.get("sort", DEFAULT_SORT)[:20])
    today = timezone.localdate()
    # The figures' HTML is the same for every organizer with this scope, language, sort and day
    # until the snapshot changes: cached under those (and the slug, in its links), read with the
    # snapshot in one round trip. A filtered table (any text) is rendered afresh: it has few
    # rows, and free text must not fill the cache.
    fragment_key = (
        None
        if query
        else ":".join(
            [
                f"pledges:dashboard:html:{campaign.pk}",
                campaign.slug,
                scope_key(scope),
                get_language(),
                sort,
                today.isoformat(),
            ]
        )
    )
    snapshot, html = dashboard_page_get(campaign=campaign, fragment_key=fragment_key)
    if html is None:
        html = _dashboard_figures_html(
            request, campaign=campaign, scope=scope, snapshot=snapshot, query=query, sort=sort, today=today
        )
        if fragment_key:
            dashboard_fragment_set(key=fragment_key, snapshot=snapshot, html=html)
    return render(
        request,
        "organizer/dashboard.html",
        {
            "campaign": campaign,
            "scope": scope,
            "scope_codes": sorted(scope.department_codes),
            # Rendered by our own template with autoescaping (_dashboard_figures_html).
            "figures_html": mark_safe(html),  # noqa: S308
            "figures_as_of": snapshot.computed_at,
            "active_tab": "dashboard",
        },
    )


def _dashboard_figures_html(
    request: HttpRequest,
    *,
    campaign: Campaign,
    scope: OrganizerScope,
    snapshot: DashboardSnapshot,
    query: str,
    sort: str,
    today: date,
) -> str:
    """The dashboard's figures for the scope: funnel, patients, map, chart, territories, releases."""
    figures = campaign_dashboard(campaign=campaign, scope=scope, today=today, snapshot=snapshot)
    rows, sort = territory_rows_sort(territory_rows_filter(figures.rows, query=query), sort=sort)
    return render_to_string(
        "organizer/_dashboard_figures.html",
        {
            "campaign": campaign,
            "figures": figures,
            "rows": rows,
            "sort": sort,
            "query": query,
            "headers": _sort_headers(sort=sort, query=query),
            "chart": _DailyChart(figures),
            "refresh_seconds": refresh_seconds(),
        },
        request=request,
    )


@require_GET
@login_required
@gzip_page
def dashboard_map(request: HttpRequest, slug: str) -> HttpResponse:
    campaign, scope = _campaign_and_scope(request, slug)
    svg = department_map_svg(
        departments=organizer_map_departments(campaign=campaign, scope=scope),
        title=gettext("Signatures by department: %(campaign)s") % {"campaign": campaign.title},
        description=gettext(
            "Map of France by department, overseas departments included, coloured by progress toward each "
            "department's target, from the published counts. The table of territories on the dashboard gives "
            "the live figures."
        ),
    )
    return svg_response(svg, cache_control="private, max-age=0, must-revalidate")


# --- Exports ----------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
def export_list(request: HttpRequest, slug: str) -> HttpResponse:
    campaign, scope = _campaign_and_scope(request, slug, act=request.method == "POST")
    if request.method == "POST":
        file_format = request.POST.get("format", "")
        if file_format not in FORMATS:
            return render(
                request,
                "organizer/exports.html",
                _exports_context(request, campaign, scope, error=gettext("Choose CSV or XLSX.")),
                status=400,
            )
        job = export_request(campaign=campaign, scope=scope, user=request.user, file_format=file_format)
        return redirect("pledges:organizer_export_detail", slug=campaign.slug, export_id=job.pk)
    return render(request, "organizer/exports.html", _exports_context(request, campaign, scope))


def _exports_context(
    request: HttpRequest, campaign: Campaign, scope: OrganizerScope, error: str = ""
) -> dict:
    jobs = ExportJob.objects.filter(campaign=campaign, requested_by=request.user).order_by("-created_at")[:20]
    return {
        "campaign": campaign,
        "scope": scope,
        "scope_codes": sorted(scope.department_codes),
        "jobs": jobs,
        "error": error,
        "active_tab": "exports",
    }


def _export_for(request: HttpRequest, campaign: Campaign, scope: OrganizerScope, export_id: int) -> ExportJob:
    """The account's own export of this campaign (404 otherwise), still within its scope (403)."""
    job = get_object_or_404(ExportJob, pk=export_id, campaign=campaign, requested_by=request.user)
    if not export_covered_by(job, scope):
        raise PermissionDenied
    return job


def _export_status_payload(job: ExportJob, campaign: Campaign) -> dict:
    total = job.progress_total
    done = job.progress_done
    percent = 100 if job.status == BundleStatus.DONE else (int(done * 100 / total) if total else 0)
    return {
        "status": job.status,
        "status_label": str(job.get_status_display()),
        "done": done,
        "total": total,
        "percent": percent,
        "download_url": reverse(
            "pledges:organizer_export_download", kwargs={"slug": campaign.slug, "export_id": job.pk}
        )
        # An expired or erased export keeps its row but no longer has a file to download.
        if job.status == BundleStatus.DONE and job.file_name
        else None,
    }


@require_GET
@login_required
def export_detail(request: HttpRequest, slug: str, export_id: int) -> HttpResponse:
    campaign, scope = _campaign_and_scope(request, slug)
    job = _export_for(request, campaign, scope, export_id)
    return render(
        request,
        "organizer/export_detail.html",
        {
            "campaign": campaign,
            "scope": scope,
            "scope_codes": sorted(scope.department_codes),
            "job": job,
            "progress": _export_status_payload(job, campaign),
            "active_tab": "exports",
        },
    )


@require_GET
@login_required
def export_status(request: HttpRequest, slug: str, export_id: int) -> JsonResponse:
    campaign, scope = _campaign_and_scope(request, slug)
    job = _export_for(request, campaign, scope, export_id)
    response = JsonResponse(_export_status_payload(job, campaign))
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@login_required
def export_download(request: HttpRequest, slug: str, export_id: int) -> FileResponse:
    campaign, scope = _campaign_and_scope(request, slug)
    job = _export_for(request, campaign, scope, export_id)
    path = export_path(job)
    if job.status != BundleStatus.DONE or path is None or not path.is_file():
        raise Http404("The export is not ready")
    export_download_audit(job=job, user=request.user)
    response = FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=export_download_name(job),
        content_type=export_content_type(job),
    )
    response["Cache-Control"] = "private, no-store"
    return response


# --- Audit log --------------------------------------------------------------------------------


def _detail_text(value) -> str:
    """An audit detail as a short readable text: lists joined, objects as compact JSON."""
    if isinstance(value, list):
        return ", ".join(_detail_text(item) for item in value) or "—"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if value is None or value == "":
        return "—"
    return str(value)


@require_GET
@login_required
def audit_log(request: HttpRequest, slug: str) -> HttpResponse:
    campaign, scope = _campaign_and_scope(request, slug)
    paginator = Paginator(audit_entries(campaign=campaign, scope=scope), AUDIT_PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    for entry in page.object_list:
        entry.detail_items = [(key, _detail_text(value)) for key, value in (entry.details or {}).items()]
    return render(
        request,
        "organizer/audit.html",
        {
            "campaign": campaign,
            "scope": scope,
            "scope_codes": sorted(scope.department_codes),
            "page": page,
            "now": timezone.now(),
            "active_tab": "audit",
        },
    )
