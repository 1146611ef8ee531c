"""Synthetic RPPS directory files in the ANS format, built from the published column list."""

import csv
from pathlib import Path

COLUMNS_CSV = Path(__file__).parent / "data" / "ps_libreacces_personne_activite_columns.csv"


def columns() -> list[str]:
    with COLUMNS_CSV.open(encoding="utf-8") as file:
        return [
            row["nom_colonne"] for row in sorted(csv.DictReader(file), key=lambda row: int(row["position"]))
        ]


def activity(
    rpps: str,
    *,
    last_name: str = "MARTIN",
    first_name: str = "ELISE",
    profession: str = "10",
    skill: str = "SM54",
    mode: str = "L",
    department: str = "01",
    postal_code: str = "01000",
    id_type: str = "8",
) -> dict[str, str]:
    return {
        "Type d'identifiant PP": id_type,
        "Identifiant PP": rpps,
        "Identification nationale PP": f"{id_type}{rpps}",
        "Libellé civilité d'exercice": "Docteur",
        "Nom d'exercice": last_name,
        "Prénom d'exercice": first_name,
        "Code profession": profession,
        "Libellé profession": "Médecin" if profession == "10" else "Infirmier",
        "Code savoir-faire": skill,
        "Code mode exercice": mode,
        "Libellé mode exercice": {"L": "Libéral", "S": "Salarié"}.get(mode, ""),
        "Code civilité d'exercice": "DR",
        "Code catégorie professionnelle": "C",
        "Libellé catégorie professionnelle": "Civil",
        "Code type savoir-faire": "S" if skill else "",
        "Libellé type savoir-faire": "Spécialité ordinale" if skill else "",
        "Libellé savoir-faire": "Médecine Générale" if skill else "",
        "Numéro SIRET site": "12345678900012",
        "Numéro SIREN site": "123456789",
        "Identifiant technique de la structure": "R10100000012345",
        "Raison sociale site": "CABINET MEDICAL DES TILLEULS",
        "Numéro Voie (coord. structure)": "12",
        "Libellé type de voie (coord. structure)": "Rue",
        "Libellé Voie (coord. structure)": "de la République",
        "Code commune (coord. structure)": "01053",
        "Code pays (coord. structure)": "99000",
        "Libellé pays (coord. structure)": "France",
        "Téléphone (coord. structure)": "0474000000",
        "Adresse e-mail (coord. structure)": "cabinet@example.org",
        "Libellé Département (structure)": "Ain" if department == "01" else "",
        "Autorité d'enregistrement": "CNOM/CNOM/CNOM",
        "Code secteur d'activité": "SA07",
        "Libellé secteur d'activité": "Cabinet individuel",
        "Code postal (coord. structure)": postal_code,
        "Libellé commune (coord. structure)": "Bourg-en-Bresse",
        "Code Département (structure)": department,
    }


def line(values: dict[str, str], names: list[str]) -> str:
    """One row: every column in order, `|`-separated, with the trailing `|`."""
    return "|".join(values.get(name, "") for name in names) + "|\n"


def write(path: Path, rows: list[dict | str], *, names: list[str] | None = None) -> Path:
    """A file with the header then `rows` (a dict is an activity, a str a raw line)."""
    names = names or columns()
    with path.open("w", encoding="utf-8", newline="") as file:
        file.write("|".join(names) + "|\n")
        for row in rows:
            file.write(row if isinstance(row, str) else line(row, names))
    return path
