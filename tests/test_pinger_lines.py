"""Line format: pure functions, checked against the file format the study's analysis code reads."""

from __future__ import annotations

import json
import math

from loggerapp.pinger.lines import encode_line, failure_line, is_repeat, success_fields, success_line

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
