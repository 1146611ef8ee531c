"""Conditions as data: targets, overrides, gates, explanations, the public fields and the audit."""

from datetime import datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from deconv.models import AuditEntry
from pledges.conditions import (
    GATE_NATION,
    GATE_NATIONAL_TOTAL,
    GATE_REGION,
    campaign_conditions,
    territory_explain,
)
from pledges.models import Crossing, ThresholdRule
from pledges.rounds import conditions_evaluate
from pledges.selectors import campaign_public_conditions
from territories.models import ReferencePopulation
from tests.pledges import conditions_support
from tests.pledges.conditions_support import campaign_with_letter, count, rule, sign
from tests.pledges.factories import UserFactory

geo = conditions_support.geo

pytestmark = pytest.mark.django_db


def explain(campaign, level="department", code="01"):
    return territory_explain(campaign=campaign, level=level, code=code)


def english(explanation) -> str:
    with translation.override("en"):
        return explanation.text


# --- Rule shapes ---------------------------------------------------------------------------------


def test_count_only_rule_targets_its_minimum_count(geo):
    campaign = campaign_with_letter()
    rule(campaign, "department", count=10)
    sign(campaign, geo["01"], 6)
    count()

    ain = explain(campaign)

    assert (ain.target, ain.count, ain.missing, ain.met, ain.blocking_gate, ain.status) == (
        10,
        6,
        4,
        False,
        None,
        "collecting",
    )
    assert english(ain) == "10 signatures needed, 6 so far: 4 missing."


def test_share_only_rule_is_the_rounded_up_share_of_the_latest_population(geo):
    campaign = campaign_with_letter()
    rule(campaign, "department", share="7.5")

    conditions = campaign_conditions(campaign=campaign)

    # Ain: 7.5 % of 200 (2018, not the 150 of 2015); Allier 7.5 % of 100 = 7.5 -> 8; Ardèche 3.75 -> 4.
    assert conditions[("department", "01")].target == 15
    assert conditions[("department", "03")].target == 8
    assert conditions[("department", "07")].target == 4
    assert conditions[("department", "75")].target == 75


def test_count_and_share_rule_takes_the_larger_of_the_two(geo):
    campaign = campaign_with_letter()
    rule(campaign, "department", count=10, share=10)

    conditions = campaign_conditions(campaign=campaign)

    assert conditions[("department", "01")].target == 20  # 10 % of 200
    assert conditions[("department", "07")].target == 10  # 10 % of 50 is 5: the count wins


def test_a_territory_override_beats_the_level_default(geo):
    campaign = campaign_with_letter()
    rule(campaign, "department", count=10)
    rule(campaign, "department", "03", count=3)
    sign(campaign, geo["03"], 3)
    sign(campaign, geo["01"], 3)
    count()

    conditions = campaign_conditions(campaign=campaign)

    assert conditions[("department", "03")].target == 3
    assert conditions[("department", "03")].met
    assert conditions[("department", "01")].target == 10
    assert not conditions[("department", "01")].met


def test_a_level_without_rule_has_no_condition_and_no_gate(geo):
    campaign = campaign_with_letter()
    sign(campaign, geo["01"], 1)
    count()

    conditions = campaign_conditions(campaign=campaign)

    ain, allier, region = (
        conditions[("department", "01")],
        conditions[("department", "03")],
        conditions[("region", "84")],
    )
    # Nothing to reach but someone to release: one signature is enough.
    assert (ain.target, ain.met, ain.blocking_gate, ain.releasable) == (None, True, None, True)
    assert (allier.target, allier.met) == (None, False)
    assert english(allier) == "No threshold of its own: one signature is enough."
    assert (region.target, region.status) == (None, None)


def test_regions_and_the_nation_add_up_their_departments_populations(geo):
    campaign = campaign_with_letter()
    rule(campaign, "region", share=10)
    rule(campaign, "nation", share=10)

    conditions = campaign_conditions(campaign=campaign)

    assert conditions[("region", "84")].target == 35  # 10 % of 200 + 100 + 50
    assert conditions[("region", "11")].target == 100
    assert conditions[("nation", "FR")].target == 135


def test_a_share_of_a_missing_population_cannot_be_met(geo):
    campaign = campaign_with_letter()
    rule(campaign, "department", share=1)
    ReferencePopulation.objects.filter(department=geo["75"]).delete()
    sign(campaign, geo["75"], 50)
    count()

    paris = explain(campaign, code="75")

    assert (paris.target, paris.population_missing, paris.met) == (None, True, False)
    assert "reference population" in english(paris)


def test_small_counts_stay_hidden_in_the_text_and_the_public_fields(geo):
    campaign = campaign_with_letter()
    rule(campaign, "department", count=10)
    sign(campaign, geo["01"], 3)
    count()

    assert english(explain(campaign)) == "10 signatures needed, fewer than 5 so far."
    public = campaign_public_conditions(campaign=campaign)[("department", "01")]
    # target - missing would give the count away.
    assert (public["target"], public["missing"]) == (10, None)


# --- Gates ---------------------------------------------------------------------------------------


def test_a_region_rule_asks_k_of_its_departments(geo):
    campaign = campaign_with_letter(release_level="region")
    rule(campaign, "department", count=5)
    rule(campaign, "region", k=2)
    sign(campaign, geo["01"], 5)
    sign(campaign, geo["03"], 4)
    count()

    region = explain(campaign, level="region", code="84")
    assert (region.departments_required, region.departments_met, region.met) == (2, 1, False)
    assert english(region) == "2 of its departments must reach their threshold, 1 so far."

    sign(campaign, geo["03"], 1)
    count()

    region = explain(campaign, level="region", code="84")
    assert (region.departments_met, region.met, region.releasable) == (2, True, True)


def test_a_region_rule_holds_its_departments_back_until_it_is_met(geo):
    campaign = campaign_with_letter()
    rule(campaign, "department", count=5)
    rule(campaign, "region", k=2)
    sign(campaign, geo["01"], 5)
    count()

    ain = explain(campaign)
    assert (ain.met, ain.blocking_gate, ain.releasable) == (True, GATE_REGION, False)
    assert english(ain).startswith("Threshold reached, but the regional rule holds the release")
    assert conditions_evaluate() == 0

    sign(campaign, geo["03"], 5)
    count()

    assert explain(campaign).blocking_gate is None
    assert conditions_evaluate() == 2
    assert set(Crossing.objects.values_list("code", flat=True)) == {"01", "03"}


def test_the_national_gate_holds_every_release_until_the_national_total(geo):
    campaign = campaign_with_letter(national_gate_min_total=3000)
    rule(campaign, "department", count=5)
    sign(campaign, geo["01"], 5)
    count()

    ain = explain(campaign)
    assert (ain.met, ain.blocking_gate) == (True, GATE_NATIONAL_TOTAL)
    assert english(ain) == (
        "Threshold reached, but the national rule holds the release: 3,000 signatures are needed across the country."
    )
    with translation.override("fr"):
        assert "3\N{NO-BREAK SPACE}000" in ain.text  # French groups digits with a no-break space
    assert conditions_evaluate() == 0

    campaign.national_gate_min_total = 12
    campaign.save()
    sign(campaign, geo["75"], 7)
    count()

    assert conditions_evaluate() == 2
    assert set(Crossing.objects.values_list("code", flat=True)) == {"01", "75"}


def test_a_nation_rule_is_a_gate_for_departments(geo):
    campaign = campaign_with_letter()
    rule(campaign, "department", count=5)
    rule(campaign, "nation", count=20)
    sign(campaign, geo["01"], 5)
    count()

    assert explain(campaign).blocking_gate == GATE_NATION
    assert conditions_evaluate() == 0


# --- Cost ----------------------------------------------------------------------------------------


def test_campaign_conditions_costs_six_queries_whatever_the_rules_and_states(geo, django_assert_num_queries):
    campaign = campaign_with_letter()
    rule(campaign, "department", count=5)
    rule(campaign, "department", "03", count=2)
    rule(campaign, "region", k=1)
    sign(campaign, geo["01"], 5)
    sign(campaign, geo["03"], 2)
    count()
    conditions_evaluate()

    with django_assert_num_queries(6):
        conditions = campaign_conditions(campaign=campaign)

    assert len(conditions) == 4 + 2 + 1


def test_conditions_evaluate_is_cheap_when_nothing_changed(geo, django_assert_max_num_queries):
    campaign = campaign_with_letter()
    rule(campaign, "department", count=5)
    sign(campaign, geo["01"], 5)
    count()
    assert conditions_evaluate() == 1
    conditions_evaluate()  # the crossing changed a territory state: evaluated once more

    # The campaign list and four aggregate queries: nothing evaluated, nothing locked.
    with django_assert_max_num_queries(5):
        assert conditions_evaluate() == 0


# --- Public API and page -------------------------------------------------------------------------


def test_api_gives_each_territory_its_target_missing_status_and_dates(client, geo):
    campaign = campaign_with_letter(round_days=10)
    rule(campaign, "department", count=5)
    sign(campaign, geo["01"], 6)
    sign(campaign, geo["03"], 3)
    count()
    conditions_evaluate()

    body = client.get(reverse("pledges:api_campaign_detail", kwargs={"slug": campaign.slug})).json()

    territories = {(entry["level"], entry["code"]): entry for entry in body["territories"]}
    ain = territories[("department", "01")]
    assert (ain["pledges"], ain["target"], ain["missing"], ain["status"], ain["released_at"]) == (
        6,
        5,
        0,
        "confirming",
        None,
    )
    ends_at = datetime.fromisoformat(ain["round_ends_at"])
    assert timedelta(days=10) - timedelta(minutes=1) < ends_at - timezone.now() <= timedelta(days=10)
    allier = territories[("department", "03")]
    assert (allier["pledges"], allier["target"], allier["missing"], allier["status"]) == (
        None,
        5,
        None,
        "collecting",
    )
    assert (
        territories[("department", "75")]["missing"],
        territories[("department", "75")]["round_ends_at"],
    ) == (
        5,
        None,
    )
    region = territories[("region", "84")]
    assert (region["target"], region["missing"], region["status"], region["round_ends_at"]) == (
        None,
        None,
        None,
        None,
    )


def test_campaign_page_shows_targets_condition_lines_and_status_badges(client, geo):
    campaign = campaign_with_letter(national_gate_min_total=10)
    rule(campaign, "department", count=5)
    rule(campaign, "department", "03", count=118)
    sign(campaign, geo["03"], 64)
    sign(campaign, geo["07"], 2)
    count()

    html = client.get(
        reverse("pledges:campaign_detail", kwargs={"slug": campaign.slug}), HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()

    assert '<th scope="col" class="territory-table__count">Target</th>' in html
    assert "Allier: 118 signatures needed, 64 so far" in html
    assert "118 signatures needed, 64 so far: 54 missing." in html
    # Ardèche's 2 signatures are not published, in the table nor in its line.
    assert "Ardèche: 5 signatures needed, fewer than 5 so far" in html
    assert "National rule: no letter is released anywhere before 10 signatures across the country." in html
    assert 'class="badge badge--collecting"' in html
    assert "Ain:" not in html  # no signature there: no line


# --- Organizers' changes are audited -------------------------------------------------------------


def _campaign_form(campaign, rules: list[dict], **fields) -> dict:
    current = campaign.current_letter_version
    data = {
        "title": campaign.title,
        "slug": campaign.slug,
        "status": campaign.status,
        "description": campaign.description,
        "opens_at_0": timezone.localtime(campaign.opens_at).date().isoformat(),
        "opens_at_1": timezone.localtime(campaign.opens_at).time().isoformat(),
        "closes_at_0": timezone.localtime(campaign.closes_at).date().isoformat(),
        "closes_at_1": timezone.localtime(campaign.closes_at).time().isoformat(),
        "eligible_professions": ["physician"],
        "eligible_practice_modes": ["liberal", "mixed"],
        "reference_population_kind": "liberal_physicians",
        "release_level": "department",
        "national_gate_min_total": "0",
        "confirmation_round": "on",
        "round_days": "14",
        "milestone_emails": "on",
        "purge_after_days": "183",
        "letter_title": current.title,
        "letter_body": current.body,
        "letter_legal_basis": current.legal_basis,
        "letter_versions-TOTAL_FORMS": "1",
        "letter_versions-INITIAL_FORMS": "1",
        "letter_versions-MIN_NUM_FORMS": "0",
        "letter_versions-MAX_NUM_FORMS": "1000",
        "letter_versions-0-id": str(current.pk),
        "letter_versions-0-campaign": str(campaign.pk),
        "threshold_rules-TOTAL_FORMS": str(len(rules)),
        "threshold_rules-INITIAL_FORMS": str(sum(1 for r in rules if r.get("id"))),
        "threshold_rules-MIN_NUM_FORMS": "0",
        "threshold_rules-MAX_NUM_FORMS": "1000",
        **fields,
    }
    for index, values in enumerate(rules):
        for name, value in values.items():
            data[f"threshold_rules-{index}-{name}"] = value
        data[f"threshold_rules-{index}-campaign"] = str(campaign.pk)
    return data


def test_every_rule_change_in_the_admin_writes_an_audit_entry_with_before_and_after(client, geo):
    organizer = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(organizer)
    # Whole seconds: the form posts the dates back unchanged, so only the rules change.
    now = timezone.now().replace(microsecond=0)
    campaign = campaign_with_letter(opens_at=now - timedelta(days=1), closes_at=now + timedelta(days=90))
    url = reverse("admin:pledges_campaign_change", args=[campaign.pk])
    new_rule = {"level": "department", "territory_code": "", "min_count": "10", "min_share_percent": "5"}

    response = client.post(url, _campaign_form(campaign, [new_rule]))
    assert response.status_code == 302, response.context["adminform"].form.errors
    created = ThresholdRule.objects.get(campaign=campaign)

    response = client.post(
        url,
        _campaign_form(
            campaign, [{**new_rule, "id": str(created.pk), "min_count": "12"}], national_gate_min_total="500"
        ),
    )
    assert response.status_code == 302

    response = client.post(
        url,
        _campaign_form(
            campaign,
            [{**new_rule, "id": str(created.pk), "min_count": "12", "DELETE": "on"}],
            national_gate_min_total="500",
        ),
    )
    assert response.status_code == 302
    assert not ThresholdRule.objects.filter(campaign=campaign).exists()

    entries = list(AuditEntry.objects.filter(campaign_id=campaign.pk).order_by("pk"))
    assert [(entry.action, entry.actor) for entry in entries] == [
        ("threshold_rule.create", organizer),
        ("campaign.conditions_update", organizer),
        ("threshold_rule.update", organizer),
        ("threshold_rule.delete", organizer),
    ]
    snapshot = {
        "level": "department",
        "territory_code": "",
        "min_count": 10,
        "min_share_percent": "5.00",
        "min_departments_met": None,
    }
    assert entries[0].details == {"level": "department", "before": None, "after": snapshot}
    assert entries[2].details == {
        "level": "department",
        "before": snapshot,
        "after": {**snapshot, "min_count": 12},
    }
    assert entries[1].details == {
        "before": {"national_gate_min_total": 0},
        "after": {"national_gate_min_total": 500},
    }
    assert entries[3].details == {
        "level": "department",
        "before": {**snapshot, "min_count": 12},
        "after": None,
    }


def test_the_rule_form_refuses_unknown_codes_and_departments_counts_outside_regions(client, geo):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    campaign = campaign_with_letter()

    response = client.post(
        reverse("admin:pledges_campaign_change", args=[campaign.pk]),
        _campaign_form(
            campaign,
            [
                {"level": "department", "territory_code": "99", "min_count": "1", "min_share_percent": "0"},
                {
                    "level": "department",
                    "territory_code": "",
                    "min_count": "1",
                    "min_share_percent": "0",
                    "min_departments_met": "2",
                },
            ],
        ),
    )

    assert response.status_code == 200
    errors = [form.errors for form in response.context["inline_admin_formsets"][1].formset.forms]
    assert "territory_code" in errors[0]
    assert "min_departments_met" in errors[1]
    assert not ThresholdRule.objects.exists()
    assert not AuditEntry.objects.exists()
