"""A small world with distinctive people in it, for the access and personal-data tests.

Two signers with personal data no one else may see, in two departments (Ain 01, Paris 75), each
with an active pledge in one campaign (a confirmation round open in Ain) and a released pledge
with its letter in another; a delegate of each department, a national organizer; and one of
every object a URL can name (export, bulk invalidation, directory import, escrow bundle).
"""

import io
from dataclasses import dataclass, field
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.core.management import call_command
from django.utils import timezone

from deconv.email_stops import email_stop_token
from pledges.access import organizer_scope
from pledges.demo import DEMO_LETTER_BODY, DEMO_LETTER_TITLE
from pledges.enums import (
    BundleStatus,
    OrganizerRoleKind,
    PledgeEventKind,
    PledgeStatus,
    RoundOutcome,
    TerritoryLevel,
    TerritoryStatus,
)
from pledges.escrow import escrow_bundle_request
from pledges.events import pledge_event_record
from pledges.exports import export_build, export_request
from pledges.letters_pipeline import letter_download_token, release_letters_generate
from pledges.models import (
    BulkInvalidation,
    ConfirmationRound,
    Crossing,
    DirectoryImport,
    OrganizerRole,
    Pledge,
    Release,
    RppsClaim,
    TerritoryState,
    ThresholdRule,
)
from pledges.rounds import round_link_token
from pledges.rpps import luhn_check_digit
from pledges.services import letter_version_create
from territories.models import Caisse, Department
from tests.pledges.factories import CampaignFactory, UserFactory

ROLES = ("anonymous", "signer", "other_signer", "delegate_other", "delegate", "national")


def rpps_with_check_digit(body: str) -> str:
    return body + luhn_check_digit(body)


@dataclass(frozen=True)
class Person:
    """What must never show up outside the pages of whoever may see this person."""

    last_name: str
    first_name: str
    rpps: str
    email: str

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.last_name, self.rpps, self.email)


SIGNER = Person(
    "Quatrefages", "Zephyrine", rpps_with_check_digit("1048151623"), "zq.signataire@ain-secret.example"
)
OTHER = Person(
    "Vanderkelen", "Bartholome", rpps_with_check_digit("1091827364"), "bv.signataire@paris-secret.example"
)


@dataclass
class World:
    alpha: object  # campaign with active pledges and an open round in Ain
    beta: object  # campaign with released pledges and letters
    users: dict[str, object] = field(default_factory=dict)
    pledges: dict[str, Pledge] = field(default_factory=dict)
    objects: dict[str, object] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)


def _verified(person: Person):
    user = UserFactory(email=person.email)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def _pledge(*, campaign, user, person: Person, department: str, status: str) -> Pledge:
    caisse = Caisse.objects.filter(department__code=department).order_by("pk").first()
    pledge = Pledge.objects.create(
        campaign=campaign,
        letter_version=campaign.current_letter_version,
        user=user,
        status=PledgeStatus.ACTIVE,
        rpps=person.rpps,
        last_name=person.last_name,
        first_name=person.first_name,
        specialty="general_practice",
        practice_mode="liberal",
        sector="1",
        department=Department.objects.get(code=department),
        caisse=caisse,
        practice_address="3 impasse des Secrets",
        postal_code=f"{department}100" if department != "75" else "75011",
        city="Secretville",
        signed_ip="198.51.100.23",
        consented_pledge_at=timezone.now(),
        consented_data_at=timezone.now(),
    )
    pledge_event_record(pledge=pledge, kind=PledgeEventKind.PLEDGED)
    if status != PledgeStatus.ACTIVE:
        Pledge.objects.filter(pk=pledge.pk).update(status=status)
        pledge.refresh_from_db()
    return pledge


def _role(kind: str, code: str = "", email: str = ""):
    user = UserFactory(**({"email": email} if email else {}))
    OrganizerRole.objects.create(user=user, campaign=None, kind=kind, territory_code=code)
    return user


def world_build() -> World:
    call_command("load_territories", stdout=io.StringIO())
    alpha = CampaignFactory(slug="securite-alpha", title="Campagne Alpha")
    letter_version_create(campaign=alpha, title=DEMO_LETTER_TITLE, body=DEMO_LETTER_BODY)
    beta = CampaignFactory(slug="securite-beta", title="Campagne Beta")
    letter_version_create(campaign=beta, title=DEMO_LETTER_TITLE, body=DEMO_LETTER_BODY)
    ThresholdRule.objects.create(campaign=alpha, level=TerritoryLevel.DEPARTMENT, min_count=1)
    world = World(alpha=alpha, beta=beta)

    signer, other = _verified(SIGNER), _verified(OTHER)
    RppsClaim.objects.create(rpps=SIGNER.rpps, user=signer)
    RppsClaim.objects.create(rpps=OTHER.rpps, user=other)
    world.users = {
        "signer": signer,
        "other_signer": other,
        "delegate_other": _role(OrganizerRoleKind.DEPARTMENTAL, "75", "delegue.paris@organizers.example"),
        "delegate": _role(OrganizerRoleKind.DEPARTMENTAL, "01", "delegue.ain@organizers.example"),
        "national": _role(OrganizerRoleKind.NATIONAL, "", "national@organizers.example"),
    }
    world.pledges = {
        "signer_active": _pledge(
            campaign=alpha, user=signer, person=SIGNER, department="01", status="active"
        ),
        "other_active": _pledge(campaign=alpha, user=other, person=OTHER, department="75", status="active"),
        "signer_released": _pledge(
            campaign=beta, user=signer, person=SIGNER, department="01", status=PledgeStatus.RELEASED
        ),
        "other_released": _pledge(
            campaign=beta, user=other, person=OTHER, department="75", status=PledgeStatus.RELEASED
        ),
    }

    # An open confirmation round in Ain (alpha).
    now = timezone.now()
    crossing = Crossing.objects.create(
        campaign=alpha,
        level=TerritoryLevel.DEPARTMENT,
        code="01",
        round_number=1,
        crossed_at=now,
        count_at_crossing=1,
        target_at_crossing=1,
        national_count_at_crossing=2,
    )
    round = ConfirmationRound.objects.create(
        crossing=crossing, opened_at=now, ends_at=now + timedelta(days=14), outcome=RoundOutcome.OPEN
    )
    TerritoryState.objects.create(
        campaign=alpha,
        level=TerritoryLevel.DEPARTMENT,
        code="01",
        status=TerritoryStatus.CONFIRMING,
        round_number=1,
    )

    # Releases with their letters (beta), one per department.
    releases = {}
    for key, code in (("signer_released", "01"), ("other_released", "75")):
        release = Release.objects.create(
            campaign=beta, level=TerritoryLevel.DEPARTMENT, code=code, released_at=now, pledge_count=1
        )
        Pledge.objects.filter(pk=world.pledges[key].pk).update(release=release)
        release_letters_generate(release=release)
        releases[code] = release
    for pledge in world.pledges.values():
        pledge.refresh_from_db()
    signer_letter = world.pledges["signer_released"].letter

    national = world.users["national"]
    export = export_request(
        campaign=alpha, scope=organizer_scope(user=national, campaign=alpha), user=national, file_format="csv"
    )
    export_build(export_id=export.pk)
    bulk = BulkInvalidation.objects.create(
        campaign=alpha,
        rule={"department": "75"},
        reason="Test",
        preview_count=1,
        status=BundleStatus.DONE,
        created_by=national,
    )
    directory_import = DirectoryImport.objects.create(file_name="PS_LibreAcces.txt", uploaded_by=national)
    bundle = escrow_bundle_request(release=releases["01"], user=national)
    world.objects = {
        "round": round,
        "release_01": releases["01"],
        "release_75": releases["75"],
        "signer_letter": signer_letter,
        "export": export,
        "bulk": bulk,
        "directory_import": directory_import,
        "bundle": bundle,
    }
    world.tokens = {
        "letter_link": letter_download_token(letter=signer_letter),
        "round_link": round_link_token(round=round, pledge=world.pledges["signer_active"]),
        "email_stop": email_stop_token(address=SIGNER.email),
    }
    return world
