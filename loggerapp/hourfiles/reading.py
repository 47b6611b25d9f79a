"""Reading hour files back: a household's polls over a span, the tail of a file, its lines counted, its newest
lines first. Every reader of the files goes through here, with the rules of ``lines`` and ``layout``.

1. A household's polls over a span come from the local files and the archive together, every line once, by the
   rules of ``span`` (which the export uses too); stored objects are decoded by ``content.decode`` whatever their
   key says. An unreadable object, or an archive that cannot be reached, is a gap, logged, never an error page.
2. When only the end of an hour is wanted (a sparkline), the read starts near the proportional byte offset
   (lines are of similar length and evenly spaced in time) and backs off if it started too late, so it reads a
   few kilobytes of the previous hour's file instead of all of it.
3. Line counts of local files are cached per (path, size, mtime): a finished hour's file never changes, so the
   status page counts it once per process.
4. Newest lines first (the API's latest reading) reads blocks from the end; a last line without its newline is
   a write in progress and is skipped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from loggerapp.hourfiles.archived import ArchiveReadError
from loggerapp.hourfiles.layout import (
    DEMAND,
    HOUR_SECONDS,
    hour_file_path,
    hour_folders,
    hours_between,
    parse_hour_file_name,
)
from loggerapp.hourfiles.lines import LineCount, Poll, count_lines, parse_polls, poll_from_record

logger = logging.getLogger(__name__)

TAIL_MARGIN = 8192  # bytes read before the estimated start of the wanted tail
BLOCK_SIZE = 8192  # bytes per backwards read


# --- Polls ---------------------------------------------------------------------------------------------------
def read_polls(path: Path, since: float | None = None) -> list[Poll]:
    """Polls of one hour file, only those at or after ``since``; a missing file gives [] (point 2 above)."""
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            offset = 0
            if since is not None and size > TAIL_MARGIN:
                parsed = parse_hour_file_name(Path(path).name)
                if parsed is not None:
                    fraction = (since - parsed[1].timestamp()) / HOUR_SECONDS
                    offset = max(0, int(size * fraction) - TAIL_MARGIN) if fraction > 0 else 0
            while True:
                handle.seek(offset)
                data = handle.read()
                if offset > 0:
                    data = data.split(b"\n", 1)[1] if b"\n" in data else b""  # drop the partial first line
                polls = parse_polls(data)
                if offset == 0 or since is None or (polls and polls[0].t <= since):
                    break
                offset = max(0, offset - max(TAIL_MARGIN, size // 4))  # started too late: back off
    except FileNotFoundError:
        return []
    except OSError:
        logger.warning("cannot read hour file %s", path, exc_info=True)
        return []
    return [poll for poll in polls if since is None or poll.t >= since]


def local_polls(log_root: Path, cloud_id: str, start: datetime, end: datetime) -> list[Poll]:
    """Polls in [start, end) from the local hour files (files already uploaded and deleted are simply absent)."""
    polls: list[Poll] = []
    for hour in hours_between(start, end):
        since = start.timestamp() if hour < start else None
        polls.extend(read_polls(hour_file_path(log_root, cloud_id, hour), since=since))
    return [poll for poll in polls if poll.t < end.timestamp()]


def household_polls(log_root: Path, cloud_id: str, start: datetime, end: datetime) -> list[Poll]:
    """Polls in [start, end), oldest first, from the local files and the archive together, every line once
    (``span``: the export's rules). An archive that cannot be read leaves the local polls: a chart shows a gap
    rather than failing its page (point 1 above)."""
    from loggerapp.hourfiles.span import household_hours

    try:
        return [
            poll
            for hour in household_hours([cloud_id], start, end, log_root=log_root, kinds=(DEMAND,))
            for kind, record in hour.records
            if kind == DEMAND and (poll := poll_from_record(record)) is not None  # a chart of demand polls only
        ]
    except ArchiveReadError as exc:
        logger.warning("%s; showing only the local hour files of %s", exc, cloud_id)
        return local_polls(log_root, cloud_id, start, end)


# --- Counting ------------------------------------------------------------------------------------------------
@lru_cache(maxsize=50_000)
def _count_cached(path: str, size: int, mtime_ns: int) -> LineCount:
    with open(path, "rb") as handle:
        return count_lines(handle.read())


def count_file_lines(path: Path) -> LineCount | None:
    """Lines and readings of a local hour file (``lines.count_lines``), None if it does not exist."""
    try:
        stat = os.stat(path)
        return _count_cached(str(path), stat.st_size, stat.st_mtime_ns)
    except FileNotFoundError:
        return None
    except OSError:
        logger.warning("cannot count lines of %s", path, exc_info=True)
        return None


def forget_counts() -> None:
    """Empty the count cache (tests that rewrite a file within one mtime tick)."""
    _count_cached.cache_clear()


# --- Newest first --------------------------------------------------------------------------------------------
def newest_hour_files(log_root: Path, cloud_id: str) -> Iterator[Path]:
    """The household's hour files, newest first. cloud_id must already be validated (it becomes a path)."""
    for folder in reversed(hour_folders(log_root)):
        path = hour_file_path(log_root, cloud_id, folder.hour)
        if path.is_file():
            yield path


def lines_backwards(path: Path, block_size: int = BLOCK_SIZE) -> Iterator[bytes]:
    """Complete lines of a file, last first, reading blocks from the end; an unterminated tail is skipped."""
    with open(path, "rb") as handle:
        position = handle.seek(0, os.SEEK_END)
        pending = b""
        tail_skipped = False
        while position > 0:
            size = min(block_size, position)
            position -= size
            handle.seek(position)
            pending = handle.read(size) + pending
            pieces = pending.split(b"\n")
            pending = pieces[0]  # may still continue in the block before
            complete = pieces[1:]
            if not tail_skipped and complete:
                complete = complete[:-1]  # after the last newline: "" or a line still being written
                tail_skipped = True
            for line in reversed(complete):
                if line.strip():
                    yield line
        if tail_skipped and pending.strip():
            yield pending  # the first line of the file
