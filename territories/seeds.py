"""Read the seed files of seeds/ into field values, keyed by natural key.

Each file starts with `#` comment lines (source, URL, year), then a CSV header. Parsing
checks types and choices; references between files (a department's region) are checked
when loading, against what is in the database by then.
"""

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from territories.enums import CaisseKind, PopulationKind

DEFAULT_SEEDS_DIR = settings.BASE_DIR / "seeds"

# A blank address cell means "the seed says nothing", never "clear the organizer's value".
CAISSE_ADDRESS_FIELDS = ("address_line1", "address_line2", "postal_code", "city")


class SeedError(Exception):
    pass


@dataclass(frozen=True)
class SeedRow:
    """One row's field values and where it came from, for error messages."""

    file: str
    line: int
    values: dict[str, Any]

    def error(self, message: str) -> SeedError:
        return SeedError(f"{self.file}, line {self.line}: {message}")


def read_seed(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of a seed file, its leading comment lines skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    skipped = 0
    while skipped < len(lines) and lines[skipped].startswith("#"):
        skipped += 1
    reader = csv.DictReader(lines[skipped:])
    # The header is on line skipped + 1, so the first data row is on skipped + 2.
    return [(skipped + index, row) for index, row in enumerate(reader, start=2)]


def _bool(row: dict[str, str], column: str) -> bool:
    value = row[column].strip()
    if value not in {"0", "1"}:
        raise ValueError(f"{column} must be 0 or 1, not {value!r}")
    return value == "1"


def _int(row: dict[str, str], column: str) -> int:
    value = row[column].strip()
    if not value.isascii() or not value.isdigit():
        raise ValueError(f"{column} must be a whole number, not {value!r}")
    return int(value)


def _choice(row: dict[str, str], column: str, choices: type) -> str:
    value = row[column].strip()
    if value not in choices.values:
        raise ValueError(f"{column} must be one of {', '.join(choices.values)}, not {value!r}")
    return value


def _parse(path: Path, convert: Callable[[dict[str, str]], tuple[Any, dict[str, Any]]]) -> dict[Any, SeedRow]:
    rows: dict[Any, SeedRow] = {}
    for line, row in read_seed(path):
        if None in row or None in row.values():
            raise SeedError(f"{path.name}, line {line}: the row does not have one value per column")
        try:
            key, values = convert(row)
        except (KeyError, ValueError) as error:
            raise SeedError(f"{path.name}, line {line}: {error}") from error
        if key in rows:
            raise SeedError(f"{path.name}, line {line}: {key} already on line {rows[key].line}")
        rows[key] = SeedRow(path.name, line, values)
    return rows


def _region(row: dict[str, str]):
    code = row["code"].strip()
    return code, {"code": code, "name": row["name"].strip(), "is_overseas": _bool(row, "is_overseas")}


def _department(row: dict[str, str]):
    code = row["code"].strip()
    return code, {
        "code": code,
        "name": row["name"].strip(),
        "region_code": row["region_code"].strip(),
        "is_overseas": _bool(row, "is_overseas"),
        "position": _int(row, "position"),
    }


def _caisse(row: dict[str, str]):
    code = row["code"].strip()
    values = {
        "code": code,
        "department_code": row["department_code"].strip(),
        "kind": _choice(row, "kind", CaisseKind),
        "name": row["name"].strip(),
        "notes": row["notes"].strip(),
    }
    # None marks what the seed does not provide, so the loader leaves it alone.
    for field in CAISSE_ADDRESS_FIELDS:
        values[field] = row[field].strip() or None
    values["address_verified"] = _bool(row, "address_verified") if row["address_verified"].strip() else None
    return code, values


def _population(row: dict[str, str]):
    key = (row["department_code"].strip(), _choice(row, "kind", PopulationKind), _int(row, "year"))
    return key, {"count": _int(row, "count"), "source": row["source"].strip()}


def read_regions(seeds_dir: Path) -> dict[str, SeedRow]:
    return _parse(seeds_dir / "regions.csv", _region)


def read_departments(seeds_dir: Path) -> dict[str, SeedRow]:
    return _parse(seeds_dir / "departments.csv", _department)


def read_caisses(seeds_dir: Path) -> dict[str, SeedRow]:
    return _parse(seeds_dir / "caisses.csv", _caisse)


def read_populations(seeds_dir: Path) -> dict[tuple[str, str, int], SeedRow]:
    return _parse(seeds_dir / "reference_populations.csv", _population)
