"""Derive the seed files in this folder from the shared reference facts.

    .venv/bin/python seeds/build_seeds.py [--reference-dir DIR] [--out-dir DIR]

Reads regions.csv, departements.csv, cpam_by_departement.csv and gp_by_departement.csv from
the reference folder (default: seeds/sources, copies of shared/reference) and writes
regions.csv, departments.csv, caisses.csv and reference_populations.csv. The output depends
only on the input: running it twice gives the same bytes, and tests/territories checks that
the committed seeds are what it produces. Any count that disagrees with the domain brief
stops it before a file is written.
"""

import argparse
import csv
import io
import sys
from pathlib import Path

from django.utils.text import slugify

ROOT = Path(__file__).resolve().parent.parent
# Copies of the shared reference facts this script reads (seeds/sources/README.md), kept in the
# repository so that the seeds can be derived again from a clean clone.
DEFAULT_REFERENCE_DIR = ROOT / "seeds" / "sources"
DEFAULT_OUT_DIR = Path(__file__).resolve().parent

EXPECTED_REGIONS = 18
EXPECTED_DEPARTMENTS = 101
EXPECTED_CAISSES = {"cpam": 102, "cgss": 4, "cssm": 1}
EXPECTED_TOTALS = {"liberal_gps": 52_641, "liberal_physicians": 113_455}
POPULATION_YEAR = "2018"

# The column of gp_by_departement.csv behind each population kind.
POPULATION_COLUMNS = {
    "liberal_gps": "medecins_generalistes_liberaux_hors_mep",
    "liberal_physicians": "medecins_liberaux_total",
}
POPULATION_SOURCES = {
    "liberal_gps": "CNAM, Amos, liberal GPs excluding MEP active on 31/12/2018",
    "liberal_physicians": "CNAM, Amos, liberal physicians active on 31/12/2018",
}

# Where the reference names no caisse, the name is "CPAM" + "de" + the department's name with
# its article, as INSEE's TNCC (type de nom en clair) gives it: "CPAM de l'Ain", "CPAM du Nord".
ARTICLES = {
    "du ": "14 15 18 25 29 30 32 39 41 45 46 47 49 56 59 62 63 67 68 69 81 82 83 84 90 94 95",
    "de la ": "16 17 19 2A 2B 21 23 24 26 31 33 42 43 44 48 50 51 52 53 54 55 57 58 70 71 72 73 74"
    " 76 77 80 85 86 87 93",
    "des ": "04 05 06 08 13 22 40 64 65 66 78 79 88 92",
    "de l'": "01 02 03 07 09 10 11 12 27 28 34 35 36 37 38 60 61 89 91",
    "de ": "75",
}
ARTICLE_BY_DEPARTMENT = {code: article for article, codes in ARTICLES.items() for code in codes.split()}

# The Nord row's status reads "partiel: Roubaix-Tourcoing vérifiée": only that name is checked.
VERIFIED_IN_PARTIAL_ROWS = {"CPAM de Roubaix-Tourcoing"}

HEADERS = {
    "regions.csv": [
        "Regions of France: 13 metropolitan and 5 overseas, with their INSEE codes.",
        "Source: INSEE, Code officiel géographique (COG), regions in force since 1 January 2016.",
        "URL: https://www.insee.fr/fr/information/2560452",
    ],
    "departments.csv": [
        "Departments of France: 96 metropolitan (2A and 2B for Corsica) and 5 overseas.",
        "position is the rank in INSEE's list, so that 2A and 2B sort between 19 and 21.",
        "Source: INSEE, Code officiel géographique (COG); Mayotte (976) a department since 2011.",
        "URL: https://www.insee.fr/fr/information/2560452",
    ],
    "caisses.csv": [
        "Caisses receiving the letter (code de la sécurité sociale, art. R.162-54-9): 102 CPAM,",
        "4 CGSS (971-974) and the CSSM of Mayotte (976). Several CPAM in 59 (4), 62, 64 and 76 (2).",
        "Source: Assurance Maladie, its network of local funds since the 2010 departmental mergers;",
        "names partly unverified, see each row's notes. No published list of postal addresses was found:",
        "organizers fill the address columns in the admin; a value given here replaces theirs.",
        "URL: https://www.assurance-maladie.ameli.fr/qui-sommes-nous/organisation/reseau-proximite",
    ],
    "reference_populations.csv": [
        "Liberal physicians per department: CNAM, Amos, physicians active on 31/12/2018.",
        "liberal_gps = GPs excluding MEP (52,641 in France); liberal_physicians = all (113,455).",
        "URL of the original table: not recorded; the figures are refreshed from CNAM open data",
        "https://data.ameli.fr/explore/dataset/demographie-effectifs-et-les-densites/",
        "with manage.py import_reference_population.",
    ],
}


class ReferenceError(Exception):
    pass


def read_reference(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def build_regions(rows: list[dict[str, str]]) -> list[list[str]]:
    return [[row["code_region"], row["nom_region"], row["outre_mer"]] for row in rows]


def build_departments(rows: list[dict[str, str]]) -> list[list[str]]:
    return [
        [row["code_departement"], row["nom_departement"], row["code_region"], row["outre_mer"], str(position)]
        for position, row in enumerate(rows, start=1)
    ]


def _short_name(name: str) -> str:
    """'CPAM de la Côte d'Opale' -> 'Côte d'Opale', for the caisse's code."""
    for prefix in ("CPAM de l'", "CPAM de la ", "CPAM des ", "CPAM du ", "CPAM de "):
        if name.startswith(prefix):
            return name.removeprefix(prefix)
    return name


def _caisse_code(kind: str, department: str, name: str) -> str:
    words = name.replace("'", " ")
    return slugify(f"{kind} {department} {words}")


def _caisse_notes(*, name_verified: bool, derived: bool, status: str, source: str) -> str:
    # Notes are read by French organizers, next to the name they qualify.
    if name_verified:
        parts = ["Nom vérifié."]
    elif derived:
        parts = ["NOM NON VÉRIFIÉ : construit à partir du nom du département."]
    else:
        parts = ["NOM NON VÉRIFIÉ."]
    parts.append(f"Statut de la référence : {status}.")
    if source:
        parts.append(f"Source : {source}")
    return " ".join(parts)


def build_caisses(rows: list[dict[str, str]]) -> list[list[str]]:
    caisses = []
    for row in rows:
        department, kind = row["code_departement"], row["type_caisse"].lower()
        status, source = row["statut_verification"], row["source"]
        names = [name.strip() for name in row["caisses_connues"].split("|") if name.strip()]
        derived = not names
        if derived:
            names = [f"CPAM {ARTICLE_BY_DEPARTMENT[department]}{row['nom_departement']}"]
        if len(names) != int(row["nb_caisses"]):
            raise ReferenceError(
                f"{department}: nb_caisses says {row['nb_caisses']}, names give {len(names)}"
            )
        for name in names:
            code_name = row["nom_departement"] if len(names) == 1 else _short_name(name)
            name_verified = status.startswith("vérifié") or name in VERIFIED_IN_PARTIAL_ROWS
            notes = _caisse_notes(name_verified=name_verified, derived=derived, status=status, source=source)
            # Address columns stay empty: the reference has none (adresse_postale is blank).
            caisses.append(
                [_caisse_code(kind, department, code_name), department, kind, name, "", "", "", "", "", notes]
            )
    return caisses


def build_populations(rows: list[dict[str, str]]) -> list[list[str]]:
    populations = []
    for kind, column in POPULATION_COLUMNS.items():
        for row in rows:
            if row["annee_au_31_decembre"] != POPULATION_YEAR:
                raise ReferenceError(f"{row['code_departement']}: year {row['annee_au_31_decembre']}")
            populations.append(
                [row["code_departement"], kind, POPULATION_YEAR, row[column], POPULATION_SOURCES[kind]]
            )
    return populations


def check(seeds: dict[str, list[list[str]]]) -> None:
    """Refuse to write seeds that contradict the domain brief's counts."""
    if len(seeds["regions.csv"]) != EXPECTED_REGIONS:
        raise ReferenceError(f"{len(seeds['regions.csv'])} regions, expected {EXPECTED_REGIONS}")
    department_codes = [row[0] for row in seeds["departments.csv"]]
    if len(set(department_codes)) != EXPECTED_DEPARTMENTS:
        raise ReferenceError(f"{len(set(department_codes))} departments, expected {EXPECTED_DEPARTMENTS}")
    metropolitan = {row[0] for row in seeds["departments.csv"] if row[3] == "0"}
    if set(ARTICLE_BY_DEPARTMENT) != metropolitan:
        raise ReferenceError("ARTICLES must name each metropolitan department once")
    kinds = [row[2] for row in seeds["caisses.csv"]]
    counted = {kind: kinds.count(kind) for kind in EXPECTED_CAISSES}
    if counted != EXPECTED_CAISSES or len(kinds) != sum(EXPECTED_CAISSES.values()):
        raise ReferenceError(f"caisses by kind: {counted}, expected {EXPECTED_CAISSES}")
    for kind, expected in EXPECTED_TOTALS.items():
        total = sum(int(row[3]) for row in seeds["reference_populations.csv"] if row[1] == kind)
        if total != expected:
            raise ReferenceError(f"{kind}: total {total}, expected {expected}")


def render(header: list[str], columns: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    out.writelines(f"# {line}\n" for line in header)
    out.write("# Derived from shared/reference by seeds/build_seeds.py; seeds/README.md explains it.\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()


def build(reference_dir: Path) -> dict[str, str]:
    """Every seed file's text, by file name."""
    seeds = {
        "regions.csv": build_regions(read_reference(reference_dir / "regions.csv")),
        "departments.csv": build_departments(read_reference(reference_dir / "departements.csv")),
        "caisses.csv": build_caisses(read_reference(reference_dir / "cpam_by_departement.csv")),
        "reference_populations.csv": build_populations(
            read_reference(reference_dir / "gp_by_departement.csv")
        ),
    }
    check(seeds)
    columns = {
        "regions.csv": ["code", "name", "is_overseas"],
        "departments.csv": ["code", "name", "region_code", "is_overseas", "position"],
        "caisses.csv": [
            "code",
            "department_code",
            "kind",
            "name",
            "address_line1",
            "address_line2",
            "postal_code",
            "city",
            "address_verified",
            "notes",
        ],
        "reference_populations.csv": ["department_code", "kind", "year", "count", "source"],
    }
    return {name: render(HEADERS[name], columns[name], rows) for name, rows in seeds.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-dir", type=Path, default=DEFAULT_REFERENCE_DIR)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    args = parser.parse_args()
    try:
        files = build(args.reference_dir)
    except (ReferenceError, KeyError, ValueError) as error:
        print(f"build_seeds: {error}", file=sys.stderr)
        return 1
    for name, text in files.items():
        (args.out_dir / name).write_text(text, encoding="utf-8")
        print(f"wrote {args.out_dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
