"""manage.py demo_setup: demo households for `make demo`, served by the EAGLE simulator (--from-db)."""

from __future__ import annotations

import secrets

from django.core.management.base import BaseCommand

from loggerapp.models import Household, HouseholdStats, Protocol


class Command(BaseCommand):
    help = "Create N demo households (cloud ids dd0000, dd0001, ...) if they do not exist."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--households", type=int, default=25)

    def handle(self, *args, households: int, **options) -> None:
        created = 0
        for number in range(min(households, 0x10000)):
            cloud_id = f"dd{number:04x}"
            household, was_created = Household.objects.get_or_create(
                cloud_id=cloud_id,
                defaults={
                    "user_email": f"demo-{cloud_id}@example.org",
                    "password": secrets.token_urlsafe(12),
                    "protocol": Protocol.CLOUD,
                    "label": f"Demo household {number + 1}",
                    "notes": "Created by `make demo`; served by the EAGLE simulator.",
                },
            )
            HouseholdStats.objects.get_or_create(household=household)
            created += was_created
        self.stdout.write(f"{created} demo household(s) created, {households - created} already there.")
