import pytest
from django.core.management import call_command

from pledges.enums import OrganizerRoleKind
from tests.moderation.factories import organizer_with, pledge_make
from tests.pledges.factories import CampaignFactory, LetterVersionFactory, UserFactory


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _messages_in_english(settings):
    # Messages are asserted on their msgids; French translations come later.
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def territories(db):
    call_command("load_territories", stdout=open("/dev/null", "w"))  # noqa: SIM115 (closed at exit)


@pytest.fixture
def campaign(territories):
    campaign = CampaignFactory()
    LetterVersionFactory(campaign=campaign)
    return campaign


@pytest.fixture
def national(campaign):
    return organizer_with(OrganizerRoleKind.NATIONAL, campaign=campaign, email="national@example.org")


@pytest.fixture
def observer(campaign):
    return organizer_with(OrganizerRoleKind.OBSERVER, campaign=campaign, email="observer@example.org")


@pytest.fixture
def delegate_ain(campaign):
    """Departmental delegate of Ain (01)."""
    return organizer_with(OrganizerRoleKind.DEPARTMENTAL, "01", campaign=campaign, email="ain@example.org")


@pytest.fixture
def delegate_paris(campaign):
    """Departmental delegate of Paris (75): must see nothing of Ain."""
    return organizer_with(OrganizerRoleKind.DEPARTMENTAL, "75", campaign=campaign, email="paris@example.org")


@pytest.fixture
def no_role(db):
    return UserFactory(email="nobody@example.org")


@pytest.fixture
def ain_pledge(campaign):
    """A distinctive pledge in Ain, the one that must not leak to other departments."""
    return pledge_make(
        campaign=campaign,
        department="01",
        email="zephyrin@ain-distinct.example",
        ip="198.51.100.77",
        last_name="Zéphyrin-Distinct",
        first_name="Ambroise",
    )


@pytest.fixture
def as_user(client):
    def login(user):
        client.force_login(user)
        return client

    return login
