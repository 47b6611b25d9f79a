"""A household's lines over a span, hour by hour, every line once: local hour files and the archive together.

What the export and the admin's chart read. The rules:

1. **Where an hour's lines are.** An hour can have a local file (not uploaded yet, or kept because it grew during
   its upload), archived objects (``.jl``, and ``.jl.gz`` if ARCHIVE_GZIP was switched at some point), or both
   at once (while an upload is being verified, after a merge that left a late writer's file behind). Each kind of
   hour file (``layout.FILE_KINDS``) has its own sources; all of them are read.
2. **Every line once.** An hour with one source is read as it is. An hour with several sources of a kind is
   merged by the hour file's one merge rule (``content.merge``, the upload's): the same JSON object, however it
   is spaced, counts once, and nothing of either side is lost.
3. **In time order.** The lines of all kinds of an hour are ordered by poll time (stable: a file's order on
   ties); an hour holds only the polls that started in it, so hour after hour is time order. Only polls with
   ``start <= poll_time < end`` are kept; a line that is not a poll (cut short, garbage) is counted, not kept.
4. **A local file gone while reading** was uploaded and deleted in between: the upload deletes only after the
   object is verified, so its archive keys are read instead.
5. **Bounded work, bounded memory.** Hours are fetched on one process-wide pool of EXPORT_CONCURRENCY threads,
   at most twice that many hours ahead of the consumer, handed over in order and parsed on the consumer's
   thread (the pool does I/O only: parsing there would make the threads fight over the GIL). Memory holds a few
   dozen hours' bytes whatever the span. Web requests share the pool, so they never start threads of their own.
6. **Errors.** An object that is not readable gzip is named in ``HourLines.unreadable`` and the rest goes on;
   an archive that cannot be listed or read raises ``ArchiveReadError`` (what comes back would be incomplete).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Collection, Generator, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce
from pathlib import Path
from typing import Any

from loggerapp.hourfiles.archived import ArchivedObject, ArchiveReader, archive_reader
from loggerapp.hourfiles.content import UnreadableObject, decode, merge
from loggerapp.hourfiles.layout import (
    FILE_KINDS,
    GZIP_SUFFIX,
    archive_folder,
    hour_dir,
    hour_folders,
    hours_between,
    kind_file_name,
)
from loggerapp.hourfiles.lines import finite_number, parse_record

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HourSources:
    """Where one household's hour is: its local files and archived objects, of every kind."""

    cloud_id: str
    hour: datetime
    local: tuple[tuple[str, Path], ...]  # (kind, path)
    archived: tuple[ArchivedObject, ...]


@dataclass
class HourLines:
    """One household's hour, read: its polls of every kind in time order, and what reading it took."""

    cloud_id: str
    hour: datetime
    records: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (kind, record)
    objects: int = 0  # archived objects read
    archived_bytes: int = 0  # bytes of those objects, as stored
    local_bytes: int = 0
    not_polls: int = 0  # lines that are not polls (cut short, garbage, no poll_time)
    unreadable: list[str] = field(default_factory=list)  # keys or paths that could not be read
    contents: dict[str, list[bytes]] = field(default_factory=dict)  # kind -> decoded sources, until parsed


# --- Planning ------------------------------------------------------------------------------------------------
def local_hours(log_root: Path) -> set[datetime]:
    """The hours that have a folder under LOG_ROOT (one listing, shared by every household of an export)."""
    return {folder.hour for folder in hour_folders(log_root)}


def plan_household(
    cloud_id: str,
    start: datetime,
    end: datetime,
    *,
    log_root: Path,
    reader: ArchiveReader,
    hours_on_disk: set[datetime] | None = None,
    kinds: Collection[str] | None = None,
) -> list[HourSources]:
    """The hours of [start, end) that have any source, oldest first (point 1 of the module docstring); only the
    given ``kinds`` of hour file when named (a reader that wants one kind fetches no other)."""
    if hours_on_disk is None:
        hours_on_disk = local_hours(log_root)
    wanted = tuple(FILE_KINDS) if kinds is None else tuple(kind for kind in FILE_KINDS if kind in kinds)
    archived: dict[datetime, list[ArchivedObject]] = {}
    for found in reader.objects(cloud_id, start, end):
        if found.name.kind in wanted:
            archived.setdefault(found.name.hour, []).append(found)
    plans = []
    for hour in hours_between(start, end):
        local: list[tuple[str, Path]] = []
        if hour in hours_on_disk:
            folder = hour_dir(log_root, hour)
            for kind in wanted:
                path = folder / kind_file_name(kind, cloud_id, hour)
                if path.is_file():
                    local.append((kind, path))
        if local or hour in archived:
            plans.append(HourSources(cloud_id, hour, tuple(local), tuple(archived.get(hour, ()))))
    return plans


# --- Reading one hour ----------------------------------------------------------------------------------------
def _archive_keys(reader: ArchiveReader, kind: str, cloud_id: str, hour: datetime) -> list[str]:
    key = f"{archive_folder(cloud_id, hour, reader.prefix)}/{kind_file_name(kind, cloud_id, hour)}"
    return [key, key + GZIP_SUFFIX]


def _take_object(lines: HourLines, contents: dict[str, list[bytes]], kind: str, key: str, body: bytes) -> None:
    lines.objects += 1
    lines.archived_bytes += len(body)
    try:
        content = decode(body)
    except UnreadableObject:
        logger.warning("archived hour file %s is not readable gzip; its lines are left out", key)
        lines.unreadable.append(key)
        return
    contents.setdefault(kind, []).append(content)


def fetch_hour(sources: HourSources, reader: ArchiveReader) -> HourLines:
    """The stored bytes of every source of one household's hour, decoded (I/O: run on the pool)."""
    lines = HourLines(sources.cloud_id, sources.hour)
    contents = lines.contents
    read_keys = set()
    for found in sources.archived:
        body = reader.fetch(found.key)
        if body is not None:
            read_keys.add(found.key)
            _take_object(lines, contents, found.name.kind, found.key, body)
    for kind, path in sources.local:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            # Uploaded and deleted since it was planned (point 4): the verified object holds its lines.
            for key in _archive_keys(reader, kind, sources.cloud_id, sources.hour):
                body = None if key in read_keys else reader.fetch(key)
                if body is not None:
                    _take_object(lines, contents, kind, key, body)
            continue
        except OSError as exc:
            logger.warning("cannot read hour file %s (%s); its lines are left out", path, exc)
            lines.unreadable.append(str(path))
            continue
        lines.local_bytes += len(data)
        try:
            content = decode(data)
        except UnreadableObject:
            lines.unreadable.append(str(path))
            continue
        contents.setdefault(kind, []).append(content)
    return lines


def parse_hour(lines: HourLines, start: datetime, end: datetime) -> HourLines:
    """The fetched hour's polls within [start, end), once, in time order (points 2 and 3 above).

    CPU only: it runs on the consumer's thread, so that the pool's threads do I/O and never fight over the GIL
    with the parsing (with parsing on the pool, 16 threads read a folder archive slower than one).
    """
    t0, t1 = start.timestamp(), end.timestamp()
    timed: list[tuple[float, str, dict[str, Any]]] = []
    for kind, parts in lines.contents.items():
        content = parts[0] if len(parts) == 1 else reduce(merge, parts)
        for line in content.split(b"\n"):
            if not line or line.isspace():
                continue
            record = parse_record(line)
            poll_time = finite_number(record.get("poll_time")) if record is not None else None
            if record is None or poll_time is None:
                lines.not_polls += 1
            elif t0 <= poll_time < t1:
                timed.append((poll_time, kind, record))
    timed.sort(key=lambda item: item[0])  # stable: a file's own order on ties
    lines.records = [(kind, record) for _, kind, record in timed]
    lines.contents = {}
    return lines


def read_hour(sources: HourSources, start: datetime, end: datetime, reader: ArchiveReader) -> HourLines:
    """Every poll of one household's hour within [start, end), once, in time order (points 1-4 above)."""
    return parse_hour(fetch_hour(sources, reader), start, end)


# --- Many hours, in parallel, in order -----------------------------------------------------------------------
_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def pool_size(concurrency: int | None = None) -> int:
    if concurrency is None:
        from django.conf import settings

        concurrency = settings.EXPORT_CONCURRENCY
    return max(1, int(concurrency))


def reading_pool(size: int) -> ThreadPoolExecutor:
    """The process-wide pool of archive reads with ``size`` threads: every export and chart shares it."""
    with _pools_lock:
        if size not in _pools:
            _pools[size] = ThreadPoolExecutor(max_workers=size, thread_name_prefix="archive-read")
        return _pools[size]


def ordered_map[T, R](
    function: Callable[[T], R], items: Iterable[T], pool: ThreadPoolExecutor, ahead: int
) -> Iterator[R]:
    """function(item) for every item, run on the pool at most ``ahead`` at a time, results in the items' order.

    Items are drawn lazily, so a generator of items (listing one household after another) is consumed only as
    fast as results are taken. A consumer that stops early cancels what has not started.
    """
    pending: deque[Future[R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= max(1, ahead):
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def household_hours(
    cloud_ids: Iterable[str],
    start: datetime,
    end: datetime,
    *,
    log_root: Path,
    reader: ArchiveReader | None = None,
    concurrency: int | None = None,
    on_household: Callable[[str], None] | None = None,
    kinds: Collection[str] | None = None,
) -> Generator[HourLines]:
    """Each household's hours of [start, end) that hold anything, household after household, each in time order.

    ``on_household(cloud_id)`` is called as each household's archive is listed (a progress display); ``kinds``
    limits the read to those kinds of hour file (default: every kind).
    """
    reader = reader if reader is not None else archive_reader()
    size = pool_size(concurrency)
    hours_on_disk = local_hours(log_root)

    def plans() -> Iterator[HourSources]:
        for cloud_id in cloud_ids:
            if on_household is not None:
                on_household(cloud_id)
            yield from plan_household(
                cloud_id, start, end, log_root=log_root, reader=reader, hours_on_disk=hours_on_disk, kinds=kinds
            )

    def fetch(sources: HourSources) -> HourLines:
        return fetch_hour(sources, reader)

    for fetched in ordered_map(fetch, plans(), reading_pool(size), ahead=2 * size):
        yield parse_hour(fetched, start, end)
