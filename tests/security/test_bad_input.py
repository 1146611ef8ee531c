"""Bad input is refused, never a 500, and what is stored stays inert wherever it is shown.

Property tests (Hypothesis) for the validators: RPPS numbers, postal codes, threshold targets and
spreadsheet-safe cells; then every form of the site through the test client with hostile values
(markup, SQL, spreadsheet formulas, NUL bytes, lone surrogates and invalid UTF-8 as raw bytes,
overlong strings, JSON bodies of every type); then a signer whose name is markup or a formula,
followed into the pages, the letter and the exports.
"""

import csv
import io
import json
import re
import string
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import openpyxl
import pytest
from django.test import Client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from deconv.csvsafe import FORMULA_PREFIXES, csv_safe
from pledges.access import organizer_scope
from pledges.conditions import _target
from pledges.exports import export_build, export_path, export_request
from pledges.letters import letter_render_pdf
from pledges.models import ThresholdRule
from pledges.rpps import RPPS_LENGTH, luhn_check_digit, rpps_is_valid, rpps_normalize
from pledges.services import pledge_create
from territories.postal import departments_for_postal_code, postal_code_matches_department
from tests.pledges.signing_support import form_data, service_data, verified_user
from tests.security.world import World

DEPARTMENT_CODES = {f"{n:02d}" for n in range(1, 96) if n != 20} | {
    "2A",
    "2B",
    "971",
    "972",
    "973",
    "974",
    "976",
}

# --- Validators ------------------------------------------------------------------------------

separators = st.sampled_from([" ", ".", "-", "\u00a0", "\u202f", "\t"])


@given(st.text())
def test_rpps_normalize_is_idempotent_and_validation_never_raises(raw):
    once = rpps_normalize(raw)
    assert rpps_normalize(once) == once
    valid = rpps_is_valid(once)
    assert valid is (len(once) == RPPS_LENGTH and once.isascii() and once.isdigit() and valid)


@given(st.text(alphabet=string.digits, min_size=10, max_size=10), st.lists(separators, max_size=4), st.data())
def test_a_number_with_its_check_digit_is_valid_whatever_separators_people_type(body, seps, data):
    number = body + luhn_check_digit(body)
    typed = list(number)
    for separator in seps:
        typed.insert(data.draw(st.integers(0, len(typed))), separator)
    assert rpps_is_valid(rpps_normalize("".join(typed)))


@given(st.text(alphabet=string.digits, min_size=10, max_size=10), st.integers(0, 10), st.integers(1, 9))
@example(body="1234567890", position=10, shift=8)  # 12345678903 -> 12345678901, DOMAIN.md's invalid one
def test_any_single_wrong_digit_makes_an_rpps_invalid(body, position, shift):
    number = body + luhn_check_digit(body)
    wrong = number[:position] + str((int(number[position]) + shift) % 10) + number[position + 1 :]
    assert not rpps_is_valid(wrong)


@given(st.one_of(st.text(), st.none(), st.integers(), st.binary()))
def test_postal_code_lookup_never_raises_and_names_only_real_departments(value):
    found = departments_for_postal_code(value)
    assert found <= DEPARTMENT_CODES


@given(st.integers(1000, 95999).filter(lambda n: not 20000 <= n < 21000), st.lists(separators, max_size=2))
def test_a_metropolitan_postal_code_names_its_first_two_digits(number, seps):
    code = f"{number:05d}"
    typed = code[:2] + "".join(s for s in seps if s.isspace()) + code[2:]
    assert departments_for_postal_code(typed) == {code[:2]}
    assert postal_code_matches_department(typed, code[:2].lower())


@given(st.integers(20000, 20999))
def test_a_corsican_postal_code_is_in_corsica(number):
    found = departments_for_postal_code(str(number))
    assert found and found <= {"2A", "2B"}


@given(st.text(max_size=8), st.text(max_size=4))
def test_matching_a_department_is_the_lookup_itself(postal_code, department):
    assert postal_code_matches_department(postal_code, department) == (
        department.strip().upper() in departments_for_postal_code(postal_code)
    )


@given(
    min_count=st.integers(0, 100_000),
    share=st.decimals(min_value=0, max_value=100, places=2),
    population=st.one_of(st.none(), st.integers(0, 10_000_000)),
)
def test_a_threshold_target_is_the_least_count_meeting_both_the_count_and_the_share(
    min_count, share, population
):
    rule = ThresholdRule(min_count=min_count, min_share_percent=share)
    target, population_missing = _target(rule=rule, population=population)
    if share > 0 and not population:
        assert (target, population_missing) == (None, True)
        return
    assert population_missing is False
    assert target >= max(min_count, 1)
    if share > 0:
        assert Decimal(target) * 100 >= share * population
        # Minimal: one signature fewer fails the count, the share or the one-signature floor.
        fewer = target - 1
        assert fewer < max(min_count, 1) or Decimal(fewer) * 100 < share * population
    else:
        assert target == max(min_count, 1)


def test_no_rule_no_target():
    assert _target(rule=None, population=1000) == (None, False)


@given(st.one_of(st.text(), st.integers(), st.none(), st.floats(allow_nan=False)))
def test_a_spreadsheet_cell_never_starts_a_formula(value):
    cell = csv_safe(value)
    assert not cell.startswith(FORMULA_PREFIXES)
    text = "" if value is None else str(value)
    assert cell in (text, "'" + text)


# --- Every form, hostile values --------------------------------------------------------------

MARKUP = "<script>alert('xss-mark')</script>"
ATTRIBUTE = "\"><img src=x onerror=alert('xss-mark')>"
ACTIVE_MARKERS = ("<script>alert('xss-mark')", "<img src=x onerror=alert('xss-mark')>")
HOSTILE = [
    MARKUP,
    ATTRIBUTE,
    "'; DROP TABLE pledges_pledge; --",
    "' OR '1'='1",
    '=HYPERLINK("http://evil.example","clic")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)",
    "-2+3",
    "Dupont\x00Martin",
    "\ud800",
    "\udfff\ud800x",
    "\u202eelise\u202c",
    "{{ 7|add:7 }}{% debug %}",
    "../../../../etc/passwd",
    "%00%0d%0aSet-Cookie: x=y",
    "\r\nLocation: https://evil.example",
    "x" * 100_000,
    "é" * 5000,
    "🩺" * 300,
    "",
    " ",
    "0",
    "-1",
    "99999999999999999999999999",
    "1e309",
    "NaN",
    "2026-02-30",
    "9999-12-31",
    "0000-00-00",
    "01",
    "2A",
    "general_practice",
    "liberal",
    "on",
    "national@organizers.example",
    "12345678903",
]
# Put one at a time into an otherwise valid submission, so that they reach the services too.
IN_VALID_SUBMISSION = [
    MARKUP,
    ATTRIBUTE,
    "'; DROP TABLE pledges_pledge; --",
    '=HYPERLINK("x")',
    "a\x00b",
    "\ud800",
    "x" * 100_000,
    "",
    "1e309",
]
INVALID_UTF8 = [b"\xff\xfe", b"\xed\xa0\x80", b"\xc3", b"\x80abc", b"\xf4\x90\x80\x80"]

PLEDGE_FIELDS = [
    "rpps",
    "last_name",
    "first_name",
    "specialty",
    "practice_mode",
    "sector",
    "department",
    "practice_address",
    "postal_code",
    "city",
    "caisse",
    "patient_list_size",
    "consent_pledge",
    "consent_data",
    "website",
]
SEARCH_FIELDS = [
    "rpps",
    "name",
    "email_domain",
    "ip",
    "department",
    "created_from",
    "created_to",
    "status",
    "verification",
    "flagged",
    "page",
]
BULK_FIELDS = ["email_domain", "ip", "department", "created_from", "created_to", "reason", "preview_count"]


@dataclass(frozen=True)
class Form:
    name: str
    role: str  # "anonymous", a World user, "pledger" (a new account) or "fresh" (a new one per case)
    method: str
    path: str  # formatted with the world's slugs and ids
    fields: tuple[str, ...]
    valid: dict | None = None  # a valid submission, so hostile values also reach the services


FORMS = [
    Form("signup", "anonymous", "POST", "/accounts/signup/", ("email", "password1", "password2", "website")),
    Form("login", "anonymous", "POST", "/accounts/login/", ("login", "password", "remember")),
    Form("password_reset", "anonymous", "POST", "/accounts/password/reset/", ("email",)),
    Form("login_code", "anonymous", "POST", "/accounts/login/code/", ("email",)),
    Form("pledge_create", "pledger", "POST", "/campaigns/{alpha}/sign/", tuple(PLEDGE_FIELDS), form_data()),
    Form("pledge_edit", "signer", "POST", "/campaigns/{alpha}/my-pledge/edit/", tuple(PLEDGE_FIELDS[1:12])),
    Form("account_delete", "fresh", "POST", "/me/delete/", ("confirm",)),
    Form(
        "letter_sent",
        "signer",
        "POST",
        "/campaigns/{beta}/my-pledge/letter-sent/",
        ("sent_on", "registered_mail_number"),
    ),
    Form(
        "letter_acknowledged",
        "signer",
        "POST",
        "/campaigns/{beta}/my-pledge/letter-acknowledged/",
        ("acknowledged_on",),
    ),
    Form("round_confirm", "signer", "POST", "/campaigns/{alpha}/my-pledge/round/", ("answer",)),
    Form("round_link", "anonymous", "POST", "/campaigns/{alpha}/round/{round_token}/", ("answer",)),
    Form("moderation_search", "national", "GET", "/organizer/{alpha}/moderation/", tuple(SEARCH_FIELDS)),
    Form(
        "moderation_search_delegate",
        "delegate",
        "GET",
        "/organizer/{alpha}/moderation/",
        tuple(SEARCH_FIELDS),
    ),
    Form(
        "moderation_flag",
        "national",
        "POST",
        "/organizer/{alpha}/moderation/pledges/{pledge}/flag/",
        ("reason",),
    ),
    Form("bulk_preview", "national", "GET", "/organizer/{alpha}/moderation/bulk/", tuple(BULK_FIELDS[:5])),
    Form("bulk_confirm", "delegate", "POST", "/organizer/{alpha}/moderation/bulk/", tuple(BULK_FIELDS)),
    Form("trending", "national", "GET", "/organizer/{alpha}/moderation/trending/", ("window",)),
    Form("paper_pledge", "delegate", "POST", "/organizer/{alpha}/paper/", (*PLEDGE_FIELDS[:12], "attest")),
    Form("export", "delegate", "POST", "/organizer/{alpha}/exports/", ("format",)),
    Form("dashboard", "national", "GET", "/organizer/{alpha}/", ("q", "sort")),
    Form("audit", "national", "GET", "/organizer/{alpha}/audit/", ("page",)),
    Form("ledger_verify", "anonymous", "GET", "/campaigns/{alpha}/ledger/verify/", ("receipt",)),
    Form("ledger_json", "anonymous", "GET", "/campaigns/{alpha}/ledger.json", ("after",)),
    Form("api_docs", "anonymous", "GET", "/api/", ("lang",)),
    Form("open_data", "anonymous", "GET", "/campaigns/{alpha}/open-data.json", ("lang",)),
    Form("count_json", "anonymous", "GET", "/api/v1/campaigns/{alpha}/count.json", ("callback", "lang")),
    Form("set_language", "anonymous", "POST", "/i18n/setlang/", ("language", "next")),
    Form("email_stop", "anonymous", "POST", "/email/stop/{stop_token}/", ("action",)),
]


def _encode(value) -> str:
    """Percent-encode text (lone surrogates kept as their invalid UTF-8 bytes) or raw bytes."""
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return urllib.parse.quote_from_bytes(raw, safe="")


def _body(values: dict) -> str:
    return "&".join(f"{_encode(name)}={_encode(value)}" for name, value in values.items())


class Fuzzer:
    """Sends hostile submissions to the forms; counts cases, 500s and markup rendered active."""

    def __init__(self, world: World):
        self.world = world
        self.cases = 0
        self.errors: list[str] = []
        self.active: list[str] = []
        self.statuses: Counter = Counter()
        self._clients: dict[str, Client] = {}
        world_tokens = world.tokens
        self.names = {
            "alpha": world.alpha.slug,
            "beta": world.beta.slug,
            "pledge": world.pledges["signer_active"].pk,
            "round_token": world_tokens["round_link"],
            "stop_token": world_tokens["email_stop"],
        }

    def client(self, role: str) -> Client:
        if role == "fresh":
            client = Client(raise_request_exception=False)
            client.force_login(verified_user())
            return client
        if role not in self._clients:
            client = Client(raise_request_exception=False)
            if role == "pledger":
                client.force_login(verified_user())
            elif role != "anonymous":
                client.force_login(self.world.users[role])
            self._clients[role] = client
        return self._clients[role]

    def send(
        self, form: Form, values: dict, *, content_type: str = "application/x-www-form-urlencoded"
    ) -> None:
        client = self.client(form.role)
        path = form.path.format(**self.names)
        if form.method == "GET":
            response = client.generic("GET", f"{path}?{_body(values)}")
        elif content_type == "application/json":
            response = client.generic(
                "POST", path, data=json.dumps(values["json"]), content_type=content_type
            )
        else:
            response = client.generic("POST", path, data=_body(values), content_type=content_type)
        self.cases += 1
        self.statuses[response.status_code // 100] += 1
        if response.status_code >= 500:
            self.errors.append(f"{form.name}: {response.status_code} for {_short(values)}")
        if response.get("Content-Type", "").startswith("text/html") and not response.streaming:
            body = response.content.decode(errors="replace")
            for marker in ACTIVE_MARKERS:
                if marker in body:
                    self.active.append(f"{form.name}: {marker} rendered as markup")


def _short(values: dict) -> str:
    return repr(
        {name: (value[:40] if isinstance(value, str | bytes) else value) for name, value in values.items()}
    )


@pytest.fixture
def fuzzer(world, settings):
    # Limits off: the point is to reach the forms, not the 429 page (test_web_security checks limits).
    settings.RATE_LIMITS = {
        scope: {"per_ip": "100000/m", "per_user": "100000/m"}
        for scope in ("pledge", "confirmation", "withdrawal", "ledger_verify")
    }
    settings.ACCOUNT_RATE_LIMITS = False
    return Fuzzer(world)


hostile_values = st.one_of(
    st.sampled_from(HOSTILE),
    st.sampled_from(INVALID_UTF8),
    st.text(max_size=200),
    st.binary(max_size=60),
    st.integers().map(str),
    st.dates().map(date.isoformat),
)


@pytest.mark.slow
def test_no_form_answers_500_to_hostile_values_and_no_markup_comes_back_active(fuzzer, figures):
    # 1. Every hostile value in every field of every form, alone and in a valid submission.
    for form in FORMS:
        for value in [*HOSTILE, *INVALID_UTF8]:
            fuzzer.send(form, dict.fromkeys(form.fields, value))
            if form.valid and value in IN_VALID_SUBMISSION:
                for field in form.fields:
                    fuzzer.send(form, {**form.valid, field: value})
        # Unknown fields, repeated fields, no fields at all.
        fuzzer.send(form, {})
        fuzzer.send(form, {"unexpected": MARKUP, "__proto__": "x"})
        # JSON bodies of every type where a form is expected.
        if form.method == "POST":
            for payload in ([], 1, None, "x", True, {"rpps": ["a"]}, {form.fields[0]: {"$ne": 1}}, [{}] * 3):
                fuzzer.send(form, {"json": payload}, content_type="application/json")

    # 2. Hypothesis: random subsets of fields with random hostile values, per form.
    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(data=st.data())
    def random_submissions(data):
        form = data.draw(st.sampled_from(FORMS))
        fields = data.draw(st.lists(st.sampled_from(form.fields), max_size=len(form.fields), unique=True))
        values = {field: data.draw(hostile_values) for field in fields}
        base = dict(form.valid or {})
        fuzzer.send(form, {**base, **values})

    for _ in range(len(FORMS)):
        random_submissions()

    figures(
        "bad_input",
        {
            "forms": len(FORMS),
            "cases_tried": fuzzer.cases,
            "answers_2xx_3xx_4xx": f"{fuzzer.statuses[2]}/{fuzzer.statuses[3]}/{fuzzer.statuses[4]}",
            "answers_500": len(fuzzer.errors),
            "payloads_rendered_active": len(fuzzer.active),
        },
    )
    assert not fuzzer.errors, "\n".join(fuzzer.errors[:30])
    assert not fuzzer.active, "\n".join(fuzzer.active[:30])
    assert fuzzer.cases > 1500


def test_json_endpoints_refuse_other_methods_and_bodies_without_a_500(world):
    client = Client(raise_request_exception=False)
    paths = [
        f"/api/v1/campaigns/{world.alpha.slug}/count.json",
        f"/api/v1/campaigns/{world.alpha.slug}/",
        "/api/v1/campaigns/",
        f"/campaigns/{world.alpha.slug}/open-data.json",
        f"/campaigns/{world.alpha.slug}/ledger.json",
    ]
    for path in paths:
        for payload in ([], {}, 1, "x", None, {"slug": ["a"]}):
            for method in ("POST", "PUT", "PATCH", "DELETE"):
                response = client.generic(
                    method, path, data=json.dumps(payload), content_type="application/json"
                )
                assert response.status_code == 405, (method, path, response.status_code)
        # Slugs that are not slugs, and overlong ones.
    for slug in ("%00", "x" * 5000, "..%2f..", "<script>"):
        response = client.get(f"/api/v1/campaigns/{slug}/count.json")
        assert response.status_code == 404


# --- A signer whose name is markup or a formula --------------------------------------------------


@pytest.fixture
def hostile_signer(world):
    user = verified_user(email="hostile@example.org")
    result = pledge_create(
        campaign=world.alpha,
        user=user,
        data=service_data(
            rpps="10000000009",
            last_name=MARKUP,
            first_name='=HYPERLINK("http://evil.example","clic")',
            city=ATTRIBUTE,
            practice_address="+cmd|' /C calc'!A0",
        ),
        ip="192.0.2.50",
        user_agent="<script>alert('ua')</script>",
    )
    assert result.created
    return user, result.pledge


def _inert(html: str) -> bool:
    return not any(marker in html for marker in ACTIVE_MARKERS) and "&lt;script&gt;alert(" in html


def test_a_hostile_name_stays_text_in_pages_letter_and_exports(world, hostile_signer, tmp_path):
    user, pledge = hostile_signer
    signer_client = Client()
    signer_client.force_login(user)
    national = world.users["national"]
    organizer_client = Client()
    organizer_client.force_login(national)

    mine = signer_client.get(f"/campaigns/{world.alpha.slug}/my-pledge/").content.decode()
    account = signer_client.get("/me/").content.decode()
    found = organizer_client.get(
        f"/organizer/{world.alpha.slug}/moderation/", {"name": "script"}
    ).content.decode()
    detail = organizer_client.get(
        f"/organizer/{world.alpha.slug}/moderation/pledges/{pledge.pk}/"
    ).content.decode()
    letter_html, letter_pdf = letter_render_pdf(pledge=pledge, intention=True)

    assert _inert(mine)
    assert _inert(found) and _inert(detail)
    assert not any(marker in account for marker in ACTIVE_MARKERS)
    # WeasyPrint lays out the HTML it is given: the name is an escaped text node there.
    assert _inert(letter_html)
    assert letter_pdf.startswith(b"%PDF")
    # The account's data export is JSON: the value comes back as it was typed, as data.
    data = signer_client.get("/me/data.json").json()
    assert data["pledges"][0]["last_name"] == MARKUP

    cells = []
    for file_format in ("csv", "xlsx"):
        job = export_request(
            campaign=world.alpha,
            scope=organizer_scope(user=national, campaign=world.alpha),
            user=national,
            file_format=file_format,
        )
        assert export_build(export_id=job.pk) == "done"
        job.refresh_from_db()
        path = export_path(job)
        if file_format == "csv":
            rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig")), delimiter=";"))
        else:
            sheet = openpyxl.load_workbook(path).active
            rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
            assert all(
                cell.data_type == "s" for row in sheet.iter_rows() for cell in row if cell.value is not None
            )
        cells.extend(cell for row in rows for cell in row if isinstance(cell, str))
    formulas = [cell for cell in cells if cell.startswith(FORMULA_PREFIXES)]
    assert formulas == []
    # The name is there, twice (CSV and XLSX), as text a spreadsheet will not run.
    assert cells.count('\'=HYPERLINK("http://evil.example","clic")') == 2


def test_the_letter_html_escapes_every_field_a_signer_typed(world, hostile_signer):
    _user, pledge = hostile_signer
    html, _pdf = letter_render_pdf(pledge=pledge, intention=True)
    assert re.search(
        r"&lt;script&gt;alert\(&#x27;xss-mark&#x27;\)&lt;/script&gt;|&lt;script&gt;alert\(&#39;xss-mark&#39;\)",
        html,
    )
    assert "&quot;&gt;&lt;img src=x onerror" in html


@pytest.mark.django_db
def test_a_departments_condition_is_met_exactly_when_its_count_reaches_the_target_and_small_counts_stay_hidden():
    """pledges.conditions.campaign_conditions over drawn rules and counts (published counts overridden)."""
    import io as _io

    from django.core.management import call_command

    from pledges.conditions import campaign_conditions
    from territories.selectors import reference_population_latest
    from tests.pledges.factories import CampaignFactory

    call_command("load_territories", stdout=_io.StringIO())
    campaign = CampaignFactory()
    populations = reference_population_latest(kind=campaign.reference_population_kind)
    rule = ThresholdRule.objects.create(campaign=campaign, level="department", min_count=0)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        min_count=st.integers(0, 500),
        share=st.decimals(min_value=0, max_value=20, places=2),
        department=st.sampled_from(sorted(populations)),
        count=st.integers(0, 2000),
    )
    def evaluated(min_count, share, department, count):
        ThresholdRule.objects.filter(pk=rule.pk).update(min_count=min_count, min_share_percent=share)
        explanation = campaign_conditions(
            campaign=campaign, counts_override={("department", department): count}
        )[("department", department)]
        target, _missing = _target(
            rule=ThresholdRule(min_count=min_count, min_share_percent=share),
            population=populations[department],
        )
        assert explanation.target == target
        assert explanation.met is (count >= target)
        assert explanation.missing == max(0, target - count)
        if 0 < count < 5 and not explanation.met:
            # A count of 1 to 4 is never published (someone could be recognised).
            numbers = {re.sub(r"\D", "", n) for n in re.findall(r"\d[\d\s\u202f\xa0.,]*", explanation.text)}
            assert str(count) not in numbers - {str(target), "5"}, explanation.text

    evaluated()
