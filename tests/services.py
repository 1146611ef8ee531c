"""Find (and if needed start) the PostgreSQL and Redis servers the tests use.

`make test` runs `eval "$(python tests/services.py)"`: this prints the shell exports the test
run needs. Defaults are the local servers. When one cannot be reached:
- with CI=true, it exits non-zero: in CI nothing may be skipped;
- otherwise it falls back (SQLite; no Redis) and says which tests will be skipped and why.
"""

import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/deconv"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"  # a database of its own: tests flush it
FALLBACK_DATABASE_URL = f"sqlite:///{Path(__file__).resolve().parent.parent / 'var' / 'test.sqlite3'}"

# The commands this machine kind documents for restarting its services.
START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql | tail -1) main start"
START_REDIS = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no '
    "--dir /var/lib/redis --logfile /var/log/redis/ci.log"
)


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def try_start(command: str, installed: bool, url: str, port: int) -> bool:
    if not installed:
        return False
    log(f"starting: {command}")
    subprocess.run(command, shell=True, check=False, capture_output=True)  # noqa: S602 (fixed command)
    for _ in range(30):
        if reachable(url, port):
            return True
        time.sleep(0.5)
    return False


def log(message: str) -> None:
    print(f"[services] {message}", file=sys.stderr)


def main() -> int:
    ci = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
    database_url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    redis_url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    exports = {}
    missing = []

    is_postgres = database_url.startswith(("postgres://", "postgresql://"))
    if is_postgres and not reachable(database_url, 5432):
        installed = Path("/etc/postgresql").is_dir()
        if not try_start(START_POSTGRES, installed, database_url, 5432):
            missing.append(f"PostgreSQL at {urlsplit(database_url).netloc}")
            database_url = FALLBACK_DATABASE_URL
    exports["DATABASE_URL"] = database_url

    if not reachable(redis_url, 6379):
        installed = subprocess.run(["which", "redis-server"], capture_output=True).returncode == 0
        if not try_start(START_REDIS, installed, redis_url, 6379):
            missing.append(f"Redis at {urlsplit(redis_url).netloc}")
            redis_url = ""
    exports["REDIS_URL"] = redis_url

    if missing:
        if ci:
            log("CI=true and these services cannot be reached: " + ", ".join(missing))
            return 1
        reason = "unreachable: " + ", ".join(missing)
        exports["DECONV_TEST_FALLBACK"] = reason
        log(f"{reason}; tests that need them will be skipped and listed at the end")
    else:
        log(f"PostgreSQL and Redis reachable ({urlsplit(database_url).netloc}, {urlsplit(redis_url).netloc})")

    for name, value in exports.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
