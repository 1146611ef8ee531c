import pytest

from tests.pledges.factories import CampaignFactory, LetterVersionFactory, UserFactory


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2 costs ~0.3 s per password; these tests create and check many.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def organizer(db):
    return UserFactory(email="organizer@example.org", is_staff=True, is_superuser=True)


@pytest.fixture
def campaign(db):
    """An open campaign with version 1 of its letter."""
    campaign = CampaignFactory()
    LetterVersionFactory(campaign=campaign)
    return campaign
