"""A database outage answers 503 with the maintenance page: never a stack trace, never a 500.

While PostgreSQL restarts (an upgrade, a failover) or refuses connections, queries raise
OperationalError or InterfaceError. Those requests cannot succeed, but they can say so: the
503 page (templates/503.html, rendered without a request context, so without touching the
database) with Retry-After. Once the server is back, CONN_HEALTH_CHECKS replaces the dead
persistent connections at the next request: nothing needs a restart.

Two paths lead here:
- a view raised: process_exception answers at once, and the 503 goes back through every
  middleware (security headers, CSP) like any response;
- a middleware raised (SessionMiddleware saving the session, say): Django has already turned the
  exception into its 500 response. The got_request_exception signal marks the request, and
  __call__, outermost, swaps that 500 for the 503, keeping the headers the 500 had collected.
"""

import logging
import sys

from csp.utils import build_policy
from django.conf import settings
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template import loader

logger = logging.getLogger(__name__)

DATABASE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 30
TEMPLATE_503 = "503.html"
_MARK = "_deconv_database_unavailable"
# Headers of the 500 that describe its body, not the site: the 503 sets its own.
_BODY_HEADERS = {"content-type", "content-length", "content-language"}


def database_unavailable(error: BaseException | None) -> bool:
    return isinstance(error, DATABASE_ERRORS)


def database_unavailable_response() -> HttpResponse:
    """The 503 page in the active language, with Retry-After; nothing cached."""
    response = HttpResponse(loader.get_template(TEMPLATE_503).render(), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


def _log(request: HttpRequest, error: BaseException) -> None:
    # The error's type and the path only: a database error's text may quote row values.
    logger.warning(
        "database unavailable: %s on %s %s, answered 503", type(error).__name__, request.method, request.path
    )


def _request_exception_mark(sender, request=None, **kwargs) -> None:
    error = sys.exc_info()[1]
    if request is not None and database_unavailable(error):
        setattr(request, _MARK, error)


got_request_exception.connect(_request_exception_mark, dispatch_uid="deconv.middleware.database_unavailable")


class DatabaseUnavailableMiddleware:
    """First in MIDDLEWARE: turns database outages anywhere in the request into the 503 page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        error = getattr(request, _MARK, None)
        if error is None or response.status_code != 500:
            return response
        _log(request, error)
        replacement = database_unavailable_response()
        for name, value in response.items():
            if name.lower() not in _BODY_HEADERS and name not in replacement:
                replacement[name] = value
        # The 500 was built after the failing middleware: those inside it (clickjacking, CSP)
        # never saw it. The page still gets their headers.
        if "X-Frame-Options" not in replacement:
            replacement["X-Frame-Options"] = settings.X_FRAME_OPTIONS
        if "Content-Security-Policy" not in replacement:
            replacement["Content-Security-Policy"] = build_policy()
        return replacement

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not database_unavailable(exception):
            return None
        _log(request, exception)
        return database_unavailable_response()
