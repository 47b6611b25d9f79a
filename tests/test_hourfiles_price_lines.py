"""The price file's lines (hourfiles.price_lines): the format the README documents, read back, and energy."""

from __future__ import annotations

import json

import pytest

from loggerapp.hourfiles.lines import count_lines, parse_record
from loggerapp.hourfiles.price_lines import PriceRecord, energy_between, price_line, price_record
from tests.fixtures.prices import price_poll


def test_a_price_line_holds_price_currency_and_both_counters():
    line = price_line(price_poll("002506", 1764386406.5, 18315.813, 1207.934), 1764386406.5)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "cloud_id": "002506",
        "poll_time": 1764386406.5,
        "ok": True,
        "protocol": "cloud",
        "price": 0.1176,
        "currency": 840,
        "tier": 1,
        "rate_label": "Off Peak",
        "price_time": 1764386404,
        "delivered_kwh": 18315.813,
        "received_kwh": 1207.934,
        "meter_time": 1764386404,
        "latency_ms": 50.0,
    }
    assert count_lines(line) == (1, 1)  # counted as a success by the one counting rule


def test_a_price_not_set_is_a_success_line_with_nulls():
    record = json.loads(price_line(price_poll("002506", 100.0, 5.0, price=None), 100.0))
    assert record["ok"] is True
    assert record["price"] is record["currency"] is record["price_time"] is None
    assert record["delivered_kwh"] == 5.0


def test_records_read_back_and_failures_are_not_records():
    record = price_record(parse_record(price_line(price_poll("002506", 100.0, 5.0), 100.0)))
    assert record == PriceRecord(100.0, 0.1176, 840, 1, "Off Peak", 98, 5.0, 0.0)
    assert price_record({"cloud_id": "002506", "poll_time": 100.0, "ok": False, "error_kind": "unreachable"}) is None
    assert price_record({"poll_time": "soon", "ok": True}) is None


def record(t: float, delivered: float | None, received: float | None = None) -> PriceRecord:
    return PriceRecord(t, None, None, None, None, None, delivered, received)


def test_energy_is_the_rise_of_each_counter_in_time_order():
    energy = energy_between([record(120, 10.5, 2.0), record(0, 10.0, 1.5), record(60, 10.2, None)])
    assert energy is not None
    assert energy.delivered_kwh == pytest.approx(0.5) and energy.received_kwh == pytest.approx(0.5)
    assert (energy.first_t, energy.last_t) == (0, 120)


def test_a_counter_that_falls_counts_only_its_rises():
    """A meter replaced mid-period starts again near zero: the fall is not negative energy."""
    energy = energy_between([record(0, 500.0), record(60, 501.0), record(120, 3.0), record(180, 4.5)])
    assert energy is not None and energy.delivered_kwh == pytest.approx(2.5)


def test_energy_needs_two_records_and_a_counter_present_twice():
    assert energy_between([record(0, 1.0)]) is None
    energy = energy_between([record(0, None, 1.0), record(60, None, 2.0)])
    assert energy is not None and energy.delivered_kwh is None and energy.received_kwh == pytest.approx(1.0)


def test_a_half_missing_is_null_with_its_reason_and_still_a_success():
    from loggerapp.eagle.models import PriceAndSummation

    poll = price_poll("002506", 100.0, 5.0)
    record = json.loads(price_line(PriceAndSummation(None, poll.summation, 0.05, price_error="malformed XML"), 100.0))
    assert record["ok"] is True and record["price"] is None and record["price_error"] == "malformed XML"
    assert record["delivered_kwh"] == 5.0 and "summation_error" not in record
    record = json.loads(price_line(PriceAndSummation(poll.price, None, 0.05, summation_error="no counter"), 100.0))
    assert record["price"] == 0.1176 and record["delivered_kwh"] is None and record["summation_error"] == "no counter"
    assert "price_error" not in json.loads(price_line(poll, 100.0))  # only when there is one
