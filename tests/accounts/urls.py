"""The site's URLs plus views decorated with rate_limited, for tests/accounts/test_ratelimit.py."""

from django.http import HttpResponse
from django.urls import path

from deconv.ratelimit import rate_limited
from deconv.urls import handler429
from deconv.urls import urlpatterns as site_urlpatterns

__all__ = ["handler429", "urlpatterns"]


@rate_limited("test_scope", per_ip="3/m", per_user="2/h")
def limited(request):
    return HttpResponse("ok")


@rate_limited("test_any_method", per_ip="1/m", methods=("GET", "POST"))
def limited_get(request):
    return HttpResponse("ok")


urlpatterns = [
    path("test/limited/", limited),
    path("test/limited-get/", limited_get),
    *site_urlpatterns,
]
