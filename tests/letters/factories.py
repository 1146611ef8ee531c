"""Factories for the released-letters tests: territories, released pledges, releases."""

import itertools
from datetime import datetime
from zoneinfo import ZoneInfo

import factory
from django.utils import timezone

from pledges.enums import PledgeStatus, TerritoryLevel
from pledges.models import Pledge, Release
from pledges.rpps import luhn_check_digit
from territories.models import Caisse, Department, Region
from tests.pledges.factories import CampaignFactory, UserFactory

PARIS = ZoneInfo("Europe/Paris")
# 2 March 2026, 10:00 in Paris: the date printed on the letters of the default release.
RELEASED_AT = datetime(2026, 3, 2, 10, 0, tzinfo=PARIS)

_serials = itertools.count(1)


def rpps_next() -> str:
    """A fresh valid RPPS number ("10" + 8 digits + the Luhn check digit)."""
    body = f"10{next(_serials):08d}"
    return body + luhn_check_digit(body)


class RegionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Region
        django_get_or_create = ("code",)

    code = "84"
    name = "Auvergne-Rhône-Alpes"


class DepartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Department
        django_get_or_create = ("code",)

    code = "01"
    name = "Ain"
    region = factory.SubFactory(RegionFactory)
    position = 1


class CaisseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Caisse
        django_get_or_create = ("code",)

    department = factory.SubFactory(DepartmentFactory)
    code = "cpam-01"
    kind = "cpam"
    name = "CPAM de l'Ain"
    address_line1 = "1 place de la Grenouillère"
    postal_code = "01000"
    city = "Bourg-en-Bresse"


class ReleaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Release

    campaign = factory.SubFactory(CampaignFactory)
    level = TerritoryLevel.DEPARTMENT
    code = "01"
    released_at = RELEASED_AT
    pledge_count = 0


class ReleasedPledgeFactory(factory.django.DjangoModelFactory):
    """A pledge released in `release`, signed on the campaign's current letter version."""

    class Meta:
        model = Pledge

    release = factory.SubFactory(ReleaseFactory)
    campaign = factory.LazyAttribute(lambda o: o.release.campaign)
    letter_version = factory.LazyAttribute(lambda o: o.campaign.current_letter_version)
    user = factory.SubFactory(UserFactory)
    status = PledgeStatus.RELEASED
    rpps = factory.LazyFunction(rpps_next)
    last_name = factory.Sequence(lambda n: f"Martin{n}")
    first_name = factory.Sequence(lambda n: f"Élise{n}")
    specialty = "general_practice"
    practice_mode = "liberal"
    sector = "1"
    department = factory.SubFactory(DepartmentFactory)
    caisse = factory.SubFactory(CaisseFactory)
    practice_address = "12 rue de la République"
    postal_code = "01000"
    city = "Bourg-en-Bresse"
    consented_pledge_at = factory.LazyFunction(timezone.now)
    consented_data_at = factory.LazyFunction(timezone.now)
