"""The price file's lines: one JSON line per price-and-energy poll (issue 14), beside the demand file.

Pure functions, like ``lines`` (whose failure line, encoder and parser they reuse), so the format is tested on
its own and the demand lines stay exactly as they are.

A success line:
``{"cloud_id":"002506","poll_time":1764386406.5,"ok":true,"protocol":"cloud","price":0.1176,"currency":840,
"tier":1,"rate_label":"Set by User","price_time":1426010041,"delivered_kwh":18315.813,"received_kwh":1207.934,
"meter_time":1426010041,"latency_ms":203.4}``

1. ``price`` is per kWh in ``currency`` (ISO 4217 numeric: 840 is USD); ``price``, ``currency``, ``tier``,
   ``rate_label`` and ``price_time`` are null when the device reports no tariff ("not set": `invalid` values, a
   TimeStamp of 0xffffffff). That is a success, not a failure: the poll worked and the meter has no price.
2. ``delivered_kwh`` / ``received_kwh`` are the meter's cumulative energy imported from and exported to the
   grid; either may be null (an EAGLE-200 that leaves one out). The energy of a period is the difference of two
   lines (``energy_between``).
3. ``price_time`` and ``meter_time`` are the meter's own times (Unix seconds) of the price and of the summation.
4. A failed poll writes the demand file's failure line (``lines.failure_line``): the same keys, the same kinds.
5. When one half of the poll's answer was unusable and the other was not (a garbled price beside good counters),
   the line is still a success: that half's keys are null and ``price_error`` or ``summation_error`` says why
   (keys present only then). Both unusable is a failed poll (point 4).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from loggerapp.hourfiles.lines import _finite, encode_line, finite_number

PRICE_KEYS = ("price", "currency", "tier", "rate_label", "price_time", "delivered_kwh", "received_kwh")


def price_fields(both: Any, poll_time: float) -> dict[str, Any]:
    """The fields of a success line from a ``loggerapp.eagle.PriceAndSummation`` (point 5 for a missing half)."""
    price, summation = both.price, both.summation
    half = price if price is not None else summation
    fields = {
        "cloud_id": half.cloud_id,
        "poll_time": round(poll_time, 6),
        "ok": True,
        "protocol": half.protocol,
        "price": _finite(price.price, 6) if price is not None else None,
        "currency": price.currency if price is not None else None,
        "tier": price.tier if price is not None else None,
        "rate_label": price.rate_label if price is not None else None,
        "price_time": price.meter_timestamp if price is not None else None,
        "delivered_kwh": _finite(summation.delivered_kwh, 6) if summation is not None else None,
        "received_kwh": _finite(summation.received_kwh, 6) if summation is not None else None,
        "meter_time": summation.meter_timestamp if summation is not None else None,
        "latency_ms": _finite(both.latency_s * 1000.0, 1),
    }
    if both.price_error:
        fields["price_error"] = both.price_error
    if both.summation_error:
        fields["summation_error"] = both.summation_error
    return fields


def price_line(both: Any, poll_time: float) -> bytes:
    """One line, ready for a single write."""
    return encode_line(price_fields(both, poll_time))


@dataclass(frozen=True)
class PriceRecord:
    """What the admin and the export need of a price line (a success)."""

    t: float  # poll time, Unix seconds
    price: float | None
    currency: int | None
    tier: int | None
    rate_label: str | None
    price_time: int | None
    delivered_kwh: float | None
    received_kwh: float | None


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def price_record(record: dict[str, Any]) -> PriceRecord | None:
    """The price record of a parsed line; None for a failure line or one without a usable poll time."""
    t = finite_number(record.get("poll_time"))
    if t is None or record.get("ok") is not True:
        return None
    label = record.get("rate_label")
    return PriceRecord(
        t=t,
        price=finite_number(record.get("price")),
        currency=_int(record.get("currency")),
        tier=_int(record.get("tier")),
        rate_label=label if isinstance(label, str) else None,
        price_time=_int(record.get("price_time")),
        delivered_kwh=finite_number(record.get("delivered_kwh")),
        received_kwh=finite_number(record.get("received_kwh")),
    )


@dataclass(frozen=True)
class Energy:
    """Energy over a period from the meter's cumulative counters (kWh); None where a counter is missing."""

    delivered_kwh: float | None
    received_kwh: float | None
    first_t: float
    last_t: float


def _difference(records: list[PriceRecord], name: str) -> float | None:
    values: list[float] = [value for r in records if (value := getattr(r, name)) is not None]
    if len(values) < 2:
        return None
    # The counters only grow; a fall means a meter replaced or reset, so the sum of the rises is what was used.
    return round(sum(max(0.0, after - before) for before, after in pairwise(values)), 6)


def energy_between(records: Iterable[PriceRecord]) -> Energy | None:
    """Energy from the first to the last record (in time order): the rises of the delivered and received
    counters. None with fewer than two records."""
    ordered = sorted(records, key=lambda record: record.t)
    if len(ordered) < 2:
        return None
    return Energy(
        delivered_kwh=_difference(ordered, "delivered_kwh"),
        received_kwh=_difference(ordered, "received_kwh"),
        first_t=ordered[0].t,
        last_t=ordered[-1].t,
    )
