"""A worker killed (SIGKILL) in the middle of a release fan-out, twice: while it renders letters,
then while it sends the "released" emails. After the beat jobs that repair such crashes
(releases_resume, outbox_requeue_stuck, outbox_dispatch_due, run here at once rather than after
their delays) and a fresh worker, every signatory has exactly one letter and one email.
"""

import pytest
from django.db.models import Count

from deconv.models import EmailStatus, OutgoingEmail
from pledges.demo import DEMO_LETTER_BODY, DEMO_LETTER_TITLE
from pledges.letters_pipeline import letter_path, letters_root
from pledges.models import Letter, Release
from pledges.services import letter_version_create
from tests.letters.factories import CaisseFactory, ReleasedPledgeFactory, ReleaseFactory
from tests.pledges.factories import CampaignFactory
from tests.reliability.conftest import start_worker
from tests.reliability.servers import run_app, wait_until

SIGNATORIES = 12
LETTER_BATCH = 3  # four commits of three letters: the first kill lands between two of them
SEND_CHUNK = 2


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.worker
def test_a_worker_killed_mid_release_leaves_each_signatory_one_letter_and_one_email(
    transactional_db, private_redis, sink, processes, base_env, tmp_path, figures
):
    campaign = CampaignFactory(title="Campagne Ain")
    letter_version_create(campaign=campaign, title=DEMO_LETTER_TITLE, body=DEMO_LETTER_BODY)
    caisse = CaisseFactory()
    release = ReleaseFactory(campaign=campaign, pledge_count=SIGNATORIES)  # released months ago
    pledges = [ReleasedPledgeFactory(release=release, caisse=caisse) for _ in range(SIGNATORIES)]
    # Each message waits before its recipient is accepted: the second kill lands in that wait.
    sink.rcpt_delay = 0.4
    env = {
        **base_env,
        "REDIS_URL": private_redis.url(0),
        "EMAIL_URL": sink.smtp_url(),
        "RELIABILITY_LETTER_BATCH": str(LETTER_BATCH),
        "RELIABILITY_SEND_CHUNK": str(SEND_CHUNK),
    }

    # 1. Killed while rendering: some batches committed, one in progress.
    first = start_worker(processes, env, tmp_path, name="worker-1")
    run_app("release_process_dispatch", str(release.pk), env=env)
    in_the_middle = wait_until(
        lambda: LETTER_BATCH <= Letter.objects.filter(release=release).count() < SIGNATORIES,
        timeout=180,
        interval=0.05,
    )
    first.kill()
    letters_at_first_kill = Letter.objects.filter(release=release).count()

    # 2. Beat's releases_resume hands the release to a new worker, killed while it sends emails.
    second = start_worker(processes, env, tmp_path, name="worker-2")
    resumed = run_app("repairs", "20", env=env)["resumed"]
    mid_emails = wait_until(
        lambda: len(sink.recipients) >= SEND_CHUNK + 1 and sink.waiting >= 1, timeout=240, interval=0.02
    )
    second.kill()
    delivered_at_second_kill = len(sink.recipients)
    stuck_at_second_kill = OutgoingEmail.objects.filter(kind="released", status=EmailStatus.SENDING).count()

    # 3. No worker alive: what is left in "sending" is really stuck. Repair, then a third worker.
    repairs = run_app("repairs", "20", env=env)
    start_worker(processes, env, tmp_path, name="worker-3")
    wait_until(
        lambda: OutgoingEmail.objects.filter(kind="released", status=EmailStatus.SENT).count() == SIGNATORIES,
        timeout=180,
        interval=0.2,
    )

    letters = list(Letter.objects.filter(release=release))
    emails = OutgoingEmail.objects.filter(kind="released")
    letter_duplicates = (
        Letter.objects.values("pledge_id").annotate(n=Count("pk")).filter(n__gt=1).count()
    )  # the OneToOne makes this 0 by construction; counted to show it
    leftover_temp_files = sorted(path.name for path in letters_root().rglob("*.tmp"))
    release.refresh_from_db()
    figures(
        "worker_killed_mid_release",
        {
            "signatories": SIGNATORIES,
            "letters_at_first_kill": letters_at_first_kill,
            "emails_delivered_at_second_kill": delivered_at_second_kill,
            "emails_stuck_sending_at_second_kill": stuck_at_second_kill,
            "letters": len(letters),
            "emails_sent": emails.filter(status=EmailStatus.SENT).count(),
            "smtp_deliveries": len(sink.recipients),
            "duplicate_letters": letter_duplicates,
            "duplicate_deliveries": sum(n - 1 for n in sink.duplicates().values()),
            "orphan_temp_files": len(leftover_temp_files),
        },
    )
    assert in_the_middle, "the first worker finished before it could be killed mid-release"
    assert mid_emails, "the second worker was not caught in the middle of the emails"
    assert resumed == [release.pk]
    assert repairs["requeued"] == stuck_at_second_kill >= 1
    assert sorted(letter.pledge_id for letter in letters) == sorted(pledge.pk for pledge in pledges)
    assert all(letter_path(file_name=letter.file_name).read_bytes().startswith(b"%PDF") for letter in letters)
    assert emails.count() == SIGNATORIES
    assert emails.filter(status=EmailStatus.SENT).count() == SIGNATORIES
    assert sorted(sink.recipients) == sorted(pledge.user.email for pledge in pledges)
    assert sink.duplicates() == {}
    assert release.letters_done_at is not None and release.emails_done_at is not None
    assert Release.objects.filter(pk=release.pk, emails_done_at__isnull=True).count() == 0
    worker_logs = "".join(path.read_text(errors="replace") for path in tmp_path.glob("worker-*.log"))
    assert " ready." in worker_logs
    assert not [p.user.email for p in pledges if p.user.email in worker_logs or p.last_name in worker_logs]
