"""Probe the parts the platform needs: the database, the Celery broker and a worker."""

import logging

from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)


def database_status() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "down"; the type is for the operator
        logger.warning("healthz: database down: %s", type(exc).__name__)
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "vendor": connection.vendor}


def broker_status() -> dict:
    from deconv.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=settings.HEALTHZ_WORKER_TIMEOUT)
            transport = conn.transport_cls
    except Exception as exc:
        logger.warning("healthz: broker down: %s", type(exc).__name__)
        return {"ok": False, "error": type(exc).__name__}
    return {"ok": True, "transport": str(transport)}


def worker_status() -> dict:
    """Broadcast a ping and count the workers that answer within the timeout."""
    from deconv.celery import app

    try:
        replies = app.control.ping(timeout=settings.HEALTHZ_WORKER_TIMEOUT) or []
    except Exception as exc:
        logger.warning("healthz: worker ping failed: %s", type(exc).__name__)
        return {"ok": False, "workers": 0, "error": type(exc).__name__}
    return {"ok": bool(replies), "workers": len(replies)}
