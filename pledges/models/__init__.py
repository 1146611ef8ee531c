"""pledges models, one module per concern; import them from here."""

from pledges.models.campaign import (
    Campaign,
    LetterVersion,
    LetterVersionImmutableError,
    default_practice_modes,
    default_professions,
)
from pledges.models.conditions import (
    ConfirmationRound,
    Crossing,
    MilestoneNotice,
    Release,
    RoundResponse,
    TerritoryState,
    ThresholdRule,
)
from pledges.models.counting import CounterState, PledgeEvent, TerritoryCount
from pledges.models.ledger import LedgerDigest, LedgerEntry
from pledges.models.letters import EscrowBundle, Letter
from pledges.models.organizers import (
    BulkInvalidation,
    DirectoryEntry,
    DirectoryImport,
    ExportJob,
    OrganizerRole,
)
from pledges.models.pledge import Pledge, RppsClaim

__all__ = [
    "BulkInvalidation",
    "Campaign",
    "ConfirmationRound",
    "CounterState",
    "Crossing",
    "DirectoryEntry",
    "DirectoryImport",
    "EscrowBundle",
    "ExportJob",
    "LedgerDigest",
    "LedgerEntry",
    "Letter",
    "LetterVersion",
    "LetterVersionImmutableError",
    "MilestoneNotice",
    "OrganizerRole",
    "Pledge",
    "PledgeEvent",
    "Release",
    "RoundResponse",
    "RppsClaim",
    "TerritoryCount",
    "TerritoryState",
    "ThresholdRule",
    "default_practice_modes",
    "default_professions",
]
