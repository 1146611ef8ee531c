from django.contrib import admin
from django.urls import include, path, re_path

from deconv import account_views, views, views_email

# allauth renders its refusals through ROOT_URLCONF.handler429: our page, Retry-After, an event.
handler429 = "deconv.ratelimit.handler429"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("i18n/", include("django.conf.urls.i18n")),
    # The stop link of every email that the law does not require (deconv.outbox).
    path("email/stop/<str:token>/", views_email.email_stop, name="email_stop"),
    # Before allauth's own route (same pattern and name): an idempotent confirmation page.
    re_path(
        r"^accounts/confirm-email/(?P<key>[-:\w]+)/$",
        account_views.email_confirm,
        name="account_confirm_email",
    ),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    path("", include("pledges.urls")),
]
