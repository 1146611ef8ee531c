from django.urls import path

from pledges.views import api, public, signing

app_name = "pledges"

urlpatterns = [
    path("", public.home, name="home"),
    path("campaigns/<slug:slug>/", public.campaign_detail, name="campaign_detail"),
    # Signing and "Mon engagement" (the signer's own pledge).
    path("campaigns/<slug:slug>/sign/", signing.pledge_create, name="pledge_create"),
    path("campaigns/<slug:slug>/my-pledge/", signing.pledge_mine, name="pledge_mine"),
    path("campaigns/<slug:slug>/my-pledge/edit/", signing.pledge_edit, name="pledge_edit"),
    path("campaigns/<slug:slug>/my-pledge/withdraw/", signing.pledge_withdraw, name="pledge_withdraw"),
    path(
        "campaigns/<slug:slug>/my-pledge/letter.pdf",
        signing.pledge_letter_preview,
        name="pledge_letter_preview",
    ),
    path("me/", signing.account_overview, name="account_overview"),
    path("me/data.json", signing.account_data_export, name="account_data_export"),
    path("me/delete/", signing.account_delete, name="account_delete"),
    # The public JSON API: light, cacheable, CORS for GET.
    path("api/v1/campaigns/", api.campaign_list, name="api_campaign_list"),
    path("api/v1/campaigns/<slug:slug>/", api.campaign_detail, name="api_campaign_detail"),
    path("api/v1/campaigns/<slug:slug>/count.json", api.campaign_count, name="api_campaign_count"),
]
