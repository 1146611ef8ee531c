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
    # The ledger appends events right after each count (in the tick); an event committed more
    # than its 30-second grace late is caught here, hourly, away from the reconcile at :17.
    "pledges-ledger-repair": {
        "task": "pledges.ledger_repair",
        "schedule": crontab(minute=47),
        "options": {"expires": 30 * 60},
    },
    "deconv-abuse-events-purge": {
        "task": "deconv.abuse_events_purge",
        "schedule": crontab(hour=4, minute=10),
        "options": {"expires": 60 * 60},
    },
    # The outbox (deconv.outbox). Emails are dispatched to workers when they are queued; this
    # catches the rest: retries whose backoff is over, and emails whose dispatch was lost (broker
    # down at commit time, a message dropped), dispatched again a minute after they were queued.
    # Every 10 s so that a retry waits at most its backoff plus 10 s; the query only reads queued
    # rows through an index, cheap when there are none.
    "deconv-outbox-dispatch-due": {
        "task": "deconv.outbox_dispatch_due",
        "schedule": 10.0,
        "options": {"expires": 10},
    },
    # A worker that died while sending leaves its emails in "sending": put them back after
    # OUTBOX_STUCK_MINUTES. Every minute: the delay people see is set by that setting, not by this.
    "deconv-outbox-requeue-stuck": {
        "task": "deconv.outbox_requeue_stuck",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    # Sent and failed emails lose their address and text after 30 days (data minimisation);
    # nightly, at a quiet hour, away from the abuse-event purge.
    "deconv-outbox-purge": {
        "task": "deconv.outbox_purge",
        "schedule": crontab(hour=4, minute=25),
        "options": {"expires": 60 * 60},
    },
    # Background jobs (exports, escrow bundles, directory imports, bulk invalidations) whose
    # message was lost (broker down at request time) or whose worker died: sent again
    # (pledges.jobs). Two indexed queries per job kind when nothing is lost.
    "pledges-jobs-recover": {
        "task": "pledges.jobs_recover",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Export files name signers: deleted EXPORT_RETENTION_HOURS after they were built.
    "pledges-exports-purge": {
        "task": "pledges.exports_purge",
        "schedule": crontab(minute=37),
        "options": {"expires": 30 * 60},
    },
    # Rounds end at a date and time signers were told: closing within a minute of it is what
    # they expect. The job is one indexed query when no round is due.
    "pledges-rounds-close-due": {
        "task": "pledges.rounds_close_due",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # The reminder goes from each round's halfway point; rounds last days, so a quarter of an
    # hour late is invisible and keeps the job rare.
    "pledges-rounds-remind": {
        "task": "pledges.rounds_remind",
        "schedule": crontab(minute="*/15"),
        "options": {"expires": 10 * 60},
    },
    # Milestone emails are news, not deadlines: every 5 minutes keeps them timely without
    # evaluating every campaign each minute.
    "pledges-milestones-announce": {
        "task": "pledges.milestones_announce",
        "schedule": crontab(minute="*/5"),
        "options": {"expires": 4 * 60},
    },
    # Signing already stops at closes_at (Campaign.is_open_for_signing); this records the closing
    # and expires what was not released within a minute, so signers learn it the same day.
    "pledges-campaigns-close": {
        "task": "pledges.campaigns_close",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    # Personal data is purged purge_after_days after closing: a daily run at a quiet hour is
    # precise enough for a retention counted in days.
    "pledges-campaigns-purge": {
        "task": "pledges.campaigns_purge",
        "schedule": crontab(hour=4, minute=40),
        "options": {"expires": 60 * 60},
    },
    # A release whose pipeline did not finish (worker lost mid-release, broker down when the
    # territory was released) is taken up again 15 minutes after its release; every 5 minutes so
    # that signers wait minutes, not hours, for their letter. Cheap: one indexed read of releases.
    "pledges-releases-resume": {
        "task": "pledges.releases_resume",
        "schedule": crontab(minute="*/5"),
        "options": {"expires": 4 * 60},
    },
    # A caisse address corrected by an organizer regenerates the letters not yet reported sent.
    # Hourly: corrections are rare and a signer who printed meanwhile still has a valid letter;
    # the job compares hashes in memory and renders only what changed. Minute 47 keeps it away
    # from the other hourly jobs.
    "pledges-letters-refresh": {
        "task": "pledges.letters_refresh",
        "schedule": crontab(minute=47),
        "options": {"expires": 30 * 60},
    },
    # Remind released signers who have not reported sending their letter after the campaign's
    # followup_reminder_days. Once a day at 9:30, Paris time: a reminder read during the working
    # day, and a delay counted in days needs no finer schedule.
    "pledges-followup-remind": {
        "task": "pledges.followup_remind",
        "schedule": crontab(hour=9, minute=30),
        "options": {"expires": 60 * 60},
    },
    # Organizer dashboards (pledges.dashboard_snapshot): figures are aggregated per campaign in
    # the background, not per request. The tick only reads a fingerprint per watched or open
    # campaign and aggregates when one is due: changed and DASHBOARD_REFRESH_SECONDS old (15 s by
    # default), or DASHBOARD_MAX_AGE_SECONDS old; every 5 s so that a change waits at most the
    # refresh interval plus 5 s. A tick stuck behind a long job is useless once the next is due.
    "pledges-dashboard-snapshots-refresh": {
        "task": "pledges.dashboard_snapshots_refresh",
        "schedule": 5.0,
        "options": {"expires": 5},
    },
}
app.conf.beat_schedule = BEAT_SCHEDULE
