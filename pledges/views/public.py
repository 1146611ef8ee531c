"""The home page and the campaign page: what a national surge of visitors reads.

Anonymous visitors all see the same page (per language), so each page is rendered once and
served whole from deconv.answer_cache, process memory then Django's cache, for
PUBLIC_PAGE_CACHE_SECONDS (1 s by default, as the JSON API): counts change once per counting
interval anyway. Before the cache, the campaign page cost ~60 ms of Python per request, mostly
the conditions of every department and region (measured at 1 % of a bare view's rate).

A page is shared only when nothing in it belongs to the visitor: a GET or HEAD, nobody signed
in, no message waiting to be shown (the "signed out" notice, say), and the rendering carried no
CSRF token (the language switch needs none: deconv.views_language). Its key is the path and the
active language, the only inputs of the HTML then; the language switch's `next` is the path
without its query string, so that tracking parameters on shared links do not defeat the cache.

Signed-in visitors get their own rendering (their pledge, their menu, the sign-out form), but the
expensive part, counts and conditions of every territory, comes from the same kind of cache,
shared per campaign and language.
"""

from django.conf import settings
from django.contrib.messages import get_messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.utils.translation import get_language

from deconv.answer_cache import answer_cached
from pledges.models import Campaign
from pledges.selectors import (
    campaign_get_public,
    campaign_list_open,
    campaign_national_counts,
    campaign_public_counts,
)
from pledges.templatetags.pledge_conditions import conditions_table
from pledges.views.api import MAX_SLUG_LENGTH

SHARED_METHODS = ("GET", "HEAD")

# What a shared page keeps: (HTTP status, HTML). A 404 is kept too, with an empty body: unknown
# slugs must not cost a query each either; the 404 page is rendered as usual.
SharedPage = tuple[int, bytes]


def _cache_seconds() -> int:
    return getattr(settings, "PUBLIC_PAGE_CACHE_SECONDS", 1)


def home(request: HttpRequest) -> HttpResponse:
    if _shared_page_allowed(request):
        return _shared_page(request, build=lambda: _home_page(request))
    return _private_page(render(request, "pledges/home.html", _home_context()))


def campaign_detail(request: HttpRequest, slug: str) -> HttpResponse:
    if len(slug) > MAX_SLUG_LENGTH:
        raise Http404("No such campaign")
    if _shared_page_allowed(request):
        return _shared_page(request, build=lambda: _campaign_page(request, slug=slug))
    campaign = campaign_get_public(slug=slug)
    return _private_page(render(request, "pledges/campaign_detail.html", _campaign_context(campaign)))


def _home_context() -> dict:
    campaigns = list(campaign_list_open())
    counts = campaign_national_counts(campaign_ids=[campaign.pk for campaign in campaigns])
    for campaign in campaigns:
        campaign.national_count = counts[campaign.pk]
    return {"campaigns": campaigns}


def _campaign_context(campaign: Campaign) -> dict:
    return {
        "campaign": campaign,
        "letter_version": campaign.current_letter_version,
        **_campaign_territories(campaign),
    }


def _campaign_territories(campaign: Campaign) -> dict:
    """{"counts", "territories_html"}: the same for every visitor, cached per campaign and language.

    The counts feed the counter; the HTML is the table and the conditions of every territory
    (pledges/campaign_territories.html), whose rendering alone cost ~30 ms per request.
    """

    def build() -> dict:
        counts = campaign_public_counts(campaign=campaign)
        html = render_to_string(
            "pledges/campaign_territories.html",
            {"campaign": campaign, "conditions": conditions_table(campaign=campaign, counts=counts)},
        )
        return {"counts": counts, "territories_html": html}

    # The HTML stays a SafeString through the cache's pickling: the page includes it unescaped.
    return answer_cached(
        key=f"public:v1:territories:{campaign.pk}:{get_language()}", build=build, seconds=_cache_seconds()
    )


def _home_page(request: HttpRequest) -> SharedPage:
    return 200, _render_shared(request, "pledges/home.html", _home_context())


def _campaign_page(request: HttpRequest, *, slug: str) -> SharedPage:
    try:
        campaign = campaign_get_public(slug=slug)
    except Http404:
        return 404, b""
    return 200, _render_shared(request, "pledges/campaign_detail.html", _campaign_context(campaign))


def _render_shared(request: HttpRequest, template: str, context: dict) -> bytes:
    # The language switch returns to the path alone: the page's HTML must not depend on the query.
    return render_to_string(template, {**context, "language_next": request.path}, request=request).encode()


def _shared_page_allowed(request: HttpRequest) -> bool:
    """Whether this request gets the page every anonymous visitor gets.

    Reading request.user loads the session (no query without a session cookie), which also makes
    SessionMiddleware add "Vary: Cookie". len() of the messages reads them without consuming them.
    """
    return (
        request.method in SHARED_METHODS
        and not request.user.is_authenticated
        and len(get_messages(request)) == 0
    )


def _shared_page(request: HttpRequest, *, build) -> HttpResponse:
    language = get_language()
    seconds = _cache_seconds()
    status, body = answer_cached(
        key=f"public:v1:page:{request.path}:{language}",
        build=build,
        seconds=seconds,
        # A page that came out with a CSRF token (a form added to it one day) is served to the
        # visitor it was rendered for and never stored: a token is per visitor.
        keep=lambda page: b"csrfmiddlewaretoken" not in page[1],
    )
    if status == 404:
        raise Http404("No such campaign")
    response = HttpResponse(body, status=status)
    response["Content-Language"] = language
    patch_vary_headers(response, ("Accept-Language", "Cookie"))
    # Shared caches (a CDN, a hospital's proxy) may keep it only when the request had no cookie:
    # the response to a request with cookies may then carry one (an expired session's deletion).
    if request.COOKIES:
        patch_cache_control(response, private=True, max_age=seconds)
    else:
        patch_cache_control(response, public=True, max_age=seconds)
    return response


def _private_page(response: HttpResponse) -> HttpResponse:
    """A page rendered for one visitor (signed in, or with a message): no cache may keep it."""
    patch_vary_headers(response, ("Accept-Language", "Cookie"))
    patch_cache_control(response, private=True, no_cache=True)
    return response
