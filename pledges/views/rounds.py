"""The signer's answer to a confirmation round: from "Mon engagement" or from the email's signed link.

A GET only shows the question, the letter that would be released and two buttons: mail scanners
in hospitals open links before people do, so nothing is ever recorded on a GET. The POST records
the answer (pledges.rounds.round_respond) and redirects back to the page.

The link's signed token names the round and the pledge and expires with the round: it stands in
for a login, as an email's own link does, and shows only that signer's own pledge.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from deconv.ratelimit import rate_limited
from pledges.enums import PledgeStatus, RoundAnswer, RoundOutcome
from pledges.letters import letter_context
from pledges.models import ConfirmationRound, Pledge
from pledges.notifications import territory_name
from pledges.rounds import round_answer_of, round_link_load, round_open_for_pledge, round_respond
from pledges.selectors import campaign_get_public

# Personal data: never kept by a browser cache or a proxy.
NO_STORE = "private, no-store"


@login_required
@rate_limited("confirmation", per_ip="20/m", per_user="10/h")
@require_http_methods(["GET", "HEAD", "POST"])
def round_confirm(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = campaign_get_public(slug=slug)
    pledge = (
        Pledge.objects.filter(campaign=campaign, user=request.user, status=PledgeStatus.ACTIVE)
        .select_related("campaign", "letter_version", "department__region", "caisse")
        .first()
    )
    if pledge is None:
        raise Http404("No active pledge of this account in this campaign")
    round = round_open_for_pledge(pledge=pledge)
    if round is None:
        return _no_store(
            render(request, "pledges/round_none.html", {"campaign": campaign, "pledge": pledge}, status=404)
        )
    return _round_page(request, round=round, pledge=pledge)


@rate_limited("confirmation", per_ip="20/m")
@require_http_methods(["GET", "HEAD", "POST"])
def round_confirm_link(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    loaded = round_link_load(token=token)
    if loaded is None or loaded[0].crossing.campaign.slug != slug:
        response = render(request, "pledges/round_link_invalid.html", {"slug": slug}, status=404)
    else:
        round, pledge = loaded
        response = _round_page(request, round=round, pledge=pledge)
    # The token is in the URL: do not hand it to another site through the Referer header.
    response["Referrer-Policy"] = "no-referrer"
    return response


def _round_page(request: HttpRequest, *, round: ConfirmationRound, pledge: Pledge) -> HttpResponse:
    status = 200
    error = None
    if request.method == "POST":
        try:
            round_respond(round=round, pledge=pledge, answer=request.POST.get("answer", ""))
        except ValidationError as exc:
            error = " ".join(exc.messages)
            status = 409
        else:
            messages.success(request, _("Your answer is recorded."))
            pledge.refresh_from_db(fields=["status"])
            if pledge.status != PledgeStatus.ACTIVE:
                # An early release just released this pledge: the round page is over for it,
                # "Mon engagement" shows the letter and what to do next.
                return redirect("pledges:pledge_mine", slug=round.crossing.campaign.slug)
            return redirect(request.get_full_path())
    round.refresh_from_db()
    pledge.refresh_from_db(fields=["status"])
    crossing = round.crossing
    is_open = (
        round.outcome == RoundOutcome.OPEN
        and timezone.now() < round.ends_at
        and pledge.status == PledgeStatus.ACTIVE
    )
    context = {
        "campaign": crossing.campaign,
        "round": round,
        "pledge": pledge,
        "is_open": is_open,
        "error": error,
        "answer": round_answer_of(round=round, pledge=pledge),
        "territory_name": territory_name(level=crossing.level, code=crossing.code),
        "confirmed_value": RoundAnswer.CONFIRMED.value,
        "declined_value": RoundAnswer.DECLINED.value,
        "letter": letter_context(pledge=pledge, intention=True)
        if pledge.status == PledgeStatus.ACTIVE
        else None,
    }
    return _no_store(render(request, "pledges/round_confirm.html", context, status=status))


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = NO_STORE
    return response
