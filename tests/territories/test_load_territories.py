"""load_territories: idempotent, updates in place, and keeps what organizers and imports own."""

import shutil

import pytest
from django.conf import settings
from django.core.management import CommandError

from territories.enums import PopulationKind
from territories.models import Caisse, Department, ReferencePopulation, Region
from tests.territories.conftest import run

SUMMARY_FIRST_RUN = (
    "regions: 18 created, 0 updated, 0 unchanged\n"
    "departments: 101 created, 0 updated, 0 unchanged\n"
    "caisses: 107 created, 0 updated, 0 unchanged\n"
    "reference populations: 202 created, 0 updated, 0 unchanged\n"
)
SUMMARY_NOTHING_TO_DO = (
    "regions: 0 created, 0 updated, 18 unchanged\n"
    "departments: 0 created, 0 updated, 101 unchanged\n"
    "caisses: 0 created, 0 updated, 107 unchanged\n"
    "reference populations: 0 created, 0 updated, 202 unchanged\n"
)


@pytest.fixture
def seeds_dir(tmp_path):
    """A copy of the seeds that a test may edit."""
    copy = tmp_path / "seeds"
    shutil.copytree(
        settings.BASE_DIR / "seeds", copy, ignore=shutil.ignore_patterns("*.py", "*.md", "__pycache__")
    )
    return copy


def replace_in(path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_first_load_creates_everything_and_second_load_changes_nothing(db):
    assert run("load_territories") == SUMMARY_FIRST_RUN
    ids = dict(Caisse.objects.values_list("code", "id"))

    assert run("load_territories") == SUMMARY_NOTHING_TO_DO
    assert dict(Caisse.objects.values_list("code", "id")) == ids


def test_a_corrected_seed_updates_the_row_in_place(db, seeds_dir):
    run("load_territories", seeds_dir=seeds_dir)
    nord_id = Department.objects.get(code="59").id
    replace_in(seeds_dir / "departments.csv", "59,Nord,32,0,", "59,Nord (corrigé),32,0,")
    replace_in(
        seeds_dir / "reference_populations.csv", "59,liberal_gps,2018,2306,", "59,liberal_gps,2018,2307,"
    )

    out = run("load_territories", seeds_dir=seeds_dir)

    assert "departments: 0 created, 1 updated, 100 unchanged" in out
    assert "reference populations: 0 created, 1 updated, 201 unchanged" in out
    nord = Department.objects.get(code="59")
    assert (nord.id, nord.name) == (nord_id, "Nord (corrigé)")
    assert (
        ReferencePopulation.objects.get(department=nord, kind=PopulationKind.LIBERAL_GPS, year=2018).count
        == 2307
    )


def test_a_caisse_name_corrected_by_an_organizer_survives_a_reload(db, seeds_dir):
    run("load_territories", seeds_dir=seeds_dir)
    Caisse.objects.filter(code="cpam-64-bayonne").update(
        name="CPAM Pays basque", name_edited_by_organizer=True
    )
    seed_name = Caisse.objects.get(code="cpam-64-pau-pyrenees-bearn").name
    replace_in(seeds_dir / "caisses.csv", f",{seed_name},", f",{seed_name} (corrigé),")

    run("load_territories", seeds_dir=seeds_dir)

    assert Caisse.objects.get(code="cpam-64-bayonne").name == "CPAM Pays basque"
    assert Caisse.objects.get(code="cpam-64-pau-pyrenees-bearn").name == f"{seed_name} (corrigé)"


def test_a_new_seed_row_is_created_next_to_the_others(db, seeds_dir):
    run("load_territories", seeds_dir=seeds_dir)
    with (seeds_dir / "reference_populations.csv").open("a", encoding="utf-8") as seed:
        seed.write("59,liberal_gps,2023,2200,DREES test figure\n")

    out = run("load_territories", seeds_dir=seeds_dir)

    assert "reference populations: 1 created, 0 updated, 202 unchanged" in out
    assert (
        ReferencePopulation.objects.filter(department__code="59", kind=PopulationKind.LIBERAL_GPS).count()
        == 2
    )


def test_an_organizer_address_and_notes_survive_a_seed_without_them(db):
    run("load_territories")
    Caisse.objects.filter(code="cpam-64-bayonne").update(
        address_line1="Place test",
        postal_code="64100",
        city="Bayonne",
        address_verified=True,
        notes="Appelée.",
    )

    out = run("load_territories")

    assert "caisses: 0 created, 0 updated, 107 unchanged" in out
    bayonne = Caisse.objects.get(code="cpam-64-bayonne")
    assert (bayonne.address_line1, bayonne.postal_code, bayonne.city) == ("Place test", "64100", "Bayonne")
    assert bayonne.address_verified is True
    assert bayonne.notes == "Appelée."


def test_an_address_the_seed_provides_replaces_the_stored_one_field_by_field(db, seeds_dir):
    run("load_territories", seeds_dir=seeds_dir)
    Caisse.objects.filter(code="cpam-64-bayonne").update(address_line1="Ancienne adresse", city="Bayonne")
    replace_in(
        seeds_dir / "caisses.csv", "CPAM de Bayonne,,,,,,", "CPAM de Bayonne,Nouvelle adresse,,64100,,1,"
    )

    out = run("load_territories", seeds_dir=seeds_dir)

    assert "caisses: 0 created, 1 updated, 106 unchanged" in out
    bayonne = Caisse.objects.get(code="cpam-64-bayonne")
    assert (bayonne.address_line1, bayonne.postal_code, bayonne.city) == (
        "Nouvelle adresse",
        "64100",
        "Bayonne",
    )
    assert bayonne.address_verified is True


def test_a_figure_imported_from_cnam_open_data_is_kept(db):
    run("load_territories")
    ReferencePopulation.objects.filter(
        department__code="59", kind=PopulationKind.LIBERAL_GPS, year=2018
    ).update(count=2299, source="CNAM open data, demographie.csv")

    out = run("load_territories")

    assert (
        "reference populations: 0 created, 0 updated, 201 unchanged, 1 kept (their source is not the seed's)"
        in out
    )
    assert (
        ReferencePopulation.objects.get(
            department__code="59", kind=PopulationKind.LIBERAL_GPS, year=2018
        ).count
        == 2299
    )


def test_a_seed_naming_an_unknown_region_is_rejected_and_nothing_is_loaded(db, seeds_dir):
    replace_in(seeds_dir / "departments.csv", "59,Nord,32,0,", "59,Nord,33,0,")

    with pytest.raises(CommandError, match=r"departments\.csv, line 66: region_code '33' names no region"):
        run("load_territories", seeds_dir=seeds_dir)

    assert not Region.objects.exists()
    assert not Department.objects.exists()


def test_a_seed_with_a_bad_value_names_its_file_and_line(db, seeds_dir):
    replace_in(seeds_dir / "caisses.csv", "cpam-64-bayonne,64,cpam,", "cpam-64-bayonne,64,cpamx,")

    with pytest.raises(
        CommandError, match=r"caisses\.csv, line \d+: kind must be one of cpam, cgss, cssm, not 'cpamx'"
    ):
        run("load_territories", seeds_dir=seeds_dir)

    assert not Caisse.objects.exists()


def test_load_territories_runs_in_a_handful_of_queries(db, django_assert_max_num_queries):
    run("load_territories")

    # Read, bulk create or update, and re-read ids per table: no per-row queries.
    with django_assert_max_num_queries(12):
        run("load_territories")
