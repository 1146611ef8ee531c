"""Every message catalogue is complete in French and compiled: no empty, no fuzzy, .mo in step with .po."""

import ast
import gettext
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_DIRS = {".git", ".venv", "var", "node_modules", "static"}


def _find_catalogues() -> list[Path]:
    """The project's catalogues: top-level locale/ and each app's; never the virtualenv's."""
    found = set(ROOT.glob("locale/*/LC_MESSAGES/django.po"))
    for top in ROOT.iterdir():
        if top.is_dir() and top.name not in SKIPPED_DIRS and top.name != "locale":
            found.update(top.glob("**/locale/*/LC_MESSAGES/django.po"))
    return sorted(found)


CATALOGUES = _find_catalogues()
FRENCH = [path for path in CATALOGUES if path.parent.parent.name == "fr"]


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


@dataclass
class Entry:
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False
    # "msgctxt", "msgid", "msgid_plural", "msgstr" or "msgstr[n]" -> unescaped text
    parts: dict[str, str] = field(default_factory=dict)

    @property
    def translations(self) -> list[str]:
        return [text for key, text in self.parts.items() if key.startswith("msgstr")]


def parse_po(path: Path) -> list[Entry]:
    """A small .po reader: entries separated by blank lines, quoted strings continued on next lines."""
    entries, entry, key = [], Entry(), None
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip():
            if entry.parts:
                entries.append(entry)
            entry, key = Entry(), None
        elif line.startswith("#~"):
            entry.obsolete = True
        elif line.startswith("#,"):
            entry.flags.update(flag.strip() for flag in line[2:].split(","))
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            entry.parts[key] += ast.literal_eval(line)
        else:
            key, _, quoted = line.partition(" ")
            entry.parts[key] = ast.literal_eval(quoted)
    return entries


def catalogue_key(entry: Entry) -> str:
    msgid = entry.parts["msgid"]
    return f"{entry.parts['msgctxt']}\x04{msgid}" if "msgctxt" in entry.parts else msgid


def test_catalogues_are_found():
    assert ROOT / "locale" / "fr" / "LC_MESSAGES" / "django.po" in FRENCH
    assert ROOT / "locale" / "en" / "LC_MESSAGES" / "django.po" in CATALOGUES


@pytest.mark.parametrize("po", FRENCH, ids=_id)
def test_french_catalogue_is_complete(po):
    entries = [entry for entry in parse_po(po) if not entry.obsolete]

    untranslated = [e.parts["msgid"] for e in entries if e.parts["msgid"] and not all(e.translations)]
    fuzzy = [e.parts["msgid"] or "(header)" for e in entries if "fuzzy" in e.flags]
    assert len(entries) > 1, f"{_id(po)} has no messages"
    assert untranslated == []
    assert fuzzy == []


@pytest.mark.parametrize("po", CATALOGUES, ids=_id)
def test_compiled_catalogue_matches_its_source(po):
    mo = po.with_suffix(".mo")
    assert mo.exists(), f"{_id(mo)} is missing: run `make messages-compile`"
    with mo.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)._catalog

    stale = []
    for entry in parse_po(po):
        if entry.obsolete or "fuzzy" in entry.flags or not entry.parts["msgid"]:
            continue
        key = catalogue_key(entry)
        if "msgid_plural" in entry.parts:
            expected = {(key, n): text for n, text in enumerate(entry.translations)}
        else:
            expected = {key: entry.parts["msgstr"]}
        # msgfmt leaves untranslated messages out; gettext then falls back to the msgid.
        stale += [k for k, text in expected.items() if text and compiled.get(k) != text]
    assert stale == [], f"{_id(mo)} is older than {_id(po)}: run `make messages-compile`"
    # Without its header (dropped when marked fuzzy) gettext would read the .mo as ASCII.
    assert "charset=UTF-8" in compiled[""]
