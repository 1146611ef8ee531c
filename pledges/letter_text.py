"""The letter text of a campaign: placeholders, normalisation and content hash.

A letter body is plain text: paragraphs separated by blank lines. It may contain these
placeholders, filled in per physician when the letter is rendered:

    {last_name}         family name
    {first_name}        first name
    {rpps}              RPPS number (11 digits)
    {specialty}         specialty, in words
    {caisse_name}       the caisse the letter is addressed to (CPAM, CGSS or CSSM)
    {caisse_address}    its postal address
    {practice_address}  the physician's practice address
    {effective_date}    the requested effective date (at the earliest one month after the
                        caisse receives the letter)
    {place}             where the letter is signed ("Fait à ...")
    {date}              the date of signature

Braces that are not a placeholder are written doubled: "{{" and "}}".
"""

import hashlib
import json
import string

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

PLACEHOLDERS = {
    "last_name": _("family name"),
    "first_name": _("first name"),
    "rpps": _("RPPS number"),
    "specialty": _("specialty"),
    "caisse_name": _("name of the caisse"),
    "caisse_address": _("address of the caisse"),
    "practice_address": _("practice address"),
    "effective_date": _("requested effective date"),
    "place": _("place of signature"),
    "date": _("date of signature"),
}

# Letter content, not interface text: the letter is a French legal act, whatever the reader's language.
DEFAULT_LETTER_TITLE = "Lettre de déconventionnement"
DEFAULT_LEGAL_BASIS = (
    "Article R.162-54-9 du code de la sécurité sociale : le médecin qui ne souhaite plus être placé "
    "sous le régime de la convention nationale le fait savoir par courrier adressé à la caisse "
    "primaire d'assurance maladie dans le ressort de laquelle il exerce son activité. La convention "
    "nationale prévoit l'envoi de ce courrier en lettre recommandée avec accusé de réception ; la "
    "sortie prend effet un mois après sa réception par la caisse."
)


def default_legal_basis() -> str:
    # A callable default keeps the wording out of migrations.
    return DEFAULT_LEGAL_BASIS


def normalize_text(value: str) -> str:
    """One spelling per text, so a browser's CRLF or a stray trailing space is not a new version."""
    lines = value.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip()


def validate_placeholders(value: str) -> None:
    """Refuse unknown placeholders: str.format would fail at rendering time, in front of a physician."""
    try:
        fields = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise ValidationError(
            _('Unbalanced braces in the letter text (%(error)s). Write a literal brace as "{{" or "}}".'),
            code="letter_braces",
            params={"error": exc},
        ) from exc
    # Attribute access, indexing, conversions and format specs ("{rpps.x}", "{date!r}",
    # "{date:>10}") are refused too: placeholders are plain names, nothing else is evaluated.
    unknown = sorted(
        {
            "{" + name + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"
            for _literal, name, spec, conversion in fields
            if name is not None and (name not in PLACEHOLDERS or spec or conversion)
        }
    )
    if unknown:
        raise ValidationError(
            _("Unknown placeholders: %(unknown)s. Allowed: %(allowed)s."),
            code="letter_placeholders",
            params={
                "unknown": ", ".join(unknown),
                "allowed": ", ".join("{" + name + "}" for name in PLACEHOLDERS),
            },
        )


def content_sha256(*, title: str, body: str, legal_basis: str) -> str:
    """The hash a pledge can quote to prove which text the physician saw."""
    payload = json.dumps(
        {"title": title, "body": body, "legal_basis": legal_basis},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
