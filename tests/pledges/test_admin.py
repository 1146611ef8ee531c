from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from pledges.models import Campaign, LetterVersion
from tests.pledges.factories import CampaignFactory, LetterVersionFactory

pytestmark = pytest.mark.django_db


def _form_data(campaign: Campaign | None = None, **letter) -> dict:
    """What the campaign change form posts, with the letter fields given (or the current ones)."""
    now = timezone.localtime()
    data = {
        "title": "Campagne des Pyrénées-Atlantiques",
        "slug": "pyrenees-atlantiques",
        "status": "open",
        "description": "Seuil par département.",
        "opens_at_0": now.date().isoformat(),
        "opens_at_1": "08:00:00",
        "closes_at_0": (now + timedelta(days=90)).date().isoformat(),
        "closes_at_1": "18:00:00",
        "eligible_professions": ["physician"],
        "eligible_specialties": [],
        "eligible_practice_modes": ["liberal", "mixed"],
        "reference_population_kind": "liberal_gps",
        # Conditions and release (pledges.conditions): the model's defaults.
        "release_level": "department",
        "national_gate_min_total": "0",
        "confirmation_round": "on",
        "round_days": "14",
        "milestone_emails": "on",
        "purge_after_days": "183",
        "threshold_rules-TOTAL_FORMS": "0",
        "threshold_rules-INITIAL_FORMS": "0",
        "threshold_rules-MIN_NUM_FORMS": "0",
        "threshold_rules-MAX_NUM_FORMS": "1000",
        # The read-only inline still posts its management form.
        "letter_versions-TOTAL_FORMS": "0",
        "letter_versions-INITIAL_FORMS": "0",
        "letter_versions-MIN_NUM_FORMS": "0",
        "letter_versions-MAX_NUM_FORMS": "1000",
    }
    if campaign is not None:
        current = campaign.current_letter_version
        count = str(campaign.letter_versions.count())
        data.update(
            {
                "title": campaign.title,
                "slug": campaign.slug,
                "letter_title": current.title,
                "letter_body": current.body,
                "letter_legal_basis": current.legal_basis,
                "letter_versions-TOTAL_FORMS": count,
                "letter_versions-INITIAL_FORMS": count,
            }
        )
    data.update({f"letter_{key}": value for key, value in letter.items()})
    return data


@pytest.fixture
def admin_client(client, organizer):
    client.force_login(organizer)
    return client


def test_change_form_is_prefilled_with_the_current_letter(admin_client, campaign):
    LetterVersionFactory(campaign=campaign, body="Texte de la version 2.")

    response = admin_client.get(reverse("admin:pledges_campaign_change", args=[campaign.pk]))

    form = response.context["adminform"].form
    assert form["letter_body"].value() == "Texte de la version 2."
    assert form["letter_title"].value() == campaign.current_letter_version.title
    # The inline lists both versions without a single editable field.
    inline = response.context["inline_admin_formsets"][0]
    assert inline.formset.queryset.count() == 2
    assert not inline.has_add_permission
    assert not inline.has_change_permission
    assert not inline.has_delete_permission
    assert 'name="letter_versions-0-body"' not in response.content.decode()


def test_changing_the_letter_text_creates_version_two_and_leaves_one_untouched(
    admin_client, organizer, campaign
):
    first = campaign.current_letter_version
    first_row = LetterVersion.objects.values().get(pk=first.pk)

    response = admin_client.post(
        reverse("admin:pledges_campaign_change", args=[campaign.pk]),
        _form_data(campaign, body="Madame, Monsieur,\r\n\r\nNouveau texte pour {first_name} {last_name}."),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    versions = list(LetterVersion.objects.filter(campaign=campaign).order_by("number"))
    assert [version.number for version in versions] == [1, 2]
    assert versions[1].body == "Madame, Monsieur,\n\nNouveau texte pour {first_name} {last_name}."
    assert versions[1].created_by == organizer
    assert LetterVersion.objects.values().get(pk=first.pk) == first_row


def test_saving_the_form_unchanged_creates_no_version(admin_client, campaign):
    data = _form_data(campaign)
    # As a browser posts it: CRLF line endings.
    data["letter_body"] = data["letter_body"].replace("\n", "\r\n")

    response = admin_client.post(reverse("admin:pledges_campaign_change", args=[campaign.pk]), data)

    assert response.status_code == 302
    assert LetterVersion.objects.filter(campaign=campaign).count() == 1


def test_adding_a_campaign_creates_version_one(admin_client, organizer):
    response = admin_client.post(
        reverse("admin:pledges_campaign_add"),
        _form_data(title="Lettre", body="Je soussigné(e) {first_name} {last_name}.", legal_basis="Base."),
    )

    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign = Campaign.objects.get(slug="pyrenees-atlantiques")
    version = campaign.current_letter_version
    assert (version.number, version.title, version.legal_basis) == (1, "Lettre", "Base.")
    assert version.created_by == organizer
    assert campaign.eligible_practice_modes == ["liberal", "mixed"]
    assert campaign.reference_population_kind == "liberal_gps"


def test_unknown_placeholder_is_a_form_error_and_creates_no_version(admin_client, campaign):
    response = admin_client.post(
        reverse("admin:pledges_campaign_change", args=[campaign.pk]), _form_data(campaign, body="Cher {nom},")
    )

    assert response.status_code == 200
    assert (
        response.context["adminform"].form.errors["letter_body"][0].startswith("Champs à remplacer inconnus")
    )
    assert LetterVersion.objects.filter(campaign=campaign).count() == 1


def test_campaign_list_shows_the_current_version_number(admin_client, campaign):
    LetterVersionFactory(campaign=campaign)
    CampaignFactory(title="Sans lettre")

    response = admin_client.get(reverse("admin:pledges_campaign_changelist"))

    rows = {obj.title: obj._current_version_number for obj in response.context["cl"].result_list}
    assert rows == {campaign.title: 2, "Sans lettre": None}


def test_letter_version_admin_is_view_only(admin_client, campaign):
    version = campaign.current_letter_version

    view = admin_client.get(reverse("admin:pledges_letterversion_change", args=[version.pk]))
    post = admin_client.post(
        reverse("admin:pledges_letterversion_change", args=[version.pk]), {"body": "Forgé."}
    )
    add = admin_client.get(reverse("admin:pledges_letterversion_add"))
    delete = admin_client.post(
        reverse("admin:pledges_letterversion_delete", args=[version.pk]), {"post": "yes"}
    )

    assert view.status_code == 200
    assert version.body in view.content.decode()
    assert not view.context["has_change_permission"]
    assert post.status_code == 403
    assert add.status_code == 403
    assert delete.status_code == 403
    assert LetterVersion.objects.get(pk=version.pk).body == version.body


def test_admin_pages_are_in_french(admin_client, campaign):
    response = admin_client.get(reverse("admin:pledges_campaign_change", args=[campaign.pk]))

    content = response.content.decode()
    assert "texte de la lettre" in content.lower()
    assert "Éligibilité" in content
