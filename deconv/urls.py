from django.contrib import admin
from django.urls import include, path, re_path

from deconv import account_views, views, views_email, views_language

# allauth renders its refusals through ROOT_URLCONF.handler429: our page, Retry-After, an event.
handler429 = "deconv.ratelimit.handler429"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    # Django's language switch without the CSRF check, so that public pages carry no per-visitor
    # token and can be cached whole (deconv.views_language says why that is safe).
    path("i18n/setlang/", views_language.set_language, name="set_language"),
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
