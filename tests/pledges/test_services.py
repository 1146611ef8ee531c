import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection
from django.utils import timezone

from pledges import letter_text, services
from pledges.enums import CampaignStatus, ReferencePopulationKind
from pledges.models import Campaign, LetterVersion
from pledges.services import campaign_create, letter_version_create
from tests.pledges.factories import CampaignFactory, LetterVersionFactory, UserFactory

# --- campaign_create -------------------------------------------------------------------------


@pytest.mark.django_db
def test_campaign_create_creates_version_one_of_the_letter():
    author = UserFactory()
    now = timezone.now()

    campaign = campaign_create(
        slug="pau",
        title="Pau",
        status=CampaignStatus.OPEN,
        opens_at=now,
        closes_at=now + timedelta(days=30),
        eligible_specialties=["general_practice"],
        reference_population_kind=ReferencePopulationKind.LIBERAL_GPS,
        letter_body="Je soussigné(e) {first_name} {last_name}.",
        created_by=author,
    )

    version = campaign.current_letter_version
    assert version.number == 1
    assert version.title == letter_text.DEFAULT_LETTER_TITLE
    assert version.body == "Je soussigné(e) {first_name} {last_name}."
    assert version.legal_basis == letter_text.DEFAULT_LEGAL_BASIS
    assert version.created_by == author
    assert campaign.eligible_professions == ["physician"]
    assert campaign.eligible_specialties == ["general_practice"]
    assert campaign.eligible_practice_modes == ["liberal", "mixed"]


@pytest.mark.django_db
def test_campaign_create_with_bad_dates_creates_nothing():
    now = timezone.now()

    with pytest.raises(ValidationError):
        campaign_create(slug="pau", title="Pau", opens_at=now, closes_at=now, letter_body="Texte.")

    assert not Campaign.objects.exists()


@pytest.mark.django_db
def test_campaign_create_with_a_bad_letter_creates_nothing():
    with pytest.raises(ValidationError):
        campaign_create(slug="pau", title="Pau", letter_body="Cher {nom},")

    assert not Campaign.objects.exists()


# --- letter_version_create: numbering and identical texts -------------------------------------


@pytest.mark.django_db
def test_versions_are_numbered_from_one_per_campaign():
    campaign, other = CampaignFactory(), CampaignFactory()

    numbers = [
        letter_version_create(campaign=campaign, title="T", body=f"Texte {i}.").number for i in range(3)
    ]
    other_version = letter_version_create(campaign=other, title="T", body="Texte 0.")

    assert numbers == [1, 2, 3]
    assert other_version.number == 1


@pytest.mark.django_db
def test_identical_text_returns_the_latest_version_and_creates_none():
    first = LetterVersionFactory(title="T", body="Texte.", legal_basis="Base.")

    again = letter_version_create(campaign=first.campaign, title="T", body="Texte.", legal_basis="Base.")

    assert again == first
    assert LetterVersion.objects.filter(campaign=first.campaign).count() == 1


@pytest.mark.django_db
def test_line_endings_and_trailing_spaces_do_not_make_a_new_version():
    # A browser posts a textarea with CRLF line endings.
    first = LetterVersionFactory(title="T", body="Madame,\n\nJe vous informe.")

    again = letter_version_create(
        campaign=first.campaign, title=" T ", body="Madame,  \r\n\r\nJe vous informe.\r\n"
    )

    assert again == first


@pytest.mark.django_db
def test_reverting_to_an_older_text_is_a_new_version():
    first = LetterVersionFactory(body="Un.")
    letter_version_create(campaign=first.campaign, title=first.title, body="Deux.")

    third = letter_version_create(campaign=first.campaign, title=first.title, body="Un.")

    assert third.number == 3
    assert third.content_sha256 == first.content_sha256


@pytest.mark.django_db
def test_changing_only_the_legal_basis_makes_a_new_version():
    first = LetterVersionFactory(legal_basis="Base A.")

    second = letter_version_create(
        campaign=first.campaign, title=first.title, body=first.body, legal_basis="Base B."
    )

    assert second.number == 2
    assert second.legal_basis == "Base B."


@pytest.mark.django_db
def test_legal_basis_none_keeps_the_latest_one():
    first = LetterVersionFactory(legal_basis="Base choisie.")

    second = letter_version_create(campaign=first.campaign, title=first.title, body="Nouveau texte.")

    assert second.number == 2
    assert second.legal_basis == "Base choisie."


@pytest.mark.django_db
def test_earlier_versions_are_left_untouched():
    first = LetterVersionFactory(body="Un.")
    before = LetterVersion.objects.values().get(pk=first.pk)

    letter_version_create(
        campaign=first.campaign, title="Autre titre", body="Deux.", legal_basis="Autre base."
    )

    assert LetterVersion.objects.values().get(pk=first.pk) == before


# --- letter_version_create: placeholders ----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("Cher {nom},", "letter_placeholders"),
        ("RPPS {rpps.__class__}", "letter_placeholders"),
        ("Le {date!r}", "letter_placeholders"),
        ("Le {date:>20}", "letter_placeholders"),
        ("Le {0}", "letter_placeholders"),
        ("Une accolade { seule", "letter_braces"),
    ],
)
def test_letter_with_unknown_placeholders_is_refused(body, code):
    campaign = CampaignFactory()

    with pytest.raises(ValidationError) as exc_info:
        letter_version_create(campaign=campaign, title="T", body=body)

    assert [e.code for e in exc_info.value.error_dict["body"]] == [code]
    assert not LetterVersion.objects.exists()


@pytest.mark.django_db
def test_every_documented_placeholder_and_doubled_braces_are_accepted():
    body = " ".join("{" + name + "}" for name in letter_text.PLACEHOLDERS) + " {{accolades}}"

    version = letter_version_create(campaign=CampaignFactory(), title="T", body=body)

    assert version.body.format(**dict.fromkeys(letter_text.PLACEHOLDERS, "x")).endswith("{accolades}")


# --- letter_version_create: concurrency (PostgreSQL) -----------------------------------------

WRITERS = 8


def _run_writers(campaign: Campaign):
    """WRITERS threads create a version each, as close to simultaneously as possible."""
    start = threading.Barrier(WRITERS, timeout=10)
    results, errors = [], []

    def write(i: int) -> None:
        try:
            start.wait()
            results.append(
                letter_version_create(campaign=campaign, title="T", body=f"Texte de l'éditeur {i}.")
            )
        except Exception as exc:  # collected and asserted on below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results, errors


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_editors_get_consecutive_numbers():
    campaign = CampaignFactory()

    results, errors = _run_writers(campaign)

    assert errors == []
    assert sorted(version.number for version in results) == list(range(1, WRITERS + 1))
    assert sorted(LetterVersion.objects.filter(campaign=campaign).values_list("number", flat=True)) == list(
        range(1, WRITERS + 1)
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_control_without_the_lock_concurrent_editors_collide(monkeypatch):
    """The race the lock prevents: every writer reads the same latest version, then inserts."""
    campaign = CampaignFactory()
    all_have_read = threading.Barrier(WRITERS, timeout=10)
    latest_version = services._latest_version

    def latest_then_wait(*, campaign):
        latest = latest_version(campaign=campaign)
        all_have_read.wait()
        return latest

    monkeypatch.setattr(services, "_campaign_lock", lambda *, campaign: None)
    monkeypatch.setattr(services, "_latest_version", latest_then_wait)

    results, errors = _run_writers(campaign)

    # The unique constraint is the last guard: one writer wins, the others fail loudly.
    assert [version.number for version in results] == [1]
    assert len(errors) == WRITERS - 1
    assert all(isinstance(error, IntegrityError) for error in errors)
