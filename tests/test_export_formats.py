"""The export's pure parts: the span, the columns and rows, the three formats, stored names, the ordered pool."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from jsonschema import Draft202012Validator

from loggerapp.export.columns import COLUMN_NAMES, demand_row, row_of
from loggerapp.export.formats import CsvWriter, JsonLinesWriter, ParquetWriter, rfc3339, writer_for
from loggerapp.export.ranges import BadRange, Span, day_span, parse_moment, parse_span
from loggerapp.hourfiles.layout import FILE_KINDS, parse_stored_name
from loggerapp.hourfiles.price_lines import price_line
from loggerapp.hourfiles.span import ordered_map
from tests.fixtures.api import FORMATS as FORMAT_CHECKER
from tests.fixtures.api import REGISTRY, SPEC_URI
from tests.fixtures.prices import price_poll

OK = {
    "cloud_id": "002506",
    "poll_time": 1767571206.000512,
    "ok": True,
    "meter_time": 1767571203,
    "demand_kw": -1.234,
    "Demand": 16775982,
    "repeat": False,
}
FAILED = {"cloud_id": "002506", "poll_time": 1767571212.0, "ok": False, "error_kind": "unreachable", "error": "x"}


def whole(writer, rows) -> bytes:
    return writer.header() + writer.rows(rows) + writer.finish()


# --- the span ------------------------------------------------------------------------------------------------
def test_a_date_is_its_midnight_a_bare_time_is_utc_and_offsets_are_converted():
    assert parse_moment("2026-01-05", "start") == datetime(2026, 1, 5, tzinfo=UTC)
    assert parse_moment("2026-01-05T06:30", "start") == datetime(2026, 1, 5, 6, 30, tzinfo=UTC)
    assert parse_moment("2026-01-05T06:30:00Z", "start") == datetime(2026, 1, 5, 6, 30, tzinfo=UTC)
    assert parse_moment("2026-01-05T08:30:00+02:00", "start") == datetime(2026, 1, 5, 6, 30, tzinfo=UTC)
    span = parse_span("2026-01-01", "2026-02-01", max_days=31)
    assert (span.start, span.end, span.days, span.label()) == (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 2, 1, tzinfo=UTC),
        31.0,
        "2026-01-01_2026-02-01",
    )
    assert Span(datetime(2026, 1, 1, 6, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)).label() == (
        "2026-01-01T060000_2026-01-02"
    )
    assert day_span(date(2026, 1, 5), date(2026, 1, 5), max_days=1) == Span(
        datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 6, tzinfo=UTC)
    )


@pytest.mark.parametrize(
    ("start", "end", "says"),
    [
        ("", "2026-01-02", "start is missing"),
        ("2026-01-05", "", "end is missing"),
        ("yesterday", "2026-01-02", "'yesterday' is not a date"),
        ("2026-02-30", "2026-03-02", "is not a date"),
        ("2026-01-05", "2026-01-05", "must be after start"),
        ("2026-01-06", "2026-01-05", "must be after start"),
        ("2026-01-01", "2026-02-01T00:00:01", "at most 31 days"),
        ("1969-12-31", "1970-01-02", "outside the years"),
        ("x" * 5000, "2026-01-02", "..."),
    ],
)
def test_bad_spans_say_what_is_wrong_in_one_short_sentence(start, end, says):
    with pytest.raises(BadRange) as refused:
        parse_span(start, end, max_days=31)
    message = str(refused.value)
    assert says in message and "\n" not in message and len(message) < 200


# --- rows ----------------------------------------------------------------------------------------------------
def test_a_reading_and_a_failed_poll_become_rows_with_price_and_summation_empty():
    assert demand_row("002506", OK) == (
        "002506",
        1767571206.000512,
        1767571203.0,
        -1.234,
        True,
        None,
        None,
        None,
        None,
        None,
        "demand",
    )
    assert demand_row("002506", FAILED) == (
        "002506",
        1767571212.0,
        None,
        None,
        False,
        "unreachable",
        None,
        None,
        None,
        None,
        "demand",
    )


def test_values_of_the_wrong_type_are_empty_not_errors():
    odd = {"poll_time": 1767571206.5, "ok": True, "meter_time": 1e20, "demand_kw": "2.5", "error_kind": 3}
    assert demand_row("002506", odd)[1:6] == (1767571206.5, None, None, True, None)
    failed = {"poll_time": 1767571206.5, "ok": "false", "error_kind": ["x"], "demand_kw": 2.5}
    assert demand_row("002506", failed)[1:6] == (1767571206.5, None, None, False, None)


def test_a_kind_without_a_row_builder_still_gives_when_and_how_the_poll_went():
    row = row_of("weather", "002506", {"poll_time": 1767571206.5, "ok": False, "error_kind": "unreachable"})
    assert row == ("002506", 1767571206.5, None, None, False, "unreachable", None, None, None, None, "weather")


def test_a_price_line_fills_the_price_and_summation_columns():
    line = price_line(price_poll("002506", 1767571206.5, 18315.813, 1207.934), 1767571206.5)
    assert row_of("price", "002506", json.loads(line)) == (
        "002506",
        1767571206.5,
        1767571204.0,
        None,
        True,
        None,
        0.1176,
        "USD",
        18315.813,
        1207.934,
        "price",
    )
    not_set = row_of("price", "002506", json.loads(price_line(price_poll("002506", 10.0, 5.0, price=None), 10.0)))
    assert not_set[6:] == (None, None, 5.0, 0.0, "price")
    failed = row_of("price", "002506", {"poll_time": 10.0, "ok": False, "error_kind": "unreachable", "price": 1.0})
    assert failed[4:] == (False, "unreachable", None, None, None, None, "price")


# --- formats -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1767571206.000512, "2026-01-05T00:00:06.000512Z"),
        (1767571206.25, "2026-01-05T00:00:06.250000Z"),
        (1767571206.0, "2026-01-05T00:00:06Z"),
        (1767571199.9999996, "2026-01-05T00:00:00Z"),  # rounds to the microsecond, into the next second
        (0.0, "1970-01-01T00:00:00Z"),
    ],
)
def test_times_are_rfc3339_utc_to_the_microsecond(seconds, text):
    assert rfc3339(seconds) == text


def test_csv_has_a_header_quotes_only_where_needed_and_reads_back():
    tricky = {**FAILED, "error_kind": 'odd, "quoted"\nkind'}
    data = whole(CsvWriter(), [demand_row("002506", OK), demand_row("002506", tricky)])
    assert data.startswith(b"cloud_id,poll_time,meter_time,demand_kw,ok,error_kind,price,")
    assert data.split(b"\n")[1] == b"002506,2026-01-05T00:00:06.000512Z,2026-01-05T00:00:03Z,-1.234,true,,,,,,demand"
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert [row["error_kind"] for row in rows] == ["", 'odd, "quoted"\nkind']
    assert rows[1]["ok"] == "false" and rows[1]["demand_kw"] == ""


def test_json_lines_hold_every_column_in_order_and_match_the_api_schema():
    data = whole(JsonLinesWriter(), [demand_row("002506", OK), demand_row("002506", FAILED)])
    lines = [json.loads(line) for line in data.decode().splitlines()]
    assert [list(line) for line in lines] == [list(COLUMN_NAMES)] * 2
    assert lines[0]["demand_kw"] == -1.234 and lines[0]["poll_time"] == "2026-01-05T00:00:06.000512Z"
    assert lines[1]["meter_time"] is None and lines[1]["error_kind"] == "unreachable"
    validator = Draft202012Validator(
        {"$ref": SPEC_URI + "#/components/schemas/ReadingRow"}, registry=REGISTRY, format_checker=FORMAT_CHECKER
    )
    assert all(validator.is_valid(line) for line in lines)
    assert not validator.is_valid({**lines[0], "error": "the gateway's own text"})  # the check can fail


def test_parquet_is_typed_written_in_row_groups_as_it_goes_and_reads_back():
    rows = [demand_row("002506", {**OK, "poll_time": OK["poll_time"] + 6 * i}) for i in range(25)]
    rows.append(demand_row("002506", FAILED))
    writer = ParquetWriter(row_group_rows=10)
    chunks = [writer.header(), writer.rows(rows[:12]), writer.rows(rows[12:])]
    assert chunks[1] and chunks[2]  # bytes came out before the end: row groups are written as they fill
    data = b"".join(chunks) + writer.finish()
    parquet = pq.ParquetFile(io.BytesIO(data))
    assert parquet.metadata.num_row_groups == 3 and parquet.metadata.num_rows == 26
    table = parquet.read()
    assert table.schema.field("poll_time").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("demand_kw").type == pa.float64() and table.schema.field("ok").type == pa.bool_()
    assert table.schema.field("price").metadata[b"meaning"].startswith(b"the tariff's price")
    first, last = table.slice(0, 1).to_pylist()[0], table.slice(25, 1).to_pylist()[0]
    assert first["poll_time"] == datetime(2026, 1, 5, 0, 0, 6, 512, tzinfo=UTC)
    assert first["demand_kw"] == -1.234 and first["price"] is None and first["record"] == "demand"
    assert last["ok"] is False and last["meter_time"] is None and last["error_kind"] == "unreachable"


def test_an_empty_export_is_still_a_valid_file_in_every_format():
    assert whole(writer_for("csv"), []) == (",".join(COLUMN_NAMES) + "\n").encode()
    assert whole(writer_for("jsonl"), []) == b""
    table = pq.read_table(io.BytesIO(whole(writer_for("parquet"), [])))
    assert table.num_rows == 0 and table.column_names == list(COLUMN_NAMES)


# --- stored names --------------------------------------------------------------------------------------------
def test_stored_names_of_every_kind_parse_with_or_without_gz(monkeypatch):
    parsed = parse_stored_name("iseif-rainforest-002506-2026-01-05-04.jl.gz")
    assert (parsed.kind, parsed.cloud_id, parsed.hour, parsed.gzipped) == (
        "demand",
        "002506",
        datetime(2026, 1, 5, 4, tzinfo=UTC),
        True,
    )
    assert parse_stored_name("iseif-rainforest-002506-2026-01-05-04.jl").gzipped is False
    for name in [
        "iseif-rainforest-002506-2026-13-05-04.jl",  # no month 13
        "iseif-rainforest-00250G-2026-01-05-04.jl",
        "iseif-rainforest-002506-2026-01-05-04.jl.tmp",
        ".iseif-rainforest-002506-2026-01-05-04.jl.abc.tmp",
        "iseif-rainforest-weather-002506-2026-01-05-04.jl",  # not a kind
    ]:
        assert parse_stored_name(name) is None, name
    assert parse_stored_name("iseif-rainforest-price-002506-2026-01-05-04.jl").kind == "price"
    monkeypatch.setitem(FILE_KINDS, "weather", "iseif-rainforest-weather-")
    assert parse_stored_name("iseif-rainforest-weather-002506-2026-01-05-04.jl").kind == "weather"
    assert parse_stored_name("iseif-rainforest-002506-2026-01-05-04.jl").kind == "demand"


# --- the ordered pool ----------------------------------------------------------------------------------------
def test_ordered_map_keeps_order_bounds_work_ahead_and_cancels_when_dropped():
    running, most = 0, 0
    lock = threading.Lock()
    drawn = []

    def work(item: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.01 * (item % 3))  # finishing out of order
        with lock:
            running -= 1
        return item * 10

    def items():
        for item in range(40):
            drawn.append(item)
            yield item

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(ordered_map(work, items(), pool, ahead=6)) == [i * 10 for i in range(40)]
        assert most <= 4
        drawn.clear()
        results = ordered_map(work, items(), pool, ahead=6)
        assert next(results) == 0
        assert len(drawn) == 6  # only `ahead` items drawn so far
        results.close()
    assert len(drawn) == 6
