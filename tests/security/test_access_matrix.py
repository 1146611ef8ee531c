"""Who gets what, for every URL of the site: the access matrix.

The URL configuration is enumerated (tests/security/urls.py), each pattern filled with real
objects of a World (tests/security/world.py), and requested by six roles. Each answer's class
must be the one written in MATRIX, and no answer may contain the personal data (name, RPPS,
email) of someone the role may not see. A URL pattern missing from MATRIX fails the test: a new
page cannot escape review.

Classes: ok (2xx), login (302 to the sign-in page), admin (302 to the admin's sign-in page),
redirect (any other 3xx), forbidden (403), missing (404, 410), method (405), health (200 or 503:
/healthz reports the services, and tests run without a worker).
"""

import io
import zipfile

import pytest
from pypdf import PdfReader

from tests.security.urls import params_for, routes
from tests.security.world import OTHER, ROLES, SIGNER

# Columns: anonymous, signer, other_signer, delegate_other (Paris), delegate (Ain), national.
PUBLIC = "ok ok ok ok ok ok"
SIGNED_IN = "login ok ok ok ok ok"
# Pages of the signer's own pledge: the others have none in that campaign (or no round there).
OWN_PLEDGE = "login ok ok missing missing missing"
ORGANIZER = "login forbidden forbidden ok ok ok"
# An object of the national organizer's, or of the other department: the delegates cannot see it.
NATIONAL_OBJECT = "login forbidden forbidden missing missing ok"
POST_ONLY = "method method method method method method"
ENTRANCE = "ok redirect redirect redirect redirect redirect"  # signed-in users are sent on

MATRIX: dict[str, str] = {
    "healthz": "health health health health health health",
    "i18n/setlang/": "redirect redirect redirect redirect redirect redirect",
    # Signed links: whoever holds the link acts for its owner (the signer), as the email intends.
    "email/stop/<str:token>/": PUBLIC,
    r"^accounts/confirm-email/(?P<key>[-:\w]+)/$": PUBLIC,
    "accounts/login/": ENTRANCE,
    "accounts/logout/": "redirect ok ok ok ok ok",
    "accounts/inactive/": PUBLIC,
    "accounts/signup/": ENTRANCE,
    "accounts/reauthenticate/": SIGNED_IN,
    "accounts/email/": SIGNED_IN,
    "accounts/confirm-email/": PUBLIC,
    "accounts/password/change/": SIGNED_IN,
    "accounts/password/set/": "login redirect redirect redirect redirect redirect",
    "accounts/password/reset/": PUBLIC,
    "accounts/login/code/confirm/": "redirect redirect redirect redirect redirect redirect",
    # allauth's own confirmation route, shadowed by ours above (same pattern): never reached.
    r"accounts/^confirm-email/(?P<key>[-:\w]+)/$": PUBLIC,
    "accounts/password/reset/key/done/": PUBLIC,
    # A valid reset link: its key goes into the session and the browser is sent on.
    r"accounts/^password/reset/key/(?P<uidb36>[0-9A-Za-z]+)-(?P<key>.+)/$": "redirect " * 5 + "redirect",
    "accounts/password/reset/done/": PUBLIC,
    "accounts/login/code/": ENTRANCE,
    "": PUBLIC,
    "campaigns/<slug:slug>/": PUBLIC,
    "campaigns/<slug:slug>/sign/": "login redirect redirect ok ok ok",
    "campaigns/<slug:slug>/my-pledge/": SIGNED_IN,
    "campaigns/<slug:slug>/my-pledge/edit/": OWN_PLEDGE,
    "campaigns/<slug:slug>/my-pledge/withdraw/": OWN_PLEDGE,
    "campaigns/<slug:slug>/my-pledge/letter.pdf": OWN_PLEDGE,
    # The signer's released letter: the author, the Ain delegate and the national organizer.
    "letters/<int:letter_id>/download/": "login ok missing missing ok ok",
    "letters/link/<str:token>/": PUBLIC,
    "campaigns/<slug:slug>/my-pledge/letter-sent/": OWN_PLEDGE,
    "campaigns/<slug:slug>/my-pledge/letter-acknowledged/": OWN_PLEDGE,
    # The round is open in Ain only: the Paris signer has no round to answer.
    "campaigns/<slug:slug>/my-pledge/round/": "login ok missing missing missing missing",
    "campaigns/<slug:slug>/round/<str:token>/": PUBLIC,
    "campaigns/<slug:slug>/ledger/": PUBLIC,
    "campaigns/<slug:slug>/ledger/verify/": PUBLIC,
    "campaigns/<slug:slug>/ledger.json": PUBLIC,
    "me/": SIGNED_IN,
    "me/data.json": SIGNED_IN,
    "me/delete/": SIGNED_IN,
    "api/v1/campaigns/": PUBLIC,
    "api/v1/campaigns/<slug:slug>/": PUBLIC,
    "api/v1/campaigns/<slug:slug>/count.json": PUBLIC,
    "api/v1/campaigns/<slug:slug>/digests/": PUBLIC,
    "campaigns/<slug:slug>/open-data.csv": PUBLIC,
    "campaigns/<slug:slug>/open-data.json": PUBLIC,
    "campaigns/<slug:slug>/map.svg": PUBLIC,
    # The Ain release's escrow: the Ain delegate and the national organizer; the bundle is not built.
    "organizer/releases/<int:release_id>/escrow/": "login forbidden forbidden forbidden ok ok",
    "organizer/escrow/<int:bundle_id>/status.json": "login forbidden forbidden forbidden ok ok",
    "organizer/escrow/<int:bundle_id>/download/": "login forbidden forbidden forbidden missing missing",
    "organizer/": ORGANIZER,
    "organizer/<slug:slug>/": ORGANIZER,
    "organizer/<slug:slug>/map.svg": ORGANIZER,
    "organizer/<slug:slug>/exports/": ORGANIZER,
    # The national organizer's export: only its requester opens it.
    "organizer/<slug:slug>/exports/<int:export_id>/": NATIONAL_OBJECT,
    "organizer/<slug:slug>/exports/<int:export_id>/status.json": NATIONAL_OBJECT,
    "organizer/<slug:slug>/exports/<int:export_id>/download/": NATIONAL_OBJECT,
    "organizer/<slug:slug>/audit/": ORGANIZER,
    "organizer/<slug:slug>/moderation/": ORGANIZER,
    # The signer's pledge (Ain): the Paris delegate does not see that it exists.
    "organizer/<slug:slug>/moderation/pledges/<int:pledge_id>/": "login forbidden forbidden missing ok ok",
    "organizer/<slug:slug>/moderation/pledges/<int:pledge_id>/flag/": POST_ONLY,
    "organizer/<slug:slug>/moderation/pledges/<int:pledge_id>/unflag/": POST_ONLY,
    "organizer/<slug:slug>/moderation/pledges/<int:pledge_id>/invalidate/": POST_ONLY,
    "organizer/<slug:slug>/moderation/pledges/<int:pledge_id>/reinstate/": POST_ONLY,
    "organizer/<slug:slug>/moderation/trending/": ORGANIZER,
    "organizer/<slug:slug>/moderation/bulk/": ORGANIZER,
    # A bulk rule about Paris, made by the national organizer.
    "organizer/<slug:slug>/moderation/bulk/<int:bulk_id>/": NATIONAL_OBJECT,
    "organizer/<slug:slug>/moderation/bulk/<int:bulk_id>/status.json": NATIONAL_OBJECT,
    "organizer/<slug:slug>/moderation/bulk/<int:bulk_id>/cancel/": POST_ONLY,
    # The RPPS directory covers the whole country: national organizers only.
    "organizer/<slug:slug>/directory/": "login forbidden forbidden forbidden forbidden ok",
    "organizer/<slug:slug>/directory/verify/": POST_ONLY,
    "organizer/<slug:slug>/directory/<int:import_id>/": "login forbidden forbidden forbidden forbidden ok",
    "organizer/<slug:slug>/directory/<int:import_id>/status.json": "login forbidden forbidden forbidden forbidden ok",
    "organizer/<slug:slug>/paper/": ORGANIZER,
    "api/v1/openapi.json": PUBLIC,
    "api/": PUBLIC,
    # The admin's own entrance; every other admin page is ADMIN below.
    "admin/login/": PUBLIC,
    "admin/logout/": "redirect redirect redirect redirect redirect redirect",
}
# Every admin page: no role here is staff, so all are sent to the admin's sign-in page.
ADMIN_PREFIX = "admin/"
ADMIN = "admin admin admin admin admin admin"

# Who each role may see. Signed links carry their owner's (the signer's) data to whoever holds them.
MAY_SEE = {
    "anonymous": set(),
    "signer": {SIGNER},
    "other_signer": {OTHER},
    "delegate_other": {OTHER},
    "delegate": {SIGNER},
    "national": {SIGNER, OTHER},
}
SIGNED_LINKS = {
    "letters/link/<str:token>/",
    "campaigns/<slug:slug>/round/<str:token>/",
    "email/stop/<str:token>/",
}


def classify(response) -> str:
    code = response.status_code
    if 200 <= code < 300:
        return "ok"
    if 300 <= code < 400:
        location = response.get("Location", "")
        if location.startswith("/admin/login/"):
            return "admin"
        if location.startswith("/accounts/login/?next="):
            return "login"
        return "redirect"
    return {403: "forbidden", 404: "missing", 410: "missing", 405: "method"}.get(code, str(code))


def body_text(response) -> str:
    """Everything a reader of the answer could see, PDFs and archives included."""
    content = b"".join(response.streaming_content) if response.streaming else response.content
    content_type = response.get("Content-Type", "")
    if content_type.startswith("application/pdf"):
        return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    if content_type.startswith("application/zip"):
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return "\n".join(archive.read(name).decode(errors="replace") for name in archive.namelist())
    return content.decode(errors="replace")


def security_header_gaps(response) -> list[str]:
    """What an HTML page lacks: a CSP without inline scripts, no framing, no sniffing, a referrer policy."""
    if not response.get("Content-Type", "").startswith("text/html"):
        return []
    gaps = []
    policy = response.get("Content-Security-Policy", "")
    directives = {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}
    script_sources = directives.get("script-src", directives.get("default-src"))
    if script_sources is None:
        gaps.append("no script-src in the Content-Security-Policy")
    elif "'unsafe-inline'" in script_sources or "'unsafe-eval'" in script_sources:
        gaps.append(f"unsafe script-src {script_sources}")
    if directives.get("frame-ancestors") != ["'none'"]:
        gaps.append("frame-ancestors is not 'none'")
    if response.get("X-Frame-Options") != "DENY":
        gaps.append("X-Frame-Options is not DENY")
    if response.get("X-Content-Type-Options") != "nosniff":
        gaps.append("X-Content-Type-Options is not nosniff")
    if response.get("Referrer-Policy") not in {
        "same-origin",
        "no-referrer",
        "strict-origin-when-cross-origin",
    }:
        gaps.append(f"Referrer-Policy {response.get('Referrer-Policy')!r}")
    return gaps


def expected_for(route: str) -> list[str] | None:
    row = MATRIX.get(route)
    if row is None and route.startswith(ADMIN_PREFIX):
        row = ADMIN
    return row.split() if row is not None else None


@pytest.mark.slow
def test_every_url_answers_each_role_as_the_matrix_says_and_leaks_nobody_elses_data(world, clients, figures):
    all_routes = routes()
    unlisted = [route.route for route in all_routes if expected_for(route.route) is None]
    assert not unlisted, f"URL patterns without an access expectation in MATRIX: {unlisted}"
    stale = set(MATRIX) - {route.route for route in all_routes}
    assert not stale, f"MATRIX lists patterns that no longer exist: {sorted(stale)}"

    mismatches, leaks, header_gaps, requests, sightings = [], [], [], 0, 0
    for route in all_routes:
        url = route.url(params_for(route, world))
        for role, expected in zip(ROLES, expected_for(route.route), strict=True):
            response = clients[role].get(url)
            requests += 1
            got = classify(response)
            if got != expected and not (expected == "health" and response.status_code in (200, 503)):
                mismatches.append(f"{role:15} {got:10} (expected {expected:10}) {url}")
            allowed = MAY_SEE[role] | ({SIGNER} if route.route in SIGNED_LINKS else set())
            if got == "ok":
                text = body_text(response)
                for person in {SIGNER, OTHER} - allowed:
                    found = [secret for secret in person.secrets if secret in text]
                    if found:
                        leaks.append(f"{role} sees {found} at {url}")
                # The check can see: those allowed do find their data on some pages.
                sightings += sum(secret in text for person in allowed for secret in person.secrets)
                header_gaps.extend(f"{role} {gap} at {url}" for gap in security_header_gaps(response))

    figures(
        "access_matrix",
        {
            "url_patterns": len(all_routes),
            "roles": len(ROLES),
            "requests": requests,
            "mismatches": len(mismatches),
            "leaks": len(leaks),
            "own_data_sightings": sightings,
            "html_pages_missing_security_headers": len(header_gaps),
        },
    )
    assert not mismatches, "\n".join(mismatches)
    assert not leaks, "\n".join(leaks)
    assert sightings > 50
    assert not header_gaps, "\n".join(header_gaps)


def test_a_url_pattern_missing_from_the_matrix_is_reported(monkeypatch):
    from tests.security import test_access_matrix as module

    assert expected_for("organizer/<slug:slug>/") == ORGANIZER.split()
    assert expected_for("admin/pledges/pledge/") == ADMIN.split()
    monkeypatch.delitem(module.MATRIX, "organizer/<slug:slug>/")
    assert expected_for("organizer/<slug:slug>/") is None
