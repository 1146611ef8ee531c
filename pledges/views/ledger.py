"""The public ledger: latest digests, a receipt check, and the JSON export anyone can recompute.

No login and no personal data: entries carry random receipt ids, department codes and times.
"""

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_safe

from deconv.ratelimit import rate_limited
from pledges.enums import PledgeEventKind
from pledges.ledger import (
    GENESIS_HASH,
    RELEASE_KIND,
    digest_events_until,
    ledger_digest_latest,
    ledger_digest_public_counts,
    ledger_digests_recent,
    ledger_entries_page,
    ledger_receipt_lookup,
    ledger_time,
    receipt_normalize,
)
from pledges.models import Campaign
from pledges.selectors import campaign_get_public

EXPORT_PAGE_SIZE = 1000
RECENT_DIGESTS = 10
# A full export page never changes (entries are append-only); the last one grows every count.
FULL_PAGE_MAX_AGE = 3600
LAST_PAGE_MAX_AGE = 5
# `after` is a sequence number: 18 digits are more than a chain will ever hold, and stay in range.
MAX_AFTER_DIGITS = 18
KIND_LABELS = {**dict(PledgeEventKind.choices), RELEASE_KIND: _("Letters released")}


@require_safe
def ledger_overview(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = campaign_get_public(slug=slug)
    latest = ledger_digest_latest(campaign=campaign)
    return render(
        request,
        "pledges/ledger_overview.html",
        {
            "campaign": campaign,
            "latest": latest,
            "latest_events_until": digest_events_until(latest) if latest else None,
            "counts": ledger_digest_public_counts(digest=latest) if latest else None,
            "digests": ledger_digests_recent(campaign=campaign, limit=RECENT_DIGESTS),
            "export_url": _export_url(campaign=campaign),
            "genesis_hash": GENESIS_HASH,
        },
    )


@require_safe
@rate_limited("ledger_verify", per_ip="30/m", methods=("GET",))
def ledger_receipt_check(request: HttpRequest, slug: str) -> HttpResponse:
    campaign = campaign_get_public(slug=slug)
    # Anything longer than a UUID written out is not one; never echo more than that.
    submitted = request.GET.get("receipt", "").strip()[:64]
    receipt = receipt_normalize(submitted) if submitted else None
    status = ledger_receipt_lookup(campaign=campaign, receipt_id=receipt) if receipt else None
    return render(
        request,
        "pledges/ledger_verify.html",
        {
            "campaign": campaign,
            "submitted": submitted,
            "invalid": bool(submitted) and receipt is None,
            "status": status,
            "entries": [(entry, KIND_LABELS.get(entry.kind, entry.kind)) for entry in status.entries]
            if status
            else [],
        },
    )


@require_safe
def ledger_export(request: HttpRequest, slug: str) -> HttpResponse:
    try:
        campaign = campaign_get_public(slug=slug)
    except Http404:
        return _json_error("campaign not found", status=404)
    after_text = request.GET.get("after", "0")
    if not after_text.isdigit() or len(after_text) > MAX_AFTER_DIGITS:
        return _json_error("after must be a sequence number (0 or more)", status=400)
    after = int(after_text)

    entries = ledger_entries_page(campaign=campaign, after=after, limit=EXPORT_PAGE_SIZE)
    full = len(entries) == EXPORT_PAGE_SIZE
    latest = ledger_digest_latest(campaign=campaign)
    payload = {
        "campaign": {"id": campaign.pk, "slug": campaign.slug},
        "hash": {
            "algorithm": "sha256",
            "genesis_previous_hash": GENESIS_HASH,
            "covers": "canonical JSON (sorted keys, separators ',' and ':', UTF-8) of "
            '{"campaign": campaign.id, "sequence", "kind", "receipt_id", "department_code", '
            '"payload", "occurred_at", "previous_hash"}',
        },
        "after": after,
        "entries": entries,
        "next": f"{_export_url(campaign=campaign)}?after={entries[-1]['sequence']}" if full else None,
        "latest_digest": _digest_json(latest) if latest else None,
    }
    response = JsonResponse(payload, json_dumps_params={"ensure_ascii": False})
    response["Cache-Control"] = f"public, max-age={FULL_PAGE_MAX_AGE if full else LAST_PAGE_MAX_AGE}"
    # Verifiers may run in a browser on another site; nothing here depends on cookies.
    response["Access-Control-Allow-Origin"] = "*"
    return response


def _export_url(*, campaign: Campaign) -> str:
    return settings.SITE_URL + reverse("pledges:ledger_export", kwargs={"slug": campaign.slug})


def _digest_json(digest) -> dict:
    events_until = digest_events_until(digest)
    return {
        "sequence": digest.sequence,
        "head_hash": digest.head_hash,
        "published_at": ledger_time(digest.published_at),
        "events_until": ledger_time(events_until) if events_until else None,
    }


def _json_error(message: str, *, status: int) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    response["Access-Control-Allow-Origin"] = "*"
    return response
