from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from territories.seeds import DEFAULT_SEEDS_DIR, SeedError
from territories.services import territories_load_seeds


class Command(BaseCommand):
    help = (
        "Load regions, departments, caisses and reference populations from the seed files, "
        "idempotently: missing rows are created, changed rows updated in place."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--seeds-dir",
            type=Path,
            default=DEFAULT_SEEDS_DIR,
            help=f"folder holding the seed CSV files (default: {DEFAULT_SEEDS_DIR})",
        )

    def handle(self, *args, seeds_dir: Path, **options):
        try:
            result = territories_load_seeds(seeds_dir=seeds_dir)
        except (SeedError, OSError) as error:
            raise CommandError(f"nothing loaded: {error}") from error
        for label, counts in result.items():
            line = (
                f"{label}: {counts.created} created, {counts.updated} updated, {counts.unchanged} unchanged"
            )
            if counts.kept:
                line += f", {counts.kept} kept (their source is not the seed's)"
            self.stdout.write(line)
