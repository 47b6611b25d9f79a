"""manage.py export_readings: households' readings over a UTC span, as CSV, JSON lines or Parquet.

Thin: it checks its arguments and hands over to loggerapp.export.run (docs/export.md). Errors are one line and
exit status 1; the data goes to stdout or --output, everything else to stderr.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from loggerapp.export.formats import FORMATS
from loggerapp.export.progress import TerminalProgress
from loggerapp.export.ranges import BadRange, parse_span
from loggerapp.export.run import ExportSummary, UnknownHousehold, export_stream, select_households, write_file
from loggerapp.hourfiles.archived import ArchiveReadError

SHOWN_UNREADABLE = 5


class Command(BaseCommand):
    help = (
        "Export households' readings over a UTC range [start, end) from the archive and the local hour files, "
        "in time order, every line once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("cloud_ids", nargs="*", metavar="CLOUD_ID", help="households to export")
        parser.add_argument("--all", action="store_true", dest="everyone", help="every household, active or not")
        parser.add_argument("--label", help="the households with this label (any case)")
        parser.add_argument("--start", required=True, help="UTC date or date-time, included (e.g. 2026-01-01)")
        parser.add_argument("--end", required=True, help="UTC date or date-time, excluded (e.g. 2026-02-01)")
        parser.add_argument("--format", choices=sorted(FORMATS), default="csv", dest="fmt")
        parser.add_argument("--output", "-o", help="a file to write (default: stdout); written whole or not at all")

    def handle(self, *args, **options) -> None:
        ways = sum([bool(options["cloud_ids"]), options["everyone"], options["label"] is not None])
        if ways != 1:
            raise CommandError("choose the households one way: cloud ids, --all, or --label LABEL")
        try:
            span = parse_span(options["start"], options["end"], settings.EXPORT_MAX_DAYS)
            cloud_ids = select_households(options["cloud_ids"], everyone=options["everyone"], label=options["label"])
        except (BadRange, UnknownHousehold) as exc:
            raise CommandError(str(exc)) from None
        output = options["output"] if options["output"] not in (None, "-") else None
        stdout = self._binary_stdout()
        if output is None and options["fmt"] == "parquet" and stdout.isatty():
            raise CommandError("Parquet is binary: not written to a terminal; use --output FILE or redirect stdout")
        if output is not None and not Path(output).parent.is_dir():
            raise CommandError(f"cannot write {output}: its folder does not exist")

        summary = ExportSummary()
        progress = TerminalProgress(sys.stderr, len(cloud_ids), span) if sys.stderr.isatty() else None
        chunks = export_stream(cloud_ids, span, options["fmt"], summary=summary, progress=progress)
        try:
            if output is not None:
                write_file(chunks, Path(output))
            else:
                for chunk in chunks:
                    stdout.write(chunk)
                stdout.flush()
        except ArchiveReadError as exc:
            raise CommandError(f"{exc}; {'no file written' if output else 'the output is incomplete'}") from None
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
            raise CommandError("the output was closed before the export finished") from None
        finally:
            if progress is not None:
                progress.clear()
        if options["verbosity"] >= 1:
            self.stderr.write(summary.line(), style_func=lambda text: text)  # a summary, not an error: no red
        if summary.unreadable:
            count = len(summary.unreadable)
            shown = ", ".join(summary.unreadable[:SHOWN_UNREADABLE])
            more = f" and {count - SHOWN_UNREADABLE} more" if count > SHOWN_UNREADABLE else ""
            raise CommandError(f"{count} hour files could not be read and are left out: {shown}{more}")

    def _binary_stdout(self) -> BinaryIO:
        """Where the bytes go: the real stdout's binary buffer (Parquet is binary; CSV is written as UTF-8)."""
        stream = getattr(self.stdout, "_out", sys.stdout)
        return getattr(stream, "buffer", stream)
