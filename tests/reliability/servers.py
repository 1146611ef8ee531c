"""Private servers and processes for the fault tests: each test stops and restarts its own.

Nothing here touches the machine's shared PostgreSQL (5432) or Redis (6379): colleagues run tests
on them. Every server listens on 127.0.0.1 and a free port, and every process is started in its
own session so that it can be killed with its children, by its id.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
ARTIFACTS = ROOT / "test-artifacts"
FIGURES_FILE = ARTIFACTS / "reliability.txt"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> bool:
    """Poll `condition` until it is true or `timeout` seconds have passed; returns the last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def stop_process(process: subprocess.Popen, *, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
    """Stop a process started with start_new_session=True, with its children; SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def kill_process(process: subprocess.Popen) -> None:
    """SIGKILL the process and its children at once: no cleanup, no acknowledgement, no goodbye."""
    stop_process(process, sig=signal.SIGKILL, timeout=10)


# --- Redis -------------------------------------------------------------------------------------


class RedisServer:
    """A redis-server of our own, in the foreground, that keeps nothing on disk."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=(self.workdir / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert wait_until(lambda: port_open(self.port), timeout=15), "private redis-server did not start"

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        assert wait_until(lambda: not port_open(self.port), timeout=10)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


# --- PostgreSQL --------------------------------------------------------------------------------


def _as_postgres(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    """initdb and pg_ctl refuse to run as root: run them as the postgres account when we are root."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)


class PostgresCluster:
    """A private PostgreSQL 15 cluster on a free port, its socket and data in `workdir`."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.data = workdir / "data"
        self.port = free_port()

    def url(self, database: str = "deconv") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, user="postgres")
        _as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-N"])

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = (
            f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 "
            # A test cluster: durability on crash is not what these tests are about.
            "-c fsync=off -c full_page_writes=off"
        )
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.workdir / "postgres.log"),
                "-w",
                "-t",
                "60",
                action,
                *extra,
            ]
        )

    def start(self) -> None:
        self._pg_ctl("start")

    def stop(self) -> None:
        # fast: roll back open transactions and close connections, as a failover or upgrade does.
        self._pg_ctl("stop", "-m", "fast")

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database, "-Atc", sql],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip()

    def copy_database_from(self, *, source_url: str, database: str = "deconv") -> None:
        """Create `database` as a copy of an already migrated one (faster than running migrations)."""
        self.psql(f"CREATE DATABASE {database}")
        dump = subprocess.Popen(
            ["pg_dump", "--no-owner", "--no-privileges", source_url], stdout=subprocess.PIPE
        )
        subprocess.run(
            ["psql", "-q", "-v", "ON_ERROR_STOP=1", self.url(database)],
            stdin=dump.stdout,
            check=True,
            capture_output=True,
        )
        assert dump.wait() == 0


# --- The application in subprocesses -------------------------------------------------------------


def app_env(**overrides: str) -> dict[str, str]:
    """The environment of a web, worker or helper process; `overrides` replace or add variables."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DJANGO_SETTINGS_MODULE", "PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER"}
    }
    env.update(overrides)
    env.setdefault("DJANGO_SETTINGS_MODULE", "deconv.settings")
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_app(command: str, *args: str, env: dict[str, str], timeout: float = 120) -> dict:
    """Run `python -m tests.reliability.appctl command args` and return the JSON it prints."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.reliability.appctl", command, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"appctl {command} failed:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


class Worker:
    """A Celery worker subprocess (solo pool) started through tests/reliability/worker_main.py."""

    def __init__(self, *, env: dict[str, str], log_path: Path, queues: str = "celery"):
        self.env = env
        self.log_path = log_path
        self.queues = queues
        self.process: subprocess.Popen | None = None

    def start(self, *, timeout: float = 60) -> None:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.reliability.worker_main",
                "-A",
                "deconv",
                "worker",
                "--pool=solo",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "-Q",
                self.queues,
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def ready() -> bool:
            assert self.process.poll() is None, "the worker exited:\n" + self.log_tail()
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                return b" ready." in handle.read()

        assert wait_until(ready, timeout=timeout, interval=0.2), (
            "the worker is not ready:\n" + self.log_tail()
        )

    def kill(self) -> None:
        assert self.process is not None
        kill_process(self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


class WebServer:
    """gunicorn serving deconv on 127.0.0.1:<free port>, production-like (DEBUG off)."""

    def __init__(self, *, env: dict[str, str], log_path: Path, workers: int = 2, threads: int = 1):
        self.env = {**env, "DJANGO_SETTINGS_MODULE": "tests.reliability.server_settings"}
        self.log_path = log_path
        self.workers = workers
        self.threads = threads
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "deconv.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--threads",
                str(self.threads),
                "--timeout",
                "60",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def answers() -> bool:
            assert self.process.poll() is None, "gunicorn exited:\n" + self.log_tail()
            try:
                with urllib.request.urlopen(f"{self.base_url}/i18n/setlang/", timeout=2):  # noqa: S310
                    return True
            except urllib.error.HTTPError:
                return True
            except OSError:
                return False

        assert wait_until(answers, timeout=60, interval=0.3), "gunicorn did not answer:\n" + self.log_tail()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


# --- Figures -----------------------------------------------------------------------------------

_figures_started = False


def figures_report(name: str, figures: dict, record_property: Callable | None = None) -> None:
    """Print the figures, record them on the test report, and append them to test-artifacts."""
    global _figures_started
    line = f"{name}: " + ", ".join(f"{key}={value}" for key, value in figures.items())
    print(f"\n[figures] {line}")
    if record_property is not None:
        for key, value in figures.items():
            record_property(key, value)
    ARTIFACTS.mkdir(exist_ok=True)
    mode = "a" if _figures_started else "w"
    _figures_started = True
    with FIGURES_FILE.open(mode) as handle:
        handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
