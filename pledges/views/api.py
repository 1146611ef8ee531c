"""Public JSON API (being written: see the counting work)."""

from django.http import Http404


def campaign_list(request):
    raise Http404


def campaign_detail(request, slug):
    raise Http404


def campaign_count(request, slug):
    raise Http404
