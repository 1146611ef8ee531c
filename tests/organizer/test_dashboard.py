"""The dashboard's figures: scope, funnel, patients, table sorting and filtering, query counts."""

from datetime import date, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from pledges.access import OrganizerScope
from pledges.enums import PledgeStatus, RoundAnswer
from pledges.models import ConfirmationRound, Crossing, Letter, Release, RoundResponse
from pledges.selectors_organizer import campaign_dashboard, territory_rows_filter, territory_rows_sort
from tests.organizer.conftest import LEAKY_NAME
from tests.organizer.factories import PledgeFactory

pytestmark = pytest.mark.django_db

NATIONAL = OrganizerScope(national=True, department_codes=frozenset(), can_act=True)


def dashboard_url(campaign, **params) -> str:
    url = reverse("pledges:organizer_dashboard", kwargs={"slug": campaign.slug})
    if params:
        url += "?" + urlencode(params)
    return url


def row_html(body: str, code: str) -> str:
    start = body.index(f'id="department-{code}"')
    return body[start : body.index("</tr>", start)]


def test_a_departmental_delegate_sees_nothing_of_another_department(client, campaign, pledges, delegate_69):
    client.force_login(delegate_69)
    body = client.get(dashboard_url(campaign)).content.decode()
    assert LEAKY_NAME not in body
    assert 'id="department-69"' in body
    assert 'id="department-75"' not in body
    assert 'id="department-01"' not in body
    # The funnel's first figure is Rhône's 7, not the campaign's 11.
    assert '<span class="funnel__value">7</span>' in body
    assert '<span class="funnel__value">11</span>' not in body
    assert "Paris" not in body


def test_a_regional_delegate_sees_the_departments_of_the_region(client, campaign, pledges, regional_ara):
    client.force_login(regional_ara)
    body = client.get(dashboard_url(campaign)).content.decode()
    assert 'id="department-69"' in body
    assert 'id="department-01"' in body
    assert 'id="department-38"' in body  # Isère: no pledge, still listed
    assert 'id="department-75"' not in body
    assert body.count('id="department-') == 12
    assert '<span class="funnel__value">8</span>' in body


def test_a_national_organizer_sees_every_department(client, campaign, pledges, national):
    client.force_login(national)
    body = client.get(dashboard_url(campaign)).content.decode()
    assert body.count('id="department-') == 101
    assert '<span class="funnel__value">11</span>' in body
    assert 'id="department-2A"' in body and 'id="department-976"' in body


def test_the_table_row_shows_count_population_share_target_missing_and_projection(campaign, pledges):
    figures = campaign_dashboard(campaign=campaign, scope=NATIONAL, today=date(2026, 3, 1))
    rhone = next(r for r in figures.rows if r.code == "69")
    assert rhone.count == 7
    assert rhone.target == 10
    assert rhone.missing == 3
    assert rhone.population and rhone.population > 0
    assert rhone.share == (Decimal(700) / rhone.population).quantize(Decimal("0.1"))
    # 7 in the last 14 days: 0.5 a day, 3 missing -> 6 days.
    assert rhone.recent == 7
    assert rhone.projection == date(2026, 3, 7)
    assert rhone.progress_value == 70
    isere = next(r for r in figures.rows if r.code == "38")
    assert (isere.count, isere.missing, isere.projection) == (0, 10, None)


def test_withdrawn_and_invalidated_pledges_do_not_count(campaign, pledges):
    PledgeFactory(campaign=campaign, department="69", status=PledgeStatus.WITHDRAWN, rpps="", last_name="")
    PledgeFactory(campaign=campaign, department="69", status=PledgeStatus.INVALIDATED)
    figures = campaign_dashboard(campaign=campaign, scope=NATIONAL)
    assert figures.totals["pledged"] == 11
    assert figures.totals["withdrawn"] == 1
    assert figures.totals["invalidated"] == 1
    assert next(r for r in figures.rows if r.code == "69").count == 7


def test_the_funnel_counts_confirmed_released_sent_and_effective(campaign, pledges):
    today = date(2026, 3, 31)
    now = timezone.now()
    crossing = Crossing.objects.create(
        campaign=campaign,
        level="department",
        code="69",
        round_number=1,
        crossed_at=now,
        count_at_crossing=7,
        target_at_crossing=10,
        national_count_at_crossing=11,
    )
    round_ = ConfirmationRound.objects.create(
        crossing=crossing, opened_at=now, ends_at=now + timedelta(days=14)
    )
    release = Release.objects.create(
        campaign=campaign, level="department", code="69", released_at=now, pledge_count=4
    )
    rhone = pledges["69"]
    for pledge in rhone[:5]:
        RoundResponse.objects.create(
            round=round_, pledge=pledge, answer=RoundAnswer.CONFIRMED, answered_at=now
        )
    RoundResponse.objects.create(round=round_, pledge=rhone[5], answer=RoundAnswer.DECLINED, answered_at=now)
    acknowledged = [
        None,
        None,
        date(2026, 2, 28),
        date(2026, 3, 1),
        None,
    ]  # effective 28/03 (yes), 01/04 (no)
    # rhone[6] is released without answering a round: released counts as confirmed.
    for pledge, ack in zip([*rhone[:4], rhone[6]], acknowledged, strict=True):
        pledge.status = PledgeStatus.RELEASED
        pledge.save()
        Letter.objects.create(
            pledge=pledge,
            release=release,
            file_name=f"{pledge.pk}.pdf",
            sha256="0" * 64,
            inputs_sha256="0" * 64,
            size_bytes=1,
            generated_at=now,
            sent_on=None if pledge in (rhone[0], rhone[6]) else date(2026, 2, 20),
            acknowledged_on=ack,
        )
    figures = campaign_dashboard(campaign=campaign, scope=NATIONAL, today=today)
    assert figures.totals["pledged"] == 11
    assert figures.totals["active"] == 7 - 5 + 4  # 5 released in Rhône, 4 active left there
    assert figures.totals["confirmed"] == 6  # 5 who answered "confirmed" + 1 released without a round
    assert figures.totals["released"] == 5
    assert figures.totals["sent"] == 3
    assert figures.totals["effective"] == 1


def test_patients_add_declared_lists_and_extrapolate_the_others(campaign, pledges):
    for pledge, size in zip(pledges["69"][:3], [1000, 1500, 2000], strict=True):
        pledge.patient_list_size = size
        pledge.save()
    patients = campaign_dashboard(campaign=campaign, scope=NATIONAL).patients
    assert patients.declared == 4500
    assert patients.with_list == 3
    assert patients.without_list == 8
    assert patients.mean == 1500
    assert patients.extrapolated == 12000
    assert patients.estimated_total == 16500


def test_patients_stay_within_the_scope(client, campaign, pledges, delegate_69):
    pledges["75"][0].patient_list_size = 987654
    pledges["75"][0].save()
    client.force_login(delegate_69)
    body = client.get(dashboard_url(campaign)).content.decode()
    assert "987" not in body


def test_the_daily_series_counts_counted_pledges_per_day(campaign, pledges):
    figures = campaign_dashboard(campaign=campaign, scope=NATIONAL)
    assert sum(n for _, n in figures.daily) == 11
    assert figures.daily[-1][0] == timezone.localdate()


def test_the_table_filters_by_code_or_name_without_accents(campaign, pledges):
    rows = campaign_dashboard(campaign=campaign, scope=NATIONAL).rows
    assert [r.code for r in territory_rows_filter(rows, query="rhone")] == ["13", "69"]
    assert [r.code for r in territory_rows_filter(rows, query="REUNION")] == ["974"]
    assert [r.code for r in territory_rows_filter(rows, query="2a")] == ["2A"]
    assert [r.code for r in territory_rows_filter(rows, query="97")] == ["971", "972", "973", "974", "976"]
    assert len(territory_rows_filter(rows, query="  ")) == 101


def test_the_table_sorts_by_count_both_ways_with_empty_values_last(campaign, pledges):
    rows = campaign_dashboard(campaign=campaign, scope=NATIONAL).rows
    by_count, sort = territory_rows_sort(rows, sort="-count")
    assert sort == "-count"
    assert [r.code for r in by_count[:3]] == ["69", "75", "01"]
    ascending, _ = territory_rows_sort(rows, sort="count")
    assert ascending[-1].code == "69"
    by_projection, _ = territory_rows_sort(rows, sort="projection")
    assert by_projection[-1].projection is None
    unknown, sort = territory_rows_sort(rows, sort="drop table")
    assert sort == "code"
    assert [r.code for r in unknown[:3]] == ["01", "02", "03"]


def test_the_page_sorts_and_filters_without_javascript(client, campaign, pledges, national):
    client.force_login(national)
    body = client.get(dashboard_url(campaign, sort="-count")).content.decode()
    assert (
        body.index('id="department-69"') < body.index('id="department-75"') < body.index('id="department-01"')
    )
    assert 'aria-sort="descending"' in body
    filtered = client.get(dashboard_url(campaign, q="paris")).content.decode()
    assert filtered.count('id="department-') == 1
    assert 'id="department-75"' in filtered


@pytest.mark.parametrize(
    "params", [{"sort": "x" * 5000}, {"q": "\x00<script>"}, {"sort": "-"}, {"q": "%" * 300}]
)
def test_bad_parameters_never_fail(client, campaign, pledges, national, params):
    client.force_login(national)
    response = client.get(dashboard_url(campaign, **params))
    assert response.status_code == 200
    assert "<script>" not in response.content.decode().split("</main>")[0].split("<main")[1]


def test_the_page_shows_the_chart_with_a_table_fallback_and_the_map(client, campaign, pledges, national):
    client.force_login(national)
    body = client.get(dashboard_url(campaign)).content.decode()
    assert '<svg class="chart"' in body
    assert 'class="chart__bar"' in body
    assert reverse("pledges:organizer_map", kwargs={"slug": campaign.slug}) in body
    assert "<details" in body and f'<time datetime="{timezone.localdate():%Y-%m-%d}">' in body
    # No inline style anywhere (CSP style-src 'self').
    assert "style=" not in body


def _pledges_in(campaign, codes, per_department=3):
    for code in codes:
        PledgeFactory.create_batch(per_department, campaign=campaign, department=code)


@pytest.mark.parametrize("user_fixture", ["national", "regional_ara", "delegate_69"])
def test_the_dashboard_costs_the_same_queries_for_one_or_three_territories(
    client, campaign, request, user_fixture, django_assert_num_queries
):
    user = request.getfixturevalue(user_fixture)
    client.force_login(user)
    url = dashboard_url(campaign)
    _pledges_in(campaign, ["69"])
    client.get(url)  # warm up: the session and translation catalogues
    with CaptureQueriesContext(connection) as one_territory:
        assert client.get(url).status_code == 200
    _pledges_in(campaign, ["01", "38"], per_department=5)
    with django_assert_num_queries(len(one_territory.captured_queries)):
        assert client.get(url).status_code == 200
    # Session, user, campaign, roles (+ the region's departments), the nav link: the figures
    # come from the campaign's cached snapshot and its rendered HTML (tests/organizer/
    # test_snapshot.py pins what computing the snapshot costs).
    expected = {"national": 5, "regional_ara": 6, "delegate_69": 5}[user_fixture]
    assert len(one_territory.captured_queries) == expected


def test_the_dashboard_links_each_release_in_scope_to_its_escrow_bundle(
    client, campaign, national, delegate_69
):
    from django.utils import timezone

    from pledges.models import Release

    lyon = Release.objects.create(
        campaign=campaign, level="department", code="69", released_at=timezone.now(), pledge_count=3
    )
    paris = Release.objects.create(
        campaign=campaign, level="department", code="75", released_at=timezone.now(), pledge_count=4
    )

    client.force_login(delegate_69)
    body = client.get(dashboard_url(campaign)).content.decode()
    assert f"/organizer/releases/{lyon.pk}/escrow/" in body
    assert f"/organizer/releases/{paris.pk}/escrow/" not in body

    client.force_login(national)
    body = client.get(dashboard_url(campaign)).content.decode()
    assert f"/organizer/releases/{paris.pk}/escrow/" in body
