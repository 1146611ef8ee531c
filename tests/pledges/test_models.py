from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from pledges import letter_text
from pledges.enums import CampaignStatus
from pledges.models import Campaign, LetterVersion, LetterVersionImmutableError
from tests.pledges.factories import CampaignFactory, LetterVersionFactory, UserFactory

pytestmark = pytest.mark.django_db


# --- LetterVersion: immutable ---------------------------------------------------------------


def test_letter_version_save_on_existing_row_raises():
    version = LetterVersionFactory(body="Texte initial.")
    version.body = "Texte modifié."

    with pytest.raises(LetterVersionImmutableError, match="immutable"):
        version.save()

    assert LetterVersion.objects.get(pk=version.pk).body == "Texte initial."


def test_letter_version_loaded_from_database_cannot_be_saved():
    version = LetterVersionFactory()

    with pytest.raises(LetterVersionImmutableError):
        LetterVersion.objects.get(pk=version.pk).save()


def test_letter_version_built_with_an_existing_pk_cannot_overwrite_the_row():
    version = LetterVersionFactory(body="Texte initial.")
    impostor = LetterVersion(
        pk=version.pk, campaign=version.campaign, number=version.number, title="x", body="Texte forgé."
    )

    with pytest.raises(IntegrityError), transaction.atomic():
        impostor.save()

    assert LetterVersion.objects.get(pk=version.pk).body == "Texte initial."


def test_letter_version_delete_raises():
    version = LetterVersionFactory()

    with pytest.raises(LetterVersionImmutableError, match="cannot be deleted"):
        version.delete()

    assert LetterVersion.objects.filter(pk=version.pk).exists()


def test_campaign_with_a_letter_cannot_be_deleted():
    version = LetterVersionFactory()

    with pytest.raises(ProtectedError):
        version.campaign.delete()


def test_content_sha256_is_computed_from_the_text_on_creation():
    version = LetterVersionFactory(title="Titre", body="Corps {rpps}.", legal_basis="Base.")

    assert version.content_sha256 == letter_text.content_sha256(
        title="Titre", body="Corps {rpps}.", legal_basis="Base."
    )
    assert len(version.content_sha256) == 64


def test_content_sha256_given_by_the_caller_is_ignored():
    campaign = CampaignFactory()
    version = LetterVersion(campaign=campaign, number=1, title="T", body="B", legal_basis="L")
    version.content_sha256 = "0" * 64
    version.save()

    assert version.content_sha256 == letter_text.content_sha256(title="T", body="B", legal_basis="L")


@pytest.mark.postgres
def test_queryset_update_is_refused_by_the_database_trigger():
    version = LetterVersionFactory(body="Texte initial.")

    with pytest.raises(IntegrityError, match="immutable"), transaction.atomic():
        LetterVersion.objects.filter(pk=version.pk).update(body="Texte modifié.")

    assert LetterVersion.objects.get(pk=version.pk).body == "Texte initial."


@pytest.mark.postgres
def test_queryset_delete_is_refused_by_the_database_trigger():
    version = LetterVersionFactory()

    with pytest.raises(IntegrityError, match="immutable"), transaction.atomic():
        LetterVersion.objects.filter(pk=version.pk).delete()

    assert LetterVersion.objects.filter(pk=version.pk).exists()


@pytest.mark.postgres
def test_trigger_refuses_reassigning_the_author():
    version = LetterVersionFactory(created_by=UserFactory())

    with pytest.raises(IntegrityError), transaction.atomic():
        LetterVersion.objects.filter(pk=version.pk).update(created_by=UserFactory())


def test_deleting_the_author_keeps_the_version_without_author():
    # ON DELETE SET NULL is the one update the trigger lets through.
    author = UserFactory()
    version = LetterVersionFactory(created_by=author)
    sha = version.content_sha256

    author.delete()

    version = LetterVersion.objects.get(pk=version.pk)
    assert version.created_by is None
    assert version.content_sha256 == sha


def test_version_numbers_are_unique_per_campaign():
    version = LetterVersionFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        LetterVersion(campaign=version.campaign, number=version.number, title="T", body="Autre.").save()


# --- Campaign --------------------------------------------------------------------------------


def test_campaign_closing_before_opening_is_refused_by_the_database():
    now = timezone.now()

    with pytest.raises(IntegrityError), transaction.atomic():
        CampaignFactory(opens_at=now, closes_at=now)


def test_campaign_closing_before_opening_fails_validation():
    now = timezone.now()
    campaign = CampaignFactory.build(opens_at=now, closes_at=now - timedelta(days=1))

    with pytest.raises(ValidationError) as exc_info:
        campaign.full_clean()

    assert [e.code for e in exc_info.value.error_dict["__all__"]] == ["closes_before_opens"]


def test_campaign_dates_are_optional():
    campaign = CampaignFactory(opens_at=None, closes_at=None)

    assert campaign.pk


def test_campaign_unknown_status_is_refused_by_the_database():
    with pytest.raises(IntegrityError), transaction.atomic():
        CampaignFactory(status="published")


def test_campaign_slug_is_unique():
    CampaignFactory(slug="pau")

    with pytest.raises(IntegrityError), transaction.atomic():
        CampaignFactory(slug="pau")


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("eligible_specialties", ["cardiology", "astrology"], "unknown_values"),
        ("eligible_specialties", ["cardiology", "cardiology"], "duplicate_values"),
        ("eligible_professions", "physician", "not_a_list"),
        ("eligible_practice_modes", ["salaried"], "unknown_values"),
    ],
)
def test_campaign_eligibility_lists_take_known_values_only(field, value, code):
    campaign = CampaignFactory.build(**{field: value})

    with pytest.raises(ValidationError) as exc_info:
        campaign.full_clean()

    assert [e.code for e in exc_info.value.error_dict[field]] == [code]


def test_campaign_defaults_accept_liberal_and_mixed_physicians_of_every_specialty():
    campaign = Campaign.objects.create(slug="defaults", title="Défauts")

    assert campaign.status == CampaignStatus.DRAFT
    assert campaign.eligible_professions == ["physician"]
    assert campaign.eligible_specialties == []
    assert campaign.eligible_practice_modes == ["liberal", "mixed"]


def test_current_letter_version_is_the_highest_number():
    campaign = CampaignFactory()
    assert campaign.current_letter_version is None

    LetterVersionFactory(campaign=campaign, body="Un.")
    second = LetterVersionFactory(campaign=campaign, body="Deux.")

    assert campaign.current_letter_version == second
    assert second.number == 2


@pytest.mark.parametrize(
    ("status", "opens_in_days", "closes_in_days", "expected"),
    [
        (CampaignStatus.OPEN, -1, 30, True),
        (CampaignStatus.OPEN, None, None, True),
        (CampaignStatus.OPEN, 1, 30, False),
        (CampaignStatus.OPEN, -30, -1, False),
        (CampaignStatus.PAUSED, -1, 30, False),
        (CampaignStatus.DRAFT, -1, 30, False),
        (CampaignStatus.CLOSED, -1, 30, False),
    ],
)
def test_is_open_for_signing(status, opens_in_days, closes_in_days, expected):
    now = timezone.now()
    campaign = CampaignFactory.build(
        status=status,
        opens_at=None if opens_in_days is None else now + timedelta(days=opens_in_days),
        closes_at=None if closes_in_days is None else now + timedelta(days=closes_in_days),
    )

    assert campaign.is_open_for_signing is expected


def test_str():
    version = LetterVersionFactory(campaign=CampaignFactory(title="Pyrénées-Atlantiques 2025"))

    assert str(version.campaign) == "Pyrénées-Atlantiques 2025"
    assert str(version) == "Pyrénées-Atlantiques 2025 — v1"
