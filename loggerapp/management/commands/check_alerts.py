"""manage.py check_alerts: one alert run (for cron users; the RQ cron job runs the same code every minute)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from loggerapp.ops.alerts import check_alerts


class Command(BaseCommand):
    help = "Mail alert starts and recoveries to ALERT_EMAILS (silent households, stale pinger, failing uploads)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--report-only", action="store_true", help="print what is firing; send nothing and change nothing"
        )

    def handle(self, *args, **options) -> None:
        report = check_alerts(send=not options["report_only"])
        for line in report.lines():
            self.stdout.write(line)
        if report.errors:
            raise CommandError(f"{len(report.errors)} alert mail(s) could not be sent; they are retried next run")
