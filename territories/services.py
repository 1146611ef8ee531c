"""Writes: load the seed files, and store reference populations imported from CNAM open data."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import models, transaction

from territories import seeds
from territories.models import Caisse, Department, ReferencePopulation, Region


@dataclass
class LoadCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    kept: int = 0


def _seed_changes(obj: models.Model, values: dict[str, Any]) -> dict[str, Any]:
    """The seed is the truth for these fields: every difference is a change."""
    return {name: value for name, value in values.items() if getattr(obj, name) != value}


def _caisse_changes(obj: Caisse, values: dict[str, Any]) -> dict[str, Any]:
    """Organizers own a caisse's address and notes once they exist, and its name once corrected.

    A blank (None) address cell in the seed never clears what an organizer typed; a value the
    seed does give replaces theirs. Notes are only filled while empty: the seed's note records
    where the name came from, and an organizer's later note must survive every `make run`.
    """
    provided = {name: value for name, value in values.items() if value is not None}
    if obj.notes:
        provided.pop("notes")
    if obj.name_edited_by_organizer:
        provided.pop("name", None)
    return _seed_changes(obj, provided)


def _population_changes(obj: ReferencePopulation, values: dict[str, Any]) -> dict[str, Any] | None:
    """None for a figure with a source of its own (CNAM open data, an organizer): it stays."""
    if obj.source != values["source"]:
        return None
    return _seed_changes(obj, values)


def _sync(
    model: type[models.Model],
    existing: dict[Any, models.Model],
    wanted: dict[Any, dict[str, Any]],
    changes: Callable[[Any, dict[str, Any]], dict[str, Any] | None] = _seed_changes,
) -> LoadCounts:
    """Create missing rows and update changed ones, one bulk query each."""
    counts = LoadCounts()
    to_create, to_update, fields = [], [], set()
    for key, values in wanted.items():
        obj = existing.get(key)
        if obj is None:
            to_create.append(model(**{name: value for name, value in values.items() if value is not None}))
            continue
        changed = changes(obj, values)
        if changed is None:
            counts.kept += 1
        elif changed:
            for name, value in changed.items():
                setattr(obj, name, value)
            to_update.append(obj)
            fields.update(changed)
        else:
            counts.unchanged += 1
    model.objects.bulk_create(to_create)
    if to_update:
        model.objects.bulk_update(to_update, sorted(fields))
    counts.created, counts.updated = len(to_create), len(to_update)
    return counts


def _resolve(rows: dict[Any, seeds.SeedRow], column: str, ids: dict[str, int], target: str) -> None:
    """Replace a code column (region_code) by the foreign key (region_id) it names."""
    for row in rows.values():
        code = row.values.pop(column)
        if code not in ids:
            raise row.error(f"{column} {code!r} names no {target}")
        row.values[f"{target}_id"] = ids[code]


@transaction.atomic
def territories_load_seeds(*, seeds_dir: Path) -> dict[str, LoadCounts]:
    """Load the four seed files in one transaction, matching rows on their natural keys.

    1. Regions by code, then departments by code (their region must exist by then).
    2. Caisses by code, keeping organizer-owned address fields and notes (_caisse_changes).
    3. Reference populations by department, kind and year; a figure whose source is not the
       seed's (imported, or typed by an organizer) is kept.
    Rows missing from the seeds are left alone: pledges may point at them.
    Raises seeds.SeedError, and then nothing is written.
    """
    regions = seeds.read_regions(seeds_dir)
    departments = seeds.read_departments(seeds_dir)
    caisses = seeds.read_caisses(seeds_dir)
    populations = seeds.read_populations(seeds_dir)
    result = {}

    result["regions"] = _sync(
        Region,
        {region.code: region for region in Region.objects.all()},
        {code: row.values for code, row in regions.items()},
    )
    _resolve(departments, "region_code", dict(Region.objects.values_list("code", "id")), "region")
    result["departments"] = _sync(
        Department,
        {department.code: department for department in Department.objects.all()},
        {code: row.values for code, row in departments.items()},
    )
    department_ids = dict(Department.objects.values_list("code", "id"))
    _resolve(caisses, "department_code", department_ids, "department")
    result["caisses"] = _sync(
        Caisse,
        {caisse.code: caisse for caisse in Caisse.objects.all()},
        {code: row.values for code, row in caisses.items()},
        _caisse_changes,
    )
    wanted_populations = {}
    for (department_code, kind, year), row in populations.items():
        if department_code not in department_ids:
            raise row.error(f"department_code {department_code!r} names no department")
        department_id = department_ids[department_code]
        wanted_populations[(department_id, kind, year)] = {
            "department_id": department_id,
            "kind": kind,
            "year": year,
            **row.values,
        }
    result["reference populations"] = _sync(
        ReferencePopulation,
        {(p.department_id, p.kind, p.year): p for p in ReferencePopulation.objects.all()},
        wanted_populations,
        _population_changes,
    )
    return result


@dataclass
class ImportCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


@transaction.atomic
def reference_populations_import(
    *, counts: dict[tuple[int, str, str], int], source: str, dry_run: bool
) -> ImportCounts:
    """Store figures by (year, department code, kind); with dry_run, only count what would change.

    A figure whose count is already right is left as it is, source included.
    """
    department_ids = dict(Department.objects.values_list("code", "id"))
    years = {year for year, _, _ in counts}
    existing = {
        (p.year, p.department_id, p.kind): p for p in ReferencePopulation.objects.filter(year__in=years)
    }
    result = ImportCounts()
    to_create, to_update = [], []
    for (year, department_code, kind), count in sorted(counts.items()):
        department_id = department_ids[department_code]
        figure = existing.get((year, department_id, kind))
        if figure is None:
            to_create.append(
                ReferencePopulation(
                    department_id=department_id, kind=kind, year=year, count=count, source=source
                )
            )
        elif figure.count != count:
            figure.count, figure.source = count, source
            to_update.append(figure)
        else:
            result.unchanged += 1
    result.created, result.updated = len(to_create), len(to_update)
    if not dry_run:
        ReferencePopulation.objects.bulk_create(to_create)
        ReferencePopulation.objects.bulk_update(to_update, ["count", "source"])
    return result
