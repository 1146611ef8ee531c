"""Bulk invalidation by rule: the preview equals the effect, batches, cancellation, scope, the pages."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from pledges.access import organizer_scope
from pledges.enums import BundleStatus, PledgeEventKind, PledgeStatus
from pledges.models import BulkInvalidation, Pledge, PledgeEvent
from pledges.moderation import (
    PledgeCriteria,
    bulk_invalidation_cancel,
    bulk_invalidation_create,
    bulk_invalidation_preview,
    bulk_invalidation_run,
    bulk_invalidation_status,
)
from tests.moderation.factories import pledge_make
from tests.pledges.signing_support import eager_celery

pytestmark = pytest.mark.django_db
eager_celery = eager_celery  # a fixture, bound here so pytest finds it

SPAM = PledgeCriteria(email_domain="spam.example")


@pytest.fixture
def spam(campaign):
    """7 active pledges from spam.example (5 in Ain, 2 in Paris), and 3 others that must stay."""
    matching = [
        pledge_make(campaign=campaign, department="01" if index < 5 else "75", email=f"s{index}@spam.example")
        for index in range(7)
    ]
    pledge_make(campaign=campaign, email="honest@ain.example")
    pledge_make(campaign=campaign, email="x@notspam.example")
    pledge_make(campaign=campaign, email="gone@spam.example", status=PledgeStatus.WITHDRAWN)
    return matching


def create(campaign, user, criteria=SPAM, reason="Inscriptions en masse"):
    scope = organizer_scope(user=user, campaign=campaign)
    preview = bulk_invalidation_preview(campaign=campaign, scope=scope, criteria=criteria)
    bulk = bulk_invalidation_create(
        campaign=campaign,
        scope=scope,
        actor=user,
        criteria=criteria,
        reason=reason,
        preview_count=preview.count,
    )
    return preview, bulk


def test_the_preview_count_is_exactly_what_the_run_invalidates(campaign, national, spam):
    preview, bulk = create(campaign, national)

    bulk = bulk_invalidation_run(bulk_id=bulk.pk, batch_size=3)

    invalidated = set(Pledge.objects.filter(status=PledgeStatus.INVALIDATED).values_list("pk", flat=True))
    assert preview.count == 7 == bulk.progress_done == len(invalidated)
    assert invalidated == {pledge.pk for pledge in spam}
    assert {pledge.pk for pledge in preview.sample} == invalidated
    assert PledgeEvent.objects.filter(kind=PledgeEventKind.INVALIDATED, delta=-1).count() == 7
    assert set(Pledge.objects.filter(pk__in=invalidated).values_list("invalidation_reason", flat=True)) == {
        "Inscriptions en masse"
    }
    assert bulk.status == BundleStatus.DONE
    assert bulk_invalidation_status(bulk=bulk)["changed_since_preview"] is False


def test_criteria_combine_and_a_delegate_rule_stays_in_their_departments(campaign, delegate_ain, spam):
    combined = PledgeCriteria(email_domain="spam.example", ip_network="192.0.2.0/24", department="01")
    scope = organizer_scope(user=delegate_ain, campaign=campaign)

    assert bulk_invalidation_preview(campaign=campaign, scope=scope, criteria=combined).count == 5
    assert bulk_invalidation_preview(campaign=campaign, scope=scope, criteria=SPAM).count == 5

    _preview, bulk = create(campaign, delegate_ain)
    assert bulk.rule == {"email_domain": "spam.example", "scope": ["01"]}
    bulk_invalidation_run(bulk_id=bulk.pk)
    assert set(
        Pledge.objects.filter(status=PledgeStatus.INVALIDATED).values_list("department__code", flat=True)
    ) == {"01"}
    assert Pledge.objects.filter(department__code="75", status=PledgeStatus.ACTIVE).count() == 2


def test_a_rule_needs_a_criterion_and_a_department_in_scope(campaign, delegate_ain, spam):
    scope = organizer_scope(user=delegate_ain, campaign=campaign)

    with pytest.raises(ValidationError, match="at least one criterion"):
        bulk_invalidation_preview(campaign=campaign, scope=scope, criteria=PledgeCriteria())
    with pytest.raises(ValidationError, match="outside your territory"):
        bulk_invalidation_create(
            campaign=campaign,
            scope=scope,
            actor=delegate_ain,
            criteria=PledgeCriteria(department="75"),
            reason="x",
            preview_count=0,
        )


def test_cancelling_after_the_first_batch_stops_the_run(campaign, national, spam):
    _preview, bulk = create(campaign, national)

    def cancel_after_first_batch(job):
        bulk_invalidation_cancel(bulk=job, actor=national)

    bulk = bulk_invalidation_run(bulk_id=bulk.pk, batch_size=2, after_batch=cancel_after_first_batch)

    assert bulk.progress_done == 2
    assert Pledge.objects.filter(status=PledgeStatus.INVALIDATED).count() == 2
    assert PledgeEvent.objects.filter(kind=PledgeEventKind.INVALIDATED).count() == 2
    assert bulk.status == BundleStatus.DONE
    assert bulk.cancel_requested_at is not None
    assert bulk_invalidation_status(bulk=bulk)["cancel_requested"] is True


def test_the_summary_says_when_the_matching_set_changed_since_the_preview(campaign, national, spam):
    _preview, bulk = create(campaign, national)
    pledge_make(campaign=campaign, email="late@spam.example")

    bulk = bulk_invalidation_run(bulk_id=bulk.pk)

    assert (bulk.preview_count, bulk.progress_done) == (7, 8)
    assert bulk_invalidation_status(bulk=bulk)["changed_since_preview"] is True


def test_confirming_a_stale_preview_starts_nothing(campaign, national, spam):
    scope = organizer_scope(user=national, campaign=campaign)
    pledge_make(campaign=campaign, email="late@spam.example")

    with pytest.raises(ValidationError, match="8 now match"):
        bulk_invalidation_create(
            campaign=campaign, scope=scope, actor=national, criteria=SPAM, reason="x", preview_count=7
        )
    assert not BulkInvalidation.objects.exists()


def test_running_twice_invalidates_once(campaign, national, spam):
    _preview, bulk = create(campaign, national)

    bulk_invalidation_run(bulk_id=bulk.pk)
    again = bulk_invalidation_run(bulk_id=bulk.pk)

    assert again.progress_done == 7
    assert PledgeEvent.objects.filter(kind=PledgeEventKind.INVALIDATED).count() == 7


# --- Pages --------------------------------------------------------------------------------------


def test_preview_page_shows_the_count_and_a_sample_then_the_confirmation_runs_the_task(
    campaign, national, spam, as_user, eager_celery, django_capture_on_commit_callbacks
):
    client = as_user(national)
    url = reverse("pledges:organizer_bulk_new", kwargs={"slug": campaign.slug})

    page = client.get(url, {"email_domain": "@Spam.Example"})
    assert page.status_code == 200
    assert page.context["preview"].count == 7
    assert b'data-preview-count="7"' in page.content
    assert len(page.context["sample"]) == 7

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"email_domain": "spam.example", "reason": "Robot", "preview_count": "7"})

    bulk = BulkInvalidation.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "pledges:organizer_bulk_detail", kwargs={"slug": campaign.slug, "bulk_id": bulk.pk}
    )
    status = client.get(
        reverse("pledges:organizer_bulk_status", kwargs={"slug": campaign.slug, "bulk_id": bulk.pk})
    ).json()
    assert status == {
        "status": "done",
        "status_label": "Done",
        "done": 7,
        "total": 7,
        "percent": 100,
        "finished": True,
        "cancel_requested": False,
        "changed_since_preview": False,
    }
    detail = client.get(response["Location"])
    assert b"Done: 7 pledges invalidated." in detail.content
    assert b'<progress max="100" value="100"' in detail.content


def test_confirming_after_the_set_changed_shows_the_new_preview(campaign, national, spam, as_user):
    client = as_user(national)
    pledge_make(campaign=campaign, email="late@spam.example")

    response = client.post(
        reverse("pledges:organizer_bulk_new", kwargs={"slug": campaign.slug}),
        {"email_domain": "spam.example", "reason": "Robot", "preview_count": "7"},
    )

    assert response.status_code == 200
    assert response.context["preview"].count == 8
    assert response.context["confirm_form"]["preview_count"].value() == 8
    assert not BulkInvalidation.objects.exists()


def test_cancel_button_requests_cancellation(campaign, national, spam, as_user):
    _preview, bulk = create(campaign, national)
    client = as_user(national)

    response = client.post(
        reverse("pledges:organizer_bulk_cancel", kwargs={"slug": campaign.slug, "bulk_id": bulk.pk})
    )

    assert response.status_code == 302
    bulk.refresh_from_db()
    assert bulk.cancel_requested_at is not None
    bulk = bulk_invalidation_run(bulk_id=bulk.pk)
    assert bulk.progress_done == 0
    assert not Pledge.objects.filter(status=PledgeStatus.INVALIDATED).exists()
