import pytest

from pledges.demo import DEMO_LETTER_BODY, DEMO_LETTER_TITLE
from pledges.services import letter_version_create
from tests.letters.factories import CaisseFactory, ReleasedPledgeFactory, ReleaseFactory
from tests.pledges.factories import CampaignFactory, UserFactory


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def campaign(db):
    """An open campaign whose letter is the demo's complete letter (legal sentence, place and date)."""
    campaign = CampaignFactory(title="Campagne Ain")
    letter_version_create(campaign=campaign, title=DEMO_LETTER_TITLE, body=DEMO_LETTER_BODY)
    return campaign


@pytest.fixture
def caisse(db):
    return CaisseFactory()


@pytest.fixture
def release(campaign, caisse):
    return ReleaseFactory(campaign=campaign)


@pytest.fixture
def make_pledges(release, caisse):
    def make(count: int, **kwargs):
        return [ReleasedPledgeFactory(release=release, caisse=caisse, **kwargs) for _ in range(count)]

    return make


@pytest.fixture
def staff(db):
    return UserFactory(email="staff@example.org", is_staff=True)
