"""One export: the households chosen, their hours read, rows written, bytes streamed, a summary.

1. **Households**: cloud ids (each must exist), all of them, or those whose label is the one given (any case).
   Deactivated households are included: a withdrawn participant's data is still the study's. Unknown ids, or a
   label no household has, are an ``UnknownHousehold`` naming them.
2. **Order**: household after household in cloud-id order, each in poll-time order, every line once: local hour
   files and the archive together, by the rules of ``loggerapp.hourfiles.span``.
3. **Streaming**: ``export_stream`` yields bytes: the format's header, then each hour's rows as the hour is read,
   then the format's end. Memory holds the hours being fetched (``span``) and, for Parquet, one row group. The
   first household's archive is listed before the first byte, so an archive that cannot be reached fails
   before anything is sent (the API can still answer 503, the command leaves no output file).
4. **Summary**: ``ExportSummary`` counts households, hours, archived objects and bytes, local bytes, rows,
   lines that are not polls, and names any object that could not be read (those hours are incomplete).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Protocol

from django.conf import settings

from loggerapp.export.columns import row_of
from loggerapp.export.formats import writer_for
from loggerapp.export.ranges import Span
from loggerapp.hourfiles.archived import ArchiveReader
from loggerapp.hourfiles.span import HourLines, household_hours
from loggerapp.models import Household


class UnknownHousehold(LookupError):
    """Households asked for that do not exist; the message names them."""


def select_households(cloud_ids: Sequence[str] = (), *, everyone: bool = False, label: str | None = None) -> list[str]:
    """The cloud ids to export, in order (point 1 of the module docstring). Exactly one way of choosing is used."""
    if everyone:
        chosen = list(Household.objects.order_by("cloud_id").values_list("cloud_id", flat=True))
        if not chosen:
            raise UnknownHousehold("there are no households yet.")
        return chosen
    if label is not None:
        labelled = Household.objects.filter(label__iexact=label.strip()).order_by("cloud_id")
        chosen = list(labelled.values_list("cloud_id", flat=True))
        if not chosen:
            raise UnknownHousehold(f"no household has the label {label.strip()[:80]!r}.")
        return chosen
    wanted = sorted({cloud_id.strip().lower() for cloud_id in cloud_ids})
    known = set(Household.objects.filter(cloud_id__in=wanted).values_list("cloud_id", flat=True))
    missing = [cloud_id for cloud_id in wanted if cloud_id not in known]
    if missing:
        shown = ", ".join(cloud_id[:20] for cloud_id in missing[:10]) + (", ..." if len(missing) > 10 else "")
        raise UnknownHousehold(f"no household with cloud id {shown}.")
    return wanted


@dataclass
class ExportSummary:
    """What an export read and wrote (point 4 of the module docstring)."""

    households: int = 0
    hours: int = 0
    objects: int = 0
    archived_bytes: int = 0
    local_bytes: int = 0
    rows: int = 0
    not_polls: int = 0
    unreadable: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0

    def add(self, hour: HourLines, rows: int) -> None:
        self.hours += 1
        self.objects += hour.objects
        self.archived_bytes += hour.archived_bytes
        self.local_bytes += hour.local_bytes
        self.rows += rows
        self.not_polls += hour.not_polls
        self.unreadable.extend(hour.unreadable)
        self.seconds = time.monotonic() - self.started

    def line(self) -> str:
        read_mb = (self.archived_bytes + self.local_bytes) / 1e6
        text = (
            f"exported {self.rows:,} rows of {self.households} household(s), {self.hours:,} hours "
            f"({self.objects:,} archived objects, {read_mb:,.1f} MB read) in {self.seconds:.1f} s"
        )
        if self.not_polls:
            text += f"; {self.not_polls:,} lines that are not polls left out"
        if self.unreadable:
            text += f"; {len(self.unreadable)} unreadable hour files left out"
        return text


class Progress(Protocol):
    def household(self, cloud_id: str, summary: ExportSummary) -> None: ...

    def hour(self, hour: HourLines, summary: ExportSummary) -> None: ...


def export_stream(
    cloud_ids: Iterable[str],
    span: Span,
    fmt: str,
    *,
    log_root: Path | None = None,
    reader: ArchiveReader | None = None,
    summary: ExportSummary | None = None,
    progress: Progress | None = None,
) -> Iterator[bytes]:
    """The export's bytes, chunk by chunk (points 2 and 3 of the module docstring). ``summary`` is filled in as
    the stream is consumed."""
    writer = writer_for(fmt)
    summary = summary if summary is not None else ExportSummary()

    def on_household(cloud_id: str) -> None:
        summary.households += 1
        if progress is not None:
            progress.household(cloud_id, summary)

    hours = household_hours(
        cloud_ids,
        span.start,
        span.end,
        log_root=Path(log_root or settings.LOG_ROOT),
        reader=reader,
        on_household=on_household,
    )
    try:
        first = next(hours, None)  # lists the first household's archive before any byte is sent
        yield writer.header()
        for hour in chain([first] if first is not None else [], hours):
            rows = [row_of(kind, hour.cloud_id, record) for kind, record in hour.records]
            summary.add(hour, len(rows))
            if progress is not None:
                progress.hour(hour, summary)
            chunk = writer.rows(rows)
            if chunk:
                yield chunk
        yield writer.finish()
        summary.seconds = time.monotonic() - summary.started
    finally:
        hours.close()  # a consumer that stopped early (a client gone) cancels the reads not yet started


def write_file(chunks: Iterable[bytes], path: Path) -> int:
    """Write an export to ``path`` through a temporary file beside it, renamed into place only once complete: a
    failed export never leaves a file that looks finished. Returns the bytes written."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.part")
    written = 0
    try:
        with open(temporary, "xb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                written += len(chunk)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return written
