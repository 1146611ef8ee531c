"""The public JSON API: read only, anonymous, cacheable, open to every origin.

A national surge means tens of thousands of open pages polling count.json. Each answer is built
once, stored in Django's cache for API_CACHE_SECONDS and served from there: a surge costs a few
queries per second per campaign, and a cached answer touches neither the database, the session
nor a template. The key is the URL's slug with a short timeout rather than the counted_until
stamp, because learning the stamp would itself cost a query per request.

In front of Django's cache, each process keeps the answers it served for API_CACHE_SECONDS too
(deconv.answer_cache, shared with the public pages): with Redis as the cache, a network round
trip per request cost more than half of the request (measured: 0.4x a bare view's rate without
it). Shared cache then process memory can each be up to 1 s old, so readers see counts at most
2 s older than the last counting run; counts change once per counting interval (5 s by default)
anyway.

CORS is a constant header on three read-only endpoints without credentials, so a small decorator
does it; django-cors-headers would add a dependency and a middleware to every request of the site.
"""

import json
from collections.abc import Callable
from datetime import datetime
from functools import wraps

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from deconv.answer_cache import answer_cached
from pledges.counting import NATION_CODE
from pledges.enums import TerritoryLevel
from pledges.ledger import counts_normal, ledger_digest_latest, ledger_digests_recent
from pledges.models import LedgerDigest
from pledges.selectors import (
    campaign_get_public,
    campaign_list_public,
    campaign_national_counts,
    campaign_public_counts,
    counter_state_public,
    public_count,
)

API_CACHE_SECONDS = 1
# Digests listed by /digests/, newest first; any older head can be recomputed from the ledger export.
DIGESTS_LISTED = 100
# Browsers and proxies may serve a stale answer for this many intervals while they refetch.
STALE_WHILE_REVALIDATE_INTERVALS = 3
SAFE_METHODS = ("GET", "HEAD")
ALLOWED_METHODS = "GET, HEAD, OPTIONS"
# Campaign slugs are at most 80 characters; longer ones are not looked up nor used as cache keys.
MAX_SLUG_LENGTH = 80

# What is cached: (HTTP status, JSON body, max-age in seconds).
CachedAnswer = tuple[int, bytes, int]


def public_api(view: Callable) -> Callable:
    """GET and HEAD go to the view; OPTIONS answers the CORS preflight; other methods get 405 JSON.

    csrf_exempt: nothing here changes state, and a POST must get the 405 below, not a CSRF page.
    """

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method == "OPTIONS":
            response = HttpResponse(status=204)
            response["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response["Access-Control-Allow-Headers"] = "Accept, Accept-Language, Content-Type"
            response["Access-Control-Max-Age"] = "86400"
            response["Allow"] = ALLOWED_METHODS
        elif request.method not in SAFE_METHODS:
            response = _json_response(_error_body("method not allowed"), status=405)
            response["Allow"] = ALLOWED_METHODS
        else:
            response = view(request, *args, **kwargs)
        response["Access-Control-Allow-Origin"] = "*"
        return response

    return wrapper


@public_api
def campaign_list(request: HttpRequest) -> HttpResponse:
    return _cached_answer(key="api:v1:campaigns", build=_campaign_list_answer)


@public_api
def campaign_detail(request: HttpRequest, slug: str) -> HttpResponse:
    if len(slug) > MAX_SLUG_LENGTH:
        return _not_found()
    return _cached_answer(key=f"api:v1:campaign:{slug}", build=lambda: _campaign_detail_answer(slug=slug))


@public_api
def campaign_count(request: HttpRequest, slug: str) -> HttpResponse:
    if len(slug) > MAX_SLUG_LENGTH:
        return _not_found()
    return _cached_answer(key=f"api:v1:count:{slug}", build=lambda: _campaign_count_answer(slug=slug))


def _cached_answer(*, key: str, build: Callable[[], CachedAnswer]) -> HttpResponse:
    status, body, max_age = answer_cached(key=key, build=build, seconds=API_CACHE_SECONDS)
    response = HttpResponse(body, status=status, content_type="application/json")
    response["Cache-Control"] = (
        f"public, max-age={max_age}, stale-while-revalidate={max_age * STALE_WHILE_REVALIDATE_INTERVALS}"
    )
    return response


def _campaign_list_answer() -> CachedAnswer:
    campaigns = list(campaign_list_public())
    counts = campaign_national_counts(campaign_ids=[campaign.pk for campaign in campaigns])
    interval = counter_state_public()["interval_seconds"]
    payload = {
        "campaigns": [
            {
                "slug": campaign.slug,
                "title": campaign.title,
                "status": campaign.status,
                "pledges": counts[campaign.pk]["pledges"],
                "url": _page_url(slug=campaign.slug),
            }
            for campaign in campaigns
        ]
    }
    return 200, _dump(payload), interval


def _campaign_detail_answer(*, slug: str) -> CachedAnswer:
    try:
        campaign = campaign_get_public(slug=slug)
    except Http404:
        return _not_found_answer()
    counts = campaign_public_counts(campaign=campaign, with_conditions=True)
    payload = {
        "slug": campaign.slug,
        "title": campaign.title,
        "status": campaign.status,
        "pledges": counts["nation"]["pledges"],
        "updated_at": _iso(counts["updated_at"]),
        # Per territory: its count and its condition (target, missing, status, round_ends_at,
        # released_at; null where not applicable).
        "territories": [
            _territory_json(entry) for entry in [*counts["departments"], *counts["regions"], counts["nation"]]
        ],
        # The public ledger's latest digest (pledges.ledger), null before the first one.
        "digest": _digest_json(ledger_digest_latest(campaign=campaign)),
    }
    return 200, _dump(payload), counts["interval_seconds"]


@public_api
def campaign_digests(request: HttpRequest, slug: str) -> HttpResponse:
    if len(slug) > MAX_SLUG_LENGTH:
        return _not_found()
    return _cached_answer(key=f"api:v1:digests:{slug}", build=lambda: _campaign_digests_answer(slug=slug))


def _campaign_digests_answer(*, slug: str) -> CachedAnswer:
    """The latest digests, newest first, each with the national count it vouches for (suppressed 1-4)."""
    try:
        campaign = campaign_get_public(slug=slug)
    except Http404:
        return _not_found_answer()
    digests = ledger_digests_recent(campaign=campaign, limit=DIGESTS_LISTED)
    payload = {
        "slug": campaign.slug,
        "digests": [
            {
                **_digest_json(digest),
                "pledges": public_count(
                    counts_normal(digest.counts).get(TerritoryLevel.NATION.value, {}).get(NATION_CODE, 0)
                ),
            }
            for digest in digests
        ],
    }
    return 200, _dump(payload), counter_state_public()["interval_seconds"]


def _digest_json(digest: LedgerDigest | None) -> dict | None:
    if digest is None:
        return None
    return {
        "sequence": digest.sequence,
        "head_hash": digest.head_hash,
        "published_at": _iso(digest.published_at),
    }


def _campaign_count_answer(*, slug: str) -> CachedAnswer:
    try:
        campaign = campaign_get_public(slug=slug)
    except Http404:
        return _not_found_answer()
    state = counter_state_public()
    count = campaign_national_counts(campaign_ids=[campaign.pk])[campaign.pk]
    payload = {"slug": campaign.slug, "pledges": count["pledges"], "updated_at": _iso(state["updated_at"])}
    return 200, _dump(payload), state["interval_seconds"]


def _territory_json(entry: dict) -> dict:
    return {**entry, "round_ends_at": _iso(entry["round_ends_at"]), "released_at": _iso(entry["released_at"])}


def _not_found_answer() -> CachedAnswer:
    # Cached like a success: unknown slugs must not cost a query each either.
    return 404, _error_body("campaign not found"), counter_state_public()["interval_seconds"]


def _not_found() -> HttpResponse:
    return _json_response(_error_body("campaign not found"), status=404)


def _page_url(*, slug: str) -> str:
    # SITE_URL rather than the request's Host: the answer is cached and shared by every reader.
    return settings.SITE_URL + reverse("pledges:campaign_detail", kwargs={"slug": slug})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _error_body(message: str) -> bytes:
    return _dump({"error": message})


def _dump(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _json_response(body: bytes, *, status: int) -> HttpResponse:
    return HttpResponse(body, status=status, content_type="application/json")
