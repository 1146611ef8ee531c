"""End-to-end fixtures: the site on a live server, driven by Debian's Chromium through Playwright.

Playwright never downloads a browser here: it launches /usr/bin/chromium (the `chromium` Debian
package, installed by .ci/run). Without it, e2e tests are skipped with the reason outside CI and
fail the run in CI, like the tests whose PostgreSQL or Redis is missing (tests/conftest.py).

The live server runs in a thread of this process, on the transactional test database: what a
test writes with the ORM the server sees, and the other way round. Emails go through the real
Celery worker (`mail_worker`); counts are folded in by calling `pledges.counting.counts_update()`
from the test, in place of beat's tick.
"""

import os
import re
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from tests.conftest import IN_CI
from tests.e2e.support import ARTIFACTS, shoot_failure

CHROMIUM = Path(os.environ.get("DECONV_E2E_CHROMIUM", "/usr/bin/chromium"))
# The flags this machine kind documents for headless Chromium: without the background-networking
# ones, Chromium tries Google's hosts at every start and the closed network refuses them.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 1,
    "is_mobile": True,
    "has_touch": True,
    "locale": "fr-FR",
}
DESKTOP = {"viewport": {"width": 1280, "height": 900}, "device_scale_factor": 1, "locale": "fr-FR"}
# Slow enough for the 2-core CI machine under load, short enough that a broken step fails fast.
TIMEOUT_MS = 15_000


def _missing_tools() -> list[str]:
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    if shutil.which("pdftoppm") is None:
        missing.append("pdftoppm (apt-get install poppler-utils)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -r requirements/dev.txt)")
    return missing


def pytest_collection_modifyitems(config, items):
    """Without Chromium, pdftoppm or Playwright: skip the e2e tests outside CI, fail in CI."""
    e2e_items = [item for item in items if "e2e" in item.keywords]
    missing = _missing_tools() if e2e_items else []
    if not missing:
        return
    if IN_CI:
        raise pytest.UsageError(f"CI=true: {len(e2e_items)} e2e tests lack {', '.join(missing)}")
    for item in e2e_items:
        item.add_marker(pytest.mark.skip(reason="e2e: missing " + ", ".join(missing)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures can screenshot the pages of a failed test."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="package")
def browser():
    """One Chromium for the e2e package, closed after it.

    Playwright's sync API keeps an asyncio loop running in this thread, which makes Django refuse
    ORM calls ("async context"). Tests here call the ORM between browser steps on purpose, so the
    guard is lifted for the package only, and the loop stops before the other tests run.
    """
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class ConsoleErrors:
    """Every console error and uncaught page error of a context's pages, with the page's URL.

    A Content-Security-Policy violation, a failed script or a 404 sub-resource all land here. A
    test that expects one (a refused page logs its 403) declares it with `allow(pattern)`.
    """

    def __init__(self):
        self.errors: list[str] = []
        self.allowed: list[re.Pattern] = []

    def watch(self, page) -> None:
        page.on("console", lambda message: self._console(page, message))
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: page error: {error}"))

    def _console(self, page, message) -> None:
        if message.type == "error":
            self.errors.append(f"{page.url}: console error: {message.text}")

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [error for error in self.errors if not any(p.search(error) for p in self.allowed)]


@pytest.fixture
def console_errors():
    return ConsoleErrors()


@pytest.fixture
def e2e_site(transactional_db, live_server, settings, tmp_path):
    """The live server's settings for a browser test: fast hashing; mail and private files in the
    folders the worker uses (see `worker`)."""
    # PBKDF2 costs ~0.3 s per password on this machine; signing up and in needs a few.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Where the worker (DECONV_VAR_DIR=worker-var) writes mail and reads uploads, exports, letters.
    settings.EMAIL_FILE_PATH = tmp_path / "worker-var" / "mail"
    settings.PRIVATE_MEDIA_ROOT = tmp_path / "worker-var" / "private"
    return live_server


def _context(browser, request, live_server, console_errors, options):
    context = browser.new_context(base_url=live_server.url, **options)
    context.set_default_timeout(TIMEOUT_MS)
    context.on("page", console_errors.watch)
    yield context
    call_report = getattr(request.node, "report_call", None)
    if call_report is not None and call_report.failed:
        shoot_failure(context, name=request.node.name)
    context.close()
    unexpected = console_errors.unexpected()
    # Reported after the test's own failure, if any, so that one does not hide the other.
    assert not unexpected, "console errors:\n" + "\n".join(unexpected)


@pytest.fixture
def phone(browser, request, e2e_site, console_errors):
    """A phone-sized browser (390x844, touch, French), with its console watched."""
    yield from _context(browser, request, e2e_site, console_errors, PHONE)


@pytest.fixture
def desktop(browser, request, e2e_site, console_errors):
    """A desktop browser (1280x900, French), with its console watched."""
    yield from _context(browser, request, e2e_site, console_errors, DESKTOP)


@pytest.fixture
def phone_en(browser, request, e2e_site, console_errors):
    """A phone-sized browser that asks for English (pages whose French catalogue is being written)."""
    yield from _context(browser, request, e2e_site, console_errors, {**PHONE, "locale": "en-GB"})


@pytest.fixture
def desktop_en(browser, request, e2e_site, console_errors):
    """A desktop browser that asks for English."""
    yield from _context(browser, request, e2e_site, console_errors, {**DESKTOP, "locale": "en-GB"})


@pytest.fixture
def phone_without_js(browser, request, e2e_site, console_errors):
    """A phone-sized browser with JavaScript disabled."""
    yield from _context(browser, request, e2e_site, console_errors, {**PHONE, "java_script_enabled": False})


@pytest.fixture
def demo_campaign(transactional_db):
    """The demo campaign (`load_territories` + `load_demo`), its counts published and counting instant.

    40 synthetic pledges make the national count public (small counts are hidden); lag 0 and a
    1-second interval let `counts_update()` count a pledge at once and counter.js show it within
    a second.
    """
    from pledges.models import Campaign, CounterState

    quiet = open(os.devnull, "w")  # noqa: SIM115 (closed below)
    with quiet:
        call_command("load_territories", stdout=quiet)
        call_command("load_demo", stdout=quiet)
        call_command("demo_pledges", campaign="demo", count=40, seed=1, stdout=quiet)
    CounterState.objects.update_or_create(pk=1, defaults={"lag_seconds": 0, "interval_seconds": 1})
    return Campaign.objects.get(slug="demo")


@pytest.fixture
def worker(monkeypatch, tmp_path, request):
    """The real Celery worker (tests/conftest.py), sharing this test's mail and private folders."""
    from deconv.celery import app

    # The worker's file mail backend and private files live under DECONV_VAR_DIR; e2e_site points
    # the live server at the same folders.
    monkeypatch.setenv("DECONV_VAR_DIR", str(tmp_path / "worker-var"))
    monkeypatch.delenv("PRIVATE_MEDIA_ROOT", raising=False)
    monkeypatch.delenv("EMAIL_URL", raising=False)
    # Tasks another test left in the broker would otherwise be run first.
    app.control.purge()
    return request.getfixturevalue("celery_worker_process")


@pytest.fixture
def login(e2e_site):
    """log_in(context, user): the browser context gets a session cookie for `user`."""

    def log_in(context, user) -> None:
        client = Client()
        client.force_login(user)
        cookie = client.cookies[settings.SESSION_COOKIE_NAME]
        context.add_cookies([{"name": cookie.key, "value": cookie.value, "url": e2e_site.url}])

    return log_in


@pytest.fixture(scope="session", autouse=True)
def _artifacts_folder():
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    # A failure's screenshots describe the run that made them: none left from an earlier run.
    for stale in folder.glob("FAILED-*.png"):
        stale.unlink()


@pytest.fixture
def signer(transactional_db):
    """A physician's account whose email address is already confirmed."""
    from tests.pledges.signing_support import verified_user

    return verified_user("signataire@example.org")
