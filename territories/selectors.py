"""Reads: departments by region, caisses of a department, latest reference populations."""

from django.db.models import OuterRef, Subquery

from territories.models import Caisse, Department, ReferencePopulation, Region


def reference_population_latest(*, kind: str) -> dict[str, int]:
    """Department code -> count of the latest year on record for that department, in one query."""
    latest_year = (
        ReferencePopulation.objects.filter(department=OuterRef("department"), kind=kind)
        .order_by("-year")
        .values("year")[:1]
    )
    rows = ReferencePopulation.objects.filter(kind=kind, year=Subquery(latest_year)).values_list(
        "department__code", "count"
    )
    return dict(rows)


def departments_by_region() -> dict[Region, list[Department]]:
    """Regions in INSEE code order, each with its departments in official order, in one query."""
    grouped: dict[Region, list[Department]] = {}
    for department in Department.objects.select_related("region").order_by("region__code", "position"):
        grouped.setdefault(department.region, []).append(department)
    return grouped


def caisses_for_department(*, department_code: str) -> list[Caisse]:
    """The caisses a physician of this department may write to: one, or a choice in 59, 62, 64, 76."""
    return list(Caisse.objects.filter(department__code=department_code).order_by("name"))
