import io

import pytest
from django.core.management import call_command

from pledges.enums import OrganizerRoleKind
from pledges.models import ThresholdRule
from tests.organizer.factories import OrganizerRoleFactory, PledgeFactory
from tests.pledges.factories import CampaignFactory, LetterVersionFactory, UserFactory

# A name that must never show up outside its department's pages and files.
LEAKY_NAME = "Zorglubovitch"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def territories(db):
    """101 departments, 18 regions, caisses and reference populations from the seeds."""
    call_command("load_territories", stdout=io.StringIO())


@pytest.fixture
def campaign(territories):
    """An open campaign with a letter and a target of 10 signatures in every department."""
    campaign = CampaignFactory(slug="tour-de-france")
    LetterVersionFactory(campaign=campaign)
    ThresholdRule.objects.create(campaign=campaign, level="department", min_count=10)
    return campaign


@pytest.fixture
def pledges(campaign):
    """7 pledges in Rhône (69), 3 in Paris (75) among which a distinctive name, 1 in Ain (01)."""
    made = {
        "69": PledgeFactory.create_batch(7, campaign=campaign, department="69"),
        "75": PledgeFactory.create_batch(
            2, campaign=campaign, department="75", postal_code="75011", city="Paris"
        ),
        "01": PledgeFactory.create_batch(
            1, campaign=campaign, department="01", postal_code="01000", city="Bourg"
        ),
    }
    made["75"].append(
        PledgeFactory(
            campaign=campaign, department="75", last_name=LEAKY_NAME, postal_code="75011", city="Paris"
        )
    )
    return made


def _role(campaign, kind, territory_code=""):
    return OrganizerRoleFactory(campaign=campaign, kind=kind, territory_code=territory_code).user


@pytest.fixture
def national(campaign):
    return _role(campaign, OrganizerRoleKind.NATIONAL)


@pytest.fixture
def observer(campaign):
    return _role(campaign, OrganizerRoleKind.OBSERVER)


@pytest.fixture
def delegate_69(campaign):
    return _role(campaign, OrganizerRoleKind.DEPARTMENTAL, "69")


@pytest.fixture
def delegate_75(campaign):
    return _role(campaign, OrganizerRoleKind.DEPARTMENTAL, "75")


@pytest.fixture
def regional_ara(campaign):
    """Auvergne-Rhône-Alpes (84): Ain (01) and Rhône (69) among its 12 departments, not Paris."""
    return _role(campaign, OrganizerRoleKind.REGIONAL, "84")


@pytest.fixture
def stranger(db):
    return UserFactory()
