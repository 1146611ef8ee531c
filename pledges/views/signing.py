"""Signing, "Mon engagement" (the signer's own pledge) and the account's data pages.

Every view is for the signed-in owner only: a pledge is looked up through request.user, so
another account's pledge is a 404, never a 403 that would confirm it exists.
"""

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from deconv.forms import honeypot_record
from deconv.ratelimit import client_ip, rate_limited
from pledges import services
from pledges.enums import LIVE_STATUSES, PledgeStatus, TerritoryLevel
from pledges.forms import AccountDeleteForm, PledgeForm
from pledges.letters import letter_render_pdf
from pledges.models import Campaign, LetterVersion, Pledge, TerritoryCount
from pledges.selectors import campaign_get_public, public_count

# Personal data: never kept by a browser cache or a proxy.
NO_STORE = "private, no-store"


def _pledges_of(*, campaign: Campaign, user) -> "list[Pledge]":
    return list(
        Pledge.objects.filter(campaign=campaign, user=user)
        .select_related("letter_version", "department", "caisse")
        .order_by("-created_at", "-pk")
    )


def _live_pledge_or_none(*, campaign: Campaign, user) -> Pledge | None:
    return (
        Pledge.objects.filter(campaign=campaign, user=user, status__in=LIVE_STATUSES)
        .select_related("campaign", "letter_version", "department", "caisse")
        .first()
    )


def _live_pledge_or_404(*, campaign: Campaign, user) -> Pledge:
    pledge = _live_pledge_or_none(campaign=campaign, user=user)
    if pledge is None:
        raise Http404("No live pledge of this account in this campaign")
    return pledge


def _department_public_count(*, pledge: Pledge) -> dict:
    value = (
        TerritoryCount.objects.filter(
            campaign_id=pledge.campaign_id, level=TerritoryLevel.DEPARTMENT, code=pledge.department.code
        )
        .values_list("pledges", flat=True)
        .first()
    ) or 0
    shown = public_count(value)
    return {"pledges": shown, "suppressed": shown is None}


def _signing_refusal(campaign: Campaign, *, letter_version: LetterVersion | None) -> str | None:
    """Why this campaign cannot be signed or changed now, in words; None when it can.

    `letter_version`: the campaign's current version, read once per request by the caller.
    """
    try:
        services.pledge_campaign_check_open(campaign=campaign)
    except ValidationError as error:
        return " ".join(error.messages)
    if letter_version is None:
        return _("This campaign has no letter to sign yet.")
    return None


def _posted(request: HttpRequest):
    """The POST data to bind a form to, or None for a GET (an empty POST still shows its errors)."""
    return request.POST if request.method == "POST" else None


def _submitted(request: HttpRequest, campaign: Campaign) -> HttpResponse:
    """The one page shown after a submission, whether it created a pledge or met an existing one.

    Identical in both cases (same template, same context): the answer must not tell anyone
    whether an RPPS number is already known. The owner of an existing pledge is told by email.
    """
    return render(request, "pledges/pledge_submitted.html", {"campaign": campaign})


@login_required
@rate_limited("pledge", per_ip="10/m", per_user="5/h")
@require_http_methods(["GET", "POST"])
def pledge_create(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = campaign_get_public(slug=slug)
    # A double submission (POST) goes on to the neutral page below; only the form page redirects.
    if request.method == "GET" and _live_pledge_or_none(campaign=campaign, user=request.user):
        return redirect("pledges:pledge_mine", slug=campaign.slug)
    # Read once: the refusal, the form's consent and the pledge all name this version.
    letter_version = campaign.current_letter_version
    refusal = _signing_refusal(campaign, letter_version=letter_version)
    if refusal:
        status = 409 if request.method == "POST" else 200
        return render(
            request, "pledges/pledge_closed.html", {"campaign": campaign, "refusal": refusal}, status=status
        )

    form = PledgeForm(_posted(request), campaign=campaign, letter_version=letter_version)
    if request.method == "POST" and form.is_valid():
        if form.honeypot_filled:
            honeypot_record(request=request, scope="pledge")
            return _submitted(request, campaign)
        try:
            services.pledge_create(
                campaign=campaign,
                user=request.user,
                data=form.pledge_data(),
                ip=client_ip(request),
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
                letter_version=letter_version,
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return _submitted(request, campaign)
    return render(
        request,
        "pledges/pledge_form.html",
        {"campaign": campaign, "letter_version": letter_version, "form": form},
    )


@login_required
@require_GET
def pledge_mine(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = campaign_get_public(slug=slug)
    pledges = _pledges_of(campaign=campaign, user=request.user)
    pledge = next((p for p in pledges if p.status in LIVE_STATUSES), pledges[0] if pledges else None)
    is_live = pledge is not None and pledge.status in LIVE_STATUSES
    current_version = campaign.current_letter_version
    return render(
        request,
        "pledges/pledge_mine.html",
        {
            "campaign": campaign,
            "pledge": pledge,
            "is_live": is_live,
            "department_count": _department_public_count(pledge=pledge) if is_live else None,
            "newer_version": (
                current_version
                if is_live and current_version and current_version.pk != pledge.letter_version_id
                else None
            ),
            "can_edit": is_live and pledge.status == PledgeStatus.ACTIVE and campaign.is_open_for_signing,
            # After an organizer's invalidation, signing again would go around their decision.
            "can_sign": (pledge is None or pledge.status == PledgeStatus.WITHDRAWN)
            and campaign.is_open_for_signing,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def pledge_edit(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = campaign_get_public(slug=slug)
    pledge = _live_pledge_or_404(campaign=campaign, user=request.user)
    refusal = _signing_refusal(campaign, letter_version=campaign.current_letter_version)
    if refusal is None and pledge.status != PledgeStatus.ACTIVE:
        refusal = _("This pledge can no longer be changed.")
    if refusal:
        status = 409 if request.method == "POST" else 200
        return render(
            request,
            "pledges/pledge_edit.html",
            {"campaign": campaign, "pledge": pledge, "refusal": refusal},
            status=status,
        )

    form = PledgeForm(_posted(request), campaign=campaign, pledge=pledge)
    if request.method == "POST" and form.is_valid():
        try:
            services.pledge_update(pledge=pledge, data=form.pledge_data())
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, _("Your pledge has been updated."))
            return redirect("pledges:pledge_mine", slug=campaign.slug)
    return render(request, "pledges/pledge_edit.html", {"campaign": campaign, "pledge": pledge, "form": form})


@login_required
@rate_limited("withdrawal", per_ip="10/m", per_user="5/h")
@require_http_methods(["GET", "POST"])
def pledge_withdraw(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = campaign_get_public(slug=slug)
    # Live or invalidated: withdrawing an invalidated pledge still erases its personal data.
    pledge = (
        Pledge.objects.filter(campaign=campaign, user=request.user)
        .exclude(status=PledgeStatus.WITHDRAWN)
        .order_by("-created_at", "-pk")
        .first()
    )
    if pledge is None:
        # Withdrawing twice is harmless: a pledge already withdrawn leads back to "My pledge".
        if Pledge.objects.filter(campaign=campaign, user=request.user).exists():
            if request.method == "POST":
                messages.info(request, _("Your pledge was already withdrawn."))
            return redirect("pledges:pledge_mine", slug=campaign.slug)
        raise Http404("No pledge of this account in this campaign")
    if request.method == "POST":
        services.pledge_withdraw(pledge=pledge)
        messages.success(
            request,
            _("Your pledge is withdrawn and its personal data erased. A confirmation email is on its way."),
        )
        return redirect("pledges:pledge_mine", slug=campaign.slug)
    return render(request, "pledges/pledge_withdraw.html", {"campaign": campaign, "pledge": pledge})


@login_required
@require_GET
def pledge_letter_preview(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = campaign_get_public(slug=slug)
    pledge = _live_pledge_or_404(campaign=campaign, user=request.user)
    _html, pdf = letter_render_pdf(pledge=pledge, intention=True)
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="intention-{campaign.slug}.pdf"'
    response["Cache-Control"] = NO_STORE
    return response


@login_required
@require_GET
def account_overview(request: HttpRequest) -> HttpResponse:
    pledges = (
        Pledge.objects.filter(user=request.user)
        .select_related("campaign", "letter_version", "department")
        .order_by("-created_at", "-pk")
    )
    return render(request, "pledges/account_overview.html", {"pledges": list(pledges)})


@login_required
@require_GET
def account_data_export(request: HttpRequest) -> HttpResponse:
    data = services.account_data_export(user=request.user)
    response = JsonResponse(data, json_dumps_params={"ensure_ascii": False, "indent": 2})
    stamp = timezone.localdate().isoformat()
    response["Content-Disposition"] = f'attachment; filename="deconv-my-data-{stamp}.json"'
    response["Cache-Control"] = NO_STORE
    return response


@login_required
@require_http_methods(["GET", "POST"])
def account_delete(request: HttpRequest) -> HttpResponse:
    form = AccountDeleteForm(_posted(request))
    if request.method == "POST" and form.is_valid():
        services.account_erase(user=request.user)
        logout(request)
        messages.success(
            request,
            _("Your account and your data have been deleted. A last confirmation email is on its way."),
        )
        return redirect("pledges:home")
    live_count = Pledge.objects.filter(user=request.user, status__in=LIVE_STATUSES).count()
    return render(request, "pledges/account_delete.html", {"form": form, "live_count": live_count})
