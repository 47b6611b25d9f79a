"""One JSON line per poll: building, parsing and counting lines, and how many an hour should hold.

Pure functions (no disk, no network), so the study's file format is tested on its own.

Building (the pinger's side):
1. A success line keeps the old logger's integer fields under their old names (``Reading.legacy``: Demand is
   the unsigned value the old logger wrote) first, so analysis code written against the old files keeps
   working, and adds our own keys beside them: ``cloud_id``, ``poll_time`` (Unix seconds, float: when the
   request actually started), ``meter_time`` (Unix seconds of the meter's TimeStamp, or null), ``demand_kw``
   (signed), ``latency_ms``, ``repeat`` and ``protocol``, and ``ok: true``.
2. A failure line explains the gap: ``cloud_id``, ``poll_time``, ``ok: false``, ``error_kind`` (a Status value),
   ``error`` (the client's message, which never holds a secret) and ``latency_ms``.
   An event line explains a gap that no poll explains, shaped like a failure line (``ok: false``, so readers that
   count readings never count it): ``error_kind`` and ``event`` are ``"skipped"`` (a tick not polled because the
   household's previous poll was still in flight; ``poll_time`` is the tick's due time) or ``"restart"`` (the
   pinger started again; ``poll_time`` is the start, ``last_line_time`` the poll time of the household's last
   line before it, or null). ``latency_ms`` is null: nothing was asked.
3. ``repeat`` is true when the meter's TimeStamp equals the previous successful poll's: the gateway reads the
   meter only every ~10 s, so analysis can drop repeats without losing the record that a poll happened.
4. Compact separators and ``allow_nan=False``: every line is strict JSON (NaN is not), ASCII only (anything else
   escaped), ending in one "\n". Our own keys win over a legacy key of the same name. Lines are encoded by
   orjson (a quarter of json's cost, on every poll); a line orjson cannot encode the same way (non-ASCII text,
   an integer past 64 bits, a lone surrogate) is encoded by json instead, so the bytes mean the same either
   way: same keys in the same order, same values.

Reading (everyone else's side):
5. ``parse_record`` is the one parser: a line is a JSON object or nothing (a line cut short, garbage, a blank
   line). JSON's spacing does not matter (older files and other tools write ``"ok": true``).
6. ``count_lines`` is the one counting rule, on bytes because the upload counts thousands of files an hour: a
   line is what ends in "\n", plus an unterminated rest (the archive keeps it, so it counts); a reading is a line
   holding the key ``"ok"`` with the value ``true``, however JSON spaces them. ``"ok"`` with its quotes bare can
   only be a key (inside a string value the quotes are escaped), so the pattern never matches an error text.
7. An hour holds ``3600 / PINGER_INTERVAL`` polls (600 at the study's six seconds): ``lines_per_hour`` is the one
   definition, used by the ledger's coverage, the admin and the status page.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import orjson

from loggerapp.hourfiles.layout import HOUR_SECONDS

STUDY_INTERVAL_SECONDS = 6.0  # the study's cadence: what lines_per_hour falls back on without a usable setting

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode
_READING = re.compile(rb'"ok"\s*:\s*true\b')


# --- Building ------------------------------------------------------------------------------------------------
class ReadingLike(Protocol):
    """What a success line needs of a ``loggerapp.eagle.Reading``."""

    cloud_id: str
    protocol: str
    demand_kw: float | None
    meter_timestamp: int | None
    latency_s: float
    legacy: dict[str, Any] | None


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
        "error_kind": str(error_kind),
        "error": error,
        "latency_ms": _finite(latency_s * 1000.0, 1),
    }


def encode_line(fields: dict[str, Any]) -> bytes:
    """One line, ready for a single write (point 4: orjson, or json where orjson would write otherwise)."""
    try:
        line = orjson.dumps(fields, option=orjson.OPT_APPEND_NEWLINE)
    except TypeError:  # orjson.JSONEncodeError: an integer past 64 bits, a lone surrogate, a type it lacks
        pass
    else:
        if line.isascii():
            return line
    return (_dumps(fields) + "\n").encode("ascii")


def success_line(reading: ReadingLike, poll_time: float, repeat: bool) -> bytes:
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


EVENT_SKIPPED = "skipped"
EVENT_RESTART = "restart"
EVENT_KINDS = (EVENT_SKIPPED, EVENT_RESTART)


def event_fields(
    *, cloud_id: str, poll_time: float, event: str, error: str, last_line_time: float | None = None
) -> dict[str, Any]:
    """A gap explained by the pinger itself rather than by a poll (module docstring, point 2)."""
    fields = failure_fields(cloud_id=cloud_id, poll_time=poll_time, error_kind=event, error=error, latency_s=math.nan)
    fields["event"] = event
    if event == EVENT_RESTART:
        fields["last_line_time"] = None if last_line_time is None else round(last_line_time, 6)
    return fields


def skipped_line(cloud_id: str, due_time: float) -> bytes:
    """The line of a tick that was not polled because the household's previous poll was still in flight."""
    return encode_line(
        event_fields(cloud_id=cloud_id, poll_time=due_time, event=EVENT_SKIPPED, error="previous poll still in flight")
    )


def restart_line(cloud_id: str, started: float, last_line_time: float | None) -> bytes:
    """The first line of a household after the pinger started again: the gap since ``last_line_time`` has no
    other explanation in the file (a kill -9, a crash, a stop)."""
    return encode_line(
        event_fields(
            cloud_id=cloud_id,
            poll_time=started,
            event=EVENT_RESTART,
            error="pinger restarted",
            last_line_time=last_line_time,
        )
    )


def is_repeat(previous_meter_timestamp: int | None, meter_timestamp: int | None) -> bool:
    """Whether a reading repeats the previous successful one (same meter TimeStamp)."""
    return meter_timestamp is not None and meter_timestamp == previous_meter_timestamp


# --- Parsing -------------------------------------------------------------------------------------------------
def parse_record(line: bytes | str) -> dict[str, Any] | None:
    """The JSON object of one line, or None for anything else (a line cut short, garbage, a blank line).

    orjson first, because reading a month back parses 432,000 lines a household (about 4 us a line, against 15
    with json); what orjson refuses (NaN, lone surrogates, deep nesting) is read by json, so every line json can
    read is read. One difference remains, on purpose: an integer past 64 bits comes back as a float (json keeps
    it exact). Readers take numbers through ``finite_number``, which makes a float of it either way; checking
    every line for such integers first cost more than orjson saved.
    """
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: a hostile line of nested brackets
            return None
    return record if isinstance(record, dict) else None


def finite_number(value: Any) -> float | None:
    """A JSON number as a float; None for anything else (booleans, strings, NaN and infinities included)."""
    if type(value) is float:  # the usual case first: readers call this several times for every line
        return value if value - value == 0.0 else None  # inf - inf and nan - nan are nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class Poll:
    """What a chart needs of a line: when, whether it read the meter, and the demand it read."""

    t: float  # poll time, Unix seconds
    ok: bool
    demand_kw: float | None


def poll_from_record(record: dict[str, Any]) -> Poll | None:
    """The poll of a parsed line; None when it has no usable poll_time (it is not a poll line)."""
    t = finite_number(record.get("poll_time"))
    if t is None:
        return None
    ok = record.get("ok") is True
    return Poll(t, ok, finite_number(record.get("demand_kw")) if ok else None)


def parse_poll(line: bytes | str) -> Poll | None:
    record = parse_record(line)
    return poll_from_record(record) if record is not None else None


def parse_polls(content: bytes) -> list[Poll]:
    """The polls of a file's content, in file order; lines that are not polls are skipped."""
    return [poll for line in content.split(b"\n") if line.strip() and (poll := parse_poll(line)) is not None]


# --- Counting ------------------------------------------------------------------------------------------------
class LineCount(NamedTuple):
    lines: int
    readings: int  # lines holding a reading (a successful poll)


def count_lines(content: bytes) -> LineCount:
    """Lines and readings of an hour file's content, by the one rule of the module docstring (point 6)."""
    lines = content.count(b"\n")
    if content and not content.endswith(b"\n"):
        lines += 1
    return LineCount(lines, len(_READING.findall(content)))


# --- Expected lines ------------------------------------------------------------------------------------------
def lines_per_hour(interval: float | None = None) -> int:
    """Polls in a whole hour at ``interval`` seconds (default: PINGER_INTERVAL); 600 at six seconds."""
    if interval is None:
        from django.conf import settings

        interval = settings.PINGER_INTERVAL
    if not interval or not math.isfinite(interval) or interval <= 0:
        interval = STUDY_INTERVAL_SECONDS
    return max(1, round(HOUR_SECONDS / interval))


def expected_lines(hour: datetime, now: datetime, interval: float | None = None) -> int:
    """Polls expected in an hour by ``now``: all of them for a finished hour, the elapsed share of the current one
    (at least 1, so that a coverage fraction is always defined)."""
    per_hour = lines_per_hour(interval)
    elapsed = (now - hour).total_seconds()
    if elapsed >= HOUR_SECONDS:
        return per_hour
    return max(1, int(per_hour * max(0.0, elapsed) / HOUR_SECONDS))


def coverage(readings: int, expected: int) -> float:
    """Readings out of those expected, capped at 1 (two pingers on one household can write more)."""
    return min(1.0, readings / expected) if expected > 0 else 0.0
