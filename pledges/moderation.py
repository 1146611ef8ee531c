"""Moderation by organizers: find pledges, flag, invalidate and reinstate them, invalidate by rule,
watch what is trending, and record letters collected on paper.

Every function takes the organizer's scope (pledges.access) or a pledge the view fetched within it:
a delegate never reads nor changes a pledge of another department. Every change writes an
AuditEntry without personal data (ids, statuses, counts; never names, RPPS, addresses or reasons,
which organizers may type freely).

Signers are not emailed when their pledge is invalidated. UK e-petitions flags and removes fraud
silently: a notice tips off whoever abuses the form, and a physician whose RPPS number was used by
someone else never had the account it would go to. What the law requires is access: the signer
sees the status on "Mon engagement" and the reason in their data export (GDPR art. 15), so the
reason is written for the signer to read.
"""

import ipaddress
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import BooleanField, Count, F, Q, QuerySet, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower, StrIndex, Substr
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from deconv.models import AuditEntry, RateLimitEvent
from deconv.ratelimit import ip_truncate
from pledges.access import OrganizerScope, organizer_scope_required, scope_filter
from pledges.enums import (
    LIVE_STATUSES,
    BundleStatus,
    CampaignStatus,
    PledgeEventKind,
    PledgeSource,
    PledgeStatus,
)
from pledges.events import DELTAS, pledge_event_record
from pledges.jobs import BULK, job_claim
from pledges.models import BulkInvalidation, Campaign, Pledge, PledgeEvent, RppsClaim
from pledges.rpps import rpps_is_valid, rpps_normalize
from pledges.services import _pledge_values, _rpps_claim_release_if_unused

logger = logging.getLogger(__name__)

SEARCH_PAGE_SIZE = 50
BULK_BATCH_SIZE = 500
BULK_SAMPLE_SIZE = 20
TRENDING_LIMIT = 20
RATE_LIMIT_EVENTS_SHOWN = 50
REASON_MAX_LENGTH = 300
_NAME_TOKENS_MAX = 5
_NAME_TOKEN_MAX_LENGTH = 50

# The criteria a bulk rule may combine (BulkInvalidation.rule); "scope" is added by the service.
BULK_RULE_KEYS = ("email_domain", "ip_network", "created_from", "created_to", "department")
_DOMAIN = re.compile(
    r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+"
)


# --- Criteria -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PledgeCriteria:
    """What an organizer searches for; empty values do not filter."""

    rpps: str = ""
    name: str = ""
    email_domain: str = ""
    # Canonical network text ("203.0.113.0/24"; one address is a /32 or /128).
    ip_network: str = ""
    department: str = ""
    created_from: date | None = None
    created_to: date | None = None
    status: str = ""
    verification: str = ""
    flagged: bool | None = None

    def bulk_rule(self) -> dict:
        """The JSON stored on a BulkInvalidation (only the criteria a rule may use)."""
        rule = {
            "email_domain": self.email_domain,
            "ip_network": self.ip_network,
            "created_from": self.created_from.isoformat() if self.created_from else "",
            "created_to": self.created_to.isoformat() if self.created_to else "",
            "department": self.department,
        }
        return {key: value for key, value in rule.items() if value}

    @classmethod
    def from_bulk_rule(cls, rule: dict) -> "PledgeCriteria":
        return cls(
            email_domain=rule.get("email_domain", ""),
            ip_network=rule.get("ip_network", ""),
            created_from=date.fromisoformat(rule["created_from"]) if rule.get("created_from") else None,
            created_to=date.fromisoformat(rule["created_to"]) if rule.get("created_to") else None,
            department=rule.get("department", ""),
        )


def email_domain_normalize(value: str) -> str | None:
    """ "@Exemple.FR " -> "exemple.fr"; None when it is not a domain name."""
    domain = value.strip().lstrip("@").strip().lower().rstrip(".")
    return domain if _DOMAIN.fullmatch(domain) else None


def ip_network_normalize(value: str) -> str | None:
    """An address or a CIDR network as canonical network text; None when it is neither."""
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return None
    return str(network)


def text_fold(value: str) -> str:
    """Lower case without accents, ligatures spelled out: "Œillet-Éloïse" -> "oeillet-eloise"."""
    value = value.replace("œ", "oe").replace("Œ", "oe").replace("æ", "ae").replace("Æ", "ae")
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).lower()


# Accented forms of each letter that French (and neighbouring) names use.
_ACCENTED = {
    "a": "àáâãäå",
    "c": "ç",
    "e": "èéêë",
    "i": "ìíîï",
    "n": "ñ",
    "o": "òóôõöø",
    "u": "ùúûü",
    "y": "ýÿ",
}
_LIGATURES = {"oe": "œŒ", "ae": "æÆ"}


def _letter_class(char: str) -> str:
    accented = _ACCENTED.get(char, "")
    return f"[{char}{char.upper()}{accented}{accented.upper()}]" if char.isalpha() else char


def name_search_patterns(query: str) -> list[str]:
    """One regular expression per word of `query`, matching it whatever the case and accents.

    The database compares text as stored ("Élise"); rather than depend on PostgreSQL's unaccent
    extension (and have SQLite differ), each letter of the folded query becomes a class of its
    accented and upper-case forms: "elise" -> "[eEèéêë...][lL][iIìíîï...][sS][eEèéêë...]". Words
    are split on spaces, hyphens and apostrophes, so "jean pierre" finds "Jean-Pierre".
    """
    words = [word for word in re.split(r"[^a-z0-9]+", text_fold(query)) if word][:_NAME_TOKENS_MAX]
    patterns = []
    for word in words:
        word = word[:_NAME_TOKEN_MAX_LENGTH]
        parts, index = [], 0
        while index < len(word):
            pair = word[index : index + 2]
            if pair in _LIGATURES:
                parts.append(f"(?:{_letter_class(pair[0])}{_letter_class(pair[1])}|[{_LIGATURES[pair]}])")
                index += 2
            else:
                parts.append(_letter_class(word[index]))
                index += 1
        patterns.append("".join(parts))
    return patterns


# --- Reading pledges in scope -------------------------------------------------------------------


def _ip_in_network_python(address: str | None, network: str) -> bool:
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(network)
    except (TypeError, ValueError):
        return False


def _filter_ip_network(queryset: QuerySet, network: str) -> QuerySet:
    """Pledges signed from an address inside `network`.

    PostgreSQL stores signed_ip as inet and compares with `<<=`; SQLite (the embedded default)
    stores text, so a Python function is registered on this connection for the query.
    """
    column = f"{connection.ops.quote_name(Pledge._meta.db_table)}.{connection.ops.quote_name('signed_ip')}"
    if connection.vendor == "postgresql":
        expression = RawSQL(f"{column} <<= %s::inet", [network], output_field=BooleanField())  # noqa: S611 (our column, value as parameter)
    else:
        connection.ensure_connection()
        connection.connection.create_function(
            "deconv_ip_in_network", 2, _ip_in_network_python, deterministic=True
        )
        expression = RawSQL(f"deconv_ip_in_network({column}, %s)", [network], output_field=BooleanField())  # noqa: S611 (our column, value as parameter)
    return queryset.alias(in_network=expression).filter(in_network=True)


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def pledge_search(*, campaign: Campaign, scope: OrganizerScope, criteria: PledgeCriteria) -> QuerySet[Pledge]:
    """The campaign's pledges in scope matching `criteria`, newest first (lazy: paginate it)."""
    queryset = scope_filter(Pledge.objects.filter(campaign=campaign), scope)
    if criteria.rpps:
        queryset = queryset.filter(rpps=rpps_normalize(criteria.rpps))
    for pattern in name_search_patterns(criteria.name):
        queryset = queryset.filter(Q(last_name__regex=pattern) | Q(first_name__regex=pattern))
    if criteria.email_domain:
        queryset = queryset.filter(user__email__iendswith=f"@{criteria.email_domain}")
    if criteria.ip_network:
        queryset = _filter_ip_network(queryset, criteria.ip_network)
    if criteria.department:
        queryset = queryset.filter(department__code=criteria.department)
    if criteria.created_from:
        queryset = queryset.filter(created_at__gte=_day_start(criteria.created_from))
    if criteria.created_to:
        queryset = queryset.filter(created_at__lt=_day_start(criteria.created_to + timedelta(days=1)))
    if criteria.status:
        queryset = queryset.filter(status=criteria.status)
    if criteria.verification:
        queryset = queryset.filter(verification_status=criteria.verification)
    if criteria.flagged is not None:
        queryset = queryset.filter(flagged=criteria.flagged)
    return queryset.select_related("department", "user").order_by("-created_at", "-pk")


def pledge_get_in_scope(*, campaign: Campaign, scope: OrganizerScope, pledge_id: int) -> Pledge:
    """The pledge, or 404 when it is not in the campaign or outside the organizer's territory."""
    pledge = (
        scope_filter(Pledge.objects.filter(campaign=campaign, pk=pledge_id), scope)
        .select_related("department", "user", "entered_by")
        .first()
    )
    if pledge is None:
        raise Http404
    return pledge


# --- Audit --------------------------------------------------------------------------------------


def _audit(
    *, actor, action: str, campaign: Campaign, territory_code: str = "", obj=None, details: dict | None = None
) -> AuditEntry:
    return AuditEntry.objects.create(
        actor=actor,
        action=action,
        campaign_id=campaign.pk,
        territory_code=territory_code,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        details=details or {},
    )


def _reason_clean(reason: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise ValidationError({"reason": _("Give a reason.")}, code="reason_required")
    if any(unicodedata.category(char).startswith("C") for char in reason):
        raise ValidationError({"reason": _("The reason contains control characters.")}, code="reason_control")
    return reason[:REASON_MAX_LENGTH]


# --- One pledge: flag, invalidate, reinstate ---------------------------------------------------


def pledge_flag(*, pledge: Pledge, actor, reason: str) -> Pledge:
    """Flag a pledge for a second look; the signer is not told and counts do not change.

    Side effects: flagged and flag_reason set; an audit entry.
    """
    reason = _reason_clean(reason)
    with transaction.atomic():
        Pledge.objects.filter(pk=pledge.pk).update(
            flagged=True, flag_reason=reason, updated_at=timezone.now()
        )
        _audit(
            actor=actor,
            action="pledge.flag",
            campaign=pledge.campaign,
            territory_code=pledge.department.code,
            obj=pledge,
        )
    pledge.refresh_from_db()
    return pledge


def pledge_unflag(*, pledge: Pledge, actor) -> Pledge:
    """Clear a flag. Side effects: flagged off, flag_reason blanked; an audit entry."""
    with transaction.atomic():
        Pledge.objects.filter(pk=pledge.pk).update(flagged=False, flag_reason="", updated_at=timezone.now())
        _audit(
            actor=actor,
            action="pledge.unflag",
            campaign=pledge.campaign,
            territory_code=pledge.department.code,
            obj=pledge,
        )
    pledge.refresh_from_db()
    return pledge


def pledge_invalidate(*, pledge: Pledge, actor, reason: str) -> Pledge:
    """Invalidate an active pledge: it stops counting.

    Raises ValidationError unless the pledge is active (released and expired pledges belong to a
    decided outcome and stay as they are). Side effects, in one transaction: status invalidated,
    invalidated_at and invalidation_reason set; a -1 INVALIDATED event; the account's RPPS claim
    released if it holds no other live pledge (the number may have been someone else's, who must
    be able to sign); an audit entry. No email (see the module docstring).
    """
    reason = _reason_clean(reason)
    with transaction.atomic():
        locked = Pledge.objects.select_for_update().select_related("campaign", "department").get(pk=pledge.pk)
        if locked.status != PledgeStatus.ACTIVE:
            raise ValidationError(_("Only an active pledge can be invalidated."), code="not_active")
        locked.status = PledgeStatus.INVALIDATED
        locked.invalidated_at = timezone.now()
        locked.invalidation_reason = reason
        locked.save(update_fields=["status", "invalidated_at", "invalidation_reason", "updated_at"])
        pledge_event_record(pledge=locked, kind=PledgeEventKind.INVALIDATED)
        _rpps_claim_release_if_unused(user_id=locked.user_id)
        _audit(
            actor=actor,
            action="pledge.invalidate",
            campaign=locked.campaign,
            territory_code=locked.department.code,
            obj=locked,
            details={"from": PledgeStatus.ACTIVE.value},
        )
    return locked


def _reinstate_claim(*, pledge: Pledge) -> None:
    """Give the account its RPPS claim back, unless the number or the account moved on meanwhile."""
    if pledge.user_id is None:
        return
    claims = list(RppsClaim.objects.filter(Q(rpps=pledge.rpps) | Q(user_id=pledge.user_id)))
    if any(claim.user_id != pledge.user_id or claim.rpps != pledge.rpps for claim in claims):
        raise ValidationError(
            _(
                "This RPPS number or this account has been used for another pledge since: it cannot be reinstated."
            ),
            code="claim_taken",
        )
    if not claims:
        RppsClaim.objects.create(rpps=pledge.rpps, user_id=pledge.user_id)


def pledge_reinstate(*, pledge: Pledge, actor) -> Pledge:
    """Undo an invalidation: the pledge is active and counted again.

    Raises ValidationError when the pledge is not invalidated, the campaign is closed, or the
    physician (or the account) holds another live pledge or claim by now. Side effects, in one
    transaction: status active, invalidation fields cleared; a +1 REINSTATED event; the RPPS
    claim restored; an audit entry.
    """
    try:
        with transaction.atomic():
            locked = (
                Pledge.objects.select_for_update().select_related("campaign", "department").get(pk=pledge.pk)
            )
            if locked.status != PledgeStatus.INVALIDATED:
                raise ValidationError(
                    _("Only an invalidated pledge can be reinstated."), code="not_invalidated"
                )
            if locked.campaign.status == CampaignStatus.CLOSED:
                raise ValidationError(_("The campaign is closed."), code="campaign_closed")
            _reinstate_claim(pledge=locked)
            locked.status = PledgeStatus.ACTIVE
            locked.invalidated_at = None
            locked.invalidation_reason = ""
            locked.save(update_fields=["status", "invalidated_at", "invalidation_reason", "updated_at"])
            pledge_event_record(pledge=locked, kind=PledgeEventKind.REINSTATED)
            _audit(
                actor=actor,
                action="pledge.reinstate",
                campaign=locked.campaign,
                territory_code=locked.department.code,
                obj=locked,
                details={"from": PledgeStatus.INVALIDATED.value},
            )
    except IntegrityError:
        # The one-live-pledge constraints: the physician or the account signed again meanwhile.
        raise ValidationError(
            _("This physician or this account has signed again since: the pledge cannot be reinstated."),
            code="live_pledge_exists",
        ) from None
    return locked


# --- Bulk invalidation by rule ------------------------------------------------------------------


def _bulk_queryset(
    *, campaign: Campaign, departments: list[str] | None, criteria: PledgeCriteria
) -> QuerySet:
    """Active pledges matching the rule within the departments (None: the whole country)."""
    if not criteria.bulk_rule():
        raise ValidationError(
            _("Give at least one criterion: a rule cannot match every pledge."), code="empty_rule"
        )
    scope = OrganizerScope(
        national=departments is None, department_codes=frozenset(departments or ()), can_act=True
    )
    return pledge_search(
        campaign=campaign, scope=scope, criteria=replace(criteria, status=PledgeStatus.ACTIVE)
    )


def _scope_departments(scope: OrganizerScope) -> list[str] | None:
    return None if scope.national else sorted(scope.department_codes)


@dataclass(frozen=True)
class BulkPreview:
    count: int
    sample: list[Pledge] = field(default_factory=list)


def bulk_invalidation_preview(
    *, campaign: Campaign, scope: OrganizerScope, criteria: PledgeCriteria
) -> BulkPreview:
    """How many active pledges in scope the rule matches now, and the newest few of them."""
    queryset = _bulk_queryset(campaign=campaign, departments=_scope_departments(scope), criteria=criteria)
    return BulkPreview(count=queryset.count(), sample=list(queryset[:BULK_SAMPLE_SIZE]))


def bulk_invalidation_create(
    *,
    campaign: Campaign,
    scope: OrganizerScope,
    actor,
    criteria: PledgeCriteria,
    reason: str,
    preview_count: int,
) -> BulkInvalidation:
    """Record a confirmed bulk invalidation and queue its task.

    Raises ValidationError when the rule is empty, the department is outside the scope, or the
    matching count is no longer the `preview_count` the organizer confirmed (they must see the
    new preview first). Side effects: a BulkInvalidation (rule, with the organizer's departments
    frozen in, and preview_count); an audit entry; after commit, the pledges.bulk_invalidate task.
    """
    reason = _reason_clean(reason)
    if criteria.department and not scope.covers_department(criteria.department):
        raise ValidationError({"department": _("This department is outside your territory.")})
    departments = _scope_departments(scope)
    with transaction.atomic():
        current = _bulk_queryset(campaign=campaign, departments=departments, criteria=criteria).count()
        if current != preview_count:
            raise ValidationError(
                _(
                    "The matching pledges changed since the preview: %(count)s now match. Check them and confirm again."
                )
                % {"count": current},
                code="preview_changed",
            )
        bulk = BulkInvalidation.objects.create(
            campaign=campaign,
            rule={**criteria.bulk_rule(), "scope": departments},
            reason=reason,
            preview_count=preview_count,
            created_by=actor,
        )
        _audit(
            actor=actor,
            action="bulk_invalidation.create",
            campaign=campaign,
            territory_code=criteria.department,
            obj=bulk,
            details={"criteria": sorted(criteria.bulk_rule()), "preview_count": preview_count},
        )
        transaction.on_commit(lambda: _bulk_task_send(bulk.pk))
    return bulk


def _bulk_task_send(bulk_id: int) -> None:
    from deconv.tasks import dispatch_safely
    from pledges.tasks import bulk_invalidate

    dispatch_safely(bulk_invalidate, bulk_id)


def bulk_invalidation_cancel(*, bulk: BulkInvalidation, actor) -> bool:
    """Ask a queued or running bulk invalidation to stop after its current batch; False if it ended.

    Batches already committed stay invalidated (each is reinstated one by one if needed).
    Side effects: cancel_requested_at set; an audit entry.
    """
    with transaction.atomic():
        updated = BulkInvalidation.objects.filter(
            pk=bulk.pk,
            status__in=[BundleStatus.QUEUED, BundleStatus.RUNNING],
            cancel_requested_at__isnull=True,
        ).update(cancel_requested_at=timezone.now())
        if updated:
            _audit(actor=actor, action="bulk_invalidation.cancel", campaign=bulk.campaign, obj=bulk)
    return bool(updated)


def _bulk_cancel_requested(bulk_id: int) -> bool:
    return BulkInvalidation.objects.filter(pk=bulk_id, cancel_requested_at__isnull=False).exists()


def _bulk_batch_invalidate(*, bulk: BulkInvalidation, matching: QuerySet, ids: list[int]) -> int:
    """Invalidate the still-matching active pledges among `ids`, with their events; one transaction."""
    with transaction.atomic():
        # Lock, then read again: a row may have been withdrawn or moved since the ids were read.
        locked = list(
            matching.filter(pk__in=ids)
            .select_for_update(of=("self",))
            .values_list("pk", "department_id", "user_id")
        )
        if not locked:
            return 0
        now = timezone.now()
        Pledge.objects.filter(pk__in=[pk for pk, _d, _u in locked]).update(
            status=PledgeStatus.INVALIDATED,
            invalidated_at=now,
            invalidation_reason=bulk.reason,
            updated_at=now,
        )
        PledgeEvent.objects.bulk_create(
            [
                PledgeEvent(
                    campaign_id=bulk.campaign_id,
                    department_id=department_id,
                    pledge_id=pk,
                    kind=PledgeEventKind.INVALIDATED,
                    delta=DELTAS[PledgeEventKind.INVALIDATED],
                )
                for pk, department_id, _u in locked
            ]
        )
        user_ids = {user_id for _p, _d, user_id in locked if user_id is not None}
        still_live = set(
            Pledge.objects.filter(user_id__in=user_ids, status__in=LIVE_STATUSES).values_list(
                "user_id", flat=True
            )
        )
        RppsClaim.objects.filter(user_id__in=user_ids - still_live).delete()
        BulkInvalidation.objects.filter(pk=bulk.pk).update(progress_done=F("progress_done") + len(locked))
    return len(locked)


def bulk_invalidation_run(
    *,
    bulk_id: int,
    batch_size: int = BULK_BATCH_SIZE,
    after_batch: Callable[[BulkInvalidation], None] | None = None,
) -> BulkInvalidation:
    """Invalidate the pledges matching a bulk rule, batch by batch, until done or cancelled.

    1. Claim the job through pledges.jobs: a job another worker is running, or finished, is
       left alone (a duplicate message does nothing); one whose worker died is resumed.
    2. Before each batch, stop if a cancellation was requested.
    3. Read the next `batch_size` matching ids after the last one seen (keyset: every batch costs
       the same), then invalidate them in one transaction with their -1 events and add them to
       progress_done. A resumed run starts again from the first id and continues the count: the
       batches the dead worker committed are no longer active, so they are neither matched nor
       counted again, and a batch it did not commit was rolled back whole (pledges, events and
       progress together). No pledge gets two events.
    4. Mark the job done (also when cancelled: cancel_requested_at tells) and audit the outcome.
    `after_batch` is a test hook called after each committed batch.
    """
    with job_claim(BULK, bulk_id) as claimed:
        bulk = BulkInvalidation.objects.select_related("campaign").get(pk=bulk_id)
        if not claimed:
            return bulk
        return _bulk_run(bulk=bulk, batch_size=batch_size, after_batch=after_batch)


def _bulk_run(
    *, bulk: BulkInvalidation, batch_size: int, after_batch: Callable[[BulkInvalidation], None] | None
) -> BulkInvalidation:
    bulk_id = bulk.pk
    try:
        matching = _bulk_queryset(
            campaign=bulk.campaign,
            departments=bulk.rule.get("scope"),
            criteria=PledgeCriteria.from_bulk_rule(bulk.rule),
        ).order_by("pk")
        last_pk = 0
        while not _bulk_cancel_requested(bulk_id):
            ids = list(matching.filter(pk__gt=last_pk).values_list("pk", flat=True)[:batch_size])
            if not ids:
                break
            last_pk = ids[-1]
            _bulk_batch_invalidate(bulk=bulk, matching=matching, ids=ids)
            if after_batch is not None:
                after_batch(bulk)
    except Exception:
        BulkInvalidation.objects.filter(pk=bulk_id).update(
            status=BundleStatus.FAILED, finished_at=timezone.now()
        )
        logger.exception("bulk invalidation %s failed", bulk_id)
        raise
    BulkInvalidation.objects.filter(pk=bulk_id).update(status=BundleStatus.DONE, finished_at=timezone.now())
    bulk.refresh_from_db()
    _audit(
        actor=None,
        action="bulk_invalidation.finish",
        campaign=bulk.campaign,
        obj=bulk,
        details={
            "invalidated": bulk.progress_done,
            "preview_count": bulk.preview_count,
            "cancelled": bulk.cancel_requested_at is not None,
        },
    )
    return bulk


def bulk_invalidation_status(*, bulk: BulkInvalidation) -> dict:
    """What the progress page and its JSON poller (static/js/progress.js) show."""
    finished = bulk.status in (BundleStatus.DONE, BundleStatus.FAILED)
    cancelled = bulk.cancel_requested_at is not None
    total = bulk.preview_count
    return {
        "status": bulk.status,
        "status_label": str(bulk.get_status_display()),
        "done": bulk.progress_done,
        "total": total,
        # static/js/progress.js moves the bar by percent; more than previewed still shows 100 %.
        "percent": 100 if finished else min(100, bulk.progress_done * 100 // total) if total else 0,
        "finished": finished,
        "cancel_requested": cancelled,
        # Only meaningful once finished: the matching set changed between preview and run.
        "changed_since_preview": finished and not cancelled and bulk.progress_done != bulk.preview_count,
    }


# --- Trending ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrendingRow:
    value: str
    count: int


def _recent_in_scope(*, campaign: Campaign, scope: OrganizerScope, since: datetime) -> QuerySet:
    return scope_filter(Pledge.objects.filter(campaign=campaign, created_at__gte=since), scope)


def trending_networks(
    *, campaign: Campaign, scope: OrganizerScope, since: datetime, limit: int = TRENDING_LIMIT
) -> list[TrendingRow]:
    """The IP networks (/24 or /48) most pledges in scope came from since `since`."""
    queryset = _recent_in_scope(campaign=campaign, scope=scope, since=since).exclude(signed_ip__isnull=True)
    if connection.vendor == "postgresql":
        column = (
            f"{connection.ops.quote_name(Pledge._meta.db_table)}.{connection.ops.quote_name('signed_ip')}"
        )
        network = RawSQL(  # noqa: S611 (our column, no value)
            f"text(network(set_masklen({column}, CASE WHEN family({column}) = 4 THEN 24 ELSE 48 END)))", []
        )
        rows = (
            queryset.annotate(network=network)
            .values("network")
            .annotate(count=Count("pk"))
            .order_by("-count", "network")[:limit]
        )
        return [TrendingRow(value=row["network"], count=row["count"]) for row in rows]
    # SQLite stores text: group in Python, reading one column row by row.
    counts = Counter(ip_truncate(ip) for ip in queryset.values_list("signed_ip", flat=True).iterator())
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [TrendingRow(value=value, count=count) for value, count in ranked]


def trending_email_domains(
    *, campaign: Campaign, scope: OrganizerScope, since: datetime, limit: int = TRENDING_LIMIT
) -> list[TrendingRow]:
    """The email domains of the accounts behind most pledges in scope since `since`."""
    rows = (
        _recent_in_scope(campaign=campaign, scope=scope, since=since)
        .filter(user__isnull=False)
        .annotate(domain=Lower(Substr("user__email", StrIndex("user__email", Value("@")) + 1)))
        .values("domain")
        .annotate(count=Count("pk"))
        .order_by("-count", "domain")[:limit]
    )
    return [TrendingRow(value=row["domain"], count=row["count"]) for row in rows]


def rate_limit_events_recent(
    *, scope: OrganizerScope, limit: int = RATE_LIMIT_EVENTS_SHOWN
) -> list[RateLimitEvent]:
    """The latest refusals and honeypot hits; site-wide, so national organizers only."""
    if not scope.national:
        return []
    return list(RateLimitEvent.objects.order_by("-created_at")[:limit])


# --- Paper pledges ------------------------------------------------------------------------------

PAPER_CAMPAIGN_STATUSES = (CampaignStatus.OPEN, CampaignStatus.PAUSED)


def paper_pledge_create(*, campaign: Campaign, organizer, data: dict) -> Pledge:
    """Record a letter a physician signed on paper and handed to organizers (no account).

    `data` holds the PledgeForm values (pledges.forms.PLEDGE_DATA_FIELDS); the organizer attested
    that the paper carries the physician's signature and consent. Paper letters may be entered
    while online signing is paused (they were collected before), not in a draft or closed campaign.

    Raises PermissionDenied when `organizer` may not act in this campaign; ValidationError when
    the campaign does not take letters, the RPPS is invalid, the department is outside the
    organizer's territory, the values are not eligible, or a live pledge with this RPPS (online or
    paper) exists in the campaign: organizers are told so plainly, unlike signers.
    Side effects, in one transaction: the Pledge (source paper, no account, entered_by, consent
    times = the time of entry); a +1 PLEDGED event; an audit entry. No email: there is no address.
    """
    scope = organizer_scope_required(user=organizer, campaign=campaign, act=True)
    if campaign.status not in PAPER_CAMPAIGN_STATUSES:
        raise ValidationError(_("This campaign does not take letters now."), code="campaign_not_open")
    version = campaign.current_letter_version
    if version is None:
        raise ValidationError(_("This campaign has no letter to sign yet."), code="no_letter")
    rpps = rpps_normalize(str(data.get("rpps") or ""))
    if not rpps_is_valid(rpps):
        raise ValidationError({"rpps": _("This RPPS number is not valid.")})
    values = _pledge_values(campaign=campaign, data=data)
    if not scope.covers_department(values["department"].code):
        raise ValidationError({"department": _("This department is outside your territory.")})
    duplicate = ValidationError(
        {
            "rpps": _(
                "This physician already has a pledge in this campaign (online or on paper): nothing was recorded."
            )
        },
        code="duplicate",
    )
    now = timezone.now()
    try:
        with transaction.atomic():
            if Pledge.objects.filter(campaign=campaign, rpps=rpps, status__in=LIVE_STATUSES).exists():
                raise duplicate
            pledge = Pledge(
                campaign=campaign,
                letter_version=version,
                user=None,
                status=PledgeStatus.ACTIVE,
                source=PledgeSource.PAPER,
                entered_by=organizer,
                rpps=rpps,
                consented_pledge_at=now,
                consented_data_at=now,
                **values,
            )
            pledge.full_clean(validate_unique=False, validate_constraints=False)
            pledge.save(force_insert=True)
            pledge_event_record(pledge=pledge, kind=PledgeEventKind.PLEDGED)
            _audit(
                actor=organizer,
                action="pledge.paper_create",
                campaign=campaign,
                territory_code=pledge.department.code,
                obj=pledge,
            )
    except IntegrityError:
        # A concurrent entry (or online signature) with the same RPPS won: the constraint decides.
        raise duplicate from None
    return pledge
