"""manage.py demo_setup: demo households for `make demo`, served by the EAGLE simulator (--from-db)."""

from __future__ import annotations

import secrets

from django.core.management.base import BaseCommand, CommandError

from loggerapp.demo import DEMO_NOTES, MAX_DEMO_HOUSEHOLDS, demo_cloud_id, demo_email, in_demo_folder
from loggerapp.models import Household, HouseholdStats, Protocol


class Command(BaseCommand):
    help = "Create N demo households (cloud ids dd0000, dd0001, ...) if they do not exist; only in make demo's folder."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--households", type=int, default=25)

    def handle(self, *args, households: int, **options) -> None:
        if not in_demo_folder():
            # Fake households in a real database would be polled against the real relay every six seconds.
            raise CommandError(
                "demo_setup runs only in the demo's own data folder (`make demo`, or `make manage DEMO=1 ARGS=...`); "
                "this is not one, and fake households do not belong in a real install"
            )
        if not 0 <= households <= MAX_DEMO_HOUSEHOLDS:
            raise CommandError(f"--households must be between 0 and {MAX_DEMO_HOUSEHOLDS}")
        created = 0
        for number in range(households):
            cloud_id = demo_cloud_id(number)
            household, was_created = Household.objects.get_or_create(
                cloud_id=cloud_id,
                defaults={
                    "user_email": demo_email(cloud_id),
                    "password": secrets.token_urlsafe(12),
                    "protocol": Protocol.CLOUD,
                    "label": f"Demo household {number + 1}",
                    "notes": DEMO_NOTES,
                },
            )
            HouseholdStats.objects.get_or_create(household=household)
            created += was_created
        self.stdout.write(f"{created} demo household(s) created, {households - created} already there.")
