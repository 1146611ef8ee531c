"""The stop link in every email (deconv.outbox): a page with a button, then the stop."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from deconv.email_stops import email_stop_exists, email_stop_record, email_stop_token_read, email_stop_undo


# The signed token is the authority here, not the session: without it a forged POST does nothing,
# and mail providers' one-click unsubscribe (RFC 8058, the List-Unsubscribe-Post header) POSTs
# without a CSRF token.
@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def email_stop(request: HttpRequest, token: str) -> HttpResponse:
    """GET shows a button (mail scanners open links); POST stops, or resumes with action=resume."""
    email_hash = email_stop_token_read(token=token)
    if email_hash is None:
        return render(request, "emails/stop_invalid.html", status=400)
    if request.method == "POST":
        if request.POST.get("action") == "resume":
            email_stop_undo(email_hash=email_hash)
        else:
            email_stop_record(email_hash=email_hash)
        return redirect(reverse("email_stop", kwargs={"token": token}))
    return render(
        request, "emails/stop.html", {"stopped": email_stop_exists(email_hash=email_hash), "token": token}
    )
