"""Where hour files live: on local disk and in the archive. The layout is the study's, kept exactly.

local:   <LOG_ROOT>/2015-09-27-04/iseif-rainforest-002506-2015-09-27-04.jl
archive: rainforest-logs/002506/2015/09/27/iseif-rainforest-002506-2015-09-27-04.jl

"An hour" is defined here once: the UTC hour, as an aware datetime at its start (``hour_start``) or, on the
pinger's hot path, as whole hours since the Unix epoch (``hour_index``). Everything that lists LOG_ROOT's hour
folders goes through ``hour_folders``, so the pinger, the upload, the alerts and the API agree on what an hour
folder is (a real directory named YYYY-MM-DD-HH; service log folders and anything else are ignored).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path

from loggerapp.validators import validate_cloud_id

HOUR = timedelta(hours=1)
HOUR_SECONDS = 3600
HOUR_FORMAT = "%Y-%m-%d-%H"
FILE_PREFIX = "iseif-rainforest-"
FILE_SUFFIX = ".jl"
HOUR_DIR_RE = re.compile(r"\d{4}-\d{2}-\d{2}-\d{2}")
HOUR_FILE_RE = re.compile(r"iseif-rainforest-(?P<cloud_id>[0-9a-f]{6})-(?P<hour>\d{4}-\d{2}-\d{2}-\d{2})\.jl")
GZIP_SUFFIX = ".gz"  # an archive key's ending when ARCHIVE_GZIP is on

# Kinds of hour file, by the file name's prefix. "demand" is the study's file. Other kinds (issue 14's price and
# summation records) live beside it: the same hour folders, the same archive layout, another prefix. Readers that
# take every kind of an hour (hourfiles.span, the export) find them all here, so a new kind is one entry.
DEMAND = "demand"
PRICE = "price"  # price and cumulative energy (summation), polled at PINGER_PRICE_INTERVAL; docs/hourfiles.md
PRICE_FILE_PREFIX = "iseif-rainforest-price-"
FILE_KINDS: dict[str, str] = {DEMAND: FILE_PREFIX, PRICE: PRICE_FILE_PREFIX}


# --- Hours ---------------------------------------------------------------------------------------------------
def hour_start(moment: datetime | float) -> datetime:
    """The start of the UTC hour holding a moment (an aware datetime or Unix seconds)."""
    if isinstance(moment, (int, float)):
        moment = datetime.fromtimestamp(moment, UTC)
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_index(unix_seconds: float) -> int:
    """Whole hours since the Unix epoch: the hour of a poll time without building a datetime (the pinger's
    writer does this for every line)."""
    return int(unix_seconds // HOUR_SECONDS)


def hour_of_index(index: int) -> datetime:
    return datetime.fromtimestamp(index * HOUR_SECONDS, UTC)


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    """The hours overlapping [start, end), oldest first."""
    hours = []
    hour = hour_start(start)
    while hour < end:
        hours.append(hour)
        hour += HOUR
    return hours


def hour_label(hour: datetime) -> str:
    return hour_start(hour).strftime(HOUR_FORMAT)


def parse_hour_label(label: str) -> datetime:
    if not HOUR_DIR_RE.fullmatch(label):
        raise ValueError(f"not an hour label (YYYY-MM-DD-HH): {label!r}")
    return datetime.strptime(label, HOUR_FORMAT).replace(tzinfo=UTC)


# --- Names, paths and keys -----------------------------------------------------------------------------------
def hour_file_name(cloud_id: str, hour: datetime) -> str:
    validate_cloud_id(cloud_id)
    return f"{FILE_PREFIX}{cloud_id}-{hour_label(hour)}{FILE_SUFFIX}"


def hour_dir(log_root: Path, hour: datetime) -> Path:
    return Path(log_root) / hour_label(hour)


def hour_file_path(log_root: Path, cloud_id: str, hour: datetime) -> Path:
    return hour_dir(log_root, hour) / hour_file_name(cloud_id, hour)


def archive_folder(cloud_id: str, day: datetime, prefix: str = "rainforest-logs") -> str:
    """The archive folder of one household's day (every kind of its hour files of that day is in it)."""
    parts = [prefix.strip("/")] if prefix.strip("/") else []
    return "/".join([*parts, cloud_id, f"{day:%Y}", f"{day:%m}", f"{day:%d}"])


def archive_key(cloud_id: str, hour: datetime, prefix: str = "rainforest-logs") -> str:
    hour = hour_start(hour)
    return f"{archive_folder(cloud_id, hour, prefix)}/{hour_file_name(cloud_id, hour)}"


def kind_file_name(kind: str, cloud_id: str, hour: datetime) -> str:
    """The file name of one kind of hour file (``FILE_KINDS``); the demand kind's is ``hour_file_name``."""
    validate_cloud_id(cloud_id)
    return f"{FILE_KINDS[kind]}{cloud_id}-{hour_label(hour)}{FILE_SUFFIX}"


def kind_file_path(log_root: Path, kind: str, cloud_id: str, hour: datetime) -> Path:
    return hour_dir(log_root, hour) / kind_file_name(kind, cloud_id, hour)


def kind_archive_key(kind: str, cloud_id: str, hour: datetime, prefix: str = "rainforest-logs") -> str:
    """The archive key of one kind of hour file: the demand file's folder, the kind's file name."""
    hour = hour_start(hour)
    return f"{archive_folder(cloud_id, hour, prefix)}/{kind_file_name(kind, cloud_id, hour)}"


@dataclass(frozen=True)
class StoredName:
    """What an hour file's name says, locally or as the last part of an archive key."""

    kind: str
    cloud_id: str
    hour: datetime
    gzipped: bool  # the name ends in .gz (whether the bytes are gzip is decided by the bytes: content.decode)


@lru_cache(maxsize=4)
def _stored_name_re(prefixes: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(prefix) for prefix in sorted(prefixes, key=len, reverse=True))
    return re.compile(
        rf"(?P<prefix>{alternatives})(?P<cloud_id>[0-9a-f]{{6}})-(?P<hour>\d{{4}}-\d{{2}}-\d{{2}}-\d{{2}})"
        rf"{re.escape(FILE_SUFFIX)}(?P<gz>{re.escape(GZIP_SUFFIX)})?"
    )


def parse_stored_name(name: str) -> StoredName | None:
    """Kind, cloud id and hour of any kind of hour file's name, with or without ``.gz``; None for anything else."""
    match = _stored_name_re(tuple(FILE_KINDS.values())).fullmatch(name)
    if match is None:
        return None
    kind = next(kind for kind, prefix in FILE_KINDS.items() if prefix == match["prefix"])
    try:
        hour = parse_hour_label(match["hour"])
    except ValueError:  # shaped like an hour but not one (month 13)
        return None
    return StoredName(kind, match["cloud_id"], hour, match["gz"] is not None)


def parse_hour_file_name(name: str) -> tuple[str, datetime] | None:
    """(cloud_id, hour) of a well-formed hour file name, or None for anything else found on disk."""
    match = HOUR_FILE_RE.fullmatch(name)
    if match is None:
        return None
    return match["cloud_id"], parse_hour_label(match["hour"])


# --- The folder scan -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HourFolder:
    hour: datetime
    path: Path


def hour_folders(log_root: Path) -> list[HourFolder]:
    """LOG_ROOT's hour folders, oldest first; [] when LOG_ROOT does not exist (yet).

    Symbolic links are not followed: the upload deletes what it archived, and must never reach outside LOG_ROOT.
    """
    try:
        with os.scandir(log_root) as entries:
            folders = [
                HourFolder(parse_hour_label(entry.name), Path(entry.path))
                for entry in entries
                if HOUR_DIR_RE.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)
            ]
    except FileNotFoundError:
        return []
    return sorted(folders, key=lambda folder: folder.hour)


def hour_files_on_disk(log_root: Path, before: datetime) -> list[tuple[str, datetime]]:
    """(cloud_id, hour) of the hour files in the folders of hours that started before ``before``.

    A file whose name names another hour than its folder is left out, as the upload leaves it out. A folder
    that cannot be listed is skipped: this serves reports (alerts, the status page), which must not fail.
    """
    found: list[tuple[str, datetime]] = []
    for folder in hour_folders(log_root):
        if folder.hour >= before:
            break
        try:
            names = os.listdir(folder.path)
        except OSError:
            continue
        label = folder.path.name
        for name in names:
            match = HOUR_FILE_RE.fullmatch(name)
            if match is not None and match["hour"] == label:  # compared as text: no date parsing per file
                found.append((match["cloud_id"], folder.hour))
    return found


def stored_files_on_disk(log_root: Path, before: datetime) -> list[tuple[str, str, datetime]]:
    """(kind, cloud_id, hour) of the hour files of every kind (``FILE_KINDS``) in the folders of hours that
    started before ``before``; as ``hour_files_on_disk`` otherwise (the upload backlog counts every kind)."""
    found: list[tuple[str, str, datetime]] = []
    for folder in hour_folders(log_root):
        if folder.hour >= before:
            break
        try:
            names = os.listdir(folder.path)
        except OSError:
            continue
        for name in names:
            parsed = parse_stored_name(name)
            if parsed is not None and not parsed.gzipped and parsed.hour == folder.hour:
                found.append((parsed.kind, parsed.cloud_id, folder.hour))
    return found
