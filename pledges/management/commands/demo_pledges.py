from django.core.management.base import BaseCommand, CommandError

from pledges.demo import DEMO_SLUG, demo_load
from pledges.demo_data import DEFAULT_BATCH, DEFAULT_DAYS, demo_pledges_create
from pledges.models import Campaign


class Command(BaseCommand):
    help = (
        "Add N synthetic physicians with active pledges to a campaign (demos, benchmarks). "
        "Emails end in .invalid: nothing can be mailed to them. Running again adds N more."
    )

    def add_arguments(self, parser):
        parser.add_argument("--campaign", default=DEMO_SLUG, help="campaign slug (default: %(default)s)")
        amount = parser.add_mutually_exclusive_group(required=True)
        amount.add_argument("--count", type=int, help="how many pledges to add")
        amount.add_argument(
            "--top-up-to",
            type=int,
            help="add only what the campaign lacks to have this many pledges (safe to run again: make run uses it)",
        )
        parser.add_argument(
            "--seed", type=int, default=None, help="random seed, for a reproducible population"
        )
        parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="rows per transaction")
        parser.add_argument(
            "--days", type=int, default=DEFAULT_DAYS, help="signing times spread over these days"
        )
        parser.add_argument(
            "--method",
            choices=["auto", "copy", "insert"],
            default="auto",
            help="copy: PostgreSQL COPY; insert: executemany; auto: COPY on PostgreSQL",
        )
        parser.add_argument("--no-counts", action="store_true", help="leave the published counts as they are")

    def handle(self, *args, **options):
        slug = options["campaign"]
        campaign = Campaign.objects.filter(slug=slug).first()
        if campaign is None and slug == DEMO_SLUG:
            campaign = demo_load().campaign
        if campaign is None:
            raise CommandError(f"no campaign with the slug {slug!r}")
        if options["top_up_to"] is not None:
            missing = options["top_up_to"] - campaign.pledges.count()
            if missing <= 0:
                self.stdout.write(
                    f"{campaign.slug}: already {campaign.pledges.count()} pledges, nothing to add"
                )
                return
            options["count"] = missing
        if options["count"] < 1 or options["batch"] < 1 or options["days"] < 1:
            raise CommandError("--count, --top-up-to, --batch and --days must be positive")

        def progress(done: int, total: int) -> None:
            if options["verbosity"] >= 2:
                self.stdout.write(f"  {done}/{total}")

        try:
            result = demo_pledges_create(
                campaign=campaign,
                count=options["count"],
                seed=options["seed"],
                batch_size=options["batch"],
                days=options["days"],
                method=options["method"],
                update_counts=not options["no_counts"],
                progress=progress,
            )
        except ValueError as error:
            raise CommandError(str(error)) from error

        rate = result.created / result.insert_seconds if result.insert_seconds else 0
        self.stdout.write(
            f"{result.created} pledges added to {campaign.slug} by {result.method} in "
            f"{result.insert_seconds:.2f} s ({rate:,.0f}/s); serials {result.first_serial}-{result.last_serial}, "
            f"seed {result.seed}"
        )
        hot = ", ".join(f"{code}: {n}" for code, n in sorted(result.hot_departments.items())) or "none"
        self.stdout.write(f"departments pushed near their threshold: {hot}")
        if result.counts_seconds is not None:
            self.stdout.write(f"counts updated in {result.counts_seconds:.2f} s ({result.counts_note})")
        else:
            self.stdout.write(self.style.WARNING(result.counts_note))
