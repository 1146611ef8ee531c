"""The letter a pledge would send: its placeholders filled in, ready for templates/letters/letter.html.

The letter is a French legal act whatever the reader's language, so it is always rendered in
French (translation.override("fr")): its fixed phrases are translatable msgids like any other,
and their French translation is what goes on paper.

A letter body may be a complete letter (the demo's fills the sender, the addressee, the place
and the date through placeholders) or only its paragraphs. The template adds each block the body
does not fill itself, so neither kind prints a block twice.
"""

import hashlib
import json
import string
from datetime import date

from django.utils import timezone, translation
from django.utils.dateformat import format as date_format
from django.utils.translation import gettext

from deconv.pdf import render_to_pdf
from pledges import letter_text
from pledges.letter_layout import FULL_LAYOUT
from pledges.models import Pledge

LETTER_LANGUAGE = "fr"
LETTER_TEMPLATE = "letters/letter.html"
# The placeholders whose value is the same for every letter of a release and caisse: the caisse,
# the date of the release, the effective date. A paragraph using any other placeholder shows the
# signer's own data: it is a signer block of the letter (pledges.letter_layout). Listed this way
# round, a placeholder added later is the signer's until someone says otherwise.
SHARED_PLACEHOLDERS = frozenset({"caisse_name", "caisse_address", "effective_date", "date"})


def french_date(value) -> str:
    """ "1er mars 2026", "22 novembre 2026": the date as written at the foot of a French letter."""
    with translation.override(LETTER_LANGUAGE):
        day = "1er" if value.day == 1 else str(value.day)
        return f"{day} {date_format(value, 'F Y')}"


def caisse_address_lines(caisse) -> list[str]:
    """The caisse's postal address, one line each; empty when nobody has filled it in yet."""
    if caisse is None:
        return []
    town = " ".join(part for part in (caisse.postal_code, caisse.city) if part)
    return [line for line in (caisse.address_line1, caisse.address_line2, town) if line]


def placeholder_values(*, pledge: Pledge, today=None) -> dict[str, str]:
    """Each placeholder of pledges.letter_text, filled from the pledge (call under the letter's language)."""
    today = today or timezone.localdate()
    caisse = pledge.caisse
    address_lines = caisse_address_lines(caisse)
    values = {
        "last_name": pledge.last_name,
        "first_name": pledge.first_name,
        "rpps": pledge.rpps,
        "specialty": str(pledge.get_specialty_display()) if pledge.specialty else "",
        "caisse_name": caisse.name if caisse else gettext("caisse to be completed"),
        "caisse_address": "\n".join(address_lines) if address_lines else gettext("address to be completed"),
        "practice_address": "\n".join(
            line for line in (pledge.practice_address, f"{pledge.postal_code} {pledge.city}".strip()) if line
        ),
        # Translators: completes "à compter du …" in the letter; the law sets the exit one month after
        # the caisse receives the registered letter. Suggested French: "terme du délai d'un mois suivant
        # la réception du présent courrier par la caisse".
        "effective_date": gettext(
            "end of the one-month period following the caisse's receipt of this letter"
        ),
        "place": pledge.city,
        "date": french_date(today),
    }
    # A placeholder added to letter_text must be filled here too: fail in tests, not on paper.
    if set(values) != set(letter_text.PLACEHOLDERS) or not SHARED_PLACEHOLDERS.issubset(values):
        raise RuntimeError("pledges.letters is out of sync with letter_text.PLACEHOLDERS")
    return values


def fill_placeholders(*, text: str, values: dict[str, str]) -> str:
    """str.format restricted to plain names (letter_text.validate_placeholders refused the rest).

    Values are inserted as typed: the template escapes the whole text afterwards.
    """
    parts = []
    for literal, name, _spec, _conversion in string.Formatter().parse(text):
        parts.append(literal)
        if name is not None:
            parts.append(values.get(name, "{" + name + "}"))
    return "".join(parts)


def _placeholders_used(text: str) -> set[str]:
    return {name for _literal, name, _spec, _conv in string.Formatter().parse(text) if name}


def _body_blocks(*, text: str, values: dict[str, str]) -> list[dict]:
    """The body's paragraphs, each filled in and, if it shows a signer's value, named as a signer block."""
    blocks = []
    for number, paragraph in enumerate(text.split("\n\n")):
        if not paragraph.strip():
            continue
        is_signer = bool(_placeholders_used(paragraph) - SHARED_PLACEHOLDERS)
        blocks.append(
            {
                "text": fill_placeholders(text=paragraph, values=values),
                "block": f"paragraph-{number}" if is_signer else None,
            }
        )
    return blocks


def letter_context(*, pledge: Pledge, intention: bool, today: date | None = None) -> dict:
    """Everything templates/letters/letter.html needs; `intention` marks it as not sent.

    `today` is the date the letter is dated (today when None): a released letter is dated the
    day of its release, so regenerating it later prints the same date. The layout is the whole
    letter; pledges.letters_batch replaces it to lay out a frame or signer blocks.
    """
    version = pledge.letter_version
    with translation.override(LETTER_LANGUAGE):
        values = placeholder_values(pledge=pledge, today=today)
        body_blocks = _body_blocks(text=version.body, values=values)
        used = _placeholders_used(version.body)
        return {
            "layout": FULL_LAYOUT,
            "pledge": pledge,
            "letter_version": version,
            "intention": intention,
            "title": version.title,
            "values": values,
            "paragraphs": [block["text"] for block in body_blocks],
            "body_blocks": body_blocks,
            "legal_basis": version.legal_basis,
            "caisse_name": values["caisse_name"],
            "caisse_address_lines": caisse_address_lines(pledge.caisse),
            "show_sender": "practice_address" not in used,
            "show_addressee": not used & {"caisse_name", "caisse_address"},
            "show_registered_mention": "recommandée" not in version.body.lower(),
            "show_place_and_date": not used & {"place", "date"},
        }


def letter_render_pdf(*, pledge: Pledge, intention: bool) -> tuple[str, bytes]:
    """The letter as HTML and PDF, in French."""
    context = letter_context(pledge=pledge, intention=intention)
    with translation.override(LETTER_LANGUAGE):
        return render_to_pdf(template_name=LETTER_TEMPLATE, context=context)


# Bump when a change to templates/letters/ or letter.css should regenerate the letters not sent yet.
LETTER_LAYOUT_VERSION = 1


def letter_inputs(*, pledge: Pledge, today: date) -> dict:
    """What a released letter is made from: its text, the signer's fields it prints, the caisse, the date."""
    caisse = pledge.caisse
    return {
        "layout": LETTER_LAYOUT_VERSION,
        "letter_version_sha256": pledge.letter_version.content_sha256,
        "last_name": pledge.last_name,
        "first_name": pledge.first_name,
        "rpps": pledge.rpps,
        "specialty": pledge.specialty,
        "practice_address": pledge.practice_address,
        "postal_code": pledge.postal_code,
        "city": pledge.city,
        "caisse_name": caisse.name if caisse else "",
        "caisse_address": caisse_address_lines(caisse),
        "date": today.isoformat(),
    }


def letter_inputs_sha256(*, pledge: Pledge, today: date) -> str:
    """A hash of letter_inputs: equal hashes, same letter; a different one means "regenerate"."""
    payload = json.dumps(
        letter_inputs(pledge=pledge, today=today), ensure_ascii=False, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
