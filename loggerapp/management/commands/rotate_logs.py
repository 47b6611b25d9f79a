"""manage.py rotate_logs: the hourly upload, by hand (the RQ cron job runs the same code)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from loggerapp.hourfiles.layout import parse_hour_label
from loggerapp.rotation.job import run_rotation
from loggerapp.service_log import add_log_level_argument, configure_service_log


class Command(BaseCommand):
    help = "Upload every finished hour file to the archive, verify it, then delete it locally."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="List what would be uploaded; change nothing.")
        parser.add_argument("--hour", help="Only this UTC hour, as YYYY-MM-DD-HH (it must be finished).")
        parser.add_argument("--json", action="store_true", help="Print the run's summary as JSON.")
        add_log_level_argument(parser)

    def handle(self, *args, **options) -> None:
        try:
            hour = parse_hour_label(options["hour"]) if options["hour"] else None
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        configure_service_log("rotate", options["log_level"])
        summary = run_rotation(hour=hour, dry_run=options["dry_run"])
        if options["json"]:
            self.stdout.write(json.dumps(summary.to_dict()))
        else:
            for item in summary.planned:
                self.stdout.write(f"{item['path']} -> {item['key']} ({item['bytes']} bytes, ledger: {item['ledger']})")
            for taken in summary.taken_over:
                self.stderr.write(
                    f"took over {taken['files']} files of run {taken['run']}, which is dead: {taken['why']}"
                )
            for skipped in summary.skipped:
                self.stderr.write(f"skipped {skipped['files']} files, {skipped['reason']}")
            for failure in summary.failures:
                self.stderr.write(f"failed: {failure['key']}: {failure['reason']}")
            self.stdout.write(summary.line())
        if summary.failed:
            raise CommandError(f"{summary.failed} files were not archived; they stay on disk for the next run")
