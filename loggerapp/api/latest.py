"""The last logged reading of a household, from the pinger's hour files, without asking the device.

1. Hour directories under LOG_ROOT are named YYYY-MM-DD-HH, so sorting their names sorts them by time; the
   newest directory holding this household's file wins.
2. The file is read backwards in blocks (an hour file is ~600 lines, ~200 KB; only the tail is read in the
   usual case). A last line without its newline is a write in progress and is skipped.
3. The newest successful line is the reading; the very last line says how the latest poll went (it may be a
   failure). If the newest file holds no success (a failing hour), the file before it is searched too, and no
   further: the request stays cheap.
4. No file (rotated away, or never written): HouseholdStats.last_demand_kw / last_meter_time, which the pinger
   keeps. Nothing at all: None (the view answers 404).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loggerapp.models import Household, HouseholdStats
from loggerapp.paths import HOUR_DIR_RE, hour_file_path, parse_hour_label

BLOCK_SIZE = 8192
MAX_FILES_SEARCHED = 2


@dataclass(frozen=True)
class LatestReading:
    cloud_id: str
    source: str  # "hour_file" or "statistics"
    demand_kw: float
    meter_time: datetime | None
    poll_time: datetime | None = None
    meter_timestamp: int | None = None
    protocol: str | None = None
    repeat: bool | None = None
    latency_ms: float | None = None
    hour_file: str | None = None
    last_poll: dict[str, Any] | None = field(default=None)


def newest_hour_files(log_root: Path, cloud_id: str) -> Iterator[Path]:
    """The household's hour files, newest first. cloud_id must already be validated (it becomes a path)."""
    try:
        with os.scandir(log_root) as entries:
            labels = sorted((e.name for e in entries if HOUR_DIR_RE.fullmatch(e.name) and e.is_dir()), reverse=True)
    except FileNotFoundError:
        return
    for label in labels:
        path = hour_file_path(log_root, cloud_id, parse_hour_label(label))
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


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if value == value and abs(value) != float("inf") else None


def _unix_time(value: Any) -> datetime | None:
    seconds = _number(value)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _last_poll(record: dict[str, Any]) -> dict[str, Any]:
    ok = record.get("ok") is True
    error_kind = record.get("error_kind")
    return {
        "ok": ok,
        "poll_time": _unix_time(record.get("poll_time")),
        "error_kind": None if ok or not isinstance(error_kind, str) else error_kind,
    }


def _reading_from(cloud_id: str, record: dict[str, Any], path: Path, last_poll: dict[str, Any]) -> LatestReading:
    meter_timestamp = record.get("meter_time")
    meter_timestamp = int(meter_timestamp) if _number(meter_timestamp) is not None else None
    protocol = record.get("protocol")
    repeat = record.get("repeat")
    return LatestReading(
        cloud_id=cloud_id,
        source="hour_file",
        demand_kw=_number(record.get("demand_kw")),
        meter_time=_unix_time(meter_timestamp),
        meter_timestamp=meter_timestamp,
        poll_time=_unix_time(record.get("poll_time")),
        protocol=protocol if isinstance(protocol, str) else None,
        repeat=repeat if isinstance(repeat, bool) else None,
        latency_ms=_number(record.get("latency_ms")),
        hour_file=path.name,
        last_poll=last_poll,
    )


def latest_from_files(log_root: Path, cloud_id: str) -> LatestReading | None:
    """The newest successful line among the household's newest MAX_FILES_SEARCHED hour files."""
    last_poll = None
    for searched, path in enumerate(newest_hour_files(log_root, cloud_id)):
        if searched >= MAX_FILES_SEARCHED:
            break
        try:
            for line in lines_backwards(path):
                record = _parse(line)
                if record is None or record.get("cloud_id", cloud_id) != cloud_id:
                    continue
                if last_poll is None:
                    last_poll = _last_poll(record)
                if record.get("ok") is True and _number(record.get("demand_kw")) is not None:
                    return _reading_from(cloud_id, record, path, last_poll)
        except FileNotFoundError:
            continue  # rotated away between listing and opening
    return None


def latest_reading(household: Household, log_root: Path) -> LatestReading | None:
    """The last logged reading from the hour files, else from the statistics, else None."""
    from_files = latest_from_files(Path(log_root), household.cloud_id)
    if from_files is not None:
        return from_files
    stats = HouseholdStats.objects.filter(household=household).first()
    if stats is None or stats.last_demand_kw is None:
        return None
    return LatestReading(
        cloud_id=household.cloud_id,
        source="statistics",
        demand_kw=stats.last_demand_kw,
        meter_time=stats.last_meter_time,
        meter_timestamp=int(stats.last_meter_time.timestamp()) if stats.last_meter_time else None,
        protocol=household.protocol,
    )
