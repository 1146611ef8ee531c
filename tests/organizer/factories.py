"""Factories for the organizer tests (local to this folder)."""

import factory

from pledges.enums import OrganizerRoleKind, PledgeStatus
from pledges.models import OrganizerRole, Pledge
from territories.models import Department
from tests.pledges.factories import UserFactory


class OrganizerRoleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = OrganizerRole

    user = factory.SubFactory(UserFactory)
    campaign = None
    kind = OrganizerRoleKind.NATIONAL
    territory_code = ""


class PledgeFactory(factory.django.DjangoModelFactory):
    """An active pledge; pass `campaign` (with a letter version) and `department` (a code or a row)."""

    class Meta:
        model = Pledge

    campaign = None
    letter_version = factory.LazyAttribute(lambda o: o.campaign.current_letter_version)
    status = PledgeStatus.ACTIVE
    rpps = factory.Sequence(lambda n: f"1{n:010d}")
    last_name = factory.Sequence(lambda n: f"Nom{n}")
    first_name = "Camille"
    specialty = "general_practice"
    practice_mode = "liberal"
    sector = "1"
    postal_code = "69001"
    city = "Lyon"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        department = kwargs.get("department")
        if isinstance(department, str):
            kwargs["department"] = Department.objects.get(code=department)
        return super()._create(model_class, *args, **kwargs)
