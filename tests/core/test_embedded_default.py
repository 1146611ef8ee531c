"""The embedded default end to end: SQLite and kombu's filesystem broker, no server at all."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
SERVICE_VARIABLES = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "EMAIL_URL", "DEBUG"}

GET_HEALTHZ = """
import json, django
django.setup()
from django.test import Client
response = Client().get("/healthz")
print(json.dumps({"status_code": response.status_code, **response.json()}))
"""


def embedded_env(var_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update(DJANGO_SETTINGS_MODULE="deconv.settings", DECONV_VAR_DIR=str(var_dir))
    return env


def healthz(env: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", GET_HEALTHZ], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_embedded_default_healthz_sees_a_worker_on_the_filesystem_broker(tmp_path):
    env = embedded_env(tmp_path / "var")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120
    )

    down = healthz(env)
    assert down["status_code"] == 503
    assert down["database"] == {"ok": True, "vendor": "sqlite"}
    assert down["broker"]["transport"] == "filesystem"
    assert down["worker"]["workers"] == 0

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "deconv", "worker", "--pool=solo", "--loglevel=WARNING"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        up = healthz(env)
        while up["status_code"] != 200 and time.monotonic() < deadline:
            time.sleep(0.5)
            up = healthz(env)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=15)

    assert up["status_code"] == 200
    assert up["status"] == "ok"
    assert up["worker"] == {"ok": True, "workers": 1}
