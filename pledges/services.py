from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from pledges import letter_text
from pledges.enums import CampaignStatus, ReferencePopulationKind
from pledges.models import Campaign, LetterVersion, default_practice_modes, default_professions


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
