"""What the counting and ledger tests share: pledges written as the signing service writes them
(the row and its event in one transaction), the counter's settings, the published counts, and a
concurrent surge of signers run in threads with their own database connections."""

import itertools
import random
import threading
import time

from django.db import connection, transaction
from django.utils import timezone

from pledges.enums import PledgeEventKind, PledgeStatus
from pledges.events import pledge_event_record
from pledges.models import CounterState, Pledge, TerritoryCount

# Unique per process; no Luhn check here: counting never reads the number.
_rpps = itertools.count(10_000_000_000)


def pledge_sign(*, campaign, department, **fields) -> Pledge:
    """The pledge and its +1 in one transaction, as the signing service does."""
    with transaction.atomic():
        pledge = Pledge.objects.create(
            campaign=campaign,
            letter_version=campaign.letter_versions.order_by("-number").first(),
            department=department,
            **{"rpps": str(next(_rpps)), **fields},
        )
        pledge_event_record(pledge=pledge, kind=PledgeEventKind.PLEDGED)
    return pledge


def pledge_withdraw(*, pledge_id: int) -> None:
    with transaction.atomic():
        pledge = Pledge.objects.select_for_update().get(pk=pledge_id)
        if pledge.status != PledgeStatus.ACTIVE:
            return
        pledge.status = PledgeStatus.WITHDRAWN
        pledge.rpps = ""
        pledge.withdrawn_at = timezone.now()
        pledge.save(update_fields=["status", "rpps", "withdrawn_at", "updated_at"])
        pledge_event_record(pledge=pledge, kind=PledgeEventKind.WITHDRAWN)


def counter_settings(**fields) -> None:
    CounterState.objects.update_or_create(pk=1, defaults=fields)


def published(campaign) -> dict[tuple[str, str], int]:
    return {
        (level, code): pledges
        for level, code, pledges in TerritoryCount.objects.filter(campaign=campaign).values_list(
            "level", "code", "pledges"
        )
        if pledges
    }


def run_in_threads(target, count: int) -> list:
    """Run target(index) in `count` threads, each closing its own database connection."""
    results: list = [None] * count
    errors: list[BaseException] = []

    def runner(index):
        try:
            results[index] = target(index)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def surge_signer(*, campaign, departments: dict, actions: int):
    """A signer for run_in_threads: `actions` pledges or withdrawals (30 %) in random departments.

    Seeded by the thread's index, so a failing run can be replayed. 30 ms between actions spread
    the surge over more than a second, so that counting runs during it fold in events older than
    the lag.
    """
    codes = list(departments)

    def signer(index):
        rng = random.Random(index)
        mine = []
        for _ in range(actions):
            if mine and rng.random() < 0.3:
                pledge_withdraw(pledge_id=mine.pop(rng.randrange(len(mine))))
            else:
                mine.append(pledge_sign(campaign=campaign, department=departments[rng.choice(codes)]).pk)
            time.sleep(0.03)

    return signer
