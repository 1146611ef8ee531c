"""Choices shared by campaigns and, later, pledges. Values are stored: never rename one."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from territories.enums import PopulationKind


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    OPEN = "open", _("Open")
    # Signing suspended (kill switch); the campaign stays public.
    PAUSED = "paused", _("Paused")
    CLOSED = "closed", _("Closed")


class Profession(models.TextChoices):
    PHYSICIAN = "physician", _("Physician")


class Specialty(models.TextChoices):
    """Specialties after the French nomenclature of medical specialties (simplified)."""

    GENERAL_PRACTICE = "general_practice", _("General practice")
    ANESTHESIOLOGY = "anesthesiology", _("Anaesthesiology and intensive care")
    CARDIOLOGY = "cardiology", _("Cardiology")
    DERMATOLOGY = "dermatology", _("Dermatology and venereology")
    ENDOCRINOLOGY = "endocrinology", _("Endocrinology, diabetes and metabolism")
    GASTROENTEROLOGY = "gastroenterology", _("Gastroenterology and hepatology")
    GERIATRICS = "geriatrics", _("Geriatrics")
    GYNECOLOGY = "gynecology", _("Medical gynaecology")
    OBSTETRICS_GYNECOLOGY = "obstetrics_gynecology", _("Obstetrics and gynaecology")
    INTERNAL_MEDICINE = "internal_medicine", _("Internal medicine")
    NEPHROLOGY = "nephrology", _("Nephrology")
    NEUROLOGY = "neurology", _("Neurology")
    ONCOLOGY = "oncology", _("Medical oncology")
    OPHTHALMOLOGY = "ophthalmology", _("Ophthalmology")
    ENT = "ent", _("Ear, nose and throat (ENT)")
    PEDIATRICS = "pediatrics", _("Paediatrics")
    PHYSICAL_MEDICINE = "physical_medicine", _("Physical medicine and rehabilitation")
    PSYCHIATRY = "psychiatry", _("Psychiatry")
    PULMONOLOGY = "pulmonology", _("Pulmonology")
    RADIOLOGY = "radiology", _("Radiology and medical imaging")
    RHEUMATOLOGY = "rheumatology", _("Rheumatology")
    STOMATOLOGY = "stomatology", _("Stomatology and maxillofacial surgery")
    GENERAL_SURGERY = "general_surgery", _("General and visceral surgery")
    ORTHOPEDIC_SURGERY = "orthopedic_surgery", _("Orthopaedic and trauma surgery")
    PLASTIC_SURGERY = "plastic_surgery", _("Plastic, reconstructive and aesthetic surgery")
    UROLOGY = "urology", _("Urology")
    VASCULAR_SURGERY = "vascular_surgery", _("Vascular surgery")
    OTHER = "other", _("Other specialty")


class PracticeMode(models.TextChoices):
    LIBERAL = "liberal", _("Liberal")
    # Liberal and salaried activity at once: still bound by the convention for the liberal part.
    MIXED = "mixed", _("Mixed (liberal and salaried)")


# The campaign's denominator is a kind of territories' reference population: one enum, not two.
ReferencePopulationKind = PopulationKind


class PledgeStatus(models.TextChoices):
    # A pledge is only created for an account whose email is verified (allauth's mandatory
    # verification comes before any login), so it starts active.
    ACTIVE = "active", _("Active")
    # Confirmed in a round that released the territory: the letter goes to this signer.
    RELEASED = "released", _("Released")
    # The campaign closed before the territory was released.
    EXPIRED = "expired", _("Expired")
    WITHDRAWN = "withdrawn", _("Withdrawn")
    INVALIDATED = "invalidated", _("Invalidated by an organizer")


# Statuses that count toward a territory's total. Expired pledges stay in the final, frozen count.
COUNTED_STATUSES = (PledgeStatus.ACTIVE, PledgeStatus.RELEASED, PledgeStatus.EXPIRED)
# Statuses that hold the RPPS and the account for this campaign (at most one such pledge each).
LIVE_STATUSES = (PledgeStatus.ACTIVE, PledgeStatus.RELEASED)


class ConventionSector(models.TextChoices):
    SECTOR_1 = "1", _("Sector 1")
    SECTOR_1_DP = "1_dp", _("Sector 1 with permanent right to exceed fees (DP)")
    SECTOR_2 = "2", _("Sector 2")
    SECTOR_2_OPTAM = "2_optam", _("Sector 2 with OPTAM")
    NON_CONVENTIONED = "3", _("Not under the convention (sector 3)")


class PledgeSource(models.TextChoices):
    ONLINE = "online", _("Online")
    PAPER = "paper", _("Paper, entered by an organizer")


class PledgeEventKind(models.TextChoices):
    PLEDGED = "pledged", _("Pledged")
    WITHDRAWN = "withdrawn", _("Withdrawn")
    INVALIDATED = "invalidated", _("Invalidated")
    REINSTATED = "reinstated", _("Reinstated")
    MOVED = "moved", _("Changed department")
    # Released and expired pledges stay counted: these events have delta 0 (ledger only).
    CONFIRMED = "confirmed", _("Confirmed in a round")
    RELEASED = "released", _("Released")
    EXPIRED = "expired", _("Expired")


class TerritoryLevel(models.TextChoices):
    DEPARTMENT = "department", _("Department")
    REGION = "region", _("Region")
    NATION = "nation", _("Nation")


class TerritoryStatus(models.TextChoices):
    COLLECTING = "collecting", _("Collecting signatures")
    CONFIRMING = "confirming", _("Confirmation round under way")
    AWAITING_APPROVAL = "awaiting_approval", _("Awaiting an organizer's approval")
    RELEASED = "released", _("Released")
    EXPIRED = "expired", _("Expired")


class RoundOutcome(models.TextChoices):
    OPEN = "open", _("Open")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    # The campaign closed or was paused for good while the round was open.
    CANCELLED = "cancelled", _("Cancelled")


class RoundAnswer(models.TextChoices):
    CONFIRMED = "confirmed", _("I maintain my participation")
    DECLINED = "declined", _("I do not take part this time")


class LetterStatus(models.TextChoices):
    GENERATED = "generated", _("Generated")
    SENT = "sent", _("Sent by the physician")
    ACKNOWLEDGED = "acknowledged", _("Acknowledgement of receipt received")


class BundleStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class OrganizerRoleKind(models.TextChoices):
    NATIONAL = "national", _("National organizer")
    REGIONAL = "regional", _("Regional delegate")
    DEPARTMENTAL = "departmental", _("Departmental delegate")
    OBSERVER = "observer", _("Observer (read only)")


class VerificationStatus(models.TextChoices):
    UNVERIFIED = "unverified", _("Not verified")
    VERIFIED = "verified", _("Verified against the RPPS directory")
    MISMATCHED = "mismatched", _("Does not match the RPPS directory")
