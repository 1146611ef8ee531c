"""The Celery app and its beat schedule.

Every periodic job is listed in BEAT_SCHEDULE below with why it runs when it does.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deconv.settings")

app = Celery("deconv")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

BEAT_SCHEDULE: dict = {}
app.conf.beat_schedule = BEAT_SCHEDULE
