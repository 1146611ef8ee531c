import ipaddress
import uuid
from dataclasses import dataclass
from datetime import datetime

from allauth.account.models import EmailAddress
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from deconv.models import RateLimitEvent
from pledges import letter_text
from pledges.emails import (
    account_deleted_queue,
    pledge_already_signed_queue,
    pledge_withdrawn_queue,
)
from pledges.enums import (
    COUNTED_STATUSES,
    LIVE_STATUSES,
    CampaignStatus,
    PledgeEventKind,
    PledgeStatus,
    PracticeMode,
    ReferencePopulationKind,
)
from pledges.escrow import escrow_bundles_forget_signer
from pledges.events import pledge_event_record, pledge_move_record
from pledges.exports import exports_forget_signer
from pledges.letters_pipeline import letter_erase
from pledges.models import (
    Campaign,
    LetterVersion,
    Pledge,
    RppsClaim,
    default_practice_modes,
    default_professions,
)
from pledges.notifications import pledge_received
from pledges.rounds import round_invite_new_signer
from pledges.rpps import rpps_is_valid, rpps_normalize
from territories.models import Caisse, Department
from territories.postal import postal_code_matches_department


@transaction.atomic
def campaign_create(
    *,
    slug: str,
    title: str,
    letter_body: str,
    letter_title: str = letter_text.DEFAULT_LETTER_TITLE,
    letter_legal_basis: str | None = None,
    description: str = "",
    status: str = CampaignStatus.DRAFT,
    opens_at: datetime | None = None,
    closes_at: datetime | None = None,
    eligible_professions: list[str] | None = None,
    eligible_specialties: list[str] | None = None,
    eligible_practice_modes: list[str] | None = None,
    reference_population_kind: str = ReferencePopulationKind.LIBERAL_PHYSICIANS,
    created_by: AbstractBaseUser | None = None,
) -> Campaign:
    """Create a campaign and version 1 of its letter, in one transaction.

    Raises ValidationError for bad values (unknown choices, closing before opening,
    unknown placeholders in the letter).
    """
    campaign = Campaign(
        slug=slug,
        title=title,
        description=description,
        status=status,
        opens_at=opens_at,
        closes_at=closes_at,
        eligible_professions=default_professions() if eligible_professions is None else eligible_professions,
        eligible_specialties=[] if eligible_specialties is None else eligible_specialties,
        eligible_practice_modes=(
            default_practice_modes() if eligible_practice_modes is None else eligible_practice_modes
        ),
        reference_population_kind=reference_population_kind,
    )
    campaign.full_clean()
    campaign.save()
    letter_version_create(
        campaign=campaign,
        title=letter_title,
        body=letter_body,
        legal_basis=letter_legal_basis,
        created_by=created_by,
    )
    return campaign


def _campaign_lock(*, campaign: Campaign) -> None:
    """Serialise version numbering per campaign (a no-op on SQLite, whose writes are serial anyway)."""
    Campaign.objects.select_for_update().filter(pk=campaign.pk).values_list("pk", flat=True).get()


def _latest_version(*, campaign: Campaign) -> LetterVersion | None:
    return LetterVersion.objects.filter(campaign=campaign).order_by("-number").first()


@transaction.atomic
def letter_version_create(
    *,
    campaign: Campaign,
    title: str,
    body: str,
    legal_basis: str | None = None,
    created_by: AbstractBaseUser | None = None,
) -> LetterVersion:
    """Save a new version of the campaign's letter, numbered after the latest one.

    1. Lock the campaign row, so that concurrent editors get consecutive numbers instead of
       colliding on the (campaign, number) unique constraint, which remains the last guard.
    2. Normalise the texts; `legal_basis=None` keeps the latest version's (or the default).
    3. If title, body and legal basis equal the latest version's, return that version:
       saving an unchanged form must not create an empty version.
    4. Otherwise validate (placeholders) and insert version latest + 1.
    """
    _campaign_lock(campaign=campaign)
    latest = _latest_version(campaign=campaign)

    if legal_basis is None:
        legal_basis = latest.legal_basis if latest else letter_text.DEFAULT_LEGAL_BASIS
    title = title.strip()
    body = letter_text.normalize_text(body)
    legal_basis = letter_text.normalize_text(legal_basis)

    if latest and (latest.title, latest.body, latest.legal_basis) == (title, body, legal_basis):
        return latest

    version = LetterVersion(
        campaign=campaign,
        number=latest.number + 1 if latest else 1,
        title=title,
        body=body,
        legal_basis=legal_basis,
        created_by=created_by,
    )
    version.content_sha256 = version.compute_content_sha256()
    # The unique constraint is checked by the database itself, under the lock taken above.
    version.full_clean(validate_unique=False, validate_constraints=False)
    version.save()
    return version


# --- Signing: a physician's own pledge ---------------------------------------------------------

# Blanked on withdrawal and erasure. The row keeps what counts and the ledger need: status,
# campaign, letter version, department, caisse, professional categories and dates.
PLEDGE_PERSONAL_BLANKS = {
    "rpps": "",
    "last_name": "",
    "first_name": "",
    "practice_address": "",
    "postal_code": "",
    "city": "",
    "patient_list_size": None,
    "signed_ip": None,
    "signed_user_agent": "",
}
# The fields pledge_create and pledge_update take from `data` (pledges.forms.PledgeForm fills them).
PLEDGE_EDITABLE_FIELDS = (
    "last_name",
    "first_name",
    "specialty",
    "practice_mode",
    "sector",
    "department",
    "caisse",
    "practice_address",
    "postal_code",
    "city",
    "patient_list_size",
)
USER_AGENT_MAX_LENGTH = 300


@dataclass(frozen=True)
class PledgeCreateResult:
    """`created` is False for a duplicate; the submitter must be shown the same page either way."""

    created: bool
    pledge: Pledge | None


class _Duplicate(Exception):
    def __init__(self, owner_id: int | None):
        super().__init__("duplicate pledge")
        self.owner_id = owner_id


def pledge_campaign_check_open(*, campaign: Campaign) -> None:
    """Raise ValidationError unless the campaign accepts signatures and changes right now."""
    if campaign.status == CampaignStatus.PAUSED:
        raise ValidationError(
            _(
                "Signing is paused for this campaign: nothing was recorded. The campaign pages stay "
                "available; please come back later."
            ),
            code="campaign_paused",
        )
    if not campaign.is_open_for_signing:
        raise ValidationError(_("This campaign is not accepting signatures."), code="campaign_not_open")


def _caisse_resolve(*, department: Department, caisse: Caisse | None) -> Caisse | None:
    if caisse is not None:
        if caisse.department_id != department.pk:
            raise ValidationError(
                {
                    "caisse": _("%(caisse)s is not a caisse of %(department)s.")
                    % {"caisse": caisse.name, "department": department}
                }
            )
        return caisse
    # Two are enough to know whether the department has a choice.
    caisses = list(Caisse.objects.filter(department=department)[:2])
    if len(caisses) > 1:
        raise ValidationError({"caisse": _("Your department has several caisses: choose yours.")})
    return caisses[0] if caisses else None


def _pledge_values(*, campaign: Campaign, data: dict) -> dict:
    """The editable values of `data`, checked against the campaign's eligibility rules."""
    values = {name: data.get(name) for name in PLEDGE_EDITABLE_FIELDS}
    for name in ("last_name", "first_name", "practice_address", "postal_code", "city"):
        values[name] = (values[name] or "").strip()
    if campaign.eligible_specialties and values["specialty"] not in campaign.eligible_specialties:
        raise ValidationError({"specialty": _("This campaign is not open to your specialty.")})
    if values["practice_mode"] not in (campaign.eligible_practice_modes or PracticeMode.values):
        raise ValidationError({"practice_mode": _("This campaign is not open to your mode of practice.")})
    department = values["department"]
    if not isinstance(department, Department):
        raise ValidationError({"department": _("Choose your department from the list.")})
    if not postal_code_matches_department(values["postal_code"], department.code):
        raise ValidationError({"postal_code": _("The postal code is not in the department of practice.")})
    values["caisse"] = _caisse_resolve(department=department, caisse=values["caisse"])
    return values


def _ip_or_none(ip: str | None) -> str | None:
    try:
        return str(ipaddress.ip_address((ip or "").strip()))
    except ValueError:
        return None


@dataclass(frozen=True)
class _Holders:
    """Who already holds this account's or this RPPS's place in a campaign."""

    conflict: bool
    # The owner to tell; None for a paper pledge entered without an account.
    owner_id: int | None
    # The account already holds this RPPS's claim (from another campaign): nothing to insert.
    claimed: bool


_PLEDGE, _CLAIM = "pledge", "claim"


def _holders_rows(*, campaign: Campaign, user, rpps: str) -> list[tuple[str, int | None, str]]:
    """(kind, user id, RPPS) of the live pledges of this account or RPPS here, and of their claims.

    Hand-written: it runs on every signature, and the ORM spent more time building this UNION
    than the database answering it (both sides use their unique indexes).
    """
    statuses = ", ".join(["%s"] * len(LIVE_STATUSES))
    # Table names come from the models; every value is a parameter.
    sql = (
        f"SELECT %s, user_id, rpps FROM {Pledge._meta.db_table}"  # noqa: S608
        f" WHERE campaign_id = %s AND status IN ({statuses}) AND (user_id = %s OR rpps = %s)"
        f" UNION ALL SELECT %s, user_id, rpps FROM {RppsClaim._meta.db_table}"
        " WHERE rpps = %s OR user_id = %s"
    )
    params = [_PLEDGE, campaign.pk, *map(str, LIVE_STATUSES), user.pk, rpps, _CLAIM, rpps, user.pk]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _pledge_conflict_owner(*, campaign: Campaign, user, rpps: str) -> _Holders:
    """Whether this account or this RPPS already holds a live pledge here, or the RPPS a claim.

    One query (_holders_rows). Raises ValidationError when the account is linked to a different
    RPPS: that is the submitter's own data, no leak.
    """
    rows = _holders_rows(campaign=campaign, user=user, rpps=rpps)
    live = [(owner_id, number) for source, owner_id, number in rows if source == _PLEDGE]
    if any(owner_id == user.pk for owner_id, _number in live):
        return _Holders(conflict=True, owner_id=user.pk, claimed=False)
    if live:
        # Only the RPPS's own: a live pledge per RPPS and campaign is unique.
        return _Holders(conflict=True, owner_id=live[0][0], claimed=False)
    claimed = False
    for source, owner_id, number in rows:
        if source != _CLAIM:
            continue
        if number == rpps and owner_id != user.pk:
            return _Holders(conflict=True, owner_id=owner_id, claimed=False)
        if owner_id == user.pk and number != rpps:
            raise ValidationError(
                {
                    "rpps": _(
                        "Your account is already linked to another RPPS number, used in another campaign. "
                        "One account holds one RPPS number: check the number you typed."
                    )
                },
                code="rpps_other_claim",
            )
        claimed = claimed or (owner_id == user.pk and number == rpps)
    return _Holders(conflict=False, owner_id=None, claimed=claimed)


# Checked by the database's foreign keys; full_clean would read each row once more.
_PLEDGE_FOREIGN_KEYS = ("campaign", "letter_version", "user", "department", "caisse")


def pledge_create(
    *,
    campaign: Campaign,
    user,
    data: dict,
    ip: str | None,
    user_agent: str,
    letter_version: LetterVersion | None = None,
) -> PledgeCreateResult:
    """Sign `campaign` for the verified account `user` with the values in `data`.

    `letter_version` is the campaign's current version as the caller already read it (the one
    its form showed); read here when not given.

    Raises ValidationError when the campaign is not open (paused: the kill switch), the physician
    is not eligible, the RPPS is invalid, or the account is linked to another RPPS.

    Side effects, in one transaction:
    - created: an RppsClaim (RPPS -> this account) unless the account already holds it; the
      Pledge (active, current letter version, consents dated now, IP and browser); a +1
      PledgeEvent; the "pledge received" email's outbox row (rendered and sent by the worker
      after commit); when the territory is in an open confirmation round, the invitation's row
      (pledges.rounds.round_invite_new_signer).
    - duplicate (this account already has a live pledge here, or the RPPS belongs to another
      account or to a live pledge): nothing is written; after commit, an "already signed" email
      to the owner of the existing pledge or claim, never to the submitter.
    Concurrent submissions are settled by the unique constraints (RPPS claim, one live pledge per
    RPPS and per account): the loser's IntegrityError becomes a duplicate.
    """
    pledge_campaign_check_open(campaign=campaign)
    version = letter_version if letter_version is not None else campaign.current_letter_version
    if version is None:
        raise ValidationError(_("This campaign has no letter to sign yet."), code="no_letter")
    if version.campaign_id != campaign.pk:
        raise ValueError("letter_version is not a version of this campaign")
    rpps = rpps_normalize(str(data.get("rpps") or ""))
    if not rpps_is_valid(rpps):
        raise ValidationError({"rpps": _("This RPPS number is not valid.")})
    values = _pledge_values(campaign=campaign, data=data)
    now = timezone.now()
    try:
        try:
            with transaction.atomic():
                holders = _pledge_conflict_owner(campaign=campaign, user=user, rpps=rpps)
                if holders.conflict:
                    raise _Duplicate(holders.owner_id)
                if not holders.claimed:
                    RppsClaim.objects.create(rpps=rpps, user=user)
                pledge = Pledge(
                    campaign=campaign,
                    letter_version=version,
                    user=user,
                    status=PledgeStatus.ACTIVE,
                    rpps=rpps,
                    consented_pledge_at=now,
                    consented_data_at=now,
                    signed_ip=_ip_or_none(ip),
                    signed_user_agent=(user_agent or "")[:USER_AGENT_MAX_LENGTH],
                    **values,
                )
                pledge.full_clean(
                    exclude=_PLEDGE_FOREIGN_KEYS, validate_unique=False, validate_constraints=False
                )
                pledge.save(force_insert=True)
                pledge_event_record(pledge=pledge, kind=PledgeEventKind.PLEDGED)
                pledge_received(pledge=pledge)
                round_invite_new_signer(pledge=pledge)
        except IntegrityError:
            # A concurrent submission won the race; its row is committed, so we can see who owns it.
            holders = _pledge_conflict_owner(campaign=campaign, user=user, rpps=rpps)
            if not holders.conflict:
                raise
            raise _Duplicate(holders.owner_id) from None
    except _Duplicate as duplicate:
        if duplicate.owner_id is not None:
            pledge_already_signed_queue(owner_id=duplicate.owner_id, campaign=campaign)
        return PledgeCreateResult(created=False, pledge=None)
    return PledgeCreateResult(created=True, pledge=pledge)


def pledge_update(*, pledge: Pledge, data: dict) -> Pledge:
    """Correct an active pledge's details (not its RPPS, letter version nor consents).

    Raises ValidationError when the pledge is no longer active (once anything is released it is
    frozen), the campaign does not accept changes (paused or closed), or the values are not
    eligible. Side effects: the pledge row is updated; when its department changes, a move is
    recorded (-1 on the old department, +1 on the new one) in the same transaction.
    """
    with transaction.atomic():
        locked = Pledge.objects.select_for_update().select_related("campaign").get(pk=pledge.pk)
        if locked.status != PledgeStatus.ACTIVE:
            raise ValidationError(_("This pledge can no longer be changed."), code="pledge_not_active")
        pledge_campaign_check_open(campaign=locked.campaign)
        values = _pledge_values(campaign=locked.campaign, data=data)
        old_department_id = locked.department_id
        for name, value in values.items():
            setattr(locked, name, value)
        locked.full_clean(validate_unique=False, validate_constraints=False)
        locked.save()
        if locked.department_id != old_department_id and locked.status in COUNTED_STATUSES:
            pledge_move_record(pledge=locked, old_department_id=old_department_id)
    return locked


def _rpps_claim_release_if_unused(*, user_id: int | None) -> None:
    """A claim lives as long as one of the account's pledges is live, in any campaign."""
    if user_id is None:
        return
    if not Pledge.objects.filter(user_id=user_id, status__in=LIVE_STATUSES).exists():
        RppsClaim.objects.filter(user_id=user_id).delete()


def _pledge_withdraw_locked(*, pledge: Pledge) -> bool:
    """Withdraw a row locked by the caller; False when it was already withdrawn."""
    if pledge.status == PledgeStatus.WITHDRAWN:
        return False
    was_counted = pledge.status in COUNTED_STATUSES
    pledge.status = PledgeStatus.WITHDRAWN
    pledge.withdrawn_at = timezone.now()
    for name, blank in PLEDGE_PERSONAL_BLANKS.items():
        setattr(pledge, name, blank)
    pledge.save()
    if was_counted:
        pledge_event_record(pledge=pledge, kind=PledgeEventKind.WITHDRAWN)
    # Withdrawing deletes the letter (DOMAIN.md section 5): its row now, its file on commit.
    letter_erase(pledge=pledge)
    _rpps_claim_release_if_unused(user_id=pledge.user_id)
    return True


def pledge_withdraw(*, pledge: Pledge) -> Pledge:
    """Withdraw a pledge; harmless on one already withdrawn. Always allowed, even when paused.

    Side effects, in one transaction: status withdrawn and withdrawn_at set; every personal
    field blanked (RPPS, names, address, postal code, city, patient list, IP, browser); a -1
    PledgeEvent if the pledge was counted; the account's RppsClaim deleted if it has no other
    live pledge; after commit, a "withdrawal confirmed" email, the last one about this pledge
    (the other email tasks skip pledges that are not live).
    """
    with transaction.atomic():
        locked = Pledge.objects.select_for_update().get(pk=pledge.pk)
        if _pledge_withdraw_locked(pledge=locked):
            pledge_withdrawn_queue(pledge=locked)
    return locked


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def account_data_export(*, user) -> dict:
    """Everything the platform holds about `user`, JSON-serialisable (GDPR art. 15 and 20)."""
    claim = RppsClaim.objects.filter(user=user).first()
    pledges = (
        Pledge.objects.filter(user=user)
        .select_related("campaign", "letter_version", "department", "caisse")
        .annotate(events_count=Count("events"))
        .order_by("created_at", "pk")
    )
    return {
        "generated_at": _iso(timezone.now()),
        "account": {
            "email": user.email,
            "date_joined": _iso(user.date_joined),
            "last_login": _iso(user.last_login),
            "email_addresses": [
                {"email": address.email, "verified": address.verified, "primary": address.primary}
                for address in EmailAddress.objects.filter(user=user).order_by("pk")
            ],
        },
        "rpps_claim": {"rpps": claim.rpps, "created_at": _iso(claim.created_at)} if claim else None,
        "pledges": [_pledge_export(pledge) for pledge in pledges],
        # Refused or suspicious requests recorded against the account (deconv.ratelimit).
        "abuse_events": [
            {"kind": kind, "scope": scope, "network": ip, "at": _iso(created_at)}
            for kind, scope, ip, created_at in RateLimitEvent.objects.filter(user=user)
            .order_by("created_at")
            .values_list("kind", "scope", "ip", "created_at")
        ],
    }


def _pledge_export(pledge: Pledge) -> dict:
    return {
        "id": pledge.pk,
        "campaign": {"slug": pledge.campaign.slug, "title": pledge.campaign.title},
        "letter_version": {
            "number": pledge.letter_version.number,
            "title": pledge.letter_version.title,
            "content_sha256": pledge.letter_version.content_sha256,
        },
        "status": pledge.status,
        "source": pledge.source,
        "rpps": pledge.rpps,
        "last_name": pledge.last_name,
        "first_name": pledge.first_name,
        "specialty": pledge.specialty,
        "practice_mode": pledge.practice_mode,
        "sector": pledge.sector,
        "department": {"code": pledge.department.code, "name": pledge.department.name},
        "caisse": {"code": pledge.caisse.code, "name": pledge.caisse.name} if pledge.caisse else None,
        "practice_address": pledge.practice_address,
        "postal_code": pledge.postal_code,
        "city": pledge.city,
        "patient_list_size": pledge.patient_list_size,
        "consented_pledge_at": _iso(pledge.consented_pledge_at),
        "consented_data_at": _iso(pledge.consented_data_at),
        "signed_ip": pledge.signed_ip,
        "signed_user_agent": pledge.signed_user_agent,
        "created_at": _iso(pledge.created_at),
        "updated_at": _iso(pledge.updated_at),
        "withdrawn_at": _iso(pledge.withdrawn_at),
        "invalidated_at": _iso(pledge.invalidated_at),
        "invalidation_reason": pledge.invalidation_reason,
        "events_count": pledge.events_count,
    }


def account_erase(*, user) -> None:
    """Delete an account and every personal datum attached to it (GDPR art. 17).

    Side effects, in one transaction: every pledge of the account not yet withdrawn is withdrawn
    as by pledge_withdraw (personal fields blanked, -1 events for counted ones: counts adjust),
    without one email each; the RppsClaim, the allauth EmailAddress rows and the user are deleted
    (pledge rows keep no link: user is SET_NULL); export files and escrow bundles of the
    signer's campaigns are deleted on commit. A "data deleted" email is rendered now, while
    the address is known, and sent after commit.
    """
    with transaction.atomic():
        pledges = list(Pledge.objects.select_for_update().select_related("campaign").filter(user=user))
        withdrawn_titles = [
            pledge.campaign.title for pledge in pledges if _pledge_withdraw_locked(pledge=pledge)
        ]
        # Organizer exports and escrow bundles built before now may name the signer or hold
        # their letter: their files go when the erasure commits (pledges.exports, pledges.escrow).
        exports_forget_signer(campaign_ids={pledge.campaign_id for pledge in pledges})
        escrow_bundles_forget_signer(release_ids={pledge.release_id for pledge in pledges})
        account_deleted_queue(
            email_address=user.email, withdrawn_campaigns=withdrawn_titles, request_id=uuid.uuid4().hex
        )
        RppsClaim.objects.filter(user=user).delete()
        EmailAddress.objects.filter(user=user).delete()
        user.delete()
