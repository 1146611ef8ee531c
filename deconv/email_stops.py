"""Stop links: the address hash kept instead of the address, the signed token, the stop itself.

Every email the law does not require carries a stop link (deconv.outbox adds it); a stop is an
EmailStop row and holds for every campaign and kind of email at once. The token is signed with
SECRET_KEY (salt "email-stop") and names only the address's keyed hash: it does not expire (an
unsubscribe link must keep working in an email read months later), and rotating SECRET_KEY out
of SECRET_KEY_FALLBACKS revokes every link at once.
"""

import re
from collections.abc import Iterable

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils.crypto import salted_hmac

from deconv.models import EmailStop

# Kinds the law (or the safety of the account) requires: sent even to a stopped address.
REQUIRED_KINDS = frozenset({"pledge_withdrawn", "account_deleted"})
# allauth's emails, queued under their template prefix ("account/email/password_reset_key").
REQUIRED_KIND_PREFIX = "account/"

_STOP_SALT = "email-stop"
_HASH_SALT = "deconv.email_stops.email_stop_hash"
_HASH_PATTERN = re.compile(r"[0-9a-f]{64}")


def email_stop_hash(*, address: str, secret: str | None = None) -> str:
    """The keyed SHA-256 of the lowercased address: what an EmailStop keeps instead of the address."""
    return salted_hmac(
        _HASH_SALT, address.strip().lower(), secret=secret or settings.SECRET_KEY, algorithm="sha256"
    ).hexdigest()


def _stop_hashes(address: str) -> list[str]:
    """The address's hash under the current key and every fallback: a key rotation keeps stops
    as long as the old key stays in SECRET_KEY_FALLBACKS."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [email_stop_hash(address=address, secret=key) for key in keys]


def email_stop_token(*, address: str) -> str:
    """A signed token naming the address's hash; no expiry (an unsubscribe link must keep working).

    Revoked all at once by rotating SECRET_KEY out of SECRET_KEY_FALLBACKS.
    """
    return signing.Signer(salt=_STOP_SALT).sign(email_stop_hash(address=address))


def email_stop_url(*, address: str) -> str:
    return settings.SITE_URL + reverse("email_stop", kwargs={"token": email_stop_token(address=address)})


def email_stop_token_read(*, token: str) -> str | None:
    """The address hash in a stop token; None when the token was tampered with or cut."""
    try:
        email_hash = signing.Signer(salt=_STOP_SALT).unsign(token)
    except signing.BadSignature:
        return None
    return email_hash if _HASH_PATTERN.fullmatch(email_hash) else None


def email_stop_record(*, email_hash: str) -> bool:
    """Stop every non-required email to this address, from now on; True when it was not stopped yet.

    Rows already queued are caught when they are sent (outbox_send checks again).
    """
    _, created = EmailStop.objects.get_or_create(email_hash=email_hash)
    return created


def email_stop_undo(*, email_hash: str) -> bool:
    """The person changed their mind: emails resume (those skipped meanwhile are not sent)."""
    deleted, _ = EmailStop.objects.filter(email_hash=email_hash).delete()
    return deleted > 0


def email_stop_exists(*, email_hash: str) -> bool:
    return EmailStop.objects.filter(email_hash=email_hash).exists()


def stopped_addresses(addresses: Iterable[str]) -> set[str]:
    """The addresses among `addresses` that asked for no more emails (one query)."""
    by_hash = {}
    for address in set(addresses):
        for email_hash in _stop_hashes(address):
            by_hash[email_hash] = address
    if not by_hash:
        return set()
    stopped = EmailStop.objects.filter(email_hash__in=list(by_hash)).values_list("email_hash", flat=True)
    return {by_hash[email_hash] for email_hash in stopped}


def email_kind_is_required(kind: str) -> bool:
    """Required kinds are sent to stopped addresses and carry no stop link."""
    return kind in REQUIRED_KINDS or kind.startswith(REQUIRED_KIND_PREFIX)
