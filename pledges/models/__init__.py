"""pledges models, one module per concern; import them from here."""

from pledges.models.campaign import (
    Campaign,
    LetterVersion,
    LetterVersionImmutableError,
    default_practice_modes,
    default_professions,
)
from pledges.models.counting import CounterState, PledgeEvent, TerritoryCount
from pledges.models.pledge import Pledge, RppsClaim

__all__ = [
    "Campaign",
    "CounterState",
    "LetterVersion",
    "LetterVersionImmutableError",
    "Pledge",
    "PledgeEvent",
    "RppsClaim",
    "TerritoryCount",
    "default_practice_modes",
    "default_professions",
]
