"""Redis stopped during signing: every pledge is accepted and kept, its email and count follow.

Nothing on the signing path may need the broker (nor the cache, which is the same Redis in
production): the pledge, its +1 event and its outbox row are written in one transaction, the
dispatch after commit fails quietly, and outbox_dispatch_due sends the email once Redis is back.
"""

import time

import pytest
from django.utils import translation

from deconv.models import EmailStatus, OutgoingEmail
from pledges.counting import counts_reconcile, counts_update
from pledges.enums import PledgeStatus, TerritoryLevel
from pledges.models import CounterState, Pledge, PledgeEvent, TerritoryCount
from tests.letters.factories import rpps_next
from tests.pledges.factories import CampaignFactory, LetterVersionFactory
from tests.pledges.signing_support import form_data, verified_user
from tests.reliability.conftest import (
    http_get,
    http_post,
    looks_like_a_stack_trace,
    session_cookie,
    start_web,
    start_worker,
)
from tests.reliability.servers import run_app, wait_until

SIGNERS_DURING_OUTAGE = 8


def _submitted_marker() -> str:
    with translation.override("fr"):
        return translation.gettext("Thank you, your request has been recorded")


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.worker
def test_pledges_signed_while_redis_is_down_are_kept_and_mailed_and_counted_once_it_is_back(
    territories_loaded, private_redis, sink, processes, base_env, tmp_path, figures
):
    campaign = CampaignFactory()
    LetterVersionFactory(campaign=campaign)
    CounterState.objects.update_or_create(pk=1, defaults={"lag_seconds": 0, "interval_seconds": 1})
    signers = [verified_user() for _ in range(SIGNERS_DURING_OUTAGE)]
    sessions = [session_cookie(user) for user in signers]
    env = {**base_env, "REDIS_URL": private_redis.url(0), "EMAIL_URL": sink.smtp_url()}
    web = start_web(processes, env, tmp_path)
    sign_url = f"{web.base_url}/campaigns/{campaign.slug}/sign/"

    private_redis.stop()
    outage_started = time.monotonic()
    answers = [
        http_post(sign_url, data=form_data(rpps=rpps_next(), last_name=f"Panne{index}"), session=session)
        for index, session in enumerate(sessions)
    ]
    slowest_answer = max(answer.seconds for answer in answers)
    signing_seconds = time.monotonic() - outage_started
    # The public pages read through the cache too: they must not fail either.
    campaign_page = http_get(f"{web.base_url}/campaigns/{campaign.slug}/")
    count_json = http_get(f"{web.base_url}/api/v1/campaigns/{campaign.slug}/count.json")

    marker = _submitted_marker()
    accepted = [answer for answer in answers if answer.status == 200 and marker in answer.body]
    durable = Pledge.objects.filter(campaign=campaign, status=PledgeStatus.ACTIVE).count()
    queued = OutgoingEmail.objects.filter(kind="pledge_received", status=EmailStatus.QUEUED).count()
    events = PledgeEvent.objects.filter(campaign=campaign).count()

    # The web process hands its gathered emails to the broker a moment after the commits: wait for
    # that attempt to fail, logged, before Redis comes back (otherwise it may find Redis back).
    refusal_logged = wait_until(lambda: "broker refused" in web.log_tail(1_000_000), timeout=30)

    private_redis.start()
    worker = start_worker(processes, env, tmp_path)
    # outbox_dispatch_due as beat runs it a minute later (the dispatch lease), in its own process.
    repairs = run_app("repairs", "2", env=env)
    delivered = wait_until(lambda: len(sink.recipients) >= SIGNERS_DURING_OUTAGE, timeout=90)
    wait_until(
        lambda: OutgoingEmail.objects.filter(status=EmailStatus.SENT).count() >= SIGNERS_DURING_OUTAGE,
        timeout=20,
    )
    sent = OutgoingEmail.objects.filter(kind="pledge_received", status=EmailStatus.SENT).count()
    counts_update()
    department_count = TerritoryCount.objects.get(
        campaign=campaign, level=TerritoryLevel.DEPARTMENT, code="01"
    ).pledges
    drifts = counts_reconcile()

    figures(
        "broker_outage",
        {
            "pledges_submitted_during_outage": len(answers),
            "accepted_http_200": len(accepted),
            "seconds_to_sign_all_during_outage": round(signing_seconds, 1),
            "slowest_answer_seconds": round(slowest_answer, 2),
            "durable_in_db": durable,
            "emails_queued_during_outage": queued,
            "emails_sent_after_recovery": sent,
            "smtp_deliveries": len(sink.recipients),
            "duplicate_deliveries": len(sink.duplicates()),
            "department_count_after_recovery": department_count,
            "reconcile_drifts": len(drifts),
        },
    )
    assert [answer.status for answer in answers] == [200] * SIGNERS_DURING_OUTAGE, web.log_tail()
    assert len(accepted) == SIGNERS_DURING_OUTAGE
    assert campaign_page.status == 200 and not looks_like_a_stack_trace(campaign_page.body)
    assert count_json.status == 200
    assert durable == SIGNERS_DURING_OUTAGE
    assert events == SIGNERS_DURING_OUTAGE
    assert queued == SIGNERS_DURING_OUTAGE
    # The web process's dispatch failed while Redis was down. Who hands the rows to the broker once
    # it is back may still vary (a dispatch gathered later may find it back), the repairs dispatch
    # the rest. What matters is below: every email delivered, exactly once.
    assert refusal_logged
    assert repairs["dispatched"] <= SIGNERS_DURING_OUTAGE
    assert delivered, sink.recipients
    assert sorted(sink.recipients) == sorted(user.email for user in signers)
    assert sink.duplicates() == {}
    assert sent == SIGNERS_DURING_OUTAGE
    assert department_count == SIGNERS_DURING_OUTAGE
    assert drifts == []
    # What the web server and the worker logged names no signer (deconv.logging masks the rest).
    logs = web.log_tail(1_000_000) + worker.log_tail(1_000_000)
    assert "broker refused" in logs  # the outage was logged ...
    assert not [user.email for user in signers if user.email in logs]  # ... without addresses
