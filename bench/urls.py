"""The bench stack's URLconf: the product's URLs plus a bare view, the baseline of every figure.

Selected with DECONV_ROOT_URLCONF=bench.urls by bench/run.py only, so production has no bench view.
"""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def bare_view(request: HttpRequest) -> HttpResponse:
    # No database, no template, no session: what the same middleware stack costs on its own.
    return HttpResponse(b"bare", content_type="text/plain")


urlpatterns = [
    path("bench/bare/", bare_view),
    path("", include("deconv.urls")),
]
