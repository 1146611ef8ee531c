import pytest

from deconv import health


def test_healthz_reports_every_part_up_with_a_live_worker(client, celery_worker_process):
    response = client.get("/healthz")

    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["broker"]["ok"] is True
    assert body["worker"] == {"ok": True, "workers": 1}
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_healthz_is_503_when_no_worker_answers(client, settings):
    settings.HEALTHZ_WORKER_TIMEOUT = 0.2

    response = client.get("/healthz")

    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "error"
    assert body["database"]["ok"] is True
    assert body["worker"]["ok"] is False
    assert body["worker"]["workers"] == 0


@pytest.mark.django_db
def test_healthz_is_503_when_the_database_is_down(client, monkeypatch):
    monkeypatch.setattr(health, "database_status", lambda: {"ok": False, "error": "OperationalError"})
    monkeypatch.setattr(health, "worker_status", lambda: {"ok": True, "workers": 1})

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["database"] == {"ok": False, "error": "OperationalError"}


@pytest.mark.django_db
def test_healthz_skips_the_worker_ping_when_the_broker_is_down(client, monkeypatch):
    monkeypatch.setattr(health, "broker_status", lambda: {"ok": False, "error": "ConnectionRefusedError"})

    def worker_status_must_not_run():
        raise AssertionError("pinged workers through a broker that is down")

    monkeypatch.setattr(health, "worker_status", worker_status_must_not_run)

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["worker"] == {"ok": False, "workers": 0}


def test_broker_status_reports_an_unreachable_broker(settings):
    from deconv.celery import app

    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    try:
        status = health.broker_status()
    finally:
        app.conf.broker_url = original
    assert status["ok"] is False
    assert status["error"]


@pytest.mark.django_db
def test_healthz_refuses_post(client):
    assert client.post("/healthz").status_code == 405
