from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from territories.cnam import (
    IGNORE,
    NATIONAL_AGGREGATE,
    PROFESSION_CHOICES,
    SOURCE_PREFIX,
    CnamFileError,
    parse_cnam_file,
)
from territories.models import Department
from territories.services import reference_populations_import


def _profession(text: str) -> tuple[str, str]:
    label, separator, kind = text.rpartition("=")
    if not separator or not label.strip() or kind.strip() not in PROFESSION_CHOICES:
        raise CommandError(
            f'--profession {text!r}: expected "LABEL=KIND", KIND one of {", ".join(PROFESSION_CHOICES)}'
        )
    return label.strip(), kind.strip()


class Command(BaseCommand):
    help = (
        "Update reference populations from the CNAM open-data file demographie-effectifs-et-les-densites "
        "(data.ameli.fr). The whole file is checked first: a file with any error changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="the CSV file, ';' or ',' separated, UTF-8")
        parser.add_argument("--dry-run", action="store_true", help="check and report, write nothing")
        parser.add_argument(
            "--profession",
            action="append",
            default=[],
            metavar="LABEL=KIND",
            help=(
                f"count the profession_sante LABEL as KIND ({', '.join(PROFESSION_CHOICES)}); repeatable. "
                "Default: labels naming GPs (not including MEP) are liberal_gps, labels for all physicians "
                f"('Ensemble des médecins') are liberal_physicians, others are {IGNORE}."
            ),
        )

    def handle(self, *args, file: Path, dry_run: bool, profession: list[str], **options):
        professions = dict(_profession(text) for text in profession)
        department_codes = list(Department.objects.values_list("code", flat=True))
        if not department_codes:
            raise CommandError("no departments yet: run manage.py load_territories first")
        try:
            figures = parse_cnam_file(
                path=file, department_codes=set(department_codes), professions=professions
            )
        except CnamFileError as error:
            raise CommandError(f"{file.name}: {error}; nothing was changed") from error
        except OSError as error:
            raise CommandError(f"{file}: {error.strerror}") from error

        counts = reference_populations_import(
            counts=figures.counts, source=f"{SOURCE_PREFIX}, {file.name}", dry_run=dry_run
        )
        in_file = {department for _, department, _ in figures.counts}
        years = ", ".join(str(year) for year in sorted({year for year, _, _ in figures.counts}))
        self.stdout.write(
            f"figures for {years}: {counts.created} created, {counts.updated} updated, {counts.unchanged} unchanged"
        )
        # A file naming an unknown department is rejected above, so none reach this point.
        self.stdout.write(f"departments: {len(in_file)} in the file, 0 unknown")
        missing = [code for code in department_codes if code not in in_file]
        if missing:
            self.stdout.write(f"departments without figures: {', '.join(missing)}")
        self.stdout.write(
            f"rows: {figures.rows_used} used, {figures.rows_ignored} ignored (other professions), "
            f"{figures.rows_aggregate} aggregates (departement {NATIONAL_AGGREGATE}) skipped"
        )
        if figures.ignored_professions:
            self.stdout.write(f"ignored professions: {'; '.join(sorted(figures.ignored_professions))}")
        if dry_run:
            self.stdout.write("dry run: nothing was written")
