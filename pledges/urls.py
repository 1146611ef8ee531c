from django.urls import path

from pledges.views import public

app_name = "pledges"

urlpatterns = [
    path("", public.home, name="home"),
    path("campaigns/<slug:slug>/", public.campaign_detail, name="campaign_detail"),
]
