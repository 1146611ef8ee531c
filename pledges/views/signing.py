"""Signing and the signer's own pages (being written: see the signing work)."""

from django.http import Http404


def pledge_create(request, slug):
    raise Http404


def pledge_mine(request, slug):
    raise Http404


def pledge_edit(request, slug):
    raise Http404


def pledge_withdraw(request, slug):
    raise Http404


def pledge_letter_preview(request, slug):
    raise Http404


def account_overview(request):
    raise Http404


def account_data_export(request):
    raise Http404


def account_delete(request):
    raise Http404
