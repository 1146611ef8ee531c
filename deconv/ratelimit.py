"""Rate limits for our own views, the 429 page, and the abuse events organizers review.

Counters live in Django's cache. With REDIS_URL set that is Redis, shared by every web process
and machine. The embedded default's local-memory cache is per process: each web process then
counts on its own, so the effective limit is the configured one times the number of processes.

Counting uses fixed windows: one cache key per client and window, incremented atomically
(Redis INCR). A client can squeeze up to twice the limit across a window boundary; we accept
that for a counter that costs one round trip and needs no lock (allauth's sliding window takes
a cache lock per request).

Usage on a view (the settings' RATE_LIMITS[scope] overrides the rates given here)::

    @rate_limited("pledge", per_ip="10/m", per_user="5/h")
    def pledge_create(request, slug): ...
"""

import hashlib
import ipaddress
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache, wraps

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext, ngettext

from deconv.models import AbuseEventKind, RateLimitEvent

logger = logging.getLogger(__name__)

TEMPLATE_429 = "429.html"
# Counting keys per IPv6 /64: one subscriber usually holds a whole /64 and can rotate inside it.
IPV6_COUNTING_PREFIX = 64
# Stored events keep less: /24 and /48 show where a flood comes from without naming a person.
IPV4_STORED_PREFIX = 24
IPV6_STORED_PREFIX = 48

_RATE = re.compile(r"(?P<amount>[0-9]+)/(?P<count>[0-9]*)(?P<unit>[smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rate:
    amount: int
    seconds: int

    def __str__(self) -> str:
        return f"{self.amount}/{self.seconds}s"


@lru_cache(maxsize=64)
def rate_parse(text: str) -> Rate:
    """ "10/m" -> 10 per 60 s; "100/15m" -> 100 per 900 s (allauth's syntax, without the `per`)."""
    match = _RATE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"not a rate: {text!r} (use amount/period, e.g. 10/m or 5/h)")
    count = int(match["count"] or 1)
    seconds = count * _UNIT_SECONDS[match["unit"]]
    if int(match["amount"]) < 1 or seconds < 1:
        raise ValueError(f"not a rate: {text!r} (amount and period must be positive)")
    return Rate(amount=int(match["amount"]), seconds=seconds)


# --- Client addresses -------------------------------------------------------------------------


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    # An IPv4 client seen through an IPv6 socket (::ffff:203.0.113.7) is that IPv4 client.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or the X-Forwarded-For entry our own proxies vouch for.

    With TRUSTED_PROXY_COUNT = n, each of our n proxies appended the address it saw, so the
    n-th entry from the right is the client as seen by the outermost one; anything further left
    was written by the client and is ignored. A header shorter than n was not written by all our
    proxies: REMOTE_ADDR is then the only address we can trust.
    """
    trusted = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if trusted > 0 and forwarded:
        hops = [hop for hop in forwarded.split(",") if hop.strip()]
        if len(hops) >= trusted:
            address = _parse_ip(hops[-trusted])
            if address is not None:
                return str(address)
    address = _parse_ip(request.META.get("REMOTE_ADDR", ""))
    return str(address) if address is not None else None


def ip_truncate(ip: str | None) -> str:
    """The network stored with an event: 203.0.113.7 -> 203.0.113.0/24; IPv6 -> its /48."""
    address = _parse_ip(ip or "")
    if address is None:
        return ""
    prefix = IPV4_STORED_PREFIX if address.version == 4 else IPV6_STORED_PREFIX
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


def _ip_counting_key(ip: str | None) -> str:
    """What per-IP counters are keyed on, hashed so that the cache holds no address in clear."""
    address = _parse_ip(ip or "")
    if address is None:
        source = "unknown"
    elif address.version == 6:
        source = str(ipaddress.ip_network(f"{address}/{IPV6_COUNTING_PREFIX}", strict=False))
    else:
        source = str(address)
    return hashlib.sha256(f"{settings.SECRET_KEY}:{source}".encode()).hexdigest()[:32]


# --- Counting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    allowed: bool
    # Seconds until the window ends (0 when allowed) and the window's number, which names it.
    retry_after: int
    window: int


def rate_limit_hit(*, scope: str, key: str, rate: Rate) -> Hit:
    """Count one request of `key` in `scope` against `rate`."""
    now = time.time()
    window = int(now // rate.seconds)
    cache_key = f"rl:{scope}:{rate}:{key}:{window}"
    # One second of slack so that the key never expires before its window ends.
    cache.add(cache_key, 0, timeout=rate.seconds + 1)
    try:
        count = cache.incr(cache_key)
    except ValueError:
        # The key expired between add() and incr(): this request opens a fresh window.
        cache.set(cache_key, 1, timeout=rate.seconds + 1)
        count = 1
    if count <= rate.amount:
        return Hit(allowed=True, retry_after=0, window=window)
    return Hit(allowed=False, retry_after=max(1, math.ceil((window + 1) * rate.seconds - now)), window=window)


def _configured_rates(scope: str, *, per_ip: str, per_user: str | None) -> tuple[str, str | None]:
    configured = getattr(settings, "RATE_LIMITS", {}).get(scope, {})
    return configured.get("per_ip", per_ip), configured.get("per_user", per_user)


def rate_limit_check(
    request: HttpRequest, *, scope: str, per_ip: str, per_user: str | None = None
) -> HttpResponse | None:
    """Count this request against the scope's limits; the 429 response when one is exceeded."""
    ip = client_ip(request)
    checks = [("ip", _ip_counting_key(ip), rate_parse(per_ip))]
    user = getattr(request, "user", None)
    if per_user and user is not None and user.is_authenticated:
        checks.append(("user", str(user.pk), rate_parse(per_user)))
    for kind, key, rate in checks:
        hit = rate_limit_hit(scope=scope, key=f"{kind}:{key}", rate=rate)
        if not hit.allowed:
            abuse_event_record(
                request=request,
                kind=AbuseEventKind.RATE_LIMITED,
                scope=scope,
                # Named after the window, so that the next window records again even if the
                # cache's clock (Redis TTLs) and ours disagree.
                throttle_key=f"{kind}:{key}:{rate}:{hit.window}",
                throttle_seconds=hit.retry_after,
            )
            return too_many_requests(request, retry_after=hit.retry_after)
    return None


def rate_limited(
    scope: str, *, per_ip: str, per_user: str | None = None, methods: Iterable[str] = ("POST",)
) -> Callable:
    """Limit a function view per client IP and, for signed-in users, per account.

    `per_ip`/`per_user` are defaults: settings.RATE_LIMITS[scope] overrides them at each request,
    so operators tune limits without a code change. Only `methods` are counted: a GET that
    shows a form costs nothing.
    """
    # Fail at import, not at the first POST, when a rate is malformed.
    rate_parse(per_ip)
    if per_user:
        rate_parse(per_user)
    counted_methods = frozenset(method.upper() for method in methods)

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if request.method in counted_methods:
                ip_rate, user_rate = _configured_rates(scope, per_ip=per_ip, per_user=per_user)
                refusal = rate_limit_check(request, scope=scope, per_ip=ip_rate, per_user=user_rate)
                if refusal is not None:
                    return refusal
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


# --- Events and the 429 page -------------------------------------------------------------------


def abuse_event_record(
    *,
    request: HttpRequest,
    kind: str,
    scope: str,
    throttle_key: str | None = None,
    throttle_seconds: int = 60,
) -> RateLimitEvent | None:
    """Write one event for organizers, or nothing if this client already has one in this window.

    The throttle makes a flood of refused requests cost one row per client and window instead of
    one row per request: the point is to see abuse, not to let abuse fill the database.
    """
    ip = client_ip(request)
    if throttle_key is None:
        throttle_key = _ip_counting_key(ip)
    if not cache.add(f"rl-event:{kind}:{scope}:{throttle_key}", 1, timeout=max(1, throttle_seconds)):
        return None
    user = getattr(request, "user", None)
    event = RateLimitEvent.objects.create(
        kind=kind,
        scope=scope[:64],
        ip=ip_truncate(ip),
        user=user if user is not None and user.is_authenticated else None,
    )
    # The scope and the truncated network only: no address, email or account in the log.
    logger.warning("abuse event: %s on %s from %s", kind, scope, event.ip or "unknown network")
    return event


def abuse_events_purge(*, older_than_days: int | None = None) -> int:
    """Delete events older than the retention period (ABUSE_EVENT_RETENTION_DAYS); returns how many."""
    days = settings.ABUSE_EVENT_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = RateLimitEvent.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def duration_text(seconds: int) -> str:
    """ "2 minutes and 5 seconds", in the active language, for the 429 page."""
    minutes, rest = divmod(max(1, int(seconds)), 60)
    seconds_text = ngettext("%(count)d second", "%(count)d seconds", rest) % {"count": rest}
    if not minutes:
        return seconds_text
    minutes_text = ngettext("%(count)d minute", "%(count)d minutes", minutes) % {"count": minutes}
    if not rest:
        return minutes_text
    return gettext("%(minutes)s and %(seconds)s") % {"minutes": minutes_text, "seconds": seconds_text}


def too_many_requests(request: HttpRequest, *, retry_after: int | None) -> HttpResponse:
    """The 429 page in the visitor's language, with Retry-After when the wait is known."""
    context = {
        "retry_after": retry_after,
        "retry_after_text": duration_text(retry_after) if retry_after else "",
    }
    response = render(request, TEMPLATE_429, context, status=429)
    if retry_after:
        response["Retry-After"] = str(int(retry_after))
    return response


# allauth's URL names -> the allauth rate-limit actions their views consume.
# (confirm_email never answers 429 with verification by link: allauth skips the resend.)
ALLAUTH_ACTIONS = {
    "account_login": ("login",),
    "account_signup": ("signup",),
    "account_reset_password": ("reset_password",),
    "account_reset_password_from_key": ("reset_password_from_key",),
    "account_change_password": ("change_password",),
    "account_set_password": ("change_password",),
    "account_email": ("manage_email",),
    "account_reauthenticate": ("reauthenticate",),
    "account_request_login_code": ("request_login_code",),
}


def _allauth_retry_after(actions: tuple[str, ...]) -> int | None:
    """The longest period among the actions' rates: allauth's sliding windows free up within it."""
    from allauth.account import app_settings as account_settings
    from allauth.core.internal.ratelimit import get_rates

    periods = [
        rate.duration
        for action in actions
        for rate in get_rates(app="allauth.account", action=action, config=account_settings.RATE_LIMITS)
    ]
    return int(max(periods)) if periods else None


def handler429(request: HttpRequest) -> HttpResponse:
    """allauth's refusals (it calls ROOT_URLCONF.handler429): our page, a Retry-After, an event."""
    match = getattr(request, "resolver_match", None)
    url_name = match.url_name if match else ""
    actions = ALLAUTH_ACTIONS.get(url_name or "", ())
    retry_after = _allauth_retry_after(actions) if actions else None
    scope = f"allauth:{actions[0] if actions else url_name or 'unknown'}"
    abuse_event_record(
        request=request, kind=AbuseEventKind.RATE_LIMITED, scope=scope, throttle_seconds=retry_after or 60
    )
    return too_many_requests(request, retry_after=retry_after)
