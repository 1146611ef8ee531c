"""The language switch, without a CSRF token, so that public pages can be cached whole.

The switch is a form in every page's header (templates/base.html). With Django's CSRF token in
it, each visitor's copy of a page would differ and no public page could be served from a shared
cache. This view is Django's own `set_language`, exempt from the CSRF check. That is safe because
all it changes is the language cookie: a forged request can at worst switch someone's display
language, which they switch back in one click; it reads no session and touches no data. Django
still checks `next` (same host, https when the request was) and falls back to the Referer, then
"/", so the switch cannot be used as an open redirect.

As a cheap second line, a browser that says the form came from another site (Sec-Fetch-Site:
cross-site, sent by current browsers) is redirected without the cookie being changed.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.i18n import set_language as django_set_language


@csrf_exempt
def set_language(request: HttpRequest) -> HttpResponse:
    response = django_set_language(request)
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        # The redirect to the checked `next` stands; the cookie it would have set does not.
        response.cookies.pop(settings.LANGUAGE_COOKIE_NAME, None)
    return response
