"""The Celery app and its beat schedule.

Every periodic job is listed in BEAT_SCHEDULE below with why it runs when it does.
"""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deconv.settings")

app = Celery("deconv")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

BEAT_SCHEDULE: dict = {
    # Public counts. The tick is cheap (one indexed read) and only counts once the organizer's
    # CounterState.interval_seconds has passed, so the interval is changed in the admin without
    # restarting beat. A tick that waited in the queue longer than a few seconds is useless: the
    # next one is already there, so it expires instead of piling up behind a busy worker.
    "pledges-counts-tick": {
        "task": "pledges.counts_tick",
        "schedule": 1.0,
        "options": {"expires": 5},
    },
    # Repair what counts_update missed (an event committed after its window was counted).
    # Hourly rather than nightly: a drift is then public for under an hour, and the statement is
    # one indexed aggregate over the pledges, cheap even at a national campaign's size. Minute 17
    # keeps it away from jobs that run on the hour.
    "pledges-counts-reconcile": {
        "task": "pledges.counts_reconcile",
        "schedule": crontab(minute=17),
        "options": {"expires": 30 * 60},
    },
    # Abuse events (rate-limit refusals, honeypots) are kept for organizers for a limited time:
    # purge the old ones nightly, at a quiet hour.
    "deconv-abuse-events-purge": {
        "task": "deconv.abuse_events_purge",
        "schedule": crontab(hour=4, minute=10),
        "options": {"expires": 60 * 60},
    },
}
app.conf.beat_schedule = BEAT_SCHEDULE
