"""What beat, an operator or the conditions work would do, run in a process of its own.

    python -m tests.reliability.appctl <command> [arguments]

The fault tests point this process at their private broker and database through the environment
(REDIS_URL, DATABASE_URL), as they do the web server and the workers: the test process's own
Celery app stays on the shared broker. Each command prints one JSON line.
"""

import json
import os
import sys
from datetime import timedelta

import django


def _repairs(*, after_minutes: int) -> dict:
    """The outbox's and the releases' beat jobs, `after_minutes` later than now (time-machine)."""
    import time_machine
    from django.utils import timezone

    from deconv.outbox import outbox_dispatch_due, outbox_requeue_stuck
    from pledges.letters_pipeline import releases_resume

    with time_machine.travel(timezone.now() + timedelta(minutes=after_minutes), tick=True):
        requeued = outbox_requeue_stuck(minutes=0)
        dispatched = outbox_dispatch_due()
        resumed = releases_resume()
    return {"requeued": requeued, "dispatched": dispatched, "resumed": resumed}


def _seed_signers(*, count: int) -> dict:
    """On an empty database: territories, an open campaign and `count` verified, signed-in accounts."""
    import io

    from allauth.account.models import EmailAddress
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from pledges.models import CounterState
    from tests.pledges.factories import CampaignFactory, LetterVersionFactory

    call_command("load_territories", stdout=io.StringIO())
    campaign = CampaignFactory(slug="panne-postgres")
    LetterVersionFactory(campaign=campaign)
    CounterState.objects.update_or_create(pk=1, defaults={"lag_seconds": 0})
    sessions = []
    for number in range(count):
        user = get_user_model().objects.create_user(email=f"signer{number}@example.org")
        EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
        client = Client()
        client.force_login(user)
        sessions.append(client.cookies["sessionid"].value)
    return {"slug": campaign.slug, "sessions": sessions}


def main(argv: list[str]) -> dict:
    command, *args = argv
    if command == "seed_signers":
        return _seed_signers(count=int(args[0]))
    if command == "release_process_dispatch":
        from pledges.tasks import release_process_task

        release_process_task.delay(release_id=int(args[0]))
        return {"dispatched": int(args[0])}
    if command == "repairs":
        return _repairs(after_minutes=int(args[0]) if args else 2)
    if command == "counts_update":
        from pledges.counting import counts_update

        result = counts_update()
        return {"events": result.events, "skipped": result.skipped}
    if command == "counts_update_holding":
        # Holds the counting lock (and its open transaction) for `seconds` after reading the
        # window: the test kills this process meanwhile.
        import time

        from pledges.counting import counts_update

        def hold() -> None:
            print("holding the counting lock", flush=True)
            time.sleep(float(args[0]))

        result = counts_update(after_window_read=hold)
        return {"events": result.events, "skipped": result.skipped}
    raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "deconv.settings")
    django.setup()
    from tests.reliability.worker_main import small_batches_apply

    small_batches_apply()
    print(json.dumps(main(sys.argv[1:])))
