"""Benchmarks against baselines measured in the same run, on a production-like stack on 127.0.0.1.

    .venv/bin/python bench/run.py --quick     # make bench-quick: < 3 minutes, 10k vs 100k pledges
    .venv/bin/python bench/run.py             # make bench: < 30 minutes, 10k vs 1M pledges

Starts its own stack (gunicorn, a Celery worker and beat, an SMTP sink) on a fresh PostgreSQL
database `deconv_bench` (dropped and created) and Redis db 14, measures, stops everything it
started, and writes bench/results.json and BENCHMARKS.md. Load comes from wrk (Debian's `wrk`).
Every loop is bounded in count and in time; all traffic goes to 127.0.0.1. See bench/README.md.
"""

import argparse
import contextlib
import hashlib
import io
import json
import os
import platform
import secrets
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
VENV_BIN = ROOT / ".venv" / "bin"
DB_NAME = os.environ.get("BENCH_DB_NAME", "deconv_bench")
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_DB_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
VAR = Path(os.environ.get("BENCH_VAR_DIR", "/tmp/deconv-bench"))  # noqa: S108 (scratch, recreated)
HOST = "127.0.0.1"
SLUG = "demo"

# The stack's environment: production settings, the bench URLconf (bare view) and rate limits
# raised so far that one client IP can post thousands of pledges (the limits are documented).
# A department minimum no department reaches, even with 1M pledges. Not 10**9: the organizer
# dashboard's projection_date overflows (a 500) when missing * 14 / recent exceeds date.max.
UNREACHABLE_MIN_COUNT = 90_000
RATE_ENV = {
    f"RATE_LIMIT_{scope}_{who}": "1000000/m"
    for scope in ("PLEDGE", "CONFIRMATION", "WITHDRAWAL")
    for who in ("PER_IP", "PER_USER")
}


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


PHASES: list[tuple[str, float]] = []


@contextlib.contextmanager
def phase(name: str):
    """Log how long a step of the run took (summed up at the end: where the minutes go)."""
    started = time.monotonic()
    try:
        yield
    finally:
        seconds = time.monotonic() - started
        PHASES.append((name, seconds))
        log(f"phase {name}: {seconds:.1f} s")


def stack_env(*, port: int, smtp_port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": f"{PG_URL}/{DB_NAME}",
            "REDIS_URL": REDIS_DB_URL,
            "CELERY_BROKER_URL": REDIS_DB_URL,
            "DEBUG": "false",
            "SECRET_KEY": "bench-" + "k" * 60,
            "ALLOWED_HOSTS": HOST,
            "SITE_URL": f"http://{HOST}:{port}",
            "EMAIL_URL": f"smtp://{HOST}:{smtp_port}",
            "DECONV_ROOT_URLCONF": "bench.urls",
            "DECONV_VAR_DIR": str(VAR / "var"),
            "STATIC_ROOT": str(VAR / "static"),
            "PRIVATE_MEDIA_ROOT": str(VAR / "private"),
            "LOG_LEVEL": "WARNING",
            "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
            **RATE_ENV,
        }
    )
    return env


# --- Machine and processes ---------------------------------------------------------------------


def machine() -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return {
        "nproc": os.cpu_count(),
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
    }


class Stack:
    """The processes this run started, stopped by their own ids (process groups) at the end."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str]) -> subprocess.Popen:
        out = open(VAR / f"{name}.log", "ab")  # noqa: SIM115 (kept for the process' life)
        proc = subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append((name, proc))
        return proc

    def stop(self, name: str | None = None) -> None:
        """TERM every process first, then wait: their graceful shutdowns overlap."""
        stopping = [(n, proc) for n, proc in self.procs if name is None or n == name]
        for _name, proc in stopping:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc_name, proc in stopping:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            self.procs.remove((proc_name, proc))


def wait_http(url: str, *, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (127.0.0.1 only)
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


def database_recreate() -> None:
    import psycopg

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def database_drop(*names: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        for name in (DB_NAME, *names):
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def database_clone(name: str) -> None:
    """A copy of the bench database as it is now (nobody may be connected to it meanwhile)."""
    import psycopg
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {DB_NAME}")


@contextlib.contextmanager
def database_use(name: str):
    """Point this process's default connection at another database of the same server."""
    from django.db import connection

    previous = connection.settings_dict["NAME"]
    connection.close()
    connection.settings_dict["NAME"] = name
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["NAME"] = previous


# Tables a pledge load fills (pledges.demo_data writes them with COPY).
LOADED_TABLES = (
    "deconv_user",
    "account_emailaddress",
    "pledges_rppsclaim",
    "pledges_pledge",
    "pledges_pledgeevent",
)


def database_settle() -> None:
    """VACUUM ANALYZE what a bulk load filled, then CHECKPOINT.

    Production's autovacuum analyses a table that grew and vacuums one that took many inserts;
    this server runs with autovacuum off, so without this the planner would keep estimating
    from an empty table, and the first readers after the load would set the hint bits of every
    new row. The checkpoint writes the load's dirty pages now rather than during a measure.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {', '.join(LOADED_TABLES)}")
        with contextlib.suppress(Exception):  # CHECKPOINT needs a superuser or pg_checkpoint
            cursor.execute("CHECKPOINT")


def static_digest() -> str:
    """What collectstatic's output depends on: the storage and every source file's size and mtime."""
    from django.conf import settings
    from django.contrib.staticfiles import finders

    digest = hashlib.sha256(settings.STORAGES["staticfiles"]["BACKEND"].encode())
    for line in sorted(
        f"{path}\0{storage.path(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n"
        for finder in finders.get_finders()
        for path, storage in finder.list([])
        for stat in [os.stat(storage.path(path))]
    ):
        digest.update(line.encode())
    return digest.hexdigest()


def redis_flush() -> None:
    import redis

    redis.Redis.from_url(REDIS_DB_URL).flushdb()


# --- wrk ---------------------------------------------------------------------------------------


def warm_up(url: str, *, headers: dict[str, str] | None = None, requests: int = 16) -> None:
    """A few sequential GETs before a measured load, so that every gunicorn thread has served once.

    A process's first requests import and compile what Django loads lazily (URL resolvers,
    templates, translations): seconds each on this machine, which a 6 s load would report as its
    p95. A server in production has long served its first requests; the figures are steady state.
    """
    import urllib.request

    for _ in range(requests):
        request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 (http://127.0.0.1 only)
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            answer.read()


def wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    script: str = "wrk_get.lua",
    script_args: list[str] | None = None,
) -> dict:
    args = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(ROOT / "bench" / script),
        url,
    ]
    if script_args:
        args += ["--", *script_args]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    line = next(line for line in out.splitlines() if line.startswith("WRKJSON "))
    result = json.loads(line[len("WRKJSON ") :])
    result["rate"] = result["requests"] / (result["duration_us"] / 1e6)
    result["errors"] = result["errors_socket"] + result["errors_status"]
    return result


# --- Data --------------------------------------------------------------------------------------


def users_with_sessions(*, count: int, prefix: str) -> list:
    """`count` verified users, each logged in through a session written directly (bulk, fast)."""
    from allauth.account.models import EmailAddress
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    User = get_user_model()
    users = User.objects.bulk_create(
        [User(email=f"{prefix}{i}@bench.invalid", password="!") for i in range(count)]  # noqa: S106 (unusable), batch_size=2000
    )
    EmailAddress.objects.bulk_create(
        [EmailAddress(user=u, email=u.email, verified=True, primary=True) for u in users], batch_size=2000
    )
    store = SessionStore()
    expire = timezone.now() + timedelta(days=1)
    sessions, keys = [], []
    for user in users:
        key = secrets.token_hex(16)
        data = {
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend",
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }
        sessions.append(Session(session_key=key, session_data=store.encode(data), expire_date=expire))
        keys.append(key)
    Session.objects.bulk_create(sessions, batch_size=2000)
    return list(zip(users, keys, strict=True))


def rpps_make(serial: int) -> str:
    from pledges.rpps import luhn_check_digit

    body = f"1{serial:09d}"
    return body + str(luhn_check_digit(body))


def pledge_body(*, csrf: str, serial: int, department: str, postal_code: str, city: str) -> str:
    return urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": csrf,
            "rpps": rpps_make(serial),
            "last_name": "Banc",
            "first_name": "Essai",
            "specialty": "general_practice",
            "practice_mode": "liberal",
            "sector": "1",
            "department": department,
            "practice_address": "1 rue de la Mesure",
            "postal_code": postal_code,
            "city": city,
            "caisse": "",
            "patient_list_size": "",
            "consent_pledge": "on",
            "consent_data": "on",
            "website": "",
        }
    )


def single_caisse_department(*, exclude: set[str]) -> tuple[str, str]:
    """A department with one caisse, a postal code in it, and no crossing yet."""
    from django.db.models import Count

    from pledges.models import Crossing
    from territories.models import Department
    from territories.postal import postal_code_matches_department

    crossed = set(Crossing.objects.filter(level="department").values_list("code", flat=True))
    for department in (
        Department.objects.annotate(n=Count("caisses")).filter(n=1, is_overseas=False).order_by("position")
    ):
        code = department.code
        if code in exclude or code in crossed or not code.isdigit():
            continue
        postal = f"{code}100"
        if postal_code_matches_department(postal, code):
            return code, postal
    raise RuntimeError("no single-caisse department left")


def pledges_top_up(*, total: int) -> None:
    """Bring the demo campaign to `total` pledges (demo_pledges with COPY, in this process)."""
    from django.core.management import call_command

    from pledges.models import Campaign

    existing = Campaign.objects.get(slug=SLUG).pledges.count()
    if total > existing:
        started = time.monotonic()
        call_command(
            "demo_pledges",
            "--campaign",
            SLUG,
            "--count",
            str(total - existing),
            "--method",
            "copy",
            "--seed",
            "7",
            stdout=io.StringIO(),
        )
        log(f"pledges: {existing} -> {total} in {time.monotonic() - started:.0f} s")


# --- Figures -----------------------------------------------------------------------------------


def figure(name, value, unit, baseline, target, met, **extra) -> dict:
    ratio = round(value / baseline, 3) if baseline not in (None, 0) and value is not None else None
    return {
        "name": name,
        "value": round(value, 3) if isinstance(value, float) else value,
        "unit": unit,
        "baseline": round(baseline, 3) if isinstance(baseline, float) else baseline,
        "ratio": ratio,
        "target": target,
        "met": met,
        **extra,
    }


def bench_public(base: str, *, seconds: int, connections: int) -> tuple[dict, list[dict]]:
    for path in ("/bench/bare/", f"/api/v1/campaigns/{SLUG}/count.json", f"/campaigns/{SLUG}/"):
        warm_up(f"{base}{path}")
    bare = wrk(f"{base}/bench/bare/", seconds=seconds, connections=connections)
    count = wrk(f"{base}/api/v1/campaigns/{SLUG}/count.json", seconds=seconds, connections=connections)
    page = wrk(f"{base}/campaigns/{SLUG}/", seconds=seconds, connections=connections)
    log(f"bare {bare['rate']:.0f}/s count.json {count['rate']:.0f}/s page {page['rate']:.0f}/s")
    figures = [
        figure(
            "public_count",
            count["rate"],
            "req/s",
            bare["rate"],
            ">= 80 % of bare",
            count["rate"] >= 0.8 * bare["rate"] and count["errors"] == 0,
            p50_ms=count["p50_ms"],
            p99_ms=count["p99_ms"],
            errors=count["errors"],
        ),
        figure(
            "public_page",
            page["rate"],
            "req/s",
            bare["rate"],
            ">= 50 % of bare",
            page["rate"] >= 0.5 * bare["rate"] and page["errors"] == 0,
            p50_ms=page["p50_ms"],
            p99_ms=page["p99_ms"],
            errors=page["errors"],
        ),
    ]
    return bare, figures


def bench_signing(base: str, *, bare: dict, users: int, seconds: int, connections: int) -> dict:
    from pledges.models import Campaign

    campaign = Campaign.objects.get(slug=SLUG)
    before = campaign.pledges.count()
    made = users_with_sessions(count=users, prefix="sign")
    path = VAR / "sign_users.txt"
    with path.open("w") as out:
        for serial, (_user, key) in enumerate(made):
            csrf = secrets.token_hex(16)  # 32 characters: Django accepts an unmasked secret
            body = pledge_body(
                csrf=csrf, serial=500_000_000 + serial, department="75", postal_code="75011", city="Paris"
            )
            out.write(f"{key} {csrf} {body}\n")
    result = wrk(
        f"{base}/campaigns/{SLUG}/sign/",
        seconds=seconds,
        connections=connections,
        script="wrk_sign.lua",
        script_args=[str(path), "1"],
    )
    created = campaign.pledges.count() - before
    rate = result["signed"] / (result["duration_us"] / 1e6)
    errors = result["errors"] + result["bad"]
    log(
        f"signing {rate:.1f}/s p99 {result['p99_ms']:.0f} ms errors {errors} signed {result['signed']} in DB {created}"
    )
    return figure(
        "signing",
        rate,
        "pledges/s",
        bare["rate"],
        ">= 30 % of bare, p99 < 250 ms, 0 errors",
        # wrk stops with up to `connections` requests in flight: committed, but never counted.
        rate >= 0.3 * bare["rate"]
        and result["p99_ms"] < 250
        and errors == 0
        and 0 <= created - result["signed"] <= connections,
        p50_ms=result["p50_ms"],
        p99_ms=result["p99_ms"],
        errors=errors,
        signed_responses=result["signed"],
        pledges_in_db=created,
        users_exhausted=result["exhausted"],
    )


def counting_window(*, events: int, sign: int) -> float:
    """Seconds per event of one counts_update over `events` fresh events, all with delta `sign`.

    Event i goes to metropolitan department i mod 96, so each window moves every department's,
    region's and the nation's count (as a real count does) by about events / 96 per department;
    the caller alternates the sign, so counts come back to the loaded ones every two windows.
    The window's events are deleted once counted: the table keeps the size under test, however
    many windows are measured (appended, they would make the small side's table grow most).
    """
    from django.db import connection

    from pledges.counting import counts_update
    from pledges.enums import PledgeEventKind
    from pledges.models import Campaign, PledgeEvent
    from territories.models import Department

    campaign = Campaign.objects.get(slug=SLUG)
    departments = list(
        Department.objects.filter(is_overseas=False).order_by("position").values_list("pk", flat=True)
    )
    table = PledgeEvent._meta.db_table
    counts_update()  # start from an empty window
    # One INSERT ... SELECT: the rows bulk_create would write, without building 5,000 objects.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (campaign_id, department_id, kind, delta) "  # noqa: S608 (our table)
            "SELECT %s, (%s::bigint[])[1 + i %% %s], %s, %s FROM generate_series(0, %s - 1) AS i "
            "RETURNING id",
            [
                campaign.pk,
                departments,
                len(departments),
                str(PledgeEventKind.PLEDGED if sign > 0 else PledgeEventKind.WITHDRAWN),
                sign,
                events,
            ],
        )
        ids = [row[0] for row in cursor.fetchall()]
    # lag_seconds is 0 during the measure: the events committed above are inside the next window.
    for _attempt in range(20):
        started = time.perf_counter()
        result = counts_update()
        elapsed = time.perf_counter() - started
        if not result.skipped:
            break
        time.sleep(0.1)
    if result.events != events:
        raise RuntimeError(f"counts_update saw {result.events} of {events} events")
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", [ids])  # noqa: S608 (our table)
    return elapsed / result.events


def counting_compare(*, databases: dict[str, str], events: int, repeats: int) -> dict[str, list[float]]:
    """Seconds per event in each database, measured in alternation (ABBA...), after a warm-up each.

    Both databases live on the same server and are measured within the same seconds, so a
    change in the machine's load (other processes, a checkpoint) weighs on both alike.
    """
    from pledges.models import CounterState

    timings: dict[str, list[float]] = {label: [] for label in databases}
    windows = dict.fromkeys(databases, 0)

    def measure(label: str) -> float:
        with database_use(databases[label]):
            windows[label] += 1
            return counting_window(events=events, sign=1 if windows[label] % 2 else -1)

    for label, name in databases.items():
        with database_use(name):
            # The beat's tick stays out of the way (counts_update is called directly) and the
            # window ends at the database's now: no lag to wait for between windows.
            CounterState.objects.filter(pk=1).update(interval_seconds=100_000, lag_seconds=0)
        measure(label)  # warm-up: caches, the first write to each count row since the load
    labels = list(databases)
    for repeat in range(repeats):
        for label in labels if repeat % 2 == 0 else labels[::-1]:
            timings[label].append(measure(label))
    for name in databases.values():
        with database_use(name):
            CounterState.objects.filter(pk=1).update(lag_seconds=1)
    return timings


def crossing_prepare() -> None:
    """Only the bench department will be able to cross: run before the worker and beat start.

    Release at department level, no national or regional gate, and a default department rule
    nobody meets (no burst of crossings, hence of round emails, elsewhere). Done while no
    evaluation can run, so none can cross with the old rules meanwhile.
    """
    from django.db import transaction

    from pledges.models import Campaign, ThresholdRule

    campaign = Campaign.objects.get(slug=SLUG)
    with transaction.atomic():
        ThresholdRule.objects.update_or_create(
            campaign=campaign,
            level="department",
            territory_code="",
            defaults={"min_count": UNREACHABLE_MIN_COUNT, "min_share_percent": 0},
        )
        ThresholdRule.objects.filter(campaign=campaign, level__in=["region", "nation"]).delete()
        Campaign.objects.filter(pk=campaign.pk).update(release_level="department", national_gate_min_total=0)


def evaluation_wait(campaign, *, timeout: float) -> bool:
    """Wait until the worker has evaluated the campaign's conditions as they are now.

    conditions_evaluate remembers the fingerprint (settings, rules, counts, states) of what it
    evaluated, after evaluating: when it equals the current one, an evaluation that saw the
    current rules has finished. False after `timeout` seconds.
    """
    from django.core.cache import cache

    from pledges.conditions import campaign_conditions_fingerprints

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = campaign_conditions_fingerprints(campaign_ids=[campaign.pk]).get(campaign.pk)
        if cache.get(f"pledges:conditions:fingerprint:{campaign.pk}") == repr(current):
            return True
        time.sleep(0.1)
    return False


def bench_crossing(base: str, *, interval: int) -> dict:
    """Seconds from the response to the pledge that crosses a threshold to its recorded Crossing."""
    from pledges.enums import COUNTED_STATUSES
    from pledges.models import Campaign, CounterState, Crossing, Pledge, TerritoryCount, ThresholdRule

    campaign = Campaign.objects.get(slug=SLUG)
    CounterState.objects.filter(pk=1).update(interval_seconds=interval, lag_seconds=1)
    tried: set[str] = {"75"}
    for _attempt in range(5):
        code, postal = single_caisse_department(exclude=tried)
        tried.add(code)
        counted = TerritoryCount.objects.filter(campaign=campaign, level="department", code=code)
        live = Pledge.objects.filter(campaign=campaign, department__code=code, status__in=COUNTED_STATUSES)
        current = max(counted.values_list("pledges", flat=True).first() or 0, live.count())
        ThresholdRule.objects.update_or_create(
            campaign=campaign,
            level="department",
            territory_code=code,
            defaults={"min_count": current + 1, "min_share_percent": 0},
        )
        # At least one evaluation sees the rule before the pledge: a few seconds, more when
        # the worker has just started.
        if not evaluation_wait(campaign, timeout=30):
            log("crossing: no evaluation of the new rule seen within the limit")
        # A department that crossed with the rule alone (its count was behind) is no use: next one.
        early = Crossing.objects.filter(campaign=campaign, level="department", code=code).first()
        if early is None:
            break
        log(
            f"crossing: department {code} crossed before the pledge ({early.count_at_crossing} >= {current + 1})"
        )
    else:
        raise RuntimeError("no department stayed below its new threshold")
    ((_user, key),) = users_with_sessions(count=1, prefix="cross")
    csrf = secrets.token_hex(16)
    body = pledge_body(csrf=csrf, serial=900_000_000, department=code, postal_code=postal, city="Ville")
    request = urllib.request.Request(  # noqa: S310 (127.0.0.1 only)
        f"{base}/campaigns/{SLUG}/sign/",
        data=body.encode(),
        headers={"Cookie": f"sessionid={key}; csrftoken={csrf}", "X-CSRFToken": csrf},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (127.0.0.1 only)
        page = response.read().decode()
    signed_at = datetime.now(UTC)
    if "notice--success" not in page:
        raise RuntimeError("the crossing pledge was not accepted")
    deadline = time.monotonic() + 30
    crossing = None
    while time.monotonic() < deadline and crossing is None:
        crossing = Crossing.objects.filter(campaign=campaign, level="department", code=code).first()
        time.sleep(0.05)
    latency = (crossing.crossed_at - signed_at).total_seconds() if crossing else None
    target_s = 2 * interval + 1
    log(f"crossing latency {latency} s (department {code}, interval {interval} s, lag 1 s)")
    return figure(
        "crossing_latency",
        latency,
        "s",
        interval,
        f"<= 2 counting intervals + lag = {target_s} s",
        latency is not None and latency <= target_s,
        interval_s=interval,
        lag_s=1,
    )


def bench_counting(*, small_db: str, small: int, large: int, events: int, repeats: int) -> dict:
    """counts_update's cost per event with `large` pledges (this run's database) vs `small` (its clone)."""
    timings = counting_compare(
        databases={"small": small_db, "large": DB_NAME}, events=events, repeats=repeats
    )
    per_event_small = statistics.median(timings["small"])
    per_event_large = statistics.median(timings["large"])
    ratios = sorted(b / a for a, b in zip(timings["small"], timings["large"], strict=True))
    log(
        f"counting {per_event_small * 1e6:.2f} us/event at {small}, {per_event_large * 1e6:.2f} at {large}; "
        f"window pairs large/small {', '.join(f'{r:.2f}' for r in ratios)}"
    )
    ratio = per_event_large / per_event_small
    return figure(
        "counting_scale",
        per_event_large * 1e6,
        "us/event",
        per_event_small * 1e6,
        "large/small within 10 %",
        ratio <= 1.10,
        small_pledges=small,
        large_pledges=large,
        window_events=events,
        windows=repeats,
    )


def bench_dashboard(base: str, *, seconds: int, connections: int, pledges: int) -> dict:
    from django.contrib.auth import get_user_model

    ((user, key),) = users_with_sessions(count=1, prefix="admin")
    get_user_model().objects.filter(pk=user.pk).update(is_superuser=True, is_staff=True)
    cookie = f"Cookie: sessionid={key}"
    warm_up(f"{base}/organizer/{SLUG}/", headers={"Cookie": f"sessionid={key}"})
    warm_up(f"{base}/campaigns/{SLUG}/")
    dash = wrk(f"{base}/organizer/{SLUG}/", seconds=seconds, connections=connections, script_args=[cookie])
    page = wrk(f"{base}/campaigns/{SLUG}/", seconds=seconds, connections=connections)
    log(f"dashboard p95 {dash['p95_ms']:.0f} ms ({dash['errors']} errors), page p95 {page['p95_ms']:.0f} ms")
    return figure(
        "dashboard",
        dash["p95_ms"],
        "ms p95",
        page["p95_ms"],
        "p95 < 300 ms (dashboard and public page)",
        dash["p95_ms"] < 300 and page["p95_ms"] < 300 and dash["errors"] == 0 and page["errors"] == 0,
        pledges=pledges,
        dashboard_rate=round(dash["rate"], 1),
        dashboard_errors=dash["errors"],
        public_page_p95_ms=page["p95_ms"],
        public_page_rate=round(page["rate"], 1),
    )


def bench_letters(env: dict[str, str], *, count: int, single_count: int) -> dict:
    out = subprocess.run(
        [
            PY,
            "bench/letters.py",
            "--count",
            str(count),
            "--single-count",
            str(single_count),
            "--processes",
            "2",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=1200,
    ).stdout
    data = json.loads(out.strip().splitlines()[-1])
    log(f"letters {data}")
    seconds_10k = data["seconds_for_10000"]
    # Letters per second of CPU, the release path against one document per letter: the stack's
    # own processes (worker, beat, PostgreSQL) disturb CPU time less than wall-clock time.
    return figure(
        "letters",
        round(1000 / data["batched_cpu_ms_per_letter"], 1),
        "letters/CPU-s",
        round(1000 / data["single_cpu_ms_per_letter"], 1),
        ">= 3x single (CPU), 10,000 letters < 120 s",
        data["cpu_ratio"] >= 3 and seconds_10k < 120,
        seconds_for_10000=seconds_10k,
        seconds_for_10000_basis=data.get("seconds_for_10000_basis"),
        parallel_letters_per_s=data.get("parallel_letters_per_s"),
        batched_letters_per_s=data["batched_letters_per_s"],
        single_letters_per_s=data["single_letters_per_s"],
        wall_clock_ratio=data["ratio"],
        frames=data.get("frames"),
        measured=data.get("measured"),
        placed_again=data.get("placed_again"),
        whole=data.get("whole"),
        max_pdf_bytes=data.get("max_pdf_bytes"),
        measured_letters=count,
        measured_single=single_count,
    )


def sink_digest(line: str) -> str:
    """The dedupe key's digest in a line of the sink's log ("<time> <outbox.PK.DIGEST@host>")."""
    return line.split(" ", 1)[-1].split("@")[0].rsplit(".", 1)[-1]


def bench_emails(*, count: int, sink_log: Path, timeout: int) -> dict:
    from deconv.outbox import EmailItem, email_queue_many
    from pledges.models import Campaign

    campaign = Campaign.objects.get(slug=SLUG)
    sink_log.write_text("")
    run = secrets.token_hex(4)
    items = (
        EmailItem(
            kind="milestone",
            recipient=f"fanout{i}@bench.invalid",
            context={"campaign": campaign, "territory_name": "Lozère", "percent": 50, "target": 100},
            dedupe_key=f"bench-{run}-{i}",
        )
        for i in range(count)
    )
    # Only this fan-out's messages count (a crossing's round emails may share the sink): the
    # outbox's Message-ID <outbox.PK.DIGEST@host> carries the SHA-256 of the dedupe key.
    digests = {hashlib.sha256(f"bench-{run}-{i}".encode()).hexdigest()[:16] for i in range(count)}

    def ours() -> list[str]:
        return [line for line in sink_log.read_text().splitlines() if sink_digest(line) in digests]

    started = time.time()
    queued = email_queue_many(items)
    queued_s = time.time() - started
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(ours()) >= count:
            break
        time.sleep(0.2)
    time.sleep(2)  # late duplicates would arrive now
    lines = ours()
    # Per dedupe key: a row sent twice and two rows for one key both show up here.
    ids = [sink_digest(line) for line in lines]
    duplicates = len(ids) - len(set(ids))
    last = max((float(line.split(" ", 1)[0]) for line in lines), default=None)
    seconds = (last - started) if last and len(set(ids)) >= count else None
    log(
        f"emails queued {queued} in {queued_s:.1f} s, accepted {len(set(ids))} in {seconds} s, duplicates {duplicates}"
    )
    return figure(
        "emails",
        seconds,
        "s",
        None,
        f"10,000 in < 60 s (pro rata: {count} in < {60 * count / 10_000:.0f} s), 0 duplicates",
        seconds is not None and seconds < 60 * count / 10_000 and duplicates == 0,
        count=count,
        queued=queued,
        queue_seconds=round(queued_s, 2),
        accepted_unique=len(set(ids)),
        duplicates=duplicates,
    )


def release_department(*, target: int) -> tuple[str, int]:
    """The department not crossed yet whose active pledges are closest to `target`, and their number."""
    from django.db.models import Count

    from pledges.enums import PledgeStatus
    from pledges.models import Campaign, Crossing, Pledge

    campaign = Campaign.objects.get(slug=SLUG)
    crossed = set(
        Crossing.objects.filter(campaign=campaign, level="department").values_list("code", flat=True)
    )
    counts = (
        Pledge.objects.filter(campaign=campaign, status=PledgeStatus.ACTIVE)
        .values_list("department__code")
        .annotate(n=Count("pk"))
    )
    candidates = [(abs(n - target), code, n) for code, n in counts if code not in crossed]
    _distance, code, count = min(candidates)
    return code, count


def _wait(condition, *, seconds: float) -> bool:
    """Poll `condition` every 0.2 s for at most `seconds`; whether it came true."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def _letters_sampled(*, letters: list, sample: int) -> tuple[int, int]:
    """Of `sample` letters spread over the release: how many print their own signer and no other's,
    and how many were stamped (a stamped letter carries two subsets of a face: frame's, signer's)."""
    import pikepdf
    from pypdf import PdfReader

    from pledges.letters_pipeline import letter_path

    step = max(1, len(letters) // sample)
    chosen = letters[step // 2 :: step][:sample]
    own, stamped = 0, 0
    for letter in chosen:
        pledge = letter.pledge
        data = letter_path(file_name=letter.file_name).read_bytes()
        text = " ".join("\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).split())
        others = [other.pledge.rpps for other in chosen if other is not letter]
        own += (
            f"{pledge.first_name} {pledge.last_name}" in text
            and pledge.rpps in text
            and not any(rpps in text for rpps in others)
        )
        with pikepdf.open(io.BytesIO(data)) as pdf:
            faces = [str(font.BaseFont).split("+", 1)[-1] for font in pdf.pages[0].Resources.Font.values()]
        stamped += len(faces) > len(set(faces))
    return own, stamped


def bench_release(*, target: int, sink_log: Path, timeout: int, sample: int = 20) -> dict:
    """A department of about `target` signatories released through the real path, end to end.

    The campaign releases without a confirmation round, the counting beat runs every second, and
    the department's rule is set to its count: the beat crosses it and releases it, the worker
    (2 processes) renders the letters and queues the "released" emails, sent to the sink.
    Measured from the release to its last letter, and to its last email accepted. Then checked:
    one letter per released pledge, each file's SHA-256 its row's; `sample` letters spread over
    the release print their own signer and no other sampled one, and were stamped (not laid out
    whole); one email per signer and none twice; the ledger's entry and the escrow bundle (built
    by the worker) name the same letters with the same hashes. The department is the one whose
    count is closest to `target`: the target is pro rata.
    """
    import zipfile

    from django.contrib.auth import get_user_model

    from pledges.demo import DEMO_ORGANIZER_EMAIL
    from pledges.enums import BundleStatus, PledgeStatus
    from pledges.escrow import escrow_bundle_path, escrow_bundle_request
    from pledges.letters_pipeline import letter_path
    from pledges.models import Campaign, CounterState, LedgerEntry, Letter, Release, ThresholdRule

    campaign = Campaign.objects.get(slug=SLUG)
    code, count = release_department(target=target)
    log(f"release: department {code}, {count} active pledges")
    # The counting figure holds the beat's tick off: it counts and evaluates every second again.
    CounterState.objects.filter(pk=1).update(interval_seconds=1, lag_seconds=1)
    Campaign.objects.filter(pk=campaign.pk).update(confirmation_round=False)
    ThresholdRule.objects.update_or_create(
        campaign=campaign,
        level="department",
        territory_code=code,
        defaults={"min_count": count, "min_share_percent": 0},
    )
    released_rows = Release.objects.filter(campaign=campaign, level="department", code=code)
    if not _wait(released_rows.exists, seconds=60):
        raise RuntimeError(f"department {code} was not released within 60 s")
    release = released_rows.get()
    _wait(lambda: released_rows.filter(emails_done_at__isnull=False).exists(), seconds=timeout)
    release.refresh_from_db()
    released = release.pledges.filter(status=PledgeStatus.RELEASED)
    digests = {
        hashlib.sha256(f"released:{pk}".encode()).hexdigest()[:16]
        for pk in released.filter(user__isnull=False).values_list("pk", flat=True)
    }

    def ours() -> list[str]:
        # Accepted since the release: an earlier release of this run may have used the same keys.
        return [
            line
            for line in sink_log.read_text().splitlines()
            if sink_digest(line) in digests
            and float(line.split(" ", 1)[0]) >= release.released_at.timestamp()
        ]

    _wait(lambda: {sink_digest(line) for line in ours()} >= digests, seconds=timeout)
    time.sleep(2)  # late duplicates would arrive now
    lines = ours()
    accepted = {sink_digest(line) for line in lines}
    duplicates = len(lines) - len(accepted)
    last_email = max((float(line.split(" ", 1)[0]) for line in lines), default=None)
    released_at = release.released_at.timestamp()
    letters_s = (release.letters_done_at.timestamp() - released_at) if release.letters_done_at else None
    emails_s = (last_email - released_at) if last_email and accepted == digests else None

    letters = list(Letter.objects.filter(release=release).select_related("pledge").order_by("pk"))
    files_ok = sum(
        hashlib.sha256(letter_path(file_name=letter.file_name).read_bytes()).hexdigest() == letter.sha256
        for letter in letters
    )
    one_per_pledge = sorted(letter.pledge_id for letter in letters) == sorted(
        released.values_list("pk", flat=True)
    )
    own, stamped = _letters_sampled(letters=letters, sample=sample)
    entry = LedgerEntry.objects.filter(campaign=campaign, payload__release_id=release.pk).first()
    ledger_hashes = sorted(sha256 for _receipt, sha256 in entry.payload["letters"]) if entry else []

    bundle = escrow_bundle_request(
        release=release, user=get_user_model().objects.get(email=DEMO_ORGANIZER_EMAIL)
    )
    started = time.monotonic()
    bundle_done = _wait(
        lambda: bundle.__class__.objects.filter(pk=bundle.pk, status=BundleStatus.DONE).exists(), seconds=120
    )
    bundle_s = time.monotonic() - started
    bundle.refresh_from_db()
    manifest_ok = False
    if bundle_done:
        with zipfile.ZipFile(escrow_bundle_path(bundle=bundle)) as archive:
            manifest = json.loads(archive.read("manifest.json"))["letters"]
            manifest_hashes = sorted(row["sha256"] for row in manifest)
            manifest_ok = manifest_hashes == sorted(
                letter.sha256 for letter in letters
            ) == ledger_hashes and all(
                hashlib.sha256(archive.read(row["file_name"])).hexdigest() == row["sha256"]
                for row in manifest
            )
    log(
        f"release of {release.pledge_count}: letters {letters_s} s, emails {emails_s} s, "
        f"{files_ok}/{len(letters)} files match, sampled {own}/{min(sample, len(letters))} own signer "
        f"and {stamped} stamped, {len(accepted)}/{len(digests)} emails, {duplicates} duplicates, "
        f"escrow {bundle.status} in {bundle_s:.1f} s, manifest = letters = ledger: {manifest_ok}"
    )
    pro_rata_s = 120 * release.pledge_count / 10_000
    sampled = min(sample, len(letters))
    return figure(
        "release",
        letters_s,
        "s",
        None,
        f"letters at 10,000 in 120 s pro rata ({release.pledge_count} in < {pro_rata_s:.0f} s); one letter and "
        "one email each, none twice; sampled letters right and stamped; escrow manifest = letters = ledger",
        letters_s is not None
        and letters_s < pro_rata_s
        and one_per_pledge
        and files_ok == len(letters)
        and own == sampled
        # Each worker process lays out the first letter it makes whole, to measure its blocks.
        and stamped >= sampled - 2
        and emails_s is not None
        and duplicates == 0
        and manifest_ok,
        department=code,
        released=release.pledge_count,
        letters=len(letters),
        files_matching=files_ok,
        sampled_own_signer=own,
        sampled_stamped=stamped,
        sampled=sampled,
        emails_seconds=round(emails_s, 1) if emails_s is not None else None,
        emails_accepted=len(accepted),
        email_duplicates=duplicates,
        escrow_seconds=round(bundle_s, 1),
        escrow_manifest_matches=manifest_ok,
    )


# --- Report ------------------------------------------------------------------------------------


def report_write(*, figures: list[dict], info: dict, mode: str) -> None:
    (ROOT / "bench" / "results.json").write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n")
    m = info["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `{info['command']}` on {info['date']} ({mode} run, {info['seconds']:.0f} s).",
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram_gb']} GB RAM, Python {m['python']}; "
        f"load generator wrk on the same machine; gunicorn {info['gunicorn']}.",
        "Every baseline is measured in the same run as its figure. Raw figures: `bench/results.json`.",
        "",
        "| figure | value | baseline | ratio | target | met | date | machine |",
        "|---|---|---|---|---|---|---|---|",
    ]
    machine_cell = f"{m['nproc']} CPU, {m['ram_gb']} GB, {m['cpu']}"
    for f in figures:
        lines.append(
            f"| {f['name']} | {f['value']} {f['unit']} | {f['baseline'] if f['baseline'] is not None else '-'} | "
            f"{f['ratio'] if f['ratio'] is not None else '-'} | {f['target']} | {'yes' if f['met'] else 'NO'} | "
            f"{info['date']} | {machine_cell} |"
        )
    lines += ["", "Details per figure:", ""]
    for f in figures:
        extra = {
            k: v
            for k, v in f.items()
            if k not in ("name", "value", "unit", "baseline", "ratio", "target", "met")
        }
        lines.append(f"- **{f['name']}**: " + ", ".join(f"{k}={v}" for k, v in extra.items()))
    lines += ["", (ROOT / "bench" / "NOTES.md").read_text() if (ROOT / "bench" / "NOTES.md").exists() else ""]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines).rstrip() + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="< 3 minutes: 10k vs 100k pledges, short loads")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--smtp-port", type=int, default=2526)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="gthread threads per worker (1: sync workers)")
    parser.add_argument("--only", default="", help="comma-separated figures to run (default: all)")
    parser.add_argument(
        "--no-write",
        action="store_true",
        help="print the figures, leave BENCHMARKS.md and results.json alone",
    )
    args = parser.parse_args()
    quick = args.quick
    only = set(filter(None, args.only.split(",")))

    def wanted(name: str) -> bool:
        return not only or name in only

    def attempt(names: list[str], measure) -> None:
        try:
            result = measure()
        except Exception as error:  # one broken figure must not lose the others
            log(f"{', '.join(names)} FAILED: {error!r}")
            figures.extend(
                figure(name, None, "-", None, "-", False, error=repr(error)[:200])
                for name in names
                if wanted(name)
            )
            return
        figures.extend(f for f in (result if isinstance(result, list) else [result]) if wanted(f["name"]))

    # A TERM (kill, CI timeout) stops the stack too: SystemExit runs the `finally` below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    started = time.monotonic()
    VAR.mkdir(parents=True, exist_ok=True)
    env = stack_env(port=args.port, smtp_port=args.smtp_port)
    os.environ.update({k: v for k, v in env.items() if k != "PATH"})
    os.environ["DJANGO_SETTINGS_MODULE"] = "deconv.settings"
    sys.path.insert(0, str(ROOT))
    base = f"http://{HOST}:{args.port}"

    small = 10_000
    large = 100_000 if quick else 1_000_000
    load_s, conns = (6, 8) if quick else (20, 8)
    # The counting figure compares this database (topped up to `large` later) with a copy taken
    # at `small`, measured in alternation.
    small_db = f"{DB_NAME}_small" if wanted("counting_scale") else None

    stack = Stack(env)
    sink_log = VAR / "sink.log"
    figures: list[dict] = []
    try:
        log(f"database {DB_NAME}: drop, create, migrate, load")

        def gunicorn_start() -> None:
            worker_class = (
                ["--worker-class", "gthread", "--threads", str(args.threads)] if args.threads > 1 else []
            )
            stack.start(
                "gunicorn",
                [
                    str(VENV_BIN / "gunicorn"),
                    "deconv.wsgi",
                    "-b",
                    f"{HOST}:{args.port}",
                    "-w",
                    str(args.workers),
                    *worker_class,
                ],
            )

        with phase("migrate"):
            database_recreate()
            redis_flush()
            import django
            from django.core.management import call_command

            django.setup()
            # collectstatic needs no database: it runs while this process migrates and loads,
            # and not at all when no static file changed since the last run (WhiteNoise
            # compresses every file again each time: ~17 s of CPU on this machine).
            static_stamp, static_now = VAR / "static.digest", static_digest()
            static = None
            if not (
                (VAR / "static" / "staticfiles.json").exists()
                and static_stamp.exists()
                and static_stamp.read_text() == static_now
            ):
                static_stamp.unlink(missing_ok=True)
                static = stack.start("collectstatic", [PY, "manage.py", "collectstatic", "--noinput"])
            # A run reads only its own messages: dedupe keys (pledge ids) repeat from run to run.
            sink_log.write_text("")
            stack.start(
                "smtp", [PY, "bench/smtp_sink.py", "--port", str(args.smtp_port), "--log", str(sink_log)]
            )
            # gunicorn boots while this process migrates and loads: it opens no database
            # connection before its first request (the worker and beat, which do, start after
            # the loads and the copy). WhiteNoise lists STATIC_ROOT as it boots: not before
            # collectstatic has finished.
            if static is None:
                gunicorn_start()
            # In this process: one Django start-up instead of one per command.
            call_command("migrate", "--noinput", verbosity=0)
        with phase("territories and demo"):
            call_command("load_territories", stdout=io.StringIO())
            call_command("load_demo", stdout=io.StringIO())
        with phase(f"load to {small}"):
            pledges_top_up(total=small)
            database_settle()
            if small_db:
                database_clone(small_db)
            if wanted("crossing_latency") or wanted("release"):
                crossing_prepare()
        if static is not None:
            with phase("collectstatic (rest)"):
                if static.wait(timeout=600) != 0:
                    raise RuntimeError(f"collectstatic failed: see {VAR / 'collectstatic.log'}")
                static_stamp.write_text(static_now)
            gunicorn_start()
        else:
            log("collectstatic: no static file changed since the last run")

        with phase("stack start"):
            stack.start(
                "worker",
                [str(VENV_BIN / "celery"), "-A", "deconv", "worker", "--loglevel=WARNING", "--concurrency=2"],
            )
            stack.start(
                "beat",
                [
                    str(VENV_BIN / "celery"),
                    "-A",
                    "deconv",
                    "beat",
                    "--loglevel=WARNING",
                    "--schedule",
                    str(VAR / "beat-schedule"),
                ],
            )
            wait_http(f"{base}/bench/bare/")

        # First: crossing_prepare switched the campaign to department release with no gate and
        # an unreachable default rule, so that later loads cross nothing (no burst of round
        # emails in the worker's queue during the email figure).
        if wanted("crossing_latency"):
            with phase("crossing_latency"):
                attempt(["crossing_latency"], lambda: bench_crossing(base, interval=1))
        bare: dict = {}

        def public() -> list[dict]:
            result, public_figures = bench_public(base, seconds=load_s, connections=conns)
            bare.update(result)
            return public_figures

        if wanted("public_count") or wanted("public_page") or wanted("signing"):
            with phase("public"):
                attempt(["public_count", "public_page"], public)
        if wanted("signing"):
            with phase("signing"):
                attempt(
                    ["signing"],
                    lambda: bench_signing(
                        base, bare=bare, users=3000 if quick else 10000, seconds=load_s, connections=conns
                    ),
                )
        if wanted("emails"):
            with phase("emails"):
                attempt(
                    ["emails"],
                    lambda: bench_emails(
                        count=2000 if quick else 10_000, sink_log=sink_log, timeout=60 if quick else 300
                    ),
                )
        if wanted("letters"):
            with phase("letters"):
                attempt(
                    ["letters"],
                    lambda: bench_letters(
                        env, count=100 if quick else 1000, single_count=20 if quick else 200
                    ),
                )
        if wanted("counting_scale") or wanted("dashboard"):
            with phase(f"load to {large}"):
                pledges_top_up(total=large)
                database_settle()
        if wanted("counting_scale"):
            with phase("counting_scale"):
                attempt(
                    ["counting_scale"],
                    lambda: bench_counting(
                        small_db=small_db,
                        small=small,
                        large=large,
                        events=5000,
                        repeats=11 if quick else 15,
                    ),
                )
        if wanted("dashboard"):
            with phase("dashboard"):
                attempt(
                    ["dashboard"], lambda: bench_dashboard(base, seconds=load_s, connections=4, pledges=large)
                )
        if wanted("release"):
            if not (wanted("counting_scale") or wanted("dashboard")):
                with phase(f"load to {large}"):
                    pledges_top_up(total=large)
                    database_settle()
            with phase("release"):
                attempt(
                    ["release"],
                    lambda: bench_release(
                        target=1000 if quick else 5000, sink_log=sink_log, timeout=300 if quick else 900
                    ),
                )
    finally:
        with phase("stop"):
            stack.stop()
        if not os.environ.get("BENCH_KEEP_DB"):
            with phase("drop databases"):
                database_drop(*([small_db] if small_db else []))
    import gunicorn

    info = {
        "command": "make bench-quick" if quick else "make bench",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "seconds": time.monotonic() - started,
        "gunicorn": f"{gunicorn.__version__}, {args.workers} workers"
        + (f" x {args.threads} threads (gthread)" if args.threads > 1 else " (sync)"),
    }
    if args.no_write:
        log(f"done in {info['seconds']:.0f} s (--no-write: reports left as they were)")
    else:
        report_write(figures=figures, info=info, mode="quick" if quick else "full")
        log(f"done in {info['seconds']:.0f} s: BENCHMARKS.md and bench/results.json")
    log("phases: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in PHASES))
    for f in figures:
        log(
            f"{f['name']}: {f['value']} {f['unit']} (baseline {f['baseline']}, ratio {f['ratio']}) met={f['met']}"
        )


if __name__ == "__main__":
    main()
