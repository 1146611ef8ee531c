from django.conf import settings
from django.core.management.base import BaseCommand
from django.urls import reverse

from pledges.demo import demo_load


class Command(BaseCommand):
    help = "Load the demo campaign, its letter and a demo organizer account. Safe to run again."

    def handle(self, *args, **options):
        result = demo_load()
        if options["verbosity"] >= 2:
            # Only here: at the default verbosity a second run prints exactly what the first did.
            self.stdout.write(f"campaign {'created' if result.campaign_created else 'left unchanged'}")
            self.stdout.write(f"organizer {'created' if result.organizer_created else 'left unchanged'}")

        campaign_url = settings.SITE_URL + reverse(
            "pledges:campaign_detail", kwargs={"slug": result.campaign.slug}
        )
        admin_url = settings.SITE_URL + reverse("admin:index")
        password = result.organizer_password or "(password changed since it was created; left as is)"
        self.stdout.write(f"Demo campaign: {campaign_url}")
        self.stdout.write(
            self.style.SUCCESS(f"Demo organizer: {result.organizer_email} / {password} — {admin_url}")
        )
