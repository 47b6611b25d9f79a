"""The export's progress line, for a person watching a terminal.

Shown only when stderr is a terminal (a pipe or a log file gets the one summary line instead), redrawn in place
with a carriage return at most ``REDRAW_SECONDS`` apart, and cleared before the summary. The bar's fraction is
households done plus the share of the current household's span already read.
"""

from __future__ import annotations

import shutil
import time
from typing import TextIO

from loggerapp.export.ranges import Span
from loggerapp.export.run import ExportSummary
from loggerapp.hourfiles.span import HourLines

REDRAW_SECONDS = 0.1
BAR_WIDTH = 20


class TerminalProgress:
    def __init__(self, stream: TextIO, households: int, span: Span) -> None:
        self.stream = stream
        self.total = max(1, households)
        self.span = span
        self.cloud_id = ""
        self.position = span.start
        self._drawn = 0.0
        self._width = 0

    def household(self, cloud_id: str, summary: ExportSummary) -> None:
        self.cloud_id = cloud_id
        self.position = self.span.start
        self._draw(summary, force=True)

    def hour(self, hour: HourLines, summary: ExportSummary) -> None:
        self.position = hour.hour
        self._draw(summary)

    def fraction(self, summary: ExportSummary) -> float:
        within = (self.position - self.span.start) / (self.span.end - self.span.start)
        return min(1.0, (max(0, summary.households - 1) + max(0.0, min(1.0, within))) / self.total)

    def text(self, summary: ExportSummary) -> str:
        done = round(self.fraction(summary) * BAR_WIDTH)
        read_mb = (summary.archived_bytes + summary.local_bytes) / 1e6
        return (
            f"[{'#' * done}{'.' * (BAR_WIDTH - done)}] household {summary.households}/{self.total} {self.cloud_id} "
            f"at {self.position:%Y-%m-%d %H:00} UTC, {summary.rows:,} rows, {read_mb:,.1f} MB, "
            f"{time.monotonic() - summary.started:.0f} s"
        )

    def _draw(self, summary: ExportSummary, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._drawn < REDRAW_SECONDS:
            return
        self._drawn = now
        columns = shutil.get_terminal_size((100, 20)).columns
        line = self.text(summary)[: max(10, columns - 1)]
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def clear(self) -> None:
        """Remove the progress line (before the summary is printed)."""
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
