"""Where hour files live: on local disk and in the archive. The layout is the study's, kept exactly.

local:   <LOG_ROOT>/2015-09-27-04/iseif-rainforest-002506-2015-09-27-04.jl
archive: rainforest-logs/002506/2015/09/27/iseif-rainforest-002506-2015-09-27-04.jl
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from loggerapp.validators import validate_cloud_id

HOUR_FORMAT = "%Y-%m-%d-%H"
FILE_PREFIX = "iseif-rainforest-"
FILE_SUFFIX = ".jl"
HOUR_DIR_RE = re.compile(r"\d{4}-\d{2}-\d{2}-\d{2}")
HOUR_FILE_RE = re.compile(r"iseif-rainforest-(?P<cloud_id>[0-9a-f]{6})-(?P<hour>\d{4}-\d{2}-\d{2}-\d{2})\.jl")


def hour_start(moment: datetime | float) -> datetime:
    """The start of the UTC hour holding a moment (an aware datetime or Unix seconds)."""
    if isinstance(moment, (int, float)):
        moment = datetime.fromtimestamp(moment, UTC)
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_label(hour: datetime) -> str:
    return hour_start(hour).strftime(HOUR_FORMAT)


def parse_hour_label(label: str) -> datetime:
    if not HOUR_DIR_RE.fullmatch(label):
        raise ValueError(f"not an hour label (YYYY-MM-DD-HH): {label!r}")
    return datetime.strptime(label, HOUR_FORMAT).replace(tzinfo=UTC)


def hour_file_name(cloud_id: str, hour: datetime) -> str:
    validate_cloud_id(cloud_id)
    return f"{FILE_PREFIX}{cloud_id}-{hour_label(hour)}{FILE_SUFFIX}"


def hour_dir(log_root: Path, hour: datetime) -> Path:
    return Path(log_root) / hour_label(hour)


def hour_file_path(log_root: Path, cloud_id: str, hour: datetime) -> Path:
    return hour_dir(log_root, hour) / hour_file_name(cloud_id, hour)


def archive_key(cloud_id: str, hour: datetime, prefix: str = "rainforest-logs") -> str:
    hour = hour_start(hour)
    parts = [prefix.strip("/")] if prefix.strip("/") else []
    parts += [cloud_id, f"{hour:%Y}", f"{hour:%m}", f"{hour:%d}", hour_file_name(cloud_id, hour)]
    return "/".join(parts)


def parse_hour_file_name(name: str) -> tuple[str, datetime] | None:
    """(cloud_id, hour) of a well-formed hour file name, or None for anything else found on disk."""
    match = HOUR_FILE_RE.fullmatch(name)
    if match is None:
        return None
    return match["cloud_id"], parse_hour_label(match["hour"])
