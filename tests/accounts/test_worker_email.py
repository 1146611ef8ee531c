import time

import pytest
from django.core import mail

from deconv.celery import app
from tests.accounts.conftest import PASSWORD


@pytest.fixture
def worker_mail_dir(tmp_path, monkeypatch):
    """Where the worker's file mail backend writes: its DECONV_VAR_DIR is set before it starts."""
    var = tmp_path / "worker-var"
    monkeypatch.setenv("DECONV_VAR_DIR", str(var))
    # Tasks left in the test broker by another run would otherwise be sent first.
    app.control.purge()
    return var / "mail"


def wait_for_files(folder, timeout: float = 20.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(folder.glob("*.log")) if folder.exists() else []
        if files:
            return files
        time.sleep(0.1)
    return []


@pytest.mark.redis
@pytest.mark.worker
@pytest.mark.slow
def test_the_confirmation_email_is_sent_by_the_worker_not_the_request(
    worker_mail_dir, celery_worker_process, client
):
    response = client.post(
        "/accounts/signup/", {"email": "nouveau@example.org", "password1": PASSWORD, "password2": PASSWORD}
    )

    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"
    # The web process sent nothing itself...
    assert mail.outbox == []
    # ...the worker did, through its own mail backend.
    files = wait_for_files(worker_mail_dir)
    assert len(files) == 1
    content = files[0].read_text()
    assert "To: nouveau@example.org" in content
    assert "/accounts/confirm-email/" in content
