"""manage.py doctor: check the whole configuration and print a pass/fail table (exit 1 on any failure)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from loggerapp.ops.doctor import FAIL, PASS, WARN, format_table, run_doctor


class Command(BaseCommand):
    help = (
        "Check the configuration: database, Redis, archive storage (write/read/delete a probe), LOG_ROOT, "
        "the encryption key, and one live EAGLE read. Exits 1 when any check fails."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--household", metavar="CLOUD_ID", help="read this household's EAGLE (default: first)")
        parser.add_argument("--skip-eagle", action="store_true", help="do not make the live EAGLE read")

    def handle(self, *args, **options) -> None:
        results = run_doctor(cloud_id=options["household"], skip_eagle=options["skip_eagle"])
        styles = {PASS: self.style.SUCCESS, WARN: self.style.WARNING, FAIL: self.style.ERROR}
        for line, result in zip(format_table(results), [None, *results], strict=True):
            self.stdout.write(styles.get(result.outcome, str)(line) if result else line)
        failed = [result.name for result in results if result.failed]
        if failed:
            raise CommandError(f"{len(failed)} check(s) failed: {', '.join(failed)}")
        warnings = sum(result.outcome == WARN for result in results)
        note = f" ({warnings} warning(s): see above)" if warnings else ""
        self.stdout.write(self.style.SUCCESS(f"No check failed{note}."))
