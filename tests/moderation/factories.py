"""Pledges and organizers for the moderation tests, written directly (fast, no email, no form)."""

import itertools

from django.utils import timezone

from pledges.enums import PledgeEventKind, PledgeStatus
from pledges.events import pledge_event_record
from pledges.models import OrganizerRole, Pledge
from pledges.rpps import luhn_check_digit
from territories.models import Department
from tests.pledges.factories import UserFactory

_numbers = itertools.count(1)


def rpps_next() -> str:
    """A fresh valid RPPS number ("10" + 8 digits + the Luhn digit)."""
    body = f"10{next(_numbers):08d}"
    return body + luhn_check_digit(body)


def organizer_with(kind: str, territory_code: str = "", campaign=None, email: str | None = None):
    user = UserFactory(**({"email": email} if email else {}))
    OrganizerRole.objects.create(user=user, campaign=campaign, kind=kind, territory_code=territory_code)
    return user


def pledge_make(
    *,
    campaign,
    department: str = "01",
    email: str | None = None,
    ip: str | None = "192.0.2.10",
    status: str = PledgeStatus.ACTIVE,
    created_at=None,
    with_user: bool = True,
    **fields,
) -> Pledge:
    """An active pledge (and its +1 event) in `department`, signed from `ip` by an account at `email`."""
    user = UserFactory(**({"email": email} if email else {})) if with_user else None
    values = {
        "rpps": rpps_next(),
        "last_name": "Martin",
        "first_name": "Élise",
        "specialty": "general_practice",
        "practice_mode": "liberal",
        "sector": "1",
        "postal_code": f"{department[:2]}000",
        "city": "Ville",
        "practice_address": "1 rue de la Paix",
        **fields,
    }
    pledge = Pledge.objects.create(
        campaign=campaign,
        letter_version=campaign.current_letter_version,
        user=user,
        status=status,
        department=Department.objects.get(code=department),
        signed_ip=ip,
        consented_pledge_at=timezone.now(),
        consented_data_at=timezone.now(),
        **values,
    )
    if status == PledgeStatus.ACTIVE:
        pledge_event_record(pledge=pledge, kind=PledgeEventKind.PLEDGED)
    if created_at is not None:
        Pledge.objects.filter(pk=pledge.pk).update(created_at=created_at)
        pledge.refresh_from_db()
    return pledge
