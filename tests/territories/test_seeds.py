"""The committed seeds hold the facts of the domain brief, and derive from shared/reference."""

import re
import subprocess
import sys
from collections import Counter

import pytest
from django.conf import settings
from django.db.models import Sum

from territories.enums import CaisseKind, PopulationKind
from territories.models import Caisse, Department, ReferencePopulation, Region

SEEDS_DIR = settings.BASE_DIR / "seeds"
SOURCES_DIR = SEEDS_DIR / "sources"
SOURCE_FILES = ("regions.csv", "departements.csv", "cpam_by_departement.csv", "gp_by_departement.csv")
# The domain brief's reference folder, beside the repository where it was developed.
SHARED_REFERENCE_DIR = settings.BASE_DIR.parent / "shared" / "reference"
SEED_FILES = ("regions.csv", "departments.csv", "caisses.csv", "reference_populations.csv")

DEPARTMENT_CODES = (
    [f"{n:02d}" for n in range(1, 20)]
    + ["2A", "2B"]
    + [f"{n:02d}" for n in range(21, 96)]
    + ["971", "972", "973", "974", "976"]
)
SEVERAL_CAISSES = {"59": 4, "62": 2, "64": 2, "76": 2}


def test_there_are_18_regions_with_their_insee_codes(territories):
    codes = list(Region.objects.values_list("code", flat=True))

    assert len(codes) == 18
    assert codes[:5] == ["01", "02", "03", "04", "06"]
    assert set(Region.objects.filter(is_overseas=True).values_list("code", flat=True)) == {
        "01",
        "02",
        "03",
        "04",
        "06",
    }
    assert Region.objects.get(code="94").name == "Corse"


def test_there_are_101_departments_in_official_order(territories):
    codes = list(Department.objects.values_list("code", flat=True))

    assert codes == DEPARTMENT_CODES
    assert len(codes) == 101
    assert codes[18:22] == ["19", "2A", "2B", "21"]


def test_departments_belong_to_their_region(territories):
    regions = dict(Department.objects.values_list("code", "region__code"))

    assert regions["2A"] == regions["2B"] == "94"
    assert regions["59"] == "32"
    assert regions["976"] == "06"
    assert set(Department.objects.filter(is_overseas=True).values_list("code", flat=True)) == {
        "971",
        "972",
        "973",
        "974",
        "976",
    }


def test_there_are_107_caisses_102_cpam_4_cgss_1_cssm(territories):
    by_kind = Counter(Caisse.objects.values_list("kind", flat=True))

    assert by_kind == {CaisseKind.CPAM: 102, CaisseKind.CGSS: 4, CaisseKind.CSSM: 1}
    assert Caisse.objects.count() == 107


def test_each_department_has_one_caisse_except_nord_pas_de_calais_pyrenees_atlantiques_seine_maritime(
    territories,
):
    per_department = Counter(Caisse.objects.values_list("department__code", flat=True))

    assert set(per_department) == set(DEPARTMENT_CODES)
    assert {code: n for code, n in per_department.items() if n != 1} == SEVERAL_CAISSES


def test_overseas_departments_write_to_a_cgss_and_mayotte_to_the_cssm(territories):
    kinds = dict(Caisse.objects.filter(department__is_overseas=True).values_list("department__code", "kind"))

    assert kinds == {"971": "cgss", "972": "cgss", "973": "cgss", "974": "cgss", "976": "cssm"}


def test_caisse_names_follow_the_reference_and_say_when_unverified(territories):
    assert set(Caisse.objects.filter(department__code="64").values_list("name", flat=True)) == {
        "CPAM de Pau-Pyrénées (Béarn)",
        "CPAM de Bayonne",
    }
    assert Caisse.objects.get(code="cpam-59-lille-douai").notes.startswith("NOM NON VÉRIFIÉ")
    assert Caisse.objects.get(code="cpam-59-roubaix-tourcoing").notes.startswith("Nom vérifié")
    ain = Caisse.objects.get(code="cpam-01-ain")
    assert ain.name == "CPAM de l'Ain"
    assert ain.notes.startswith("NOM NON VÉRIFIÉ : construit à partir du nom du département")
    assert Caisse.objects.get(code="cpam-75-paris").name == "CPAM de Paris"
    assert Caisse.objects.get(code="cpam-2a-corse-du-sud").name == "CPAM de la Corse-du-Sud"
    assert not Caisse.objects.exclude(address_line1="").exists()


def test_reference_populations_add_up_to_the_2018_national_totals(territories):
    totals = dict(
        ReferencePopulation.objects.filter(year=2018)
        .values_list("kind")
        .annotate(total=Sum("count"))
        .order_by()
    )

    assert totals == {PopulationKind.LIBERAL_GPS: 52_641, PopulationKind.LIBERAL_PHYSICIANS: 113_455}
    assert ReferencePopulation.objects.count() == 202
    pyrenees_atlantiques = ReferencePopulation.objects.get(
        department__code="64", kind=PopulationKind.LIBERAL_GPS, year=2018
    )
    assert pyrenees_atlantiques.count == 650
    assert pyrenees_atlantiques.source == "CNAM, Amos, liberal GPs excluding MEP active on 31/12/2018"


@pytest.mark.parametrize("name", SEED_FILES)
def test_each_seed_file_starts_with_its_source_url_and_year(name):
    header = [
        line for line in (SEEDS_DIR / name).read_text(encoding="utf-8").splitlines() if line.startswith("#")
    ]

    assert any("Source" in line or "CNAM" in line for line in header)
    assert any("https://" in line for line in header)
    assert re.search(r"\b20[0-9]{2}\b", " ".join(header))


def test_seeds_are_exactly_what_build_seeds_derives_from_the_reference(tmp_path):
    subprocess.run(
        [sys.executable, str(SEEDS_DIR / "build_seeds.py"), "--out-dir", tmp_path],
        check=True,
        capture_output=True,
    )

    for name in SEED_FILES:
        assert (tmp_path / name).read_text(encoding="utf-8") == (SEEDS_DIR / name).read_text(
            encoding="utf-8"
        ), name


def test_the_copied_sources_are_the_shared_reference_where_it_is_beside_the_repository():
    # A clean clone elsewhere (CI) has only the copies: nothing to compare them with there.
    shared = [name for name in SOURCE_FILES if (SHARED_REFERENCE_DIR / name).is_file()]
    for name in shared:
        assert (SOURCES_DIR / name).read_bytes() == (SHARED_REFERENCE_DIR / name).read_bytes(), name
    assert all((SOURCES_DIR / name).is_file() for name in SOURCE_FILES)
