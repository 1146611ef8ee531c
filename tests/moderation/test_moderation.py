"""Search, flag, invalidate and reinstate one pledge: scope, events, counts, audit, no email."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from deconv.models import AuditEntry, OutgoingEmail
from pledges.access import organizer_scope
from pledges.counting import counts_update
from pledges.enums import PledgeEventKind, PledgeStatus
from pledges.models import CounterState, PledgeEvent, RppsClaim, TerritoryCount
from pledges.moderation import (
    PledgeCriteria,
    name_search_patterns,
    pledge_flag,
    pledge_invalidate,
    pledge_reinstate,
    pledge_search,
    pledge_unflag,
)
from tests.moderation.factories import pledge_make

pytestmark = pytest.mark.django_db


def search(campaign, user, **criteria) -> list[int]:
    scope = organizer_scope(user=user, campaign=campaign)
    return [p.pk for p in pledge_search(campaign=campaign, scope=scope, criteria=PledgeCriteria(**criteria))]


def department_count(campaign, code: str) -> int:
    row = TerritoryCount.objects.filter(campaign=campaign, level="department", code=code).first()
    return row.pledges if row else 0


# --- Search ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["zephyrin", "ZÉPHYRIN", "zéphyrin distinct", "Zephyrin-Distinct", "ambroise zephyrin", "distinct"],
)
def test_name_search_ignores_case_accents_and_hyphens(campaign, national, ain_pledge, query):
    pledge_make(campaign=campaign, last_name="Dupont", first_name="Jean")

    assert search(campaign, national, name=query) == [ain_pledge.pk]


def test_name_search_spells_out_ligatures(campaign, national):
    coeur = pledge_make(campaign=campaign, last_name="Cœur", first_name="Anne")
    pledge_make(campaign=campaign, last_name="Coer", first_name="Anne")

    assert search(campaign, national, name="coeur") == [coeur.pk]


def test_name_search_patterns_escape_nothing_dangerous():
    # Only letters and digits reach the pattern; everything else splits words.
    assert name_search_patterns("a.*(b)|c") == ["[aAàáâãäåÀÁÂÃÄÅ]", "[bB]", "[cCçÇ]"]
    assert name_search_patterns("   ") == []


def test_search_by_rpps_email_domain_ip_department_dates_status_and_flag(campaign, national, ain_pledge):
    paris = pledge_make(campaign=campaign, department="75", email="a@other.example", ip="2001:db8:5:1::9")
    old = pledge_make(campaign=campaign, created_at=timezone.now() - timedelta(days=10), ip="198.51.100.200")
    rpps_spaced = " ".join([ain_pledge.rpps[:3], ain_pledge.rpps[3:]])

    assert search(campaign, national, rpps=rpps_spaced) == [ain_pledge.pk]
    assert search(campaign, national, email_domain="ain-distinct.example") == [ain_pledge.pk]
    assert search(campaign, national, ip_network="198.51.100.77/32") == [ain_pledge.pk]
    assert search(campaign, national, ip_network="198.51.100.0/24") == [ain_pledge.pk, old.pk]
    assert search(campaign, national, ip_network="2001:db8:5::/48") == [paris.pk]
    assert search(campaign, national, department="75") == [paris.pk]
    today = timezone.localdate()
    assert search(campaign, national, created_to=today - timedelta(days=5)) == [old.pk]
    assert set(search(campaign, national, created_from=today)) == {ain_pledge.pk, paris.pk}
    assert search(campaign, national, status=PledgeStatus.INVALIDATED) == []
    assert search(campaign, national, flagged=True) == []


def test_a_delegate_searches_only_their_departments(campaign, delegate_paris, delegate_ain, ain_pledge):
    paris = pledge_make(campaign=campaign, department="75")

    assert search(campaign, delegate_paris) == [paris.pk]
    assert search(campaign, delegate_paris, name="zephyrin") == []
    assert search(campaign, delegate_paris, department="01") == []
    assert search(campaign, delegate_ain) == [ain_pledge.pk]


# --- Invalidate and reinstate -------------------------------------------------------------------


def test_invalidation_records_a_minus_one_event_and_leaves_the_counts_at_the_next_run(
    campaign, national, ain_pledge
):
    CounterState.objects.update_or_create(pk=1, defaults={"lag_seconds": 0})
    counts_update()
    assert department_count(campaign, "01") == 1

    pledge = pledge_invalidate(pledge=ain_pledge, actor=national, reason="Numéro RPPS usurpé")

    assert pledge.status == PledgeStatus.INVALIDATED
    assert pledge.invalidated_at is not None
    assert pledge.invalidation_reason == "Numéro RPPS usurpé"
    event = PledgeEvent.objects.filter(pledge=pledge).latest("pk")
    assert (event.kind, event.delta, event.department.code) == (PledgeEventKind.INVALIDATED, -1, "01")
    counts_update()
    assert department_count(campaign, "01") == 0

    pledge_reinstate(pledge=pledge, actor=national)
    counts_update()
    assert department_count(campaign, "01") == 1
    assert PledgeEvent.objects.filter(pledge=pledge, kind=PledgeEventKind.REINSTATED, delta=1).count() == 1


def test_invalidation_sends_no_email_and_audits_without_personal_data(
    campaign, national, ain_pledge, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        pledge_invalidate(pledge=ain_pledge, actor=national, reason="Zéphyrin a signé deux fois")

    assert mail.outbox == []
    assert not OutgoingEmail.objects.exists()
    entry = AuditEntry.objects.get(action="pledge.invalidate")
    assert (entry.actor, entry.campaign_id, entry.territory_code) == (national, campaign.pk, "01")
    assert (entry.object_type, entry.object_id) == ("pledge", str(ain_pledge.pk))
    logged = str(entry.details)
    for personal in (ain_pledge.rpps, "Zéphyrin", "ain-distinct", "198.51.100"):
        assert personal not in logged


def test_invalidation_frees_the_rpps_claim_and_reinstatement_restores_it(campaign, national, ain_pledge):
    RppsClaim.objects.create(rpps=ain_pledge.rpps, user=ain_pledge.user)

    pledge_invalidate(pledge=ain_pledge, actor=national, reason="Usurpation")
    assert not RppsClaim.objects.filter(rpps=ain_pledge.rpps).exists()

    pledge_reinstate(pledge=ain_pledge, actor=national)
    assert RppsClaim.objects.get(rpps=ain_pledge.rpps).user == ain_pledge.user


def test_only_an_active_pledge_can_be_invalidated_and_a_reason_is_required(campaign, national, ain_pledge):
    with pytest.raises(ValidationError):
        pledge_invalidate(pledge=ain_pledge, actor=national, reason="   ")
    pledge_invalidate(pledge=ain_pledge, actor=national, reason="Doublon")

    with pytest.raises(ValidationError, match="Only an active pledge"):
        pledge_invalidate(pledge=ain_pledge, actor=national, reason="Encore")

    assert PledgeEvent.objects.filter(pledge=ain_pledge, kind=PledgeEventKind.INVALIDATED).count() == 1


def test_reinstatement_is_refused_when_the_physician_signed_again(campaign, national, ain_pledge):
    pledge_invalidate(pledge=ain_pledge, actor=national, reason="Doublon")
    pledge_make(campaign=campaign, rpps=ain_pledge.rpps)

    with pytest.raises(ValidationError, match="signed again"):
        pledge_reinstate(pledge=ain_pledge, actor=national)

    ain_pledge.refresh_from_db()
    assert ain_pledge.status == PledgeStatus.INVALIDATED
    assert not PledgeEvent.objects.filter(pledge=ain_pledge, kind=PledgeEventKind.REINSTATED).exists()


def test_flag_and_unflag_change_no_count_and_are_audited(campaign, national, ain_pledge):
    events = PledgeEvent.objects.count()

    pledge = pledge_flag(pledge=ain_pledge, actor=national, reason="Adresse étrange")
    assert (pledge.flagged, pledge.flag_reason) == (True, "Adresse étrange")
    pledge = pledge_unflag(pledge=pledge, actor=national)
    assert (pledge.flagged, pledge.flag_reason) == (False, "")

    assert PledgeEvent.objects.count() == events
    assert list(AuditEntry.objects.order_by("pk").values_list("action", flat=True)) == [
        "pledge.flag",
        "pledge.unflag",
    ]
