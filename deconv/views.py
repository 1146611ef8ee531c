from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from deconv import health


@never_cache
@require_GET
def healthz(request):
    """200 when the database, the broker and at least one worker answer, 503 otherwise."""
    parts = {
        "database": health.database_status(),
        "broker": health.broker_status(),
    }
    # Pinging workers goes through the broker: skip it when the broker is down.
    parts["worker"] = health.worker_status() if parts["broker"]["ok"] else {"ok": False, "workers": 0}
    healthy = all(part["ok"] for part in parts.values())
    return JsonResponse({"status": "ok" if healthy else "error", **parts}, status=200 if healthy else 503)
