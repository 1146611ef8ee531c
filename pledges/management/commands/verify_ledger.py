from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from pledges.ledger import LATE_COMMIT_GRACE, ledger_time, ledger_verify
from pledges.models import Campaign


class Command(BaseCommand):
    help = (
        "Recompute every hash of the public ledger, check its links, its digests, that each pledge "
        "event is in it exactly once, and that its counts equal the published ones. Read only. "
        "Exits with status 1 and lists each problem when anything does not match."
    )

    def add_arguments(self, parser):
        parser.add_argument("--campaign", help="campaign slug (default: every campaign)")
        parser.add_argument(
            "--grace",
            type=int,
            default=int(LATE_COMMIT_GRACE.total_seconds()),
            help="seconds during which an event absent from the ledger counts as pending, not missing: "
            "it may be a late commit the next tick appends (default: %(default)s; 0 is strict)",
        )

    def handle(self, *args, **options):
        campaign = None
        if options["campaign"]:
            campaign = Campaign.objects.filter(slug=options["campaign"]).first()
            if campaign is None:
                raise CommandError(f"No campaign with the slug {options['campaign']!r}.")

        if options["grace"] < 0:
            raise CommandError("--grace must be 0 or more seconds.")
        result = ledger_verify(campaign=campaign, grace=timedelta(seconds=options["grace"]))

        counted_until = ledger_time(result.counted_until) if result.counted_until else "never"
        self.stdout.write(f"Counts published up to {counted_until}.")
        for check in result.campaigns:
            digest = (
                f"latest digest at sequence {check.latest_digest_sequence}"
                if check.latest_digest_sequence is not None
                else "no digest"
            )
            self.stdout.write(
                f"{check.slug}: {check.entries} entries, head {check.head_sequence} {check.head_hash[:16]}..., "
                f"{check.digests} digests ({digest}), {check.events} journal events "
                f"({check.pending_events} pending), {len(check.problems)} problems"
            )
        for problem in result.problems:
            self.stderr.write(str(problem))
        if not result.ok:
            raise CommandError(f"The ledger does not verify: {len(result.problems)} problems.")
        self.stdout.write(self.style.SUCCESS("The ledger verifies."))
