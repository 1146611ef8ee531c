"""Factories for pledges tests (tests/factories.py is shared; these stay local to the app)."""

from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from pledges.enums import CampaignStatus
from pledges.models import Campaign, LetterVersion
from pledges.services import letter_version_create


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.org")
    password = factory.django.Password("pw-for-tests")


class CampaignFactory(factory.django.DjangoModelFactory):
    """A campaign open for signing now, without a letter (see LetterVersionFactory)."""

    class Meta:
        model = Campaign

    slug = factory.Sequence(lambda n: f"campaign-{n}")
    title = factory.Sequence(lambda n: f"Campagne {n}")
    description = "Une campagne de test."
    status = CampaignStatus.OPEN
    opens_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))
    closes_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=90))


class LetterVersionFactory(factory.django.DjangoModelFactory):
    """Goes through letter_version_create, as all application code does, so numbering is real."""

    class Meta:
        model = LetterVersion

    campaign = factory.SubFactory(CampaignFactory)
    title = "Lettre de déconventionnement"
    body = factory.Sequence(
        lambda n: f"Je soussigné(e) {{first_name}} {{last_name}}, RPPS {{rpps}}. Texte {n}."
    )

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        return letter_version_create(**kwargs)
