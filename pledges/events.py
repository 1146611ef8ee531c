"""Record the pledge changes that move counts; the counting job folds them in later."""

from pledges.enums import PledgeEventKind
from pledges.models import Pledge, PledgeEvent

DELTAS = {
    PledgeEventKind.PLEDGED: 1,
    PledgeEventKind.REINSTATED: 1,
    PledgeEventKind.WITHDRAWN: -1,
    PledgeEventKind.INVALIDATED: -1,
    # The pledge stays counted: recorded for the ledger only.
    PledgeEventKind.CONFIRMED: 0,
    PledgeEventKind.RELEASED: 0,
    PledgeEventKind.EXPIRED: 0,
}


def pledge_event_record(
    *, pledge: Pledge, kind: PledgeEventKind, department_id: int | None = None
) -> PledgeEvent:
    """Append one event; call it inside the transaction that changes the pledge.

    `department_id` overrides the pledge's department, for the -1 on the old department when a
    signer moves (kind MOVED is recorded as a -1 there and a +1 on the new one).
    """
    delta = DELTAS.get(kind)
    if delta is None:
        raise ValueError(f"use pledge_move_record for {kind}")
    return PledgeEvent.objects.create(
        campaign_id=pledge.campaign_id,
        department_id=department_id or pledge.department_id,
        pledge=pledge,
        kind=kind,
        delta=delta,
    )


def pledge_move_record(*, pledge: Pledge, old_department_id: int) -> None:
    """A counted pledge changed department: -1 on the old one, +1 on the new one."""
    PledgeEvent.objects.bulk_create(
        [
            PledgeEvent(
                campaign_id=pledge.campaign_id,
                department_id=old_department_id,
                pledge=pledge,
                kind=PledgeEventKind.MOVED,
                delta=-1,
            ),
            PledgeEvent(
                campaign_id=pledge.campaign_id,
                department_id=pledge.department_id,
                pledge=pledge,
                kind=PledgeEventKind.MOVED,
                delta=1,
            ),
        ]
    )
