"""The demo data `manage.py load_demo` loads: one open campaign, its letter, one organizer.

Content in French: it is what a French physician reads on the demo site.
"""

import os
from dataclasses import dataclass
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from pledges.enums import CampaignStatus, PracticeMode, Profession, ReferencePopulationKind
from pledges.models import Campaign
from pledges.services import campaign_create, letter_version_create

DEMO_SLUG = "demo"
DEMO_ORGANIZER_EMAIL = "organisateur@demo.deconv.fr"
DEMO_ORGANIZER_DEFAULT_PASSWORD = "deconv-demo-2026"  # noqa: S105 (a published demo login)

DEMO_TITLE = "Lettre d'intention de déconventionnement — campagne de démonstration"

DEMO_DESCRIPTION = """\
Cette campagne de démonstration montre le fonctionnement d'une lettre d'intention de \
déconventionnement conditionnelle.

Vous signez dès aujourd'hui votre lettre de sortie de la convention nationale, mais elle reste \
sous séquestre : elle n'est envoyée à aucune caisse tant que le seuil fixé pour votre département \
n'est pas atteint.

Lorsque le seuil est atteint, vous êtes recontacté(e) et l'on vous demande de confirmer votre \
participation. Aucune lettre n'est envoyée sans votre accord explicite. Vous pouvez retirer votre \
engagement à tout moment, aussi simplement que vous l'avez pris : votre engagement et votre lettre \
sont alors supprimés.

Sortir de la convention a des conséquences réelles : vos patients sont remboursés sur la base du \
tarif d'autorité, vous fixez vos honoraires avec tact et mesure et devez en informer vos patients, \
et l'assurance maladie cesse de prendre en charge une partie de vos cotisations sociales.

Les données de cette campagne sont fictives."""

DEMO_LETTER_TITLE = "Lettre de déconventionnement"

# The placeholders are documented in pledges.letter_text. The effective date is the one the
# physician asks for: the law makes it one month after the caisse receives the letter at the earliest.
DEMO_LETTER_BODY = """\
Dr {first_name} {last_name}
{specialty}
N° RPPS : {rpps}
{practice_address}

{caisse_name}
{caisse_address}

Lettre recommandée avec accusé de réception

Objet : sortie de la convention nationale des médecins libéraux (déconventionnement)

Madame la Directrice, Monsieur le Directeur,

Conformément à l'article R.162-54-9 du code de la sécurité sociale et aux dispositions de la \
convention nationale organisant les rapports entre les médecins libéraux et l'assurance maladie, \
je vous informe que je ne souhaite plus être placé(e) sous le régime de la convention nationale.

Je vous demande de prendre acte de ma sortie de la convention à compter du {effective_date}, \
date de réception attestée par l'accusé de réception.

Je vous remercie de bien vouloir me confirmer la date à laquelle cette décision prendra effet.

Je vous prie d'agréer, Madame la Directrice, Monsieur le Directeur, l'expression de mes \
salutations distinguées.

Fait à {place}, le {date}

Signature :"""


@dataclass(frozen=True)
class DemoResult:
    campaign: Campaign
    campaign_created: bool
    organizer_email: str
    organizer_created: bool
    # None when the account's password was changed after it was created: we never reset it.
    organizer_password: str | None


def demo_organizer_password() -> str:
    return os.environ.get("DEMO_ORGANIZER_PASSWORD") or DEMO_ORGANIZER_DEFAULT_PASSWORD


@transaction.atomic
def demo_load() -> DemoResult:
    """Create what is missing of the demo; leave what exists as it is (idempotent)."""
    password = demo_organizer_password()
    organizer, organizer_created = _organizer_get_or_create(password=password)

    campaign = Campaign.objects.filter(slug=DEMO_SLUG).first()
    campaign_created = campaign is None
    if campaign is None:
        opens_at = timezone.now().replace(minute=0, second=0, microsecond=0)
        campaign = campaign_create(
            slug=DEMO_SLUG,
            title=DEMO_TITLE,
            description=DEMO_DESCRIPTION,
            status=CampaignStatus.OPEN,
            opens_at=opens_at,
            closes_at=opens_at + timedelta(days=182),
            eligible_professions=[Profession.PHYSICIAN],
            eligible_specialties=[],
            eligible_practice_modes=[PracticeMode.LIBERAL, PracticeMode.MIXED],
            reference_population_kind=ReferencePopulationKind.LIBERAL_GPS,
            letter_title=DEMO_LETTER_TITLE,
            letter_body=DEMO_LETTER_BODY,
            created_by=organizer,
        )
    elif campaign.current_letter_version is None:
        letter_version_create(
            campaign=campaign, title=DEMO_LETTER_TITLE, body=DEMO_LETTER_BODY, created_by=organizer
        )

    return DemoResult(
        campaign=campaign,
        campaign_created=campaign_created,
        organizer_email=organizer.email,
        organizer_created=organizer_created,
        organizer_password=password if organizer.check_password(password) else None,
    )


def _organizer_get_or_create(*, password: str):
    """The demo organizer: a superuser whose email is verified, so allauth lets them log in."""
    User = get_user_model()
    organizer = User.objects.filter(email__iexact=DEMO_ORGANIZER_EMAIL).first()
    created = organizer is None
    if organizer is None:
        organizer = User.objects.create_user(DEMO_ORGANIZER_EMAIL, password, is_staff=True, is_superuser=True)
    EmailAddress.objects.get_or_create(
        user=organizer,
        email=organizer.email,
        defaults={"verified": True, "primary": True},
    )
    return organizer, created
