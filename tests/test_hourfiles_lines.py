"""The hour file's line format (loggerapp.hourfiles.lines): building, parsing and counting lines, and the lines
expected per hour. Pure functions, checked against the format the study's analysis code reads."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from loggerapp.hourfiles.lines import (
    LineCount,
    Poll,
    count_lines,
    coverage,
    encode_line,
    expected_lines,
    failure_line,
    finite_number,
    is_repeat,
    lines_per_hour,
    parse_poll,
    parse_polls,
    parse_record,
    poll_from_record,
    success_fields,
    success_line,
)
from loggerapp.models import Status

LEGACY = {
    "DeviceMacId": 0xD8D5B9000000A1B2,
    "MeterMacId": 0x00078100001234AB,
    "TimeStamp": 0x1C91EC39,
    "Demand": 0xFFFB2E,
    "Multiplier": 1,
    "Divisor": 1000,
    "DigitsRight": 3,
    "DigitsLeft": 6,
    "SuppressLeadingZero": "Y",
}


class FakeReading:
    """Stands in for loggerapp.eagle.Reading (a plain value object) in these pure tests."""

    cloud_id = "002506"
    protocol = "cloud"
    demand_kw = -1.234
    meter_timestamp = 0x1C91EC39 + 946684800
    latency_s = 0.2034
    legacy = LEGACY


def test_success_line_keeps_the_legacy_fields_and_adds_ours():
    line = success_line(FakeReading(), 1_700_000_000.123456, repeat=False)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    fields = json.loads(line)
    for key, value in LEGACY.items():
        assert fields[key] == value
    assert fields["Demand"] == 16775982  # unsigned, as the old logger wrote it
    assert fields["demand_kw"] == -1.234  # signed and converted beside it
    assert fields["cloud_id"] == "002506"
    assert fields["poll_time"] == 1_700_000_000.123456
    assert fields["meter_time"] == 1426010041  # 2015-03-10T17:54:01Z
    assert fields["latency_ms"] == 203.4
    assert fields["repeat"] is False
    assert fields["protocol"] == "cloud"
    assert fields["ok"] is True
    assert b" " not in line  # compact separators


def test_our_keys_win_and_non_finite_numbers_stay_strict_json():
    fields = success_fields(
        cloud_id="00abcd",
        protocol="eagle200",
        poll_time=1.0,
        demand_kw=math.nan,
        meter_timestamp=None,
        latency_s=0.01,
        repeat=False,
        legacy={"cloud_id": "spoofed", "ok": False},
    )
    line = encode_line(fields)
    parsed = json.loads(line)
    assert parsed["cloud_id"] == "00abcd"
    assert parsed["ok"] is True
    assert parsed["demand_kw"] is None
    assert parsed["meter_time"] is None
    assert b"NaN" not in line


def test_failure_line():
    line = failure_line("002506", 1_700_000_000.5, "unreachable", "connection refused", 0.0021)
    assert json.loads(line) == {
        "cloud_id": "002506",
        "poll_time": 1_700_000_000.5,
        "ok": False,
        "error_kind": "unreachable",
        "error": "connection refused",
        "latency_ms": 2.1,
    }


def test_non_ascii_error_text_is_escaped_into_one_line():
    line = failure_line("002506", 1.0, "bad_response", "bad\nbody ünïcode", 0.0)
    assert line.count(b"\n") == 1
    assert json.loads(line)["error"] == "bad\nbody ünïcode"


def test_repeat_means_same_meter_timestamp():
    assert is_repeat(100, 100)
    assert not is_repeat(100, 110)
    assert not is_repeat(None, 100)
    assert not is_repeat(None, None)


def test_a_status_value_is_written_as_its_plain_text():
    line = failure_line("002506", 1.0, Status.BAD_CREDENTIALS, "refused", 0.0)
    assert b'"error_kind":"bad_credentials"' in line


# --- parsing ---------------------------------------------------------------------------------------------------
COMPACT = b'{"cloud_id":"002506","poll_time":12.5,"demand_kw":-1.25,"ok":true}'
SPACED = b'{"cloud_id": "002506", "poll_time": 12.5, "demand_kw": -1.25, "ok": true}'


def test_both_json_spacings_parse_to_the_same_poll():
    assert parse_record(COMPACT) == parse_record(SPACED) == json.loads(COMPACT)
    assert parse_poll(COMPACT) == parse_poll(SPACED) == Poll(12.5, True, -1.25)


@pytest.mark.parametrize(
    "line",
    [
        b'{"cloud_id":"002506","poll_ti',  # cut short while it was written
        b"",
        b"   ",
        b"[1, 2]",  # JSON, but not an object
        b"not json at all",
        b"[" * 100_000,  # deep nesting must not crash a reader
    ],
)
def test_what_is_not_a_json_object_is_not_a_record(line):
    assert parse_record(line) is None
    assert parse_poll(line) is None


@pytest.mark.parametrize(
    ("record", "poll"),
    [
        ({"poll_time": 1.0, "ok": True, "demand_kw": 2.0}, Poll(1.0, True, 2.0)),
        ({"poll_time": 1, "ok": False, "demand_kw": 2.0}, Poll(1.0, False, None)),  # a failure has no demand
        ({"poll_time": 1.0, "ok": "true", "demand_kw": 2.0}, Poll(1.0, False, None)),  # only JSON true is ok
        ({"poll_time": 1.0, "ok": True, "demand_kw": None}, Poll(1.0, True, None)),
        ({"poll_time": 1.0, "ok": True, "demand_kw": True}, Poll(1.0, True, None)),  # a boolean is not a number
        ({"poll_time": "1.0", "ok": True}, None),  # no usable poll time: not a poll
        ({"poll_time": 10**400, "ok": True}, None),  # too large for a float
        ({"ok": True}, None),
    ],
)
def test_a_poll_needs_a_finite_poll_time(record, poll):
    assert parse_poll(json.dumps(record)) == poll


def test_json_extremes_are_not_numbers():
    assert finite_number(float("nan")) is None
    assert finite_number(float("inf")) is None
    assert finite_number(10**400) is None
    assert finite_number(False) is None
    assert finite_number("1") is None
    assert finite_number(3) == 3.0


@pytest.mark.parametrize(
    "line",
    [
        b'{"poll_time": 1.5, "demand_kw": NaN, "ok": true}',  # json reads NaN; orjson refuses it
        b'{"poll_time": 1.5, "error": "\\ud800 alone"}',  # a lone surrogate
        b'{"poll_time": 1e400, "ok": true}',
        b'{"poll_time": 1.5, "ok": true, "ok": false}',  # a repeated key: the last one wins
        '{"poll_time": 1.5, "error": "caf\u00e9"}'.encode(),
        b'{"poll_time": 1767571206.000512, "meter_time": -0.0, "DeviceMacId": 18446744073709551615}',
    ],
)
def test_the_fast_parser_reads_every_line_as_json_would(line):
    """parse_record tries orjson first and falls back to json: the record is json's, whichever parsed it."""
    assert repr(parse_record(line)) == repr(json.loads(line))  # repr: NaN == NaN is false
    assert repr(parse_record(line.decode())) == repr(json.loads(line))


def test_an_integer_past_64_bits_is_the_one_difference_and_readers_never_see_it():
    line = b'{"poll_time": 1767571206000000000000000, "meter_time": 10000000000000000000000, "ok": true}'
    record = parse_record(line)
    assert record["poll_time"] == 1.767571206e24 and isinstance(record["poll_time"], float)  # json: an int
    exact = json.loads(line)
    assert parse_poll(line) == poll_from_record(exact)  # through finite_number both are the same float
    assert finite_number(record["meter_time"]) == finite_number(exact["meter_time"])


def test_parse_polls_skips_what_is_not_a_poll_and_keeps_file_order():
    content = COMPACT + b"\n\n" + SPACED.replace(b"12.5", b"6.0") + b'\n{"cloud_id":"002506","poll_ti'
    assert [poll.t for poll in parse_polls(content)] == [12.5, 6.0]


# --- counting --------------------------------------------------------------------------------------------------
def test_lines_and_readings_are_counted_in_both_json_spacings():
    content = COMPACT + b"\n" + SPACED + b"\n" + b'{"cloud_id": "002506", "ok": false}\n'
    assert count_lines(content) == LineCount(lines=3, readings=2)
    assert count_lines(content.replace(b'"ok":true', b'"ok":  true')) == (3, 2)  # any white space


def test_an_unterminated_last_line_counts_as_a_line_and_as_a_reading_when_it_holds_one():
    assert count_lines(COMPACT + b"\n" + b'{"cloud_id":"002506","poll_ti') == (2, 1)
    assert count_lines(COMPACT) == (1, 1)  # a file whose only line has no newline yet
    assert count_lines(b"") == (0, 0)
    assert count_lines(b"\n") == (1, 0)


def test_a_reading_is_the_key_ok_with_the_value_true_and_nothing_else():
    decoys = [
        b'{"ok":false}',
        b'{"ok":trueish}',  # not JSON's true
        b'{"look":true}',  # another key ending in ok
        b'{"error":"answer was \\"ok\\":true"}',  # the text "ok":true inside a string, quotes escaped
    ]
    for decoy in decoys:
        assert count_lines(decoy + b"\n").readings == 0, decoy
    assert count_lines(b'{"ok":true}\n{"ok" : true}\n').readings == 2  # JSON allows space before ':' too


# --- lines expected per hour -----------------------------------------------------------------------------------
def test_lines_per_hour_follows_the_interval_with_the_studys_six_seconds_as_the_fallback(settings):
    assert lines_per_hour(6.0) == 600
    assert lines_per_hour(10.0) == 360
    assert lines_per_hour(0.0) == lines_per_hour(float("nan")) == lines_per_hour(-1) == 600
    settings.PINGER_INTERVAL = 12.0
    assert lines_per_hour() == 300


def test_expected_lines_of_the_current_hour_grow_with_its_elapsed_share():
    hour = datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert expected_lines(hour, hour + timedelta(hours=2), 6.0) == 600
    assert expected_lines(hour, hour + timedelta(minutes=30), 6.0) == 300
    assert expected_lines(hour, hour, 6.0) == 1  # never 0: a fraction is always defined
    assert coverage(540, 600) == pytest.approx(0.9)
    assert coverage(700, 600) == 1.0  # two pingers on one household
    assert coverage(5, 0) == 0.0


# --- Event lines: gaps explained by the pinger itself -----------------------------------------------------------


def test_skipped_and_restart_lines_are_failure_shaped_and_never_count_as_readings():
    from loggerapp.hourfiles.lines import restart_line, skipped_line

    skipped = skipped_line("002506", 1764386412.0)
    restart = restart_line("002506", 1764386500.25, 1764386406.000512)
    assert json.loads(skipped) == {
        "cloud_id": "002506",
        "poll_time": 1764386412.0,
        "ok": False,
        "error_kind": "skipped",
        "error": "previous poll still in flight",
        "latency_ms": None,
        "event": "skipped",
    }
    record = json.loads(restart)
    assert record["ok"] is False and record["error_kind"] == record["event"] == "restart"
    assert record["last_line_time"] == 1764386406.000512 and record["poll_time"] == 1764386500.25
    assert json.loads(restart_line("002506", 1.0, None))["last_line_time"] is None
    assert count_lines(skipped + restart) == (2, 0)
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in (skipped, restart))
    polls = parse_polls(skipped + restart)
    assert [poll.ok for poll in polls] == [False, False]
