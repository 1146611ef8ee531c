"""PostgreSQL restarted under signing load (a private cluster): nothing answered with success is
lost, requests during the outage get the French 503 page, and the site recovers by itself.
"""

import contextlib
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from django.utils import translation

from tests.letters.factories import rpps_next
from tests.pledges.signing_support import form_data
from tests.reliability.conftest import http_get, http_post, looks_like_a_stack_trace, start_web
from tests.reliability.servers import PostgresCluster, run_app, wait_until

SIGNERS = 80
CLIENTS = 3
LOAD_SECONDS = 60
OUTAGE_SECONDS = 3.0
RETRY_AFTER_503_SECONDS = 0.25
MAX_REQUESTS = 400


@pytest.fixture
def cluster(db):
    """A private cluster holding a copy of the (migrated, empty) test database."""
    from tests.reliability.conftest import tests_database_url

    # Not under tmp_path: pytest's base folder is private to root, and the cluster runs as postgres.
    workdir = Path(tempfile.mkdtemp(prefix="deconv-reliability-pg-"))
    cluster = PostgresCluster(workdir)
    try:
        cluster.init()
        cluster.start()
        cluster.copy_database_from(source_url=tests_database_url())
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped by a failed test
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _french(msgid: str) -> str:
    with translation.override("fr"):
        return translation.gettext(msgid)


@pytest.mark.slow
@pytest.mark.postgres
def test_a_postgres_restart_under_signing_load_loses_no_accepted_pledge_and_answers_503_meanwhile(
    cluster, processes, base_env, tmp_path, figures
):
    env = {**base_env, "DATABASE_URL": cluster.url(), "DATABASE_CONN_MAX_AGE": "60"}
    env.pop("REDIS_URL", None)  # the embedded broker and a local cache: this test is about the database
    seed = run_app("seed_signers", str(SIGNERS), env=env)
    web = start_web(processes, env, tmp_path, workers=2, threads=2)
    sign_url = f"{web.base_url}/campaigns/{seed['slug']}/sign/"
    submitted = _french("Thank you, your request has been recorded")
    unavailable = _french("Service temporarily unavailable")

    results: list[tuple[str, int, float, str]] = []  # (rpps, status, finished at, body kind)
    lock = threading.Lock()
    deadline = time.monotonic() + LOAD_SECONDS
    queue = list(enumerate(seed["sessions"]))

    def client() -> None:
        """A signer who, shown the 503 page, tries again a moment later with the same details."""
        while time.monotonic() < deadline:
            with lock:
                if not queue or len(results) >= MAX_REQUESTS:
                    return
                number, session = queue.pop(0)
            rpps = rpps_next()
            while time.monotonic() < deadline:
                answer = http_post(
                    sign_url,
                    data=form_data(rpps=rpps, last_name=f"Charge{number}"),
                    session=session,
                    timeout=30,
                )
                if answer.status == 200 and submitted in answer.body:
                    kind = "success"
                elif (
                    answer.status == 503
                    and unavailable in answer.body
                    and not looks_like_a_stack_trace(answer.body)
                ):
                    kind = "503"
                else:
                    kind = f"other:{answer.status}:{answer.error}"
                with lock:
                    results.append((rpps, answer.status, time.monotonic(), kind))
                if kind != "503":
                    break
                time.sleep(RETRY_AFTER_503_SECONDS)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    # The outage starts once a tenth of the signers are through: load before, during and after it.
    wait_until(lambda: len(results) >= SIGNERS // 10, timeout=60, interval=0.02)
    cluster.stop()
    outage_started = time.monotonic()
    time.sleep(OUTAGE_SECONDS)
    cluster.start()
    outage_ended = time.monotonic()
    for thread in threads:
        thread.join(timeout=LOAD_SECONDS + 60)
    after_recovery = http_get(f"{web.base_url}/campaigns/{seed['slug']}/")

    stored = set(cluster.psql("SELECT rpps FROM pledges_pledge", database="deconv").split())
    successes = {rpps for rpps, _, _, kind in results if kind == "success"}
    unavailable_answers = [item for item in results if item[3] == "503"]
    others = [item for item in results if item[3].startswith("other")]
    lost = successes - stored
    # A 503 whose transaction had committed (the connection died after COMMIT was sent): the
    # signer's retry then met their own pledge and was shown the same neutral page.
    committed_but_answered_503 = {item[0] for item in unavailable_answers} & stored
    successes_after_restart = [item for item in results if item[3] == "success" and item[2] > outage_ended]
    figures(
        "postgres_restart",
        {
            "requests_sent": len(results),
            "successes": len(successes),
            "answered_503": len(unavailable_answers),
            "other_errors": len(others),
            "pledges_in_db": len(stored),
            "accepted_but_lost": len(lost),
            "committed_but_answered_503": len(committed_but_answered_503),
            "successes_after_restart": len(successes_after_restart),
            "outage_seconds": round(outage_ended - outage_started, 1),
        },
    )
    assert not others, (others, web.log_tail())
    assert unavailable_answers, "no request fell in the outage: the test proved nothing"
    assert lost == set()
    assert stored == successes
    assert successes_after_restart, "the site did not recover without a restart"
    assert after_recovery.status == 200
    assert "Traceback" not in web.log_tail(200_000)
