"""Answers built once, then served from process memory and Django's cache for a short time.

Public answers that every visitor shares (the JSON API, the campaign page and the home page as
anonymous visitors see them) change once per counting interval at most, yet a national surge asks
for them thousands of times a second. Each is built once, stored in Django's cache (Redis in
production, shared by the web processes) and kept in this process's memory too: with Redis as
the cache, a network round trip per request cost more than half of a cheap request (measured on
count.json: 0.4x a bare view's rate without the memory level, 0.89x with it). Each level can be up
to `seconds` old, so an answer is at most twice that older than what it was built from.

When an entry expires, one thread of the process rebuilds it while the process's other threads
keep serving the previous answer (a few milliseconds older): without that, every thread arriving
during a rebuild that costs tens of milliseconds (the campaign page) would rebuild it too. Across
processes nothing is locked: each may rebuild once per period, which is cheap next to a surge,
and no reader ever waits on a lock another process might die holding.

Values must be picklable (Django's cache) and never None (None means "not cached").
"""

import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.cache import cache

# Entries in the per-process memory; past it the memory is emptied, so random keys (unknown
# slugs, say) cannot make it grow without bound.
MAX_LOCAL_ENTRIES = 1000

# key -> (time.monotonic() deadline, value). A plain dict: under the GIL a lookup or an
# assignment is atomic.
_local: dict[str, tuple[float, Any]] = {}
# key -> the lock held by the thread rebuilding that key in this process.
_rebuilding: dict[str, threading.Lock] = {}


def answer_cached(
    *,
    key: str,
    build: Callable[[], Any],
    seconds: float,
    keep: Callable[[Any], bool] | None = None,
) -> Any:
    """The value under `key`: from this process's memory, else Django's cache, else `build()`.

    `keep(value)` False means a freshly built value is returned but stored nowhere (a page that
    turned out to carry something per visitor, say).
    """
    local = _local.get(key)
    if local is not None and local[0] > time.monotonic():
        return local[1]
    if len(_local) >= MAX_LOCAL_ENTRIES or len(_rebuilding) >= MAX_LOCAL_ENTRIES:
        # A thread rebuilding meanwhile keeps its own lock; at worst a key is built twice once.
        _local.clear()
        _rebuilding.clear()
        local = None
    lock = _rebuilding.setdefault(key, threading.Lock())
    if local is not None:
        if not lock.acquire(blocking=False):
            # Another thread is rebuilding this entry: the previous value meanwhile.
            return local[1]
    else:
        # Nothing to serve yet: wait for the thread building it rather than build it twice.
        lock.acquire()
    try:
        local = _local.get(key)
        if local is not None and local[0] > time.monotonic():
            return local[1]
        value = cache.get(key)
        if value is None:
            value = build()
            if keep is not None and not keep(value):
                return value
            cache.set(key, value, seconds)
        _local[key] = (time.monotonic() + seconds, value)
        return value
    finally:
        lock.release()


def answer_cache_clear_local() -> None:
    """Forget this process's remembered answers (tests call it between cases)."""
    _local.clear()
    _rebuilding.clear()
