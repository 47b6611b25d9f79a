"""One JSON line per poll: pure formatting, so the file format is tested without a network or a disk.

Decisions:
1. A success line keeps the old logger's integer fields under their old names (``Reading.legacy``: Demand is
   the unsigned value the old logger wrote) first, so analysis code written against the old files keeps
   working, and adds our own keys beside them: ``cloud_id``, ``poll_time`` (Unix seconds, float: when the
   request actually started), ``meter_time`` (Unix seconds of the meter's TimeStamp, or null), ``demand_kw``
   (signed), ``latency_ms``, ``repeat`` and ``protocol``, and ``ok: true``.
2. A failure line explains the gap: ``cloud_id``, ``poll_time``, ``ok: false``, ``error_kind`` (a Status value),
   ``error`` (the client's message, which never holds a secret) and ``latency_ms``.
3. ``repeat`` is true when the meter's TimeStamp equals the previous successful poll's: the gateway reads the
   meter only every ~10 s, so analysis can drop repeats without losing the record that a poll happened.
4. Compact separators and ``allow_nan=False``: every line is strict JSON (NaN is not), ending in one "\n".
   Our own keys win over a legacy key of the same name.
"""

from __future__ import annotations

import json
import math
from typing import Any

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode


def _finite(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


def success_fields(
    *,
    cloud_id: str,
    protocol: str,
    poll_time: float,
    demand_kw: float | None,
    meter_timestamp: int | None,
    latency_s: float,
    repeat: bool,
    legacy: dict[str, Any] | None = None,
) -> dict[str, Any]:
    fields: dict[str, Any] = dict(legacy or {})
    fields.update(
        cloud_id=cloud_id,
        poll_time=round(poll_time, 6),
        meter_time=meter_timestamp,
        demand_kw=_finite(demand_kw, 6),
        latency_ms=_finite(latency_s * 1000.0, 1),
        repeat=repeat,
        protocol=protocol,
        ok=True,
    )
    return fields


def failure_fields(*, cloud_id: str, poll_time: float, error_kind: str, error: str, latency_s: float) -> dict[str, Any]:
    return {
        "cloud_id": cloud_id,
        "poll_time": round(poll_time, 6),
        "ok": False,
        "error_kind": error_kind,
        "error": error,
        "latency_ms": _finite(latency_s * 1000.0, 1),
    }


def encode_line(fields: dict[str, Any]) -> bytes:
    """One line, ready for a single write."""
    return (_dumps(fields) + "\n").encode("ascii")


def success_line(reading: Any, poll_time: float, repeat: bool) -> bytes:
    """The line of a successful poll from a ``loggerapp.eagle.Reading``."""
    return encode_line(
        success_fields(
            cloud_id=reading.cloud_id,
            protocol=reading.protocol,
            poll_time=poll_time,
            demand_kw=reading.demand_kw,
            meter_timestamp=reading.meter_timestamp,
            latency_s=reading.latency_s,
            repeat=repeat,
            legacy=reading.legacy,
        )
    )


def failure_line(cloud_id: str, poll_time: float, error_kind: str, error: str, latency_s: float) -> bytes:
    return encode_line(
        failure_fields(cloud_id=cloud_id, poll_time=poll_time, error_kind=error_kind, error=error, latency_s=latency_s)
    )


def is_repeat(previous_meter_timestamp: int | None, meter_timestamp: int | None) -> bool:
    """Whether a reading repeats the previous successful one (same meter TimeStamp)."""
    return meter_timestamp is not None and meter_timestamp == previous_meter_timestamp
