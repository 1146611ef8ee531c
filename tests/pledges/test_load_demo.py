from io import StringIO

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from pledges import letter_text
from pledges.models import Campaign, LetterVersion

pytestmark = pytest.mark.django_db

EMAIL = "organisateur@demo.deconv.fr"


def _load_demo() -> str:
    out = StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


def _snapshot() -> dict:
    User = get_user_model()
    return {
        "campaigns": list(Campaign.objects.values()),
        "versions": list(LetterVersion.objects.values()),
        "users": list(User.objects.values()),
        "emails": list(EmailAddress.objects.values()),
    }


def test_load_demo_prints_the_organizer_login(settings, monkeypatch):
    monkeypatch.delenv("DEMO_ORGANIZER_PASSWORD", raising=False)

    output = _load_demo()

    assert f"Demo organizer: {EMAIL} / deconv-demo-2026 — {settings.SITE_URL}/admin/" in output
    assert f"Demo campaign: {settings.SITE_URL}/campaigns/demo/" in output


def test_load_demo_twice_changes_nothing_and_prints_the_same(monkeypatch):
    monkeypatch.delenv("DEMO_ORGANIZER_PASSWORD", raising=False)
    first_output = _load_demo()
    first = _snapshot()

    second_output = _load_demo()

    assert _snapshot() == first
    assert second_output == first_output
    assert len(first["campaigns"]) == len(first["versions"]) == len(first["users"]) == 1


def test_demo_campaign_is_open_with_a_sound_letter():
    _load_demo()

    campaign = Campaign.objects.get(slug="demo")
    version = campaign.current_letter_version
    assert campaign.is_open_for_signing
    assert campaign.title == "Lettre d'intention de déconventionnement — campagne de démonstration"
    assert "séquestre" in campaign.description
    assert campaign.eligible_professions == ["physician"]
    assert campaign.eligible_specialties == []
    assert campaign.eligible_practice_modes == ["liberal", "mixed"]
    assert campaign.reference_population_kind == "liberal_gps"
    assert 170 <= (campaign.closes_at - campaign.opens_at).days <= 190
    assert version.number == 1
    assert "article R.162-54-9 du code de la sécurité sociale" in version.body
    assert "je ne souhaite plus être placé(e) sous le régime de la convention nationale" in version.body
    for name in letter_text.PLACEHOLDERS:
        assert "{" + name + "}" in version.body
    letter_text.validate_placeholders(version.body)


def test_demo_organizer_is_a_verified_superuser_who_can_log_in(client, monkeypatch):
    monkeypatch.delenv("DEMO_ORGANIZER_PASSWORD", raising=False)
    _load_demo()

    organizer = get_user_model().objects.get(email=EMAIL)
    assert organizer.is_staff and organizer.is_superuser
    assert EmailAddress.objects.filter(user=organizer, email=EMAIL, verified=True, primary=True).exists()

    response = client.post(reverse("account_login"), {"login": EMAIL, "password": "deconv-demo-2026"})

    assert response.status_code == 302
    assert response.url == "/"
    assert client.get(reverse("admin:index")).status_code == 200


def test_demo_password_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("DEMO_ORGANIZER_PASSWORD", "un-autre-mot-de-passe")

    output = _load_demo()

    assert f"{EMAIL} / un-autre-mot-de-passe" in output
    assert get_user_model().objects.get(email=EMAIL).check_password("un-autre-mot-de-passe")


def test_load_demo_never_resets_an_existing_password(monkeypatch):
    monkeypatch.delenv("DEMO_ORGANIZER_PASSWORD", raising=False)
    get_user_model().objects.create_user(EMAIL, "changed-by-the-organizer")

    output = _load_demo()

    organizer = get_user_model().objects.get(email=EMAIL)
    assert organizer.check_password("changed-by-the-organizer")
    assert "deconv-demo-2026" not in output
    assert "password changed since it was created; left as is" in output
