"""The export's columns, and one row per line of an hour file. Pure.

1. One row per poll line, whatever kind of hour file it came from; ``record`` names the kind (``demand`` or
   ``price``). A column a kind does not fill is empty (null): a demand row has no price, a price row no demand.
2. The price and summation columns were part of the format from the start, empty until issue 14 part 1 wrote
   the price file (``hourfiles.price_lines``); its rows fill them, so a script written before keeps working.
3. Times are kept as Unix seconds in a row (what the lines hold) and turned into text or Parquet timestamps by
   the writers, all through ``micros``, so the three formats agree to the microsecond.
4. A value of the wrong type in a line (a string where a number belongs, a meter time past year 9999) is empty
   in the row rather than an error: the line is still a poll that happened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from loggerapp.eagle.currency import currency_letters
from loggerapp.hourfiles.layout import DEMAND, PRICE
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
    Column(
        "meter_time", "timestamp", "the meter's own time of the reading (or summation), UTC; empty for a failed poll"
    ),
    Column("demand_kw", "float", "instantaneous demand in kW, signed (negative: exported); empty for a failed poll"),
    Column("ok", "bool", "true when the poll read the meter"),
    Column("error_kind", "string", "why a poll failed: unreachable, bad_credentials, meter_not_joined, bad_response"),
    Column("price", "float", "the tariff's price per kWh; price rows only, empty when the meter has no tariff set"),
    Column("price_currency", "string", "ISO 4217 code of the price (USD); price rows only"),
    Column("summation_delivered_kwh", "float", "cumulative energy delivered to the home, kWh; price rows only"),
    Column("summation_received_kwh", "float", "cumulative energy received from the home, kWh; price rows only"),
    Column("record", "string", "the kind of hour file the line is from: demand, or price (price and summation)"),
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


def price_row(cloud_id: str, record: dict[str, Any]) -> Row:
    """The row of a price line (hourfiles.price_lines): price, currency and both summation counters."""
    ok = record.get("ok") is True
    currency = record.get("currency")
    return (
        cloud_id,
        finite_number(record.get("poll_time")),
        _time(record.get("meter_time")) if ok else None,
        None,
        ok,
        None if ok else _text(record.get("error_kind")),
        finite_number(record.get("price")) if ok else None,
        (currency_letters(currency) or None) if ok and type(currency) is int else None,
        finite_number(record.get("delivered_kwh")) if ok else None,
        finite_number(record.get("received_kwh")) if ok else None,
        PRICE,
    )


def generic_row(kind: str, cloud_id: str, record: dict[str, Any]) -> Row:
    """A line of a kind without a builder: when it was polled and how it went (point 1)."""
    ok = record.get("ok") is True
    poll_time = finite_number(record.get("poll_time"))
    return (cloud_id, poll_time, None, None, ok, None if ok else _text(record.get("error_kind")), *([None] * 4), kind)


ROW_BUILDERS: dict[str, Callable[[str, dict[str, Any]], Row]] = {DEMAND: demand_row, PRICE: price_row}


def row_of(kind: str, cloud_id: str, record: dict[str, Any]) -> Row:
    """The row of one poll line of the given kind of hour file."""
    builder = ROW_BUILDERS.get(kind)
    return builder(cloud_id, record) if builder is not None else generic_row(kind, cloud_id, record)
