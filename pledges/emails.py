"""One small function per email kind: `*_queue` runs in the request, `*_send` in a Celery task.

Queue functions dispatch with transaction.on_commit, so nothing is sent for a rolled-back change
and no request waits for SMTP. Send functions re-read the database: a pledge withdrawn between
the two gets no further email. Each send carries a dedupe key (see deconv.mail.email_send_once).
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation

from deconv.mail import RenderedEmail, email_render, email_send_once
from pledges.enums import LIVE_STATUSES
from pledges.models import Campaign, Pledge


def _language() -> str:
    """The language of the current request: the signer reads the email as they read the site."""
    return translation.get_language() or settings.LANGUAGE_CODE


def _absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def _campaign_links(campaign: Campaign) -> dict[str, str]:
    return {
        "campaign_url": _absolute(reverse("pledges:campaign_detail", kwargs={"slug": campaign.slug})),
        "pledge_mine_url": _absolute(reverse("pledges:pledge_mine", kwargs={"slug": campaign.slug})),
        "pledge_withdraw_url": _absolute(reverse("pledges:pledge_withdraw", kwargs={"slug": campaign.slug})),
    }


# --- "We have received your pledge" -------------------------------------------------------


def pledge_received_queue(*, pledge: Pledge) -> None:
    from pledges.tasks import email_pledge_received

    pledge_id, language = pledge.pk, _language()
    transaction.on_commit(lambda: email_pledge_received.delay(pledge_id=pledge_id, language=language))


def pledge_received_send(*, pledge_id: int, language: str) -> bool:
    """Send unless the pledge is gone, no longer live, or its account has no address."""
    pledge = (
        Pledge.objects.select_related("campaign", "letter_version", "department", "user")
        .filter(pk=pledge_id, status__in=LIVE_STATUSES, user__isnull=False)
        .first()
    )
    if pledge is None:
        return False
    email = email_render(
        kind="pledge_received",
        to=pledge.user.email,
        language=language,
        context={
            "campaign": pledge.campaign,
            "letter_version_number": pledge.letter_version.number,
            "department": pledge.department,
            **_campaign_links(pledge.campaign),
            "account_url": _absolute(reverse("pledges:account_overview")),
        },
    )
    return email_send_once(email=email, dedupe_key=f"pledge_received:{pledge.pk}")


# --- "You have already signed" (sent to the existing owner, never to the submitter) ----------


def pledge_already_signed_queue(*, owner_id: int, campaign: Campaign) -> None:
    from pledges.tasks import email_pledge_already_signed

    campaign_id = campaign.pk
    # The owner's language is unknown (no preference stored yet): the site's default, not the
    # submitter's, which would tell the owner nothing true.
    language = settings.LANGUAGE_CODE
    # One email per owner, campaign and hour: repeated attempts must not let anyone flood a
    # physician's mailbox through our form.
    hour = timezone.now().strftime("%Y%m%d%H")
    dedupe_key = f"pledge_already_signed:{owner_id}:{campaign_id}:{hour}"
    transaction.on_commit(
        lambda: email_pledge_already_signed.delay(
            owner_id=owner_id, campaign_id=campaign_id, language=language, dedupe_key=dedupe_key
        )
    )


def pledge_already_signed_send(*, owner_id: int, campaign_id: int, language: str, dedupe_key: str) -> bool:
    owner = get_user_model().objects.filter(pk=owner_id, is_active=True).first()
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if owner is None or campaign is None:
        return False
    has_pledge = Pledge.objects.filter(campaign=campaign, user=owner, status__in=LIVE_STATUSES).exists()
    email = email_render(
        kind="pledge_already_signed",
        to=owner.email,
        language=language,
        context={"campaign": campaign, "has_pledge": has_pledge, **_campaign_links(campaign)},
    )
    return email_send_once(email=email, dedupe_key=dedupe_key)


# --- "Your withdrawal is confirmed" ----------------------------------------------------------


def pledge_withdrawn_queue(*, pledge: Pledge) -> None:
    from pledges.tasks import email_pledge_withdrawn

    pledge_id, language = pledge.pk, _language()
    transaction.on_commit(lambda: email_pledge_withdrawn.delay(pledge_id=pledge_id, language=language))


def pledge_withdrawn_send(*, pledge_id: int, language: str) -> bool:
    """The last email about a pledge: sent only if it is still withdrawn and its account exists."""
    pledge = (
        Pledge.objects.select_related("campaign", "user")
        .filter(pk=pledge_id, withdrawn_at__isnull=False, user__isnull=False)
        .exclude(status__in=LIVE_STATUSES)
        .first()
    )
    if pledge is None:
        return False
    email = email_render(
        kind="pledge_withdrawn",
        to=pledge.user.email,
        language=language,
        context={
            "campaign": pledge.campaign,
            "withdrawn_at": pledge.withdrawn_at,
            **_campaign_links(pledge.campaign),
        },
    )
    return email_send_once(email=email, dedupe_key=f"pledge_withdrawn:{pledge.pk}")


# --- "Your data has been deleted" (rendered before the account is) ---------------------------


def account_deleted_queue(*, email_address: str, withdrawn_campaigns: list[str], request_id: str) -> None:
    """Render now, while we still know the address, and send after the deletion commits.

    The rendered message travels in the task's arguments: once the account is deleted, nothing
    else in the database can tell the worker where to write.
    """
    from pledges.tasks import email_send_rendered

    email = email_render(
        kind="account_deleted",
        to=email_address,
        language=_language(),
        context={"withdrawn_campaigns": withdrawn_campaigns, "home_url": _absolute(reverse("pledges:home"))},
    )
    payload = email.as_dict()
    dedupe_key = f"account_deleted:{request_id}"
    transaction.on_commit(lambda: email_send_rendered.delay(email=payload, dedupe_key=dedupe_key))


def rendered_send(*, email: dict, dedupe_key: str) -> bool:
    return email_send_once(email=RenderedEmail(**email), dedupe_key=dedupe_key)
