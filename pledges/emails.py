"""One small function per email kind, each queueing into the outbox (deconv.outbox).

They run in the request, inside the service's transaction: the email is rendered now (the
signer's language, the pledge as it is), stored with its dedupe key, and sent by a worker once
the transaction commits; nothing is stored or sent for a rolled-back change. The receipt of a
new pledge is the exception: signing is the hot path, so pledges.notifications queues it
unrendered and the worker renders it when it claims it (deconv.outbox).
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone, translation

from deconv.outbox import email_cancel, email_forget, email_queue
from pledges.enums import LIVE_STATUSES
from pledges.models import Campaign, Pledge
from pledges.notifications import pledge_received_key


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


# --- "You have already signed" (sent to the existing owner, never to the submitter) ----------


def pledge_already_signed_queue(*, owner_id: int, campaign: Campaign) -> None:
    """At most one per owner, campaign and hour: repeated attempts must not let anyone flood a
    physician's mailbox through our form."""
    owner = get_user_model().objects.filter(pk=owner_id, is_active=True).first()
    if owner is None or not owner.email:
        return
    hour = timezone.now().strftime("%Y%m%d%H")
    has_pledge = Pledge.objects.filter(campaign=campaign, user=owner, status__in=LIVE_STATUSES).exists()
    email_queue(
        kind="pledge_already_signed",
        recipient=owner.email,
        # The owner's language is unknown (no preference stored yet): the site's default, not the
        # submitter's, which would tell the owner nothing true.
        language=settings.LANGUAGE_CODE,
        user=owner,
        dedupe_key=f"already-signed:{campaign.pk}:{owner.pk}:{hour}",
        context={"campaign": campaign, "has_pledge": has_pledge, **_campaign_links(campaign)},
    )


# --- "Your withdrawal is confirmed" (required: it is the proof of the request) -----------------


def pledge_withdrawn_queue(*, pledge: Pledge) -> None:
    """The last email about a pledge. A receipt for it still waiting in the outbox is cancelled:
    it would tell the signer that a pledge they just withdrew is recorded."""
    email_cancel(dedupe_keys=[pledge_received_key(pledge.pk)], reason="pledge withdrawn before sending")
    if pledge.user is None or not pledge.user.email:
        return
    email_queue(
        kind="pledge_withdrawn",
        recipient=pledge.user.email,
        language=_language(),
        user=pledge.user,
        dedupe_key=f"withdrawn:{pledge.pk}",
        context={
            "campaign": pledge.campaign,
            "withdrawn_at": pledge.withdrawn_at,
            **_campaign_links(pledge.campaign),
        },
    )


# --- "Your data has been deleted" (required; rendered before the account is deleted) -----------


def account_deleted_queue(*, email_address: str, withdrawn_campaigns: list[str], request_id: str) -> None:
    """Rendered now, while we still know the address, sent after the deletion commits.

    The outbox blanks the address and text of this row once it is sent (the email says that the
    address is not kept). The key is the erasure request's: an account is erased once. Earlier
    emails to the address are forgotten first (deconv.outbox.email_forget).
    """
    email_forget(address=email_address)
    email_queue(
        kind="account_deleted",
        recipient=email_address,
        language=_language(),
        dedupe_key=f"data-deleted:{request_id}",
        context={"withdrawn_campaigns": withdrawn_campaigns, "home_url": _absolute(reverse("pledges:home"))},
    )
