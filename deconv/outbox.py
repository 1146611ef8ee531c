"""The outbox: every email is a row before it is a message, so each is sent once.

Persist first, send later (pretix `OutgoingMail`, pretalx `QueuedMail`). A row of
deconv.models.OutgoingEmail goes through:

1. queued: written by email_queue / email_queue_many in the caller's transaction, already rendered
   in the recipient's language, under a unique `dedupe_key`: queueing the same email twice (a
   fan-out that runs again, a retried task) creates nothing. The send task is handed to the broker
   after the commit (`dispatched_at`), so nothing leaves for a rolled-back change.
   Or queued unrendered (email_queue_later, email_queue_many(render_later=True)): the row is
   stored the same way, in the same transaction, with an empty text; the worker that claims it
   renders it from the context builder its kind registered, stores the rendered parts in the row,
   then sends it. A busy request (signing) then pays one INSERT instead of rendering templates.
2. sending: claimed by outbox_send, a chunk at a time, with SELECT ... FOR UPDATE SKIP LOCKED and
   one UPDATE (attempts + 1, claimed_at): two workers given the same ids never both send a row.
3. sent, marked right after the SMTP server accepted the DATA, one UPDATE per message. Or back to
   queued with `next_attempt_at` after a transient error (SMTP 4xx, connection refused, reset or
   timed out): 30 s, 1, 2, 4 ... minutes, at most an hour, MAX_ATTEMPTS tries in all. Or failed:
   a permanent error (SMTP 5xx), too many tries, or a recipient who stopped emails.

Two beat jobs repair what a crash or an outage leaves behind:
- outbox_dispatch_due (every 10 s) hands the broker the queued rows whose retry time has come,
  and those whose dispatch was lost (broker down at commit time): a row not claimed a minute
  after its dispatch is dispatched again. So an email queued while Redis is stopped goes out
  once Redis is back.
- outbox_requeue_stuck (every minute) puts back rows left in sending for OUTBOX_STUCK_MINUTES by a
  worker that died.

The at-least-once edge: a worker that dies after the SMTP server accepted a message but before
its UPDATE to sent leaves the row in sending; outbox_requeue_stuck then sends it again. The
window is one database round trip (the row is marked on its own, right after the accept, not at
the end of the chunk; on PostgreSQL without waiting for the disk flush, see
_commits_without_flush), and the repeat carries the same Message-ID, by which many mail clients
hide duplicates. No SMTP exchange can close that window entirely.

Stops: every email that the law does not require carries a stop link (signed, no expiry, no
address in it). A stop is an EmailStop row holding a keyed hash of the address, honoured for
every campaign and kind at once: checked when an email is queued (a stopped recipient gets no
row at all: nothing about them is stored) and again when it is sent (a row queued before the stop
is marked failed, last_error "recipient stopped emails"). Required kinds ignore stops: account
emails (confirmation, password reset, sign-in code, security notices) and the withdrawal and
deletion confirmations, which are the proof of a GDPR request.
"""

import hashlib
import logging
import os
import smtplib
import threading
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.mail import get_connection
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

from deconv.email_stops import email_kind_is_required, email_stop_url, stopped_addresses
from deconv.mail import RenderedEmail, email_footer_add, email_message_build, email_render
from deconv.models import EmailStatus, OutgoingEmail

logger = logging.getLogger(__name__)

# The last message to an address we no longer hold: its personal parts are blanked once it is
# sent or failed, as the email itself promises.
ERASED_AFTER_SENDING_KINDS = frozenset({"account_deleted"})

STOPPED_ERROR = "recipient stopped emails"
NOTHING_TO_RENDER_ERROR = "nothing left to render: what the email was about no longer exists"
MAX_ATTEMPTS = 8
BACKOFF_FIRST_SECONDS = 30
BACKOFF_MAX_SECONDS = 60 * 60
# Rows rendered and inserted per statement by email_queue_many.
INSERT_BATCH = 500
# Rows per send task: one SMTP connection each. Providers commonly cap messages per connection
# near 100; a chunk this size also keeps a redelivered task's work small.
SEND_CHUNK = 100
# A row dispatched but not claimed after this long is dispatched again (its message was lost).
DISPATCH_LEASE = timedelta(minutes=1)
# Rows queued one by one (email_queue_later) wait this long in their process to leave together.
DISPATCH_DELAY_SECONDS = 0.2
# Rows dispatched per outbox_dispatch_due run: a backlog drains over several runs instead of
# flooding the broker at once.
DISPATCH_LIMIT = 5000
# Sent and failed rows keep their address and text this long (support questions), then only
# what deduplication and statistics need.
RETENTION_DAYS = 30


# --- Queueing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailItem:
    kind: str
    recipient: str
    context: dict
    dedupe_key: str
    language: str = "fr"
    user: AbstractBaseUser | None = field(default=None, compare=False)


def _render(item: EmailItem) -> RenderedEmail:
    required = email_kind_is_required(item.kind)
    stop_url = None if required else email_stop_url(address=item.recipient)
    return email_render(kind=item.kind, context=item.context, language=item.language, stop_url=stop_url)


def _row(*, item: EmailItem, email: RenderedEmail, now) -> OutgoingEmail:
    return OutgoingEmail(
        kind=item.kind[:40],
        recipient=item.recipient.strip(),
        language=item.language,
        subject=email.subject[:300],
        body_text=email.body_text,
        body_html=email.body_html,
        dedupe_key=item.dedupe_key,
        user_id=item.user.pk if item.user is not None else None,
        status=EmailStatus.QUEUED,
        dispatched_at=now,
    )


def _dispatch(ids: list[int]) -> None:
    """Hand the send tasks to the broker, a chunk of ids per task.

    Never raises: a broker outage must not turn a committed signup or pledge into an error page.
    The rows stay queued and outbox_dispatch_due dispatches them once the broker is back.
    """
    from deconv.tasks import outbox_send as outbox_send_task

    for start in range(0, len(ids), SEND_CHUNK):
        try:
            # No publish retries: the request would wait on a dead broker, and the beat job retries.
            outbox_send_task.apply_async(kwargs={"ids": ids[start : start + SEND_CHUNK]}, retry=False)
        except Exception:
            logger.warning(
                "outbox: the broker refused %d emails; outbox_dispatch_due will send them",
                len(ids) - start,
                exc_info=True,
            )
            return


class _DispatchBuffer:
    """Ids committed by this process, handed to the broker together a moment later.

    A busy signing page commits one receipt per request: one task each would cost every request
    a broker round trip and the worker a task and an SMTP connection per email. Gathered for
    DISPATCH_DELAY_SECONDS, they leave as one task per SEND_CHUNK ids. A process that dies with ids
    still here loses only their dispatch: the rows are queued and dispatched (dispatched_at set),
    and outbox_dispatch_due dispatches them again after DISPATCH_LEASE.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._ids: list[int] = []
        self._timer: threading.Timer | None = None
        self._pid = os.getpid()

    def add(self, ids: list[int]) -> None:
        from deconv.celery import app

        if app.conf.task_always_eager:
            # Tasks run in the caller (tests, the embedded default): nothing to gather.
            _dispatch(ids)
            return
        with self._lock:
            if self._pid != os.getpid():
                # A fork copied a parent's buffer, whose timer thread did not come along.
                self._ids, self._timer, self._pid = [], None, os.getpid()
            self._ids.extend(ids)
            if self._timer is None:
                delay = getattr(settings, "OUTBOX_DISPATCH_DELAY_SECONDS", DISPATCH_DELAY_SECONDS)
                self._timer = threading.Timer(delay, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        with self._lock:
            ids, self._ids, self._timer = self._ids, [], None
        if ids:
            _dispatch(ids)


_dispatch_buffer = _DispatchBuffer()


def _insert_one(row: OutgoingEmail, *, gather: bool = False) -> OutgoingEmail | None:
    """Insert in a savepoint; after the commit, dispatch at once or (`gather`) with others."""
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        # The same key was queued concurrently: that row is the one that gets sent.
        return None
    transaction.on_commit(partial(_dispatch_buffer.add if gather else _dispatch, [row.pk]))
    return row


def email_queue(
    *,
    kind: str,
    recipient: str,
    context: dict,
    dedupe_key: str,
    language: str = "fr",
    user: AbstractBaseUser | None = None,
) -> OutgoingEmail | None:
    """Render `kind` for `recipient` and queue it; sent by a worker after the commit.

    Returns the new row, or None when nothing was queued: an email with this dedupe_key exists
    already (whatever its status), or the recipient stopped emails and the kind is not required.
    """
    if OutgoingEmail.objects.filter(dedupe_key=dedupe_key).exists():
        return None
    if not email_kind_is_required(kind) and stopped_addresses([recipient]):
        return None
    item = EmailItem(
        kind=kind, recipient=recipient, context=context, dedupe_key=dedupe_key, language=language, user=user
    )
    return _insert_one(_row(item=item, email=_render(item), now=timezone.now()))


def email_queue_rendered(
    *,
    kind: str,
    recipient: str,
    subject: str,
    body_text: str,
    body_html: str,
    dedupe_key: str,
    language: str,
    user: AbstractBaseUser | None = None,
) -> OutgoingEmail | None:
    """Queue an email rendered elsewhere (allauth's templates); the footer is added here."""
    if OutgoingEmail.objects.filter(dedupe_key=dedupe_key).exists():
        return None
    required = email_kind_is_required(kind)
    if not required and stopped_addresses([recipient]):
        return None
    email = email_footer_add(
        email=RenderedEmail(subject=" ".join(subject.split()), body_text=body_text, body_html=body_html),
        stop_url=None if required else email_stop_url(address=recipient),
        language=language,
    )
    item = EmailItem(
        kind=kind, recipient=recipient, context={}, dedupe_key=dedupe_key, language=language, user=user
    )
    return _insert_one(_row(item=item, email=email, now=timezone.now()))


# --- Rendered by the worker ---------------------------------------------------------------------

# Kind -> builder: given unrendered rows of that kind, the template context of each (by row id),
# None for a row whose subject no longer exists (its pledge deleted: the row fails).
ContextBuilder = Callable[[list[OutgoingEmail]], dict[int, dict | None]]
_context_builders: dict[str, ContextBuilder] = {}


def email_context_builder_register(kind: str, builder: ContextBuilder) -> None:
    """Let `kind` be queued unrendered; `builder` rebuilds its context when a worker claims it.

    Apps register theirs in their `notifications` module, which the worker imports on first need.
    A builder reads what the email is about from the row (its dedupe key names it) and the
    database as it is then: a pledge corrected meanwhile is described as corrected.
    """
    _context_builders[kind] = builder


def _context_builder(kind: str) -> ContextBuilder:
    if kind not in _context_builders:
        # As the admin finds `admin` modules: a worker has not necessarily imported them yet.
        autodiscover_modules("notifications")
    return _context_builders[kind]


def _unrendered_row(
    *, kind: str, recipient: str, dedupe_key: str, language: str, user: AbstractBaseUser | None, now
) -> OutgoingEmail:
    # An empty text part marks the row as not rendered yet: a rendered one always holds the footer.
    return _row(
        item=EmailItem(
            kind=kind, recipient=recipient, context={}, dedupe_key=dedupe_key, language=language, user=user
        ),
        email=RenderedEmail(subject="", body_text="", body_html=""),
        now=now,
    )


def email_queue_later(
    *,
    kind: str,
    recipient: str,
    dedupe_key: str,
    language: str = "fr",
    user: AbstractBaseUser | None = None,
) -> OutgoingEmail | None:
    """Queue `kind` for `recipient` now, rendered by the worker that sends it.

    Same guarantees as email_queue: the row is written in the caller's transaction (it exists if
    and only if the change it announces committed), once per dedupe_key, never for a recipient
    who stopped emails (non-required kinds). Returns the new row, or None when nothing was queued.
    Raises LookupError for a kind without a context builder, in the caller's transaction.
    """
    _context_builder(kind)
    if not email_kind_is_required(kind) and stopped_addresses([recipient]):
        return None
    # No look-up of the key first: it only spared rendering a duplicate, and nothing is rendered
    # here; a duplicate key is caught by the insert's savepoint.
    return _insert_one(
        _unrendered_row(
            kind=kind,
            recipient=recipient,
            dedupe_key=dedupe_key,
            language=language,
            user=user,
            now=timezone.now(),
        ),
        gather=True,
    )


def _render_claimed(
    rows: list[OutgoingEmail], *, stopped: set[str], report: "SendReport"
) -> list[OutgoingEmail]:
    """Render the claimed rows queued unrendered and store their parts; returns the rows to send.

    Rows to `stopped` recipients are left as they are: _send_rows fails them. A row whose context
    cannot be built is retried with a backoff (a bug or an outage, fixed by a deploy), or failed
    when its subject no longer exists; it is never sent without its text.
    """
    pending: dict[str, list[OutgoingEmail]] = {}
    for row in rows:
        if not row.body_text and not (row.recipient in stopped and not email_kind_is_required(row.kind)):
            pending.setdefault(row.kind, []).append(row)
    if not pending:
        return rows
    dropped: set[int] = set()
    rendered: list[OutgoingEmail] = []
    for kind, kind_rows in pending.items():
        try:
            contexts = _context_builder(kind)(kind_rows)
        except Exception as error:
            logger.exception("outbox: cannot build the context of %d %s emails", len(kind_rows), kind)
            for row in kind_rows:
                retried = _release(row, _error_text(error))
                report.retried += retried
                report.failed += not retried
                dropped.add(row.pk)
            continue
        for row in kind_rows:
            context = contexts.get(row.pk)
            try:
                email = None if context is None else _render(_claimed_item(row, context))
            except Exception as error:
                logger.exception("outbox: cannot render email %s (%s)", row.pk, kind)
                retried = _release(row, _error_text(error))
                report.retried += retried
                report.failed += not retried
                dropped.add(row.pk)
                continue
            if email is None:
                _mark_failed(row, NOTHING_TO_RENDER_ERROR)
                report.failed += 1
                dropped.add(row.pk)
                continue
            row.subject, row.body_text, row.body_html = email.subject[:300], email.body_text, email.body_html
            rendered.append(row)
    _store_rendered(rendered)
    return [row for row in rows if row.pk not in dropped]


def _store_rendered(rows: list[OutgoingEmail]) -> None:
    """Stored before the first message leaves: the row keeps what was sent. Fenced on the claim,
    as every other write of the sending side."""
    if len(rows) == 1:
        # A plain UPDATE costs a third of bulk_update's CASE for one row.
        row = rows[0]
        _fenced(row).update(subject=row.subject, body_text=row.body_text, body_html=row.body_html)
    elif rows:
        OutgoingEmail.objects.filter(status=EmailStatus.SENDING, claimed_at=rows[0].claimed_at).bulk_update(
            rows, ["subject", "body_text", "body_html"]
        )


def _claimed_item(row: OutgoingEmail, context: dict) -> EmailItem:
    return EmailItem(
        kind=row.kind,
        recipient=row.recipient,
        context=context,
        dedupe_key=row.dedupe_key,
        language=row.language,
    )


def email_queue_many(items: Iterable[EmailItem], *, render_later: bool = False) -> int:
    """Queue many emails (a fan-out); returns how many rows are new.

    Per batch of INSERT_BATCH: one query skips the keys already queued (without rendering them)
    and one the stopped recipients; the rest is rendered and inserted in one statement that
    ignores conflicting keys, and sent after the commit by one task per SEND_CHUNK rows. A
    fan-out that runs twice therefore queues and sends nothing the second time.

    The count is exact unless two fan-outs with the same keys run at the same moment: each row
    is still created, and sent, once; only the returned count can then be too high.

    `render_later`: the rows are stored unrendered (items' contexts are ignored) and rendered by
    the worker that sends them, as email_queue_later; the kinds need a context builder.
    """
    created = 0
    batch: list[EmailItem] = []
    for item in items:
        batch.append(item)
        if len(batch) >= INSERT_BATCH:
            created += _queue_batch(batch, render_later=render_later)
            batch = []
    if batch:
        created += _queue_batch(batch, render_later=render_later)
    return created


def _queue_batch(batch: list[EmailItem], *, render_later: bool) -> int:
    unique = {}
    for item in batch:
        unique.setdefault(item.dedupe_key, item)
    existing = set(
        OutgoingEmail.objects.filter(dedupe_key__in=list(unique)).values_list("dedupe_key", flat=True)
    )
    todo = [item for key, item in unique.items() if key not in existing]
    stopped = stopped_addresses(item.recipient for item in todo if not email_kind_is_required(item.kind))
    todo = [item for item in todo if item.recipient not in stopped]
    if not todo:
        return 0
    now = timezone.now()
    if render_later:
        for kind in {item.kind for item in todo}:
            _context_builder(kind)
        rows = [
            _unrendered_row(
                kind=item.kind,
                recipient=item.recipient,
                dedupe_key=item.dedupe_key,
                language=item.language,
                user=item.user,
                now=now,
            )
            for item in todo
        ]
    else:
        rows = [_row(item=item, email=_render(item), now=now) for item in todo]
    OutgoingEmail.objects.bulk_create(rows, ignore_conflicts=True)
    # bulk_create does not return ids when ignoring conflicts: read back what is waiting.
    ids = list(
        OutgoingEmail.objects.filter(
            dedupe_key__in=[item.dedupe_key for item in todo], status=EmailStatus.QUEUED
        )
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    transaction.on_commit(partial(_dispatch, ids))
    return len(todo)


def email_cancel(*, dedupe_keys: list[str], reason: str) -> int:
    """Fail queued emails that no longer make sense (a pledge withdrawn before its receipt went out)."""
    return OutgoingEmail.objects.filter(dedupe_key__in=dedupe_keys, status=EmailStatus.QUEUED).update(
        status=EmailStatus.FAILED, last_error=reason
    )


def email_forget(*, address: str) -> int:
    """An account is erased: its queued emails are cancelled and every row to its address loses
    the address and text (GDPR art. 17); returns how many rows were touched.

    Rows queued after this (the "data deleted" confirmation) are not affected.
    """
    rows = OutgoingEmail.objects.filter(recipient__iexact=address.strip())
    rows.filter(status=EmailStatus.QUEUED).update(status=EmailStatus.FAILED, last_error="account deleted")
    return rows.update(recipient="", body_text="", body_html="")


# --- Sending -------------------------------------------------------------------------------------


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0  # not claimable: already claimed, sent, failed, or not due yet

    def as_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "retried": self.retried, "failed": self.failed, "skipped": self.skipped}


def outbox_claim(*, ids: list[int]) -> list[int]:
    """Claim the queued, due rows among `ids` for this worker; returns the ids now ours.

    SKIP LOCKED: a row another worker is claiming is left to it. On SQLite, which has no row
    locks, the IMMEDIATE transaction serialises claimers instead.
    """
    now = timezone.now()
    with transaction.atomic():
        claimable = list(
            OutgoingEmail.objects.select_for_update(skip_locked=True)
            .filter(pk__in=ids, status=EmailStatus.QUEUED)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .values_list("pk", flat=True)
        )
        if claimable:
            OutgoingEmail.objects.filter(pk__in=claimable).update(
                status=EmailStatus.SENDING, claimed_at=now, attempts=F("attempts") + 1
            )
    return claimable


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(BACKOFF_FIRST_SECONDS * 2 ** max(attempts - 1, 0), BACKOFF_MAX_SECONDS))


def _error_code(error: BaseException) -> int | None:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        return min(codes) if codes else None
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code
    return None


def _error_text(error: BaseException) -> str:
    """For last_error: the type, code and server message, never the refused address."""
    code = _error_code(error)
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        message = b" ".join(response for _, response in error.recipients.values())
    elif isinstance(error, smtplib.SMTPResponseException):
        message = error.smtp_error
    else:
        message = str(error)
    if isinstance(message, bytes):
        message = message.decode(errors="replace")
    return " ".join(part for part in (type(error).__name__, str(code or ""), message) if part)[:1000]


def _error_is_permanent(error: BaseException) -> bool:
    """SMTP 5xx: the server will refuse it again. Everything else is worth another try."""
    code = _error_code(error)
    return code is not None and 500 <= code < 600


def _error_breaks_connection(error: BaseException) -> bool:
    """After these, the SMTP session is unusable: the next message opens a new connection."""
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return True
    if isinstance(error, smtplib.SMTPException):
        # 421: the server is closing the channel.
        return _error_code(error) == 421
    return isinstance(error, OSError)


def _connection_close(connection) -> None:
    try:
        connection.close()
    except Exception:
        # A timed-out or reset socket can fail even to say QUIT; it is dropped either way.
        logger.debug("outbox: closing the mail connection failed", exc_info=True)


def _fenced(row: OutgoingEmail):
    """The row as we claimed it: a row requeued and claimed again by another worker is not ours."""
    return OutgoingEmail.objects.filter(pk=row.pk, status=EmailStatus.SENDING, claimed_at=row.claimed_at)


def _erase_fields(kind: str) -> dict:
    if kind in ERASED_AFTER_SENDING_KINDS:
        return {"recipient": "", "body_text": "", "body_html": ""}
    return {}


def _mark_sent(row: OutgoingEmail) -> None:
    # Also from queued: a row requeued while we were slow to send must not go out a second time.
    OutgoingEmail.objects.filter(pk=row.pk).filter(
        Q(status=EmailStatus.SENDING, claimed_at=row.claimed_at) | Q(status=EmailStatus.QUEUED)
    ).update(status=EmailStatus.SENT, sent_at=timezone.now(), last_error="", **_erase_fields(row.kind))


@contextmanager
def _commits_without_flush():
    """On PostgreSQL, the marks of a chunk commit without waiting for the disk flush.

    One commit per email keeps the at-least-once window small; waiting for a flush each time
    would make the disk the cost of an email. A mark is still visible to every process at once:
    only a crash of the database server itself within a fraction of a second can lose one (the
    email is then sent again), never a crash of the worker.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")


def _mark_failed(row: OutgoingEmail, error: str) -> None:
    _fenced(row).update(status=EmailStatus.FAILED, last_error=error, **_erase_fields(row.kind))


def _release(row: OutgoingEmail, error: str) -> bool:
    """Back to queued with a backoff, or failed after MAX_ATTEMPTS; True when it will be retried."""
    if row.attempts >= MAX_ATTEMPTS:
        _mark_failed(row, f"{error} (gave up after {row.attempts} attempts)")
        return False
    _fenced(row).update(
        status=EmailStatus.QUEUED,
        next_attempt_at=timezone.now() + _backoff(row.attempts),
        dispatched_at=None,
        last_error=error,
    )
    return True


def _message_id(row: OutgoingEmail) -> str:
    """The same for every attempt of a row, so a repeat can be recognised as one."""
    digest = hashlib.sha256(row.dedupe_key.encode()).hexdigest()[:16]
    domain = urlsplit(settings.SITE_URL).hostname or "localhost"
    return f"<outbox.{row.pk}.{digest}@{domain}>"


def _headers(row: OutgoingEmail) -> dict[str, str]:
    headers = {"Message-ID": _message_id(row)}
    if not email_kind_is_required(row.kind):
        # RFC 8058 one-click unsubscribe: mail providers POST to the stop link.
        headers["List-Unsubscribe"] = f"<{email_stop_url(address=row.recipient)}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return headers


def outbox_send(*, ids: list[int]) -> SendReport:
    """Send the rows among `ids` that are queued and due, over one mail connection.

    1. Claim them (outbox_claim); rows claimed elsewhere or not due are skipped. Render those
       queued unrendered and store their parts (_render_claimed).
    2. Fail those whose recipient stopped emails (non-required kinds).
    3. Send each; mark it sent right after the server accepted it.
    4. On an error: a 5xx fails the row; anything else requeues it with a backoff. An error that
       breaks the connection closes it and the next row opens a new one; if that fails too, the
       remaining rows are requeued with the same error.
    """
    report = SendReport()
    claimed = outbox_claim(ids=ids)
    report.skipped = len(set(ids)) - len(claimed)
    if not claimed:
        return report
    rows = list(OutgoingEmail.objects.filter(pk__in=claimed).order_by("pk"))
    mail = get_connection(fail_silently=False)
    with _commits_without_flush():
        stopped = stopped_addresses(row.recipient for row in rows if not email_kind_is_required(row.kind))
        # Storing the rendered parts needs no flush either: lost in a database crash, they are
        # rendered again at the next claim.
        rows = _render_claimed(rows, stopped=stopped, report=report)
        try:
            _send_rows(rows=rows, mail=mail, stopped=stopped, report=report)
        finally:
            _connection_close(mail)
    return report


def _send_rows(*, rows: list[OutgoingEmail], mail, stopped: set[str], report: SendReport) -> None:
    """Steps 2 to 4 of outbox_send, over the open mail connection `mail`."""
    for index, row in enumerate(rows):
        if row.recipient in stopped and not email_kind_is_required(row.kind):
            _mark_failed(row, STOPPED_ERROR)
            report.failed += 1
            continue
        try:
            mail.open()
        except Exception as error:
            logger.warning("outbox: cannot open the mail connection (%s)", type(error).__name__)
            for rest in rows[index:]:
                retried = _release(rest, _error_text(error))
                report.retried += retried
                report.failed += not retried
            return
        message = email_message_build(
            to=row.recipient,
            subject=row.subject,
            body_text=row.body_text,
            body_html=row.body_html,
            headers=_headers(row),
            connection=mail,
        )
        try:
            accepted = mail.send_messages([message])
        except Exception as error:
            if _error_breaks_connection(error):
                _connection_close(mail)
            if _error_is_permanent(error):
                _mark_failed(row, _error_text(error))
                report.failed += 1
            else:
                retried = _release(row, _error_text(error))
                report.retried += retried
                report.failed += not retried
            logger.info(
                "outbox: email %s not sent (%s, %s)", row.pk, type(error).__name__, _error_code(error)
            )
            continue
        if accepted:
            _mark_sent(row)
            report.sent += 1
        else:
            _mark_failed(row, "the mail backend accepted no recipient")
            report.failed += 1


# --- Beat jobs and repairs -----------------------------------------------------------------------


def outbox_dispatch_due(*, limit: int = DISPATCH_LIMIT) -> int:
    """Dispatch queued rows that are due and not waiting in the broker; returns how many.

    Due: no retry time, or a retry time past. Not waiting in the broker: never dispatched since
    they were last requeued, or dispatched more than DISPATCH_LEASE ago and still not claimed
    (the broker was down, or lost the message).
    """
    now = timezone.now()
    ids = list(
        OutgoingEmail.objects.filter(status=EmailStatus.QUEUED)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(dispatched_at__isnull=True) | Q(dispatched_at__lte=now - DISPATCH_LEASE))
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    if ids:
        OutgoingEmail.objects.filter(pk__in=ids, status=EmailStatus.QUEUED).update(dispatched_at=now)
        # At once, not on commit: these rows were committed long ago, and a worker that gets the
        # task before the UPDATE above commits only finds them claimable, as they are.
        _dispatch(ids)
    return len(ids)


def outbox_requeue_stuck(*, minutes: int | None = None) -> int:
    """Put back rows left in sending longer than OUTBOX_STUCK_MINUTES; returns how many.

    A worker that died mid-chunk leaves its rows in sending. Requeued, they are sent again by the
    next outbox_dispatch_due, which is the at-least-once edge described above. A row that has
    already used MAX_ATTEMPTS fails instead: a message that kills its worker must not loop.
    """
    minutes = minutes if minutes is not None else getattr(settings, "OUTBOX_STUCK_MINUTES", 10)
    cutoff = timezone.now() - timedelta(minutes=minutes)
    stuck = OutgoingEmail.objects.filter(status=EmailStatus.SENDING, claimed_at__lt=cutoff)
    error = f"still sending after {minutes} minutes: the worker probably stopped"
    gave_up = stuck.filter(attempts__gte=MAX_ATTEMPTS).update(
        status=EmailStatus.FAILED, last_error=f"{error} (gave up after {MAX_ATTEMPTS} attempts)"
    )
    requeued = stuck.update(
        status=EmailStatus.QUEUED, next_attempt_at=None, dispatched_at=None, last_error=error
    )
    if requeued or gave_up:
        logger.warning("outbox: %d emails requeued and %d failed after a stuck send", requeued, gave_up)
    return requeued


def outbox_requeue_failed(*, ids: list[int]) -> int:
    """Give failed rows a fresh set of attempts (an organizer fixed the cause); returns how many.

    Rows whose address was already erased (ERASED_AFTER_SENDING_KINDS) cannot be sent again.
    """
    rows = OutgoingEmail.objects.filter(pk__in=ids, status=EmailStatus.FAILED).exclude(recipient="")
    requeued_ids = list(rows.values_list("pk", flat=True))
    OutgoingEmail.objects.filter(pk__in=requeued_ids, status=EmailStatus.FAILED).update(
        status=EmailStatus.QUEUED,
        attempts=0,
        next_attempt_at=None,
        dispatched_at=timezone.now(),
        last_error="",
    )
    transaction.on_commit(partial(_dispatch, requeued_ids))
    return len(requeued_ids)


def outbox_purge(*, days: int = RETENTION_DAYS) -> int:
    """Blank the address and text of sent or failed rows older than `days`; returns how many.

    The rows stay, with their kind, status, dates and dedupe key: a fan-out that runs again
    months later must still find its keys taken.
    """
    cutoff = timezone.now() - timedelta(days=days)
    return (
        OutgoingEmail.objects.filter(status__in=[EmailStatus.SENT, EmailStatus.FAILED], created_at__lt=cutoff)
        .exclude(recipient="", body_text="", body_html="")
        .update(recipient="", body_text="", body_html="")
    )
