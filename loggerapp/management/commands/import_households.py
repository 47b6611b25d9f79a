"""manage.py import_households FILE|-: create or update households from the study's JSON-lines format."""

from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand, CommandError

from loggerapp.households_import import ImportFileError, import_households


class Command(BaseCommand):
    help = "Import households (one JSON object a line: cloud_id, user_email, user_pw, ...). '-' reads stdin."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="path of the JSON-lines file (UTF-8), or - for standard input")
        parser.add_argument("--dry-run", action="store_true", help="validate and report; write nothing")
        parser.add_argument("--atomic", action="store_true", help="refuse the whole file if any line is bad")

    def handle(self, *args, file: str, dry_run: bool, atomic: bool, **options) -> None:
        # Bytes, not text: the import decodes each line itself, so one line that is not UTF-8 is one bad line.
        if file == "-":
            handle, total = getattr(sys.stdin, "buffer", sys.stdin), None
        else:
            try:
                handle = open(file, "rb")  # closed below, after the import
            except OSError as exc:
                raise CommandError(f"cannot read {file}: {exc.strerror}") from None
            total = sum(1 for _ in handle)
            handle.seek(0)

        last_shown = [time.monotonic()]

        def progress(number: int) -> None:
            now = time.monotonic()
            if now - last_shown[0] >= 1.0:
                last_shown[0] = now
                share = f" ({100 * number / total:.0f}%)" if total else ""
                self.stderr.write(f"… line {number}{f' of {total}' if total else ''}{share}")

        try:
            report = import_households(handle, dry_run=dry_run, atomic=atomic, progress=progress)
        except ImportFileError as exc:
            raise CommandError(f"{file}: {exc}; nothing was written") from None
        finally:
            if file != "-":
                handle.close()

        for number, message in report.errors:
            self.stderr.write(f"line {number}: {message}")
        self.stdout.write(report.summary())
        if report.errors:
            raise CommandError(f"{report.failed} line(s) failed", returncode=1)
