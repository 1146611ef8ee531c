from django.http import HttpResponse


def home(request):
    return HttpResponse("deconv")


def campaign_detail(request, slug):
    return HttpResponse(slug)
