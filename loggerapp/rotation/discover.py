"""Find the hour files that are ready for the archive: every file of every hour that has ended.

The pinger writes `<LOG_ROOT>/<Y-m-d-H>/iseif-rainforest-<cloud_id>-<Y-m-d-H>.jl`, and beside it the other kinds
of hour file (``layout.FILE_KINDS``: the price file, `iseif-rainforest-price-...`); every kind is found. An hour
is finished once its end plus a grace period has passed, so the pinger has written its last poll and closed the
file. The current hour is never finished by that rule, whatever the clock says about the grace period.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from loggerapp.hourfiles.layout import DEMAND, HOUR, hour_dir, hour_folders, hour_start, parse_stored_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalHourFile:
    """One hour file on local disk, as found by a scan."""

    cloud_id: str
    hour: datetime
    path: Path
    size: int
    kind: str = DEMAND  # layout.FILE_KINDS


def is_finished(hour: datetime, now: datetime, grace_seconds: float) -> bool:
    """Whether an hour has ended at least ``grace_seconds`` ago (never true for the hour holding ``now``)."""
    hour = hour_start(hour)
    if hour >= hour_start(now):
        return False
    return now >= hour + HOUR + timedelta(seconds=max(0.0, grace_seconds))


def finished_hours(log_root: Path, now: datetime, grace_seconds: float) -> list[datetime]:
    """Hour directories under ``log_root`` whose hour is finished, oldest first (the backlog goes first).

    Service log folders (pinger/, rotate/, ...) and anything else that is not an hour folder are ignored.
    """
    return [folder.hour for folder in hour_folders(log_root) if is_finished(folder.hour, now, grace_seconds)]


def files_of_hour(log_root: Path, hour: datetime, now: datetime, grace_seconds: float) -> list[LocalHourFile]:
    """The well-formed hour files of one hour directory.

    A file whose name names another hour, or that was modified within the grace period (a writer that is late
    closing it), is left alone and logged: it is picked up by a later run if it becomes valid.
    """
    directory = hour_dir(log_root, hour)
    found = []
    recent = time.time() - max(0.0, grace_seconds)  # wall clock: the writer's clock, whatever ``now`` says
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        if not entry.is_file(follow_symlinks=False):
            continue
        parsed = parse_stored_name(entry.name)
        if parsed is None or parsed.gzipped:
            if not entry.name.startswith("."):
                log.warning("ignoring %s: not an hour file name", entry.path)
            continue
        cloud_id, file_hour = parsed.cloud_id, parsed.hour
        if file_hour != hour:
            log.warning("ignoring %s: its name names another hour than its directory", entry.path)
            continue
        stat = entry.stat(follow_symlinks=False)
        if stat.st_mtime > recent:
            log.warning("skipping %s for now: modified within the last %ss", entry.path, grace_seconds)
            continue
        found.append(LocalHourFile(cloud_id, hour, Path(entry.path), stat.st_size, parsed.kind))
    return sorted(found, key=lambda f: (f.cloud_id, f.kind))


def finished_hour_files(
    log_root: Path, now: datetime, grace_seconds: float, only_hour: datetime | None = None
) -> list[LocalHourFile]:
    """Every file of every finished hour (or of ``only_hour``, if it is finished), oldest hour first."""
    if only_hour is not None:
        hours = [hour_start(only_hour)] if is_finished(only_hour, now, grace_seconds) else []
    else:
        hours = finished_hours(log_root, now, grace_seconds)
    files: list[LocalHourFile] = []
    for hour in hours:
        files.extend(files_of_hour(log_root, hour, now, grace_seconds))
    return files


def remove_empty_hour_dir(log_root: Path, hour: datetime) -> bool:
    """Remove an hour directory once its last file has gone; a directory that still holds anything stays."""
    try:
        hour_dir(log_root, hour).rmdir()
    except FileNotFoundError:
        return False
    except OSError:
        return False  # not empty: a file failed, or a late writer put something there
    return True
