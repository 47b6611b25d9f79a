"""The export's columns, and one row per line of an hour file. Pure.

1. One row per poll line, whatever kind of hour file it came from; ``record`` names the kind (today always
   ``demand``). A column a kind does not fill is empty (null).
2. The price and summation columns are part of the format from the start and empty until issue 14 part 1 writes
   those records: a researcher's script written today keeps working when they fill in. Part 1 adds its kind to
   ``hourfiles.layout.FILE_KINDS`` and a row builder to ``ROW_BUILDERS`` here; nothing else changes.
3. Times are kept as Unix seconds in a row (what the lines hold) and turned into text or Parquet timestamps by
   the writers, all through ``micros``, so the three formats agree to the microsecond.
4. A value of the wrong type in a line (a string where a number belongs, a meter time past year 9999) is empty
   in the row rather than an error: the line is still a poll that happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loggerapp.hourfiles.layout import DEMAND
from loggerapp.hourfiles.lines import finite_number

# Unix seconds of 10000-01-01: later (or negative) times cannot be written as RFC 3339 or a Parquet timestamp.
LAST_SECOND = 253402300800


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # "string", "timestamp", "float" or "bool": how the writers render it
    meaning: str


COLUMNS: tuple[Column, ...] = (
    Column("cloud_id", "string", "the household's cloud id"),
    Column("poll_time", "timestamp", "when the poll started, UTC"),
    Column("meter_time", "timestamp", "the meter's own time of the reading, UTC; empty for a failed poll"),
    Column("demand_kw", "float", "instantaneous demand in kW, signed (negative: exported); empty for a failed poll"),
    Column("ok", "bool", "true when the poll read the meter"),
    Column("error_kind", "string", "why a poll failed: unreachable, bad_credentials, meter_not_joined, bad_response"),
    Column("price", "float", "the tariff's price per kWh (issue 14 part 1; empty until then)"),
    Column("price_currency", "string", "ISO 4217 code of the price (issue 14 part 1; empty until then)"),
    Column("summation_delivered_kwh", "float", "energy delivered to the home, kWh (issue 14 part 1; empty until then)"),
    Column("summation_received_kwh", "float", "energy received from the home, kWh (issue 14 part 1; empty until then)"),
    Column("record", "string", "the kind of hour file the line is from: demand (part 1 adds its own)"),
)
COLUMN_NAMES = tuple(column.name for column in COLUMNS)

Row = tuple[Any, ...]  # values in COLUMNS order; times as Unix seconds (float), None for empty


def micros(seconds: float) -> int:
    """Whole microseconds of a time in Unix seconds (the lines keep six decimals, so this is exact)."""
    return round(seconds * 1_000_000)


def _time(value: Any) -> float | None:
    seconds = finite_number(value)
    return seconds if seconds is not None and 0 <= seconds < LAST_SECOND else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def demand_row(cloud_id: str, record: dict[str, Any]) -> Row:
    """The row of a demand line (README, Data layout): a reading, or a failed poll and its kind."""
    ok = record.get("ok") is True
    return (
        cloud_id,
        finite_number(record.get("poll_time")),
        _time(record.get("meter_time")) if ok else None,
        finite_number(record.get("demand_kw")) if ok else None,
        ok,
        None if ok else _text(record.get("error_kind")),
        None,
        None,
        None,
        None,
        DEMAND,
    )


def generic_row(kind: str, cloud_id: str, record: dict[str, Any]) -> Row:
    """A line of a kind without a builder: when it was polled and how it went (point 1)."""
    ok = record.get("ok") is True
    poll_time = finite_number(record.get("poll_time"))
    return (cloud_id, poll_time, None, None, ok, None if ok else _text(record.get("error_kind")), *([None] * 4), kind)


ROW_BUILDERS: dict[str, Callable[[str, dict[str, Any]], Row]] = {DEMAND: demand_row}


def row_of(kind: str, cloud_id: str, record: dict[str, Any]) -> Row:
    """The row of one poll line of the given kind of hour file."""
    builder = ROW_BUILDERS.get(kind)
    return builder(cloud_id, record) if builder is not None else generic_row(kind, cloud_id, record)
