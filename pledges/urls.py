from django.urls import path

from pledges.views import (
    api,
    api_docs,
    ledger,
    letters,
    moderation,
    opendata,
    organizer,
    public,
    rounds,
    signing,
)

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
    # Released letters (pledges.views.letters): the signer's download, from "Mon engagement" or
    # from the email's signed link, and what they report afterwards.
    path("letters/<int:letter_id>/download/", letters.letter_download, name="letter_download"),
    path("letters/link/<str:token>/", letters.letter_download_signed, name="letter_download_signed"),
    path("campaigns/<slug:slug>/my-pledge/letter-sent/", letters.letter_sent, name="letter_sent"),
    path(
        "campaigns/<slug:slug>/my-pledge/letter-acknowledged/",
        letters.letter_acknowledged,
        name="letter_acknowledged",
    ),
    # Confirmation rounds: from "Mon engagement" (signed in) or from the email's signed link.
    path("campaigns/<slug:slug>/my-pledge/round/", rounds.round_confirm, name="round_confirm"),
    path("campaigns/<slug:slug>/round/<str:token>/", rounds.round_confirm_link, name="round_confirm_link"),
    # The public ledger: digests, a receipt check, the entries for anyone to recompute.
    path("campaigns/<slug:slug>/ledger/", ledger.ledger_overview, name="ledger"),
    path("campaigns/<slug:slug>/ledger/verify/", ledger.ledger_receipt_check, name="ledger_verify"),
    path("campaigns/<slug:slug>/ledger.json", ledger.ledger_export, name="ledger_export"),
    path("me/", signing.account_overview, name="account_overview"),
    path("me/data.json", signing.account_data_export, name="account_data_export"),
    path("me/delete/", signing.account_delete, name="account_delete"),
    # The public JSON API: light, cacheable, CORS for GET.
    path("api/v1/campaigns/", api.campaign_list, name="api_campaign_list"),
    path("api/v1/campaigns/<slug:slug>/", api.campaign_detail, name="api_campaign_detail"),
    path("api/v1/campaigns/<slug:slug>/count.json", api.campaign_count, name="api_campaign_count"),
    path("api/v1/campaigns/<slug:slug>/digests/", api.campaign_digests, name="api_campaign_digests"),
    # Open data and the public map: counts only, small counts hidden, cacheable like the API.
    path("campaigns/<slug:slug>/open-data.csv", opendata.open_data_csv, name="open_data_csv"),
    path("campaigns/<slug:slug>/open-data.json", opendata.open_data_json, name="open_data_json"),
    path("campaigns/<slug:slug>/map.svg", opendata.campaign_map, name="campaign_map"),
    # Organizers: a release's escrow bundle for the bailiff (pledges.views.letters). Before the
    # campaign routes below, whose <slug> would otherwise be tried first.
    path("organizer/releases/<int:release_id>/escrow/", letters.escrow_page, name="escrow"),
    path("organizer/escrow/<int:bundle_id>/status.json", letters.escrow_status, name="escrow_status"),
    path("organizer/escrow/<int:bundle_id>/download/", letters.escrow_download, name="escrow_download"),
    # Organizers: dashboard, map, exports, audit log (pledges.views.organizer; scope-checked).
    path("organizer/", organizer.campaign_list, name="organizer_home"),
    path("organizer/<slug:slug>/", organizer.dashboard, name="organizer_dashboard"),
    path("organizer/<slug:slug>/map.svg", organizer.dashboard_map, name="organizer_map"),
    path("organizer/<slug:slug>/exports/", organizer.export_list, name="organizer_exports"),
    path(
        "organizer/<slug:slug>/exports/<int:export_id>/",
        organizer.export_detail,
        name="organizer_export_detail",
    ),
    path(
        "organizer/<slug:slug>/exports/<int:export_id>/status.json",
        organizer.export_status,
        name="organizer_export_status",
    ),
    path(
        "organizer/<slug:slug>/exports/<int:export_id>/download/",
        organizer.export_download,
        name="organizer_export_download",
    ),
    path("organizer/<slug:slug>/audit/", organizer.audit_log, name="organizer_audit"),
    # Organizers: moderation, bulk invalidation, trending, RPPS directory, paper pledges
    # (pledges.views.moderation; scope-checked).
    path("organizer/<slug:slug>/moderation/", moderation.moderation_search, name="organizer_moderation"),
    path(
        "organizer/<slug:slug>/moderation/pledges/<int:pledge_id>/",
        moderation.moderation_pledge,
        name="organizer_moderation_pledge",
    ),
    path(
        "organizer/<slug:slug>/moderation/pledges/<int:pledge_id>/flag/",
        moderation.moderation_flag,
        name="organizer_moderation_flag",
    ),
    path(
        "organizer/<slug:slug>/moderation/pledges/<int:pledge_id>/unflag/",
        moderation.moderation_unflag,
        name="organizer_moderation_unflag",
    ),
    path(
        "organizer/<slug:slug>/moderation/pledges/<int:pledge_id>/invalidate/",
        moderation.moderation_invalidate,
        name="organizer_moderation_invalidate",
    ),
    path(
        "organizer/<slug:slug>/moderation/pledges/<int:pledge_id>/reinstate/",
        moderation.moderation_reinstate,
        name="organizer_moderation_reinstate",
    ),
    path(
        "organizer/<slug:slug>/moderation/trending/",
        moderation.moderation_trending,
        name="organizer_moderation_trending",
    ),
    path(
        "organizer/<slug:slug>/moderation/bulk/", moderation.bulk_invalidation_new, name="organizer_bulk_new"
    ),
    path(
        "organizer/<slug:slug>/moderation/bulk/<int:bulk_id>/",
        moderation.bulk_invalidation_detail,
        name="organizer_bulk_detail",
    ),
    path(
        "organizer/<slug:slug>/moderation/bulk/<int:bulk_id>/status.json",
        moderation.bulk_invalidation_status,
        name="organizer_bulk_status",
    ),
    path(
        "organizer/<slug:slug>/moderation/bulk/<int:bulk_id>/cancel/",
        moderation.bulk_invalidation_cancel,
        name="organizer_bulk_cancel",
    ),
    path("organizer/<slug:slug>/directory/", moderation.directory_index, name="organizer_directory"),
    path(
        "organizer/<slug:slug>/directory/verify/",
        moderation.directory_verify,
        name="organizer_directory_verify",
    ),
    path(
        "organizer/<slug:slug>/directory/<int:import_id>/",
        moderation.directory_detail,
        name="organizer_directory_detail",
    ),
    path(
        "organizer/<slug:slug>/directory/<int:import_id>/status.json",
        moderation.directory_status,
        name="organizer_directory_status",
    ),
    path("organizer/<slug:slug>/paper/", moderation.paper_pledge_new, name="organizer_paper"),
    # The API's description: machine-readable (OpenAPI 3.1) and for people (French first).
    path("api/v1/openapi.json", api_docs.openapi_json, name="api_openapi"),
    path("api/", api_docs.api_docs, name="api_docs"),
]
