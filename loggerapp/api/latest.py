"""The last logged reading of a household, from the pinger's hour files, without asking the device.

1. The newest hour folder holding this household's file wins (hourfiles.reading.newest_hour_files).
2. The file is read backwards in blocks (an hour file is ~600 lines, ~200 KB; only the tail is read in the
   usual case). A last line without its newline is a write in progress and is skipped; lines are parsed by
   hourfiles.lines, like every other reader's.
3. The newest successful line is the reading; the very last line says how the latest poll went (it may be a
   failure). If the newest file holds no success (a failing hour), the file before it is searched too, and no
   further: the request stays cheap.
4. No file (rotated away, or never written): HouseholdStats.last_demand_kw / last_meter_time, which the pinger
   keeps. Nothing at all: None (the view answers 404).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loggerapp.hourfiles.lines import finite_number, parse_record
from loggerapp.hourfiles.reading import lines_backwards, newest_hour_files
from loggerapp.models import Household, HouseholdStats

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


def _unix_time(value: Any) -> datetime | None:
    seconds = finite_number(value)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


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
    meter_timestamp = int(meter_timestamp) if finite_number(meter_timestamp) is not None else None
    protocol = record.get("protocol")
    repeat = record.get("repeat")
    return LatestReading(
        cloud_id=cloud_id,
        source="hour_file",
        demand_kw=finite_number(record.get("demand_kw")),
        meter_time=_unix_time(meter_timestamp),
        meter_timestamp=meter_timestamp,
        poll_time=_unix_time(record.get("poll_time")),
        protocol=protocol if isinstance(protocol, str) else None,
        repeat=repeat if isinstance(repeat, bool) else None,
        latency_ms=finite_number(record.get("latency_ms")),
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
                record = parse_record(line)
                if record is None or record.get("cloud_id", cloud_id) != cloud_id:
                    continue
                if last_poll is None and "event" not in record:  # a skipped tick or a restart is no poll
                    last_poll = _last_poll(record)
                if record.get("ok") is True and finite_number(record.get("demand_kw")) is not None:
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
