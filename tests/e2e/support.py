"""Helpers of the browser journeys: accessibility audit, screenshots, emails, focus, routes."""

import email
import email.policy
import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.urls import NoReverseMatch, reverse

ROOT = Path(__file__).resolve().parent.parent.parent
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
AXE_SCRIPT = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
# axe-core's impact levels that fail a journey; "moderate" and "minor" are printed only.
AXE_BLOCKING = {"serious", "critical"}
LINK = re.compile(r"https?://[^\s<>\"]+")


# --- Accessibility ------------------------------------------------------------------------------


AXE_RUN_JS = """async () => {
    const results = await axe.run(document, {resultTypes: ["violations"]});
    return results.violations.map((v) => ({
        id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
        nodes: v.nodes.map((n) => ({target: n.target.join(" "), summary: n.failureSummary})),
    }));
}"""


class _AuditPages:
    """One CSP-free audit page per journey context, created at its first audit, closed with it."""

    def __init__(self):
        self._pages: dict[int, tuple] = {}

    def for_page(self, page):
        key = id(page.context)
        if key not in self._pages:
            context = page.context.browser.new_context(
                bypass_csp=True, viewport=page.viewport_size, locale="fr-FR"
            )
            audit_page = context.new_page()
            snapshot: dict[str, str] = {}
            # Only the audited document is replayed; its stylesheets and images come from the server.
            audit_page.route(
                lambda requested: requested.split("#", 1)[0] == snapshot.get("url"),
                lambda route: route.fulfill(
                    status=200, content_type="text/html; charset=utf-8", body=snapshot["html"]
                ),
            )
            self._pages[key] = (audit_page, snapshot)
            page.context.on("close", lambda _context: self._close(key))
        return self._pages[key]

    def _close(self, key: int) -> None:
        audit_page, _snapshot = self._pages.pop(key)
        audit_page.context.close()


_audit_pages = _AuditPages()


def axe_audit(page, *, name: str) -> list[dict]:
    """Run axe-core on what `page` shows now; fail on serious or critical violations.

    The site's Content-Security-Policy (script-src 'self') blocks an injected axe script, and
    lifting it in the journey's own context would hide the CSP violations the console watcher
    must see. So the page's current DOM is replayed, at the same viewport, in a separate context
    with bypass_csp=True, and audited there. Returns every violation (moderate and minor ones are
    printed, not failed) and writes them to test-artifacts/axe/<name>.json.
    """
    audit_page, snapshot = _audit_pages.for_page(page)
    snapshot["url"], snapshot["html"] = page.url.split("#", 1)[0], page.content()
    audit_page.goto(snapshot["url"], wait_until="load")
    audit_page.add_script_tag(path=str(AXE_SCRIPT))
    violations = audit_page.evaluate(AXE_RUN_JS)
    folder = ARTIFACTS / "axe"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps({"url": page.url, "violations": violations}, indent=2))
    if violations:
        print(f"\naxe {name} ({page.url}):\n{axe_format(violations)}")
    blocking = [v for v in violations if v["impact"] in AXE_BLOCKING]
    assert not blocking, (
        f"axe: serious or critical violations on {name} ({page.url}):\n{axe_format(blocking)}"
    )
    return violations


def axe_format(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- [{violation['impact']}] {violation['id']}: {violation['help']}")
        for node in violation["nodes"][:5]:
            lines.append(f"    {node['target']}: {(node['summary'] or '').splitlines()[-1].strip()}")
    return "\n".join(lines)


# --- Screenshots --------------------------------------------------------------------------------


def form_factor(page) -> str:
    return "phone" if page.viewport_size["width"] < 600 else "desktop"


def screenshot(page, *, journey: str, step: str, full_page: bool = True) -> Path:
    """test-artifacts/screenshots/<journey>-<step>-<phone|desktop>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{journey}-{step}-{form_factor(page)}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def shoot_failure(context, *, name: str) -> None:
    """What each page of a failed test showed, for whoever reads the CI artifacts."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    for index, page in enumerate(context.pages):
        try:
            page.screenshot(path=str(SCREENSHOTS / f"FAILED-{safe}-{index}.png"), full_page=True)
        except Exception as error:  # a crashed page must not hide the test's own failure
            print(f"could not screenshot {page.url}: {error}")


def pdf_first_page_png(pdf: Path, *, out: Path, resolution: int = 60) -> Path:
    """Page 1 of `pdf` as a PNG at `out` (poppler's pdftoppm)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "pdftoppm",
            "-png",
            "-r",
            str(resolution),
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(pdf),
            str(out.with_suffix("")),
        ],
        check=True,
        timeout=60,
    )
    return out


# --- Emails -------------------------------------------------------------------------------------


def _outbox_rows(address: str) -> list[str]:
    """Bodies from the outbox table (deconv.models.OutgoingEmail), oldest first, if it is in use."""
    try:
        from deconv.models import OutgoingEmail
    except ImportError:
        return []
    rows = OutgoingEmail.objects.filter(recipient__iexact=address).order_by("created_at", "pk")
    return list(rows.values_list("body_text", flat=True))


def _locmem_messages(address: str) -> list[str]:
    outbox = getattr(mail, "outbox", None) or []
    return [m.body for m in outbox if address.lower() in (to.lower() for to in m.to)]


def _file_messages(address: str) -> list[str]:
    """Text parts of the messages Django's file backend wrote (by this process or the worker)."""
    folder = Path(settings.EMAIL_FILE_PATH)
    if not folder.is_dir():
        return []
    bodies = []
    for path in sorted(folder.glob("*.log"), key=lambda p: (p.stat().st_mtime, p.name)):
        # The backend separates the messages of one connection with a line of 79 dashes.
        for chunk in re.split(rb"\n-{79}\n", path.read_bytes()):
            if not chunk.strip():
                continue
            message = email.message_from_bytes(chunk.lstrip(), policy=email.policy.default)
            if address.lower() not in str(message.get("To", "")).lower():
                continue
            part = message.get_body(preferencelist=("plain",))
            bodies.append(part.get_content() if part is not None else "")
    return bodies


def latest_email_to(address: str, *, containing: str = "", timeout: float = 30.0) -> str:
    """The text of the latest email to `address` (that contains `containing`), waiting for it.

    Looks in the outbox table first, then Django's locmem outbox, then the file backend's folder
    (settings.EMAIL_FILE_PATH, where the e2e worker writes): the mail path is being moved into the
    outbox table, and this helper reads whichever carries the mail.
    """
    deadline = time.monotonic() + timeout
    while True:
        for source in (_outbox_rows, _locmem_messages, _file_messages):
            bodies = [body for body in source(address) if containing in body]
            if bodies:
                return bodies[-1]
        if time.monotonic() > deadline:
            raise AssertionError(f"no email containing {containing!r} arrived within {timeout:.0f} s")
        time.sleep(0.2)


def link_path(body: str, *, containing: str) -> str:
    """The path (and query) of the first link in `body` that contains `containing`.

    Links carry SITE_URL, not the live server's random port: the journey opens the path on its own.
    """
    for url in LINK.findall(body):
        if containing in url:
            return "/" + url.split("/", 3)[3]
    raise AssertionError(f"no link containing {containing!r} in:\n{body}")


# --- Keyboard -----------------------------------------------------------------------------------

FOCUS_STATE_JS = """() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const style = getComputedStyle(el);
    const outline = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0;
    const shadow = style.boxShadow && style.boxShadow !== "none";
    return {
        tag: el.tagName.toLowerCase(), id: el.id, name: el.getAttribute("name"), type: el.type || "",
        text: (el.innerText || el.value || "").trim().slice(0, 40),
        visible: Boolean(outline || shadow), outline: style.outline, boxShadow: style.boxShadow,
    };
}"""


def focused(page) -> dict | None:
    """What has the keyboard focus, and whether an outline or box-shadow shows it."""
    return page.evaluate(FOCUS_STATE_JS)


# --- Routes -------------------------------------------------------------------------------------


def routes_missing(*names_and_kwargs: tuple[str, dict]) -> list[str]:
    missing = []
    for name, kwargs in names_and_kwargs:
        try:
            reverse(name, kwargs=kwargs)
        except NoReverseMatch:
            missing.append(name)
    return missing


def skip_unless_routes(*names_and_kwargs: tuple[str, dict]) -> None:
    """Skip a journey whose pages are not built yet (named in the reason); never in CI's way once they are."""
    missing = routes_missing(*names_and_kwargs)
    if missing:
        pytest.skip("pages not built yet: " + ", ".join(missing))
