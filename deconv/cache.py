"""Django's Redis cache, degraded to "no cache" while Redis is unreachable.

In production REDIS_URL is both the Celery broker and the cache. Signing must not depend on it:
a pledge is written to PostgreSQL with its event and its outbox row, and the email is dispatched
once Redis is back (deconv.outbox). The cache must not turn a Redis outage into 500 pages either,
so while Redis refuses or times out, every operation answers as an empty cache would:

- reads miss (`get` returns the default): cached API answers are rebuilt from the database;
- writes are dropped; `add` reports that nothing was added;
- `incr` raises ValueError, as for a missing key: deconv.ratelimit then counts the request as
  the first of its window, so rate limits let requests through during the outage. Refusing
  every pledge because Redis is down would be the worse failure.

After a failure Redis is not asked again for SKIP_SECONDS: a Redis that hangs would otherwise
cost each request one connection timeout per cache operation. The failure is logged at most
once per LOG_EVERY_SECONDS per process, with the error's type only.
"""

import logging
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, OSError)
SKIP_SECONDS = 2.0
LOG_EVERY_SECONDS = 60.0


class CacheUnavailableError(ValueError):
    """Raised by incr while Redis is unreachable: a ValueError, as Django raises for a missing key."""


class ResilientRedisCache(RedisCache):
    """RedisCache whose operations degrade to those of an empty cache while Redis is down."""

    _down_until = 0.0
    _logged_at = 0.0

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, error: BaseException) -> None:
        now = time.monotonic()
        type(self)._down_until = now + SKIP_SECONDS
        if now - type(self)._logged_at >= LOG_EVERY_SECONDS:
            type(self)._logged_at = now
            logger.warning("cache: Redis unavailable (%s); serving without cache", type(error).__name__)

    def _call(self, method, fallback, *args, **kwargs):
        if not self._available():
            return fallback
        try:
            return method(*args, **kwargs)
        except UNAVAILABLE as error:
            self._failed(error)
            return fallback

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call(super().add, False, key, value, timeout, version)

    def get(self, key, default=None, version=None):
        return self._call(super().get, default, key, default, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call(super().set, None, key, value, timeout, version)

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call(super().touch, False, key, timeout, version)

    def delete(self, key, version=None):
        return self._call(super().delete, False, key, version)

    def get_many(self, keys, version=None):
        return self._call(super().get_many, {}, keys, version)

    def has_key(self, key, version=None):
        return self._call(super().has_key, False, key, version)

    def incr(self, key, delta=1, version=None):
        missing = object()
        value = self._call(super().incr, missing, key, delta, version)
        if value is missing:
            raise CacheUnavailableError(f"cache unavailable: key {key!r} not incremented")
        return value

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._call(super().set_many, list(data), data, timeout, version)

    def delete_many(self, keys, version=None):
        return self._call(super().delete_many, None, keys, version)

    def clear(self):
        return self._call(super().clear, False)
