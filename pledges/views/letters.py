"""Released letters: the signer's download and follow-through, the organizers' escrow bundles.

Access is decided in two functions, letter_can_access and escrow_can_manage, so that widening
or narrowing who may see letters is one change. A letter someone may not see is a 404 (never a
403 that would confirm it exists); escrow pages answer 403 like the other organizer pages.
"""

import logging
from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from deconv.models import AuditEntry
from pledges.access import organizer_scope
from pledges.enums import BundleStatus, PledgeStatus, TerritoryLevel
from pledges.escrow import escrow_bundle_path, escrow_bundle_request, escrow_letters
from pledges.followthrough import (
    LetterAcknowledgedForm,
    LetterSentForm,
    letter_acknowledged_record,
    letter_sent_record,
)
from pledges.letters_pipeline import letter_id_from_token, letter_path
from pledges.models import Campaign, EscrowBundle, Letter, Release
from pledges.selectors import campaign_get_public

logger = logging.getLogger(__name__)

NO_STORE = "private, no-store"
BUNDLES_SHOWN = 10


# --- Access ----------------------------------------------------------------------------------


def letter_can_access(user, letter: Letter) -> bool:
    """Who may download a released letter: its author, staff, and organizers who act on its department."""
    if not user.is_authenticated or not user.is_active:
        return False
    if letter.pledge.user_id == user.pk or user.is_staff:
        return True
    scope = organizer_scope(user=user, campaign=letter.pledge.campaign)
    return scope is not None and scope.can_act and scope.covers_department(letter.pledge.department.code)


def escrow_can_manage(user, release: Release) -> bool:
    """Who may build and download a release's escrow bundle: staff, and organizers who act on its territory."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_staff:
        return True
    scope = organizer_scope(user=user, campaign=release.campaign)
    if scope is None or not scope.can_act:
        return False
    return scope.national or (
        release.level == TerritoryLevel.DEPARTMENT and scope.covers_department(release.code)
    )


def _audit(*, user, action: str, release: Release, object_type: str, object_id: int, details=None) -> None:
    AuditEntry.objects.create(
        actor=user,
        action=action,
        campaign_id=release.campaign_id,
        territory_code=release.code if release.level != TerritoryLevel.NATION else "",
        object_type=object_type,
        object_id=str(object_id),
        details=details or {},
    )


# --- Downloading a letter --------------------------------------------------------------------


def _letters():
    return Letter.objects.select_related("pledge__campaign", "pledge__department", "release")


def _letter_response(letter: Letter) -> FileResponse:
    path = letter_path(file_name=letter.file_name)
    if not path.is_file():
        logger.error("letter %s: file missing on disk", letter.pk)
        raise Http404("Letter file missing")
    response = FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=f"lettre-deconventionnement-{letter.pledge.campaign.slug}.pdf",
        content_type="application/pdf",
    )
    response["Cache-Control"] = NO_STORE
    response["X-Content-Type-Options"] = "nosniff"
    return response


@login_required
@require_GET
def letter_download(request: HttpRequest, letter_id: int) -> FileResponse:
    letter = _letters().filter(pk=letter_id, pledge__status=PledgeStatus.RELEASED).first()
    if letter is None or not letter_can_access(request.user, letter):
        raise Http404("No such letter")
    if letter.pledge.user_id != request.user.pk:
        _audit(
            user=request.user,
            action="pledges.letter_download",
            release=letter.release,
            object_type="Letter",
            object_id=letter.pk,
        )
    return _letter_response(letter)


@require_GET
def letter_download_signed(request: HttpRequest, token: str) -> HttpResponse:
    """The link in the "released" email: works without signing in, for DOWNLOAD_MAX_AGE."""
    try:
        letter_id = letter_id_from_token(token=token)
    except signing.SignatureExpired:
        return render(request, "pledges/letter_link_invalid.html", {"expired": True}, status=410)
    except signing.BadSignature:
        return render(request, "pledges/letter_link_invalid.html", {"expired": False}, status=400)
    letter = _letters().filter(pk=letter_id, pledge__status=PledgeStatus.RELEASED).first()
    if letter is None:
        # Withdrawn since the email was sent: the letter no longer exists for anyone.
        return render(request, "pledges/letter_link_invalid.html", {"gone": True}, status=404)
    return _letter_response(letter)


# --- Follow-through ------------------------------------------------------------------------


def _own_letter_or_404(*, campaign: Campaign, user) -> Letter:
    letter = (
        _letters()
        .filter(pledge__campaign=campaign, pledge__user=user, pledge__status=PledgeStatus.RELEASED)
        .first()
    )
    if letter is None:
        raise Http404("No released letter of this account in this campaign")
    return letter


@login_required
@require_http_methods(["GET", "POST"])
def letter_sent(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = campaign_get_public(slug=slug)
    letter = _own_letter_or_404(campaign=campaign, user=request.user)
    initial = {
        "sent_on": letter.sent_on or timezone.localdate(),
        "registered_mail_number": letter.registered_mail_number,
    }
    form = LetterSentForm(request.POST if request.method == "POST" else None, letter=letter, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            letter_sent_record(
                letter=letter,
                sent_on=form.cleaned_data["sent_on"],
                registered_mail_number=form.cleaned_data["registered_mail_number"],
            )
        except ValidationError as error:
            form.add_error("sent_on", error)
        else:
            messages.success(request, _("Thank you: we have noted that you sent your letter."))
            return redirect("pledges:pledge_mine", slug=campaign.slug)
    return render(
        request, "pledges/followthrough_sent.html", {"campaign": campaign, "letter": letter, "form": form}
    )


@login_required
@require_http_methods(["GET", "POST"])
def letter_acknowledged(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = campaign_get_public(slug=slug)
    letter = _own_letter_or_404(campaign=campaign, user=request.user)
    form = LetterAcknowledgedForm(
        request.POST if request.method == "POST" else None,
        letter=letter,
        initial={"acknowledged_on": letter.acknowledged_on},
    )
    if request.method == "POST" and form.is_valid():
        try:
            letter_acknowledged_record(letter=letter, acknowledged_on=form.cleaned_data["acknowledged_on"])
        except ValidationError as error:
            form.add_error("acknowledged_on", error)
        else:
            messages.success(
                request, _("Thank you: we have noted the date of the acknowledgement of receipt.")
            )
            return redirect("pledges:pledge_mine", slug=campaign.slug)
    return render(
        request,
        "pledges/followthrough_acknowledged.html",
        {"campaign": campaign, "letter": letter, "form": form},
    )


# --- Escrow bundles ----------------------------------------------------------------------------


def _release_or_403(request: HttpRequest, release_id: int) -> Release:
    release = get_object_or_404(Release.objects.select_related("campaign"), pk=release_id)
    if not escrow_can_manage(request.user, release):
        raise PermissionDenied
    return release


def _bundle_or_404(request: HttpRequest, bundle_id: int) -> EscrowBundle:
    bundle = get_object_or_404(EscrowBundle.objects.select_related("release__campaign"), pk=bundle_id)
    if not escrow_can_manage(request.user, bundle.release):
        raise PermissionDenied
    return bundle


def bundle_progress(bundle: EscrowBundle) -> dict:
    """What the progress bar shows, in the page and in the JSON status (static/js/progress.js)."""
    total = bundle.progress_total
    done = min(bundle.progress_done, total) if total else bundle.progress_done
    ready = bundle.status == BundleStatus.DONE
    return {
        "status": bundle.status,
        "status_label": str(bundle.get_status_display()),
        "done": done,
        "total": total,
        "percent": 100 if ready else (done * 100 // total if total else 0),
        "download_url": reverse("pledges:escrow_download", kwargs={"bundle_id": bundle.pk}) if ready else "",
    }


@login_required
@require_http_methods(["GET", "POST"])
def escrow_page(request: HttpRequest, release_id: int) -> HttpResponse:
    release = _release_or_403(request, release_id)
    if request.method == "POST":
        bundle = escrow_bundle_request(release=release, user=request.user)
        _audit(
            user=request.user,
            action="pledges.escrow_bundle_request",
            release=release,
            object_type="EscrowBundle",
            object_id=bundle.pk,
            details={"letters": bundle.progress_total},
        )
        messages.success(request, _("The bundle is being prepared."))
        return redirect("pledges:escrow", release_id=release.pk)
    bundles = list(release.bundles.order_by("-created_at", "-pk")[:BUNDLES_SHOWN])
    latest = bundles[0] if bundles else None
    return render(
        request,
        "organizer/escrow.html",
        {
            "campaign": release.campaign,
            "release": release,
            "letter_count": escrow_letters(release=release).count(),
            "bundles": bundles,
            "latest": latest,
            "progress": bundle_progress(latest) if latest else None,
        },
    )


@login_required
@require_GET
def escrow_status(request: HttpRequest, bundle_id: int) -> JsonResponse:
    bundle = _bundle_or_404(request, bundle_id)
    response = JsonResponse(bundle_progress(bundle))
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def escrow_download(request: HttpRequest, bundle_id: int) -> FileResponse:
    bundle = _bundle_or_404(request, bundle_id)
    path = escrow_bundle_path(bundle=bundle)
    if bundle.status != BundleStatus.DONE or path is None or not path.is_file():
        raise Http404("The bundle is not ready")
    _audit(
        user=request.user,
        action="pledges.escrow_bundle_download",
        release=bundle.release,
        object_type="EscrowBundle",
        object_id=bundle.pk,
        details={"letters": bundle.progress_total, "sha256": bundle.sha256},
    )
    response = FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=Path(bundle.file_name).name,
        content_type="application/zip",
    )
    response["Cache-Control"] = NO_STORE
    response["X-Content-Type-Options"] = "nosniff"
    return response
