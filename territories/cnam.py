"""Read the CNAM open-data file of liberal health professionals per department.

Dataset `demographie-effectifs-et-les-densites` on data.ameli.fr, one row per year,
department, profession, age class and sex: `annee, region, libelle_region, departement,
libelle_departement, profession_sante, classe_age, libelle_classe_age, libelle_sexe,
effectif, densite`. The whole file is checked before anything is returned, so a caller
can write all of it or none of it.
"""

import csv
import io
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from territories.enums import PopulationKind

REQUIRED_COLUMNS = ("annee", "departement", "profession_sante", "classe_age", "libelle_sexe", "effectif")
NATIONAL_AGGREGATE = "999"
IGNORE = "ignore"
SOURCE_PREFIX = "CNAM open data"
PROFESSION_CHOICES = (*PopulationKind.values, IGNORE)

_ALL = "*"  # stands for "all ages" or "both sexes" in a row's cell key
_YEAR = re.compile(r"[0-9]{4}")
_DEPARTMENT = re.compile(r"[0-9]{2,3}|2[AB]")


class CnamFileError(Exception):
    def __init__(self, line: int | None, message: str):
        self.line = line
        super().__init__(f"line {line}: {message}" if line else message)


@dataclass
class CnamFigures:
    """Counts by (year, department code, population kind), and what was left out."""

    counts: dict[tuple[int, str, str], int] = field(default_factory=dict)
    rows_used: int = 0
    rows_aggregate: int = 0
    rows_ignored: int = 0
    ignored_professions: set[str] = field(default_factory=set)


def normalise_label(label: str) -> str:
    """Lower case, no accents, single spaces: labels vary in case and accents between files."""
    decomposed = unicodedata.normalize("NFKD", label.casefold())
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(plain.replace("_", " ").split())


def default_kind(label: str) -> str:
    """The population kind a profession label counts towards, or IGNORE.

    - a label naming GPs ("Médecins généralistes (hors MEP)") counts as liberal GPs, unless it
      includes MEP (physicians with a particular practice are not in our GP denominator);
    - a label for all physicians ("Ensemble des médecins", "Total médecins") counts as all
      liberal physicians, even when it also names GPs and specialists;
    - every other profession (specialists, dentists, nurses...) is ignored.
    """
    text = normalise_label(label)
    words = set(re.findall(r"\w+", text))
    if "generaliste" in text and "specialiste" not in text:
        counts_mep = "mep" in words and "hors mep" not in text
        return IGNORE if counts_mep else PopulationKind.LIBERAL_GPS.value
    if words & {"medecin", "medecins"} and words & {"ensemble", "total", "tous"}:
        return PopulationKind.LIBERAL_PHYSICIANS.value
    return IGNORE


def _is_all(value: str) -> bool:
    text = normalise_label(value)
    return text in {"ensemble", "total"} or text.split(" ")[0] in {"tout", "tous", "toutes"}


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise CnamFileError(
            line, f"not UTF-8 text (byte 0x{data[error.start]:02x}); save the file as UTF-8"
        ) from None


def _delimiter(header: str) -> str:
    semicolons, commas = header.count(";"), header.count(",")
    if not semicolons and not commas:
        raise CnamFileError(1, "the header has no ';' or ',' between column names")
    return ";" if semicolons >= commas else ","


def _count(value: str, line: int) -> int:
    digits = "".join(value.split())  # "1 234" with ordinary or no-break spaces
    if not digits.isascii() or not digits.isdigit():
        raise CnamFileError(line, f"effectif {value!r} is not a whole number")
    return int(digits)


def _total(cells: dict[tuple[str, str], tuple[int, int]]) -> int:
    """Add the rows of one group, (age, sex) -> (count, line), without counting anyone twice.

    1. An all-ages, both-sexes row is the answer.
    2. Else all-ages rows per sex add up, or both-sexes rows per age class do.
    3. Else every detail row adds up.
    """
    if (_ALL, _ALL) in cells:
        return cells[(_ALL, _ALL)][0]
    for position in (0, 1):
        chosen = [count for key, (count, _) in cells.items() if key[position] == _ALL]
        if chosen:
            return sum(chosen)
    return sum(count for count, _ in cells.values())


def _read_table(path: Path) -> tuple[dict[str, int], Iterator[tuple[int, list[str]]]]:
    """The column positions by name, and the non-blank rows with their line numbers."""
    text = _decode(path.read_bytes())
    if not text.strip():
        raise CnamFileError(1, "the file is empty")
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=_delimiter(text.splitlines()[0]), strict=True
    )
    header = [name.strip().lower() for name in next(reader)]
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise CnamFileError(1, f"missing column(s): {', '.join(missing)}")

    def rows():
        seen = False
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as error:  # text after a closing quote, a quote left open
                raise CnamFileError(reader.line_num, f"unreadable CSV ({error})") from None
            if not any(value.strip() for value in row):
                continue
            if len(row) != len(header):
                raise CnamFileError(reader.line_num, f"expected {len(header)} values, found {len(row)}")
            seen = True
            yield reader.line_num, row
        if not seen:
            raise CnamFileError(2, "no data rows after the header")

    return {name: index for index, name in enumerate(header)}, rows()


def parse_cnam_file(*, path: Path, department_codes: set[str], professions: dict[str, str]) -> CnamFigures:
    """Check the whole file and return its figures; raise CnamFileError at the first problem.

    `professions` maps profession labels to a population kind or IGNORE and takes precedence
    over default_kind; labels are compared after normalise_label. Rows of ignored professions
    and aggregates are counted, not checked.
    """
    column, rows = _read_table(path)
    overrides = {normalise_label(label): kind for label, kind in professions.items()}
    given_labels = {normalise_label(label): label for label in professions}
    figures = CnamFigures()
    kind_by_label: dict[str, tuple[str, int]] = {}  # profession label -> (kind, first line)
    # (year, department, kind) -> (age, sex) -> (count, line)
    groups: dict[tuple[int, str, str], dict[tuple[str, str], tuple[int, int]]] = defaultdict(dict)
    for line, row in rows:
        value = {name: row[index].strip() for name, index in column.items()}
        department = value["departement"].upper()
        department = department.zfill(2) if department.isdigit() and len(department) == 1 else department
        if department == NATIONAL_AGGREGATE:
            figures.rows_aggregate += 1
            continue
        label = value["profession_sante"]
        if label not in kind_by_label:
            kind = overrides.get(normalise_label(label)) or default_kind(label)
            _check_one_label_per_kind(kind_by_label, label, kind, line)
            kind_by_label[label] = (kind, line)
        kind = kind_by_label[label][0]
        if kind == IGNORE:
            figures.rows_ignored += 1
            figures.ignored_professions.add(label)
            continue

        if not _YEAR.fullmatch(value["annee"]):
            raise CnamFileError(line, f"annee {value['annee']!r} is not a year")
        if not _DEPARTMENT.fullmatch(department):
            raise CnamFileError(line, f"departement {value['departement']!r} is not a department code")
        if department not in department_codes:
            raise CnamFileError(line, f"unknown department code {department!r}")
        count = _count(value["effectif"], line)
        all_ages = _is_all(value["classe_age"]) or _is_all(value.get("libelle_classe_age", ""))
        age = _ALL if all_ages else normalise_label(value["classe_age"])
        sex = _ALL if _is_all(value["libelle_sexe"]) else normalise_label(value["libelle_sexe"])
        group, cell = groups[(int(value["annee"]), department, kind)], (age, sex)
        if cell in group:
            raise CnamFileError(
                line, f"same year, department, profession, age class and sex as line {group[cell][1]}"
            )
        group[cell] = (count, line)
        figures.rows_used += 1

    unused = set(overrides) - {normalise_label(label) for label in kind_by_label}
    if unused:
        labels = ", ".join(sorted(given_labels[label] for label in unused))
        raise CnamFileError(None, f"--profession names no profession of the file: {labels}")
    if not groups:
        found = ", ".join(sorted(kind_by_label)) or "none"
        raise CnamFileError(None, f"no row counts liberal GPs or physicians (professions found: {found})")
    figures.counts = {key: _total(cells) for key, cells in groups.items()}
    return figures


def _check_one_label_per_kind(
    kind_by_label: dict[str, tuple[str, int]], label: str, kind: str, line: int
) -> None:
    """Two labels counted as one kind would count the same physicians twice."""
    if kind == IGNORE:
        return
    for other, (other_kind, other_line) in kind_by_label.items():
        if other_kind == kind:
            raise CnamFileError(
                line,
                f"{label!r} and {other!r} (line {other_line}) would both count as {kind}; "
                f'choose with --profession "LABEL={IGNORE}" for one of them',
            )
