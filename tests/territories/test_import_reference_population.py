"""import_reference_population: reads the CNAM open-data file, all of it or nothing."""

import re

import pytest
from django.core.management import CommandError

from territories.enums import PopulationKind
from territories.models import ReferencePopulation
from tests.territories.conftest import DATA_DIR, run

AGGREGATES = DATA_DIR / "cnam_aggregates.csv"
DETAILS = DATA_DIR / "cnam_details_bom_comma.csv"
GPS, PHYSICIANS = PopulationKind.LIBERAL_GPS, PopulationKind.LIBERAL_PHYSICIANS


def figures(year: int) -> dict[tuple[str, str], tuple[int, str]]:
    rows = ReferencePopulation.objects.filter(year=year).values_list(
        "department__code", "kind", "count", "source"
    )
    return {(code, kind): (count, source) for code, kind, count, source in rows}


def snapshot() -> list[tuple]:
    return list(
        ReferencePopulation.objects.order_by("id").values_list(
            "id", "department_id", "kind", "year", "count", "source"
        )
    )


def test_aggregate_rows_are_used_and_detail_rows_not_added_to_them(territories):
    out = run("import_reference_population", AGGREGATES)

    source = "CNAM open data, cnam_aggregates.csv"
    assert figures(2023) == {
        ("59", GPS): (2150, source),
        ("59", PHYSICIANS): (4300, source),
        ("2A", GPS): (140, source),
        ("2A", PHYSICIANS): (300, source),
        ("974", GPS): (820, source),
    }
    assert "figures for 2023: 5 created, 0 updated, 0 unchanged" in out
    assert "departments: 3 in the file, 0 unknown" in out
    assert "rows: 10 used, 1 ignored (other professions), 2 aggregates (departement 999) skipped" in out
    assert "ignored professions: Infirmiers" in out
    assert "departments without figures: 01, 02, 03, " in out
    assert ", 19, 2B, 21, " in out


def test_detail_rows_are_summed_when_the_file_has_no_aggregate_and_a_bom_and_commas_are_fine(territories):
    out = run("import_reference_population", DETAILS)

    assert figures(2023) == {
        ("59", GPS): (250 + 350 + 850 + 700, "CNAM open data, cnam_details_bom_comma.csv")
    }
    assert "rows: 4 used, 1 ignored (other professions), 1 aggregates (departement 999) skipped" in out


def test_a_second_import_of_the_same_file_changes_nothing(territories):
    run("import_reference_population", AGGREGATES)
    before = snapshot()

    out = run("import_reference_population", AGGREGATES)

    assert "figures for 2023: 0 created, 0 updated, 5 unchanged" in out
    assert snapshot() == before


def test_an_import_for_a_seeded_year_updates_only_changed_figures(territories, tmp_path):
    sample = tmp_path / "cnam_2018.csv"
    sample.write_text(
        AGGREGATES.read_text(encoding="utf-8").replace("2023;", "2018;").replace(";2150;", ";2306;"),
        encoding="utf-8",
    )

    out = run("import_reference_population", sample)

    assert "figures for 2018: 0 created, 4 updated, 1 unchanged" in out
    nord_gps = ReferencePopulation.objects.get(department__code="59", kind=GPS, year=2018)
    assert (nord_gps.count, nord_gps.source) == (
        2306,
        "CNAM, Amos, liberal GPs excluding MEP active on 31/12/2018",
    )
    nord_all = ReferencePopulation.objects.get(department__code="59", kind=PHYSICIANS, year=2018)
    assert (nord_all.count, nord_all.source) == (4300, "CNAM open data, cnam_2018.csv")


def test_dry_run_reports_and_changes_nothing(territories):
    before = snapshot()

    out = run("import_reference_population", AGGREGATES, dry_run=True)

    assert "figures for 2023: 5 created, 0 updated, 0 unchanged" in out
    assert "dry run: nothing was written" in out
    assert snapshot() == before


def test_profession_option_maps_a_label_to_a_kind(territories):
    run(
        "import_reference_population",
        AGGREGATES,
        profession=["INFIRMIERS=liberal_gps", "Médecins généralistes (hors MEP)=ignore"],
    )

    assert figures(2023)[("59", GPS)] == (5000, "CNAM open data, cnam_aggregates.csv")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Infirmiers", "--profession 'Infirmiers': expected \"LABEL=KIND\""),
        ("Infirmiers=nurses", "KIND one of liberal_gps, liberal_physicians, ignore"),
    ],
)
def test_a_malformed_profession_option_is_refused(territories, value, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("import_reference_population", AGGREGATES, profession=[value])


def test_a_profession_option_naming_no_label_of_the_file_is_refused(territories):
    with pytest.raises(CommandError, match="--profession names no profession of the file: Sages-femmes;"):
        run("import_reference_population", AGGREGATES, profession=["Sages-femmes=liberal_gps"])


def test_two_labels_counting_as_the_same_kind_are_refused_rather_than_double_counted(territories):
    with pytest.raises(
        CommandError, match=r"line 9: 'Infirmiers' and 'Médecins généralistes \(hors MEP\)' \(line 2\)"
    ):
        run("import_reference_population", AGGREGATES, profession=["Infirmiers=liberal_gps"])


def _malformed(tmp_path, text: str | bytes):
    path = tmp_path / "malformed.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


GOOD = AGGREGATES.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "malformed.csv: line 1: the file is empty"),
        ("\n\n", "malformed.csv: line 1: the file is empty"),
        (GOOD.replace(";effectif;", ";nombre;", 1), "line 1: missing column\\(s\\): effectif"),
        (
            GOOD.replace(";tout sexe;2150;", ";tout sexe;2 150,5;"),
            "line 2: effectif '2 150,5' is not a whole number",
        ),
        (
            GOOD.replace(
                ";Nord;Ensemble des médecins;tout_age;Tout âge;tout sexe;4300;",
                ";Nord;Ensemble des médecins;tout_age;Tout âge;tout sexe;;",
            ),
            "line 8: effectif '' is not a whole number",
        ),
        (
            GOOD.replace("2023;04;La Réunion;974;", "2023;04;La Réunion;975;"),
            "line 12: unknown department code '975'",
        ),
        (
            GOOD.replace("2023;04;La Réunion;974;", "2023;04;La Réunion;Réunion;"),
            "line 12: departement 'Réunion' is not a department code",
        ),
        (
            GOOD.replace("2023;94;Corse;2A;Corse-du-Sud;Ensemble", "23;94;Corse;2A;Corse-du-Sud;Ensemble"),
            "line 11: annee '23' is not a year",
        ),
        (
            GOOD.replace(";Tout âge;femmes;1050;", ";Tout âge;femmes;1050"),
            "line 4: expected 11 values, found 10",
        ),
        (
            GOOD + GOOD.splitlines()[1] + "\n",
            "line 15: same year, department, profession, age class and sex as line 2",
        ),
        (
            "annee region departement\n2023 32 59\n",
            "line 1: the header has no ';' or ',' between column names",
        ),
        (GOOD.splitlines()[0] + "\n", "line 2: no data rows after the header"),
        (GOOD.replace(";Tout âge;femmes;1050;", ';"Tout" âge;femmes;1050;'), "line 4: unreadable CSV"),
    ],
)
def test_a_malformed_file_names_the_line_and_changes_nothing(territories, tmp_path, content, message):
    before = snapshot()

    with pytest.raises(CommandError, match=message) as error:
        run("import_reference_population", _malformed(tmp_path, content))

    assert str(error.value).endswith("nothing was changed")
    assert snapshot() == before


def test_a_file_that_is_not_utf8_names_the_line_and_changes_nothing(territories, tmp_path):
    before = snapshot()
    latin1 = GOOD.encode("utf-8").replace("Réunion;974".encode(), "Réunion;974".encode("latin-1"))

    with pytest.raises(CommandError, match=r"line 12: not UTF-8 text \(byte 0xe9\); save the file as UTF-8"):
        run("import_reference_population", _malformed(tmp_path, latin1))

    assert snapshot() == before


def test_an_error_on_the_last_line_prevents_the_writes_of_the_earlier_ones(territories, tmp_path):
    content = GOOD.replace(
        "2023;04;La Réunion;974;La Réunion;Médecins généralistes (hors MEP);tout_age;Tout âge;tout sexe;820;",
        "2023;04;La Réunion;974;La Réunion;Médecins généralistes (hors MEP);tout_age;Tout âge;tout sexe;NS;",
    )

    with pytest.raises(CommandError, match="line 12: effectif 'NS' is not a whole number"):
        run("import_reference_population", _malformed(tmp_path, content))

    assert not ReferencePopulation.objects.filter(year=2023).exists()


def test_a_file_without_any_physician_row_is_refused(territories, tmp_path):
    header = GOOD.splitlines()[0]
    content = f"{header}\n2023;32;Hauts-de-France;59;Nord;Infirmiers;tout_age;Tout âge;tout sexe;5000;191,7\n"

    with pytest.raises(
        CommandError, match=r"no row counts liberal GPs or physicians \(professions found: Infirmiers\)"
    ):
        run("import_reference_population", _malformed(tmp_path, content))


def test_a_missing_file_is_a_command_error(territories, tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        run("import_reference_population", tmp_path / "absent.csv")


def test_importing_before_the_territories_are_loaded_says_what_to_do(db):
    with pytest.raises(CommandError, match=r"no departments yet: run manage\.py load_territories first"):
        run("import_reference_population", AGGREGATES)
