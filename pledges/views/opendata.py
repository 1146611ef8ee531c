"""Public, anonymous, cacheable: open data per territory (CSV, JSON) and the campaign's map.

Both reuse the JSON API's decorator (GET/HEAD/OPTIONS, CORS for every origin, 405 otherwise). A
cached answer costs no query: pledges.opendata and pledges.maps key it by slug and keep it one
counting interval, unknown slugs included.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.views.decorators.gzip import gzip_page

from pledges.maps import campaign_public_map_svg
from pledges.opendata import campaign_open_data
from pledges.views.api import MAX_SLUG_LENGTH, STALE_WHILE_REVALIDATE_INTERVALS, public_api
from pledges.views.organizer import svg_response

_LANGUAGES = {code for code, _ in settings.LANGUAGES}


def _public_cache_control(max_age: int) -> str:
    return f"public, max-age={max_age}, stale-while-revalidate={max_age * STALE_WHILE_REVALIDATE_INTERVALS}"


def _not_found(max_age: int) -> HttpResponse:
    response = HttpResponse("campaign not found", status=404, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = _public_cache_control(max_age)
    return response


def _open_data(slug: str, *, file_format: str, content_type: str) -> HttpResponse:
    if len(slug) > MAX_SLUG_LENGTH:
        return _not_found(1)
    body, max_age = campaign_open_data(slug=slug, file_format=file_format)
    if body is None:
        return _not_found(max_age)
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = _public_cache_control(max_age)
    response["Content-Disposition"] = f'inline; filename="{slug}-open-data.{file_format}"'
    return response


@public_api
def open_data_csv(request: HttpRequest, slug: str) -> HttpResponse:
    return _open_data(slug, file_format="csv", content_type="text/csv; charset=utf-8")


@public_api
def open_data_json(request: HttpRequest, slug: str) -> HttpResponse:
    return _open_data(slug, file_format="json", content_type="application/json")


@public_api
@gzip_page
def campaign_map(request: HttpRequest, slug: str) -> HttpResponse:
    """The map on the campaign page. `?lang=` in the URL (not the cookie) picks the language, so
    that shared caches keep one copy per language."""
    if len(slug) > MAX_SLUG_LENGTH:
        return _not_found(1)
    language = request.GET.get("lang", "")
    if language not in _LANGUAGES:
        language = settings.LANGUAGE_CODE
    with translation.override(language):
        svg, max_age = campaign_public_map_svg(slug=slug)
    if svg is None:
        return _not_found(max_age)
    return svg_response(svg, cache_control=_public_cache_control(max_age))
