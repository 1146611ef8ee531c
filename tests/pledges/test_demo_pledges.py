import io
import time
from collections import Counter
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.utils import timezone

from pledges import demo_data
from pledges.enums import PledgeEventKind, PledgeSource, PledgeStatus, ReferencePopulationKind, Specialty
from pledges.models import Pledge, PledgeEvent, RppsClaim, TerritoryCount
from pledges.rpps import luhn_check_digit, rpps_is_valid
from territories.models import ReferencePopulation
from territories.postal import postal_code_matches_department
from tests.pledges.factories import CampaignFactory, LetterVersionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def territories(db):
    call_command("load_territories", stdout=io.StringIO())


@pytest.fixture
def gp_campaign(territories):
    campaign = CampaignFactory(reference_population_kind=ReferencePopulationKind.LIBERAL_GPS)
    LetterVersionFactory(campaign=campaign)
    return campaign


def run(campaign, count: int, *args: str) -> tuple[str, float]:
    out = io.StringIO()
    started = time.perf_counter()
    call_command("demo_pledges", "--campaign", campaign.slug, "--count", str(count), *args, stdout=out)
    elapsed = time.perf_counter() - started
    print(f"\ndemo_pledges --count {count} {' '.join(args)}: {elapsed:.2f} s\n{out.getvalue()}")
    return out.getvalue(), elapsed


def test_demo_pledges_creates_n_valid_active_pledges(gp_campaign):
    output, _ = run(gp_campaign, 500, "--seed", "1", "--batch", "200")

    pledges = list(Pledge.objects.filter(campaign=gp_campaign).select_related("department"))
    assert len(pledges) == 500
    assert "500 pledges added" in output
    version = gp_campaign.current_letter_version
    for pledge in pledges:
        assert pledge.status == PledgeStatus.ACTIVE
        assert pledge.source == PledgeSource.ONLINE
        assert pledge.letter_version_id == version.pk
        assert pledge.consented_pledge_at == pledge.consented_data_at == pledge.created_at
        assert pledge.first_name and pledge.last_name and pledge.practice_address
        assert postal_code_matches_department(pledge.postal_code, pledge.department.code)
    rpps = [pledge.rpps for pledge in pledges]
    assert all(rpps_is_valid(number) and number.startswith("10") for number in rpps)
    assert len(set(rpps)) == 500


def test_each_pledge_has_its_account_claim_address_and_event(gp_campaign):
    run(gp_campaign, 300, "--seed", "2")

    users = get_user_model().objects.filter(pledges__campaign=gp_campaign)
    assert users.count() == 300
    assert all(user.email.endswith("@example.invalid") and user.email.startswith("dr.") for user in users)
    assert not any(user.has_usable_password() for user in users)
    assert EmailAddress.objects.filter(user__in=users, verified=True, primary=True).count() == 300
    claims = dict(RppsClaim.objects.values_list("user_id", "rpps"))
    assert all(claims[pledge.user_id] == pledge.rpps for pledge in Pledge.objects.all())
    events = PledgeEvent.objects.filter(campaign=gp_campaign)
    assert events.count() == 300
    assert set(events.values_list("kind", "delta")) == {(PledgeEventKind.PLEDGED, 1)}
    assert all(event.occurred_at == event.pledge.created_at for event in events.select_related("pledge"))


def test_population_spreads_over_departments_with_some_near_a_threshold(gp_campaign):
    output, _ = run(gp_campaign, 3000, "--seed", "3")

    per_department = dict(Pledge.objects.values_list("department__code").annotate(n=Count("pk")).order_by())
    gps = dict(
        ReferencePopulation.objects.filter(kind="liberal_gps").values_list("department__code", "count")
    )
    shares = {code: n / gps[code] for code, n in per_department.items()}
    assert len(per_department) >= 80
    near_threshold = [code for code, share in shares.items() if 0.26 <= share <= 0.32]
    assert len(near_threshold) >= 3
    assert "departments pushed near their threshold" in output
    # Most departments stay far below: 3000 pledges are ~6 % of the country's liberal GPs.
    assert sorted(shares.values())[len(shares) // 2] < 0.1
    specialties = Counter(Pledge.objects.values_list("specialty", flat=True))
    assert specialties[Specialty.GENERAL_PRACTICE] / 3000 > 0.7


def test_signing_times_spread_over_the_past_months_with_surges(gp_campaign):
    run(gp_campaign, 3000, "--seed", "4", "--days", "120")

    times = list(Pledge.objects.values_list("created_at", flat=True))
    now = timezone.now()
    assert max(times) < now
    assert min(times) > now - timedelta(days=121)
    assert max(times) - min(times) > timedelta(days=90)
    per_day = Counter(moment.date() for moment in times)
    busiest = max(per_day.values())
    typical = sorted(per_day.values())[len(per_day) // 2]
    assert busiest > 4 * typical


def test_running_again_adds_new_unique_physicians(gp_campaign):
    run(gp_campaign, 400, "--seed", "5")
    run(gp_campaign, 400, "--seed", "5")

    rpps = list(Pledge.objects.values_list("rpps", flat=True))
    assert len(rpps) == 800
    assert len(set(rpps)) == 800
    assert get_user_model().objects.filter(email__endswith="@example.invalid").count() == 800
    assert demo_data.demo_next_serial() == 800


def test_counts_after_the_run_equal_the_rows(gp_campaign):
    run(gp_campaign, 1000, "--seed", "6")
    # A second run lands its back-dated events before the counting bookmark of the first.
    run(gp_campaign, 700, "--seed", "7")

    rows = dict(
        Pledge.objects.filter(campaign=gp_campaign, status=PledgeStatus.ACTIVE)
        .values_list("department__code")
        .annotate(n=Count("pk"))
        .order_by()
    )
    counts = dict(
        TerritoryCount.objects.filter(campaign=gp_campaign, level="department").values_list("code", "pledges")
    )
    assert {code: n for code, n in counts.items() if n} == rows
    assert TerritoryCount.objects.get(campaign=gp_campaign, level="nation").pledges == 1700


def test_the_insert_method_gives_the_same_rows(gp_campaign):
    run(gp_campaign, 300, "--seed", "8", "--method", "insert", "--batch", "128")

    assert Pledge.objects.count() == 300
    assert PledgeEvent.objects.count() == 300
    assert RppsClaim.objects.count() == 300
    assert all(rpps_is_valid(number) for number in Pledge.objects.values_list("rpps", flat=True))


@pytest.mark.postgres
def test_ten_thousand_pledges_with_copy(gp_campaign):
    """Prints the time taken; timings are not asserted (they belong in bench/)."""
    output, _ = run(gp_campaign, 10_000, "--seed", "9")

    assert "by copy" in output
    assert Pledge.objects.count() == 10_000
    assert TerritoryCount.objects.get(campaign=gp_campaign, level="nation").pledges == 10_000


def test_a_campaign_without_a_letter_is_refused(territories):
    campaign = CampaignFactory()

    with pytest.raises(CommandError, match="no letter version"):
        run(campaign, 10)


def test_an_unknown_campaign_is_refused(territories):
    with pytest.raises(CommandError, match="no campaign"):
        call_command("demo_pledges", "--campaign", "nope", "--count", "10", stdout=io.StringIO())


def test_missing_territories_are_refused(db):
    campaign = CampaignFactory()
    LetterVersionFactory(campaign=campaign)

    with pytest.raises(CommandError, match="load_territories"):
        run(campaign, 10)


def test_demo_rpps_are_valid_and_sequential():
    numbers = [demo_data.demo_rpps(serial) for serial in (0, 1, 9_999_999)]

    assert numbers[0] == "10900000000"
    assert all(rpps_is_valid(number) and len(number) == 11 for number in numbers)
    with pytest.raises(ValueError):
        demo_data.demo_rpps(10_000_000)


def test_demo_check_digit_equals_the_rpps_module():
    bodies = [f"109{serial:07d}" for serial in (*range(0, 2000), 4_999_999, 9_999_999)]
    bodies += ["0", "7992739871", "12345678901234"]

    assert [demo_data._luhn_digit(body) for body in bodies] == [luhn_check_digit(body) for body in bodies]


def test_demo_emails_are_ascii_and_undeliverable():
    assert demo_data.demo_email(last_name="Lévêque", serial=12) == "dr.leveque.12@example.invalid"
    assert demo_data.demo_email(last_name="Le Goff", serial=3) == "dr.le-goff.3@example.invalid"
