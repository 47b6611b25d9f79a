"""manage.py remove_demo_households: delete the demo households an older `make demo` left in a real install.

Before the demo had its own data folder, `make demo` created its households in the install's own database, and a
later `make run` polled the real relay with them every six seconds. This removes exactly those (see
loggerapp.demo: cloud id, e-mail and notes must all match). Their statistics go with them; ledger rows keep their
cloud id. Hour files already written stay where they are: the command lists how many, and where.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from loggerapp.demo import demo_households
from loggerapp.hourfiles.layout import FILE_KINDS


class Command(BaseCommand):
    help = "Delete the households an older `make demo` created in this database (--dry-run lists them)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="list them; delete nothing")

    def handle(self, *args, dry_run: bool, **options) -> None:
        households = demo_households()
        if not households:
            self.stdout.write("No demo households in this database.")
            return
        ids = [household.cloud_id for household in households]
        shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        left_files = sum(
            1
            for cloud_id in ids
            for prefix in FILE_KINDS.values()  # the demand and the price files
            for _ in Path(settings.LOG_ROOT).glob(f"*/{prefix}{cloud_id}-*.jl*")
        )
        if dry_run:
            self.stdout.write(f"Would delete {len(ids)} demo household(s): {shown}.")
            return
        for household in households:
            household.delete()
        self.stdout.write(f"Deleted {len(ids)} demo household(s): {shown}.")
        if left_files:
            self.stdout.write(
                f"{left_files} hour file(s) of theirs remain under {settings.LOG_ROOT} (and the archive, once "
                "uploaded); delete them by hand if they should not be kept."
            )
