"""Fixtures and helpers for the conditions, rounds and lifecycle tests.

A small map (two regions, four departments with reference populations), signers created as the
signing service leaves them (pledge row + PLEDGED event, or through pledge_create), and counts
brought up to date with counts_update at lag 0.
"""

import itertools

import pytest
from django.db import transaction
from django.utils import timezone

from deconv.models import OutgoingEmail
from pledges.counting import counts_update
from pledges.enums import PledgeEventKind, ReferencePopulationKind
from pledges.events import pledge_event_record
from pledges.models import Campaign, CounterState, Pledge, ThresholdRule
from territories.models import Department, ReferencePopulation, Region
from tests.pledges.factories import CampaignFactory, LetterVersionFactory, UserFactory

_rpps = itertools.count(10_000_000_000)

KIND = ReferencePopulationKind.LIBERAL_PHYSICIANS


@pytest.fixture
def geo(db):
    """ARA (84): Ain 01 (200), Allier 03 (100), Ardèche 07 (50); IDF (11): Paris 75 (1000).

    Ain also has an older figure (2015: 150) that must not be used.
    """
    ara = Region.objects.create(code="84", name="Auvergne-Rhône-Alpes")
    idf = Region.objects.create(code="11", name="Île-de-France")
    departments = {
        "01": Department.objects.create(code="01", name="Ain", region=ara, position=1),
        "03": Department.objects.create(code="03", name="Allier", region=ara, position=3),
        "07": Department.objects.create(code="07", name="Ardèche", region=ara, position=7),
        "75": Department.objects.create(code="75", name="Paris", region=idf, position=76),
    }
    for code, count in {"01": 200, "03": 100, "07": 50, "75": 1000}.items():
        ReferencePopulation.objects.create(
            department=departments[code], kind=KIND, year=2018, count=count, source="test"
        )
    ReferencePopulation.objects.create(
        department=departments["01"], kind=KIND, year=2015, count=150, source="test"
    )
    CounterState.objects.update_or_create(pk=1, defaults={"lag_seconds": 0})
    return departments


def campaign_with_letter(**fields) -> Campaign:
    campaign = CampaignFactory(**fields)
    LetterVersionFactory(campaign=campaign)
    return campaign


def rule(campaign: Campaign, level: str, code: str = "", *, count: int = 0, share=0, k=None) -> ThresholdRule:
    return ThresholdRule.objects.create(
        campaign=campaign,
        level=level,
        territory_code=code,
        min_count=count,
        min_share_percent=share,
        min_departments_met=k,
    )


def sign(campaign: Campaign, department: Department, n: int = 1, **fields) -> list[Pledge]:
    """n signers with an account each, as pledge_create leaves them (row + PLEDGED event)."""
    version = campaign.letter_versions.order_by("-number").first()
    pledges = []
    for _ in range(n):
        with transaction.atomic():
            pledge = Pledge.objects.create(
                campaign=campaign,
                letter_version=version,
                user=UserFactory(),
                department=department,
                rpps=fields.get("rpps") or str(next(_rpps)),
                last_name="Martin",
                first_name="Élise",
                practice_address="1 rue de la Paix",
                postal_code="01000",
                city="Bourg",
                consented_pledge_at=timezone.now(),
                consented_data_at=timezone.now(),
                **{name: value for name, value in fields.items() if name != "rpps"},
            )
            pledge_event_record(pledge=pledge, kind=PledgeEventKind.PLEDGED)
        pledges.append(pledge)
    return pledges


def count() -> None:
    """Publish every event committed so far (lag 0)."""
    assert not counts_update().skipped


def emails(kind: str) -> list[OutgoingEmail]:
    return list(OutgoingEmail.objects.filter(kind=kind).order_by("pk"))


def dedupe_keys(kind: str) -> set[str]:
    return set(OutgoingEmail.objects.filter(kind=kind).values_list("dedupe_key", flat=True))
