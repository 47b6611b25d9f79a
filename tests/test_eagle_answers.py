"""Our parsers on whole answers as devices send them (tests/fixtures/eagle_answers/), one file per quirk of
docs/eagle-protocol.md: what each one must become, through the same functions the clients call."""

from __future__ import annotations

from pathlib import Path

import pytest

from loggerapp.eagle import BadResponse
from loggerapp.eagle.eagle200 import (
    choose_meter,
    parse_device_list,
    parse_device_query,
    price_and_summation_from_answer,
    reading_from_answer,
    summation_from_answer,
)
from loggerapp.eagle.legacy import parse_instantaneous_demand, parse_price, parse_summation

ANSWERS = Path(__file__).parent / "fixtures" / "eagle_answers"


def answer(name: str) -> bytes:
    return (ANSWERS / name).read_bytes()


@pytest.mark.parametrize(
    ("name", "protocol", "kw", "legacy_demand"),
    [
        ("eagle100-demand.xml", "eagle100", 0.944, 0x3B0),
        ("eagle100-demand-export-wide.json", "eagle100", -1.0, 0xFFFFFC18),  # int32 export, read signed
    ],
)
def test_legacy_demand_answers(name, protocol, kw, legacy_demand):
    reading = parse_instantaneous_demand(200, answer(name), "001f2c", protocol)
    assert reading.demand_kw == pytest.approx(kw)
    assert reading.legacy["Demand"] == legacy_demand  # the old logger's unsigned view stays as it was
    assert reading.meter_timestamp in (0x1C91EC39 + 946684800, 0x1C9347B8 + 946684800)


@pytest.mark.parametrize("name", ["eagle100-demand-no-reading.xml", "cloud-demand-no-reading-wide.json"])
def test_the_zigbee_no_value_demand_is_no_reading(name):
    """0x800000 / 0xff800000: the meter had no value. Before, this was a reading of -8,388.608 kW."""
    with pytest.raises(BadResponse) as raised:
        parse_instantaneous_demand(200, answer(name), "001f2c", "cloud")
    assert raised.value.message.startswith("no reading: Demand 0x")
    assert raised.value.kind == "bad_response"
    assert "InstantaneousDemand" in raised.value.raw  # the answer is kept for diagnosis


def test_a_stale_meter_listed_first_is_skipped():
    devices = parse_device_list(200, answer("eagle200-device-list-stale-meter-first.xml"))
    assert [device["ConnectionStatus"] for device in devices] == ["Not Joined", "Connected"]
    assert choose_meter(devices) == "0x0007810000d4e5f6"
    assert choose_meter(devices, preferred="0x0007810000D4E5F6") == "0x0007810000d4e5f6"


@pytest.mark.parametrize(
    ("name", "kw"),
    [
        ("eagle200-device-query.xml", 2.79),
        ("eagle3-device-query-unit-in-value.xml", 21.499),  # `21.499 kW`, no <Units>
        ("eagle200-device-query-unsigned-wrap.xml", -3.712),  # 4294963.584 kW is an export of 3.712 kW
        ("eagle200-device-query-bare-ampersand.xml", -3.712),  # `Demand & Power` does not lose the value
    ],
)
def test_eagle200_device_query_answers(name, kw):
    reading = reading_from_answer(parse_device_query(200, answer(name)), "0a1b2c")
    assert reading.demand_kw == pytest.approx(kw)
    assert reading.meter_timestamp == 0x611D885A  # LastContact in Unix seconds (2021-08-18)
    assert reading.raw["zigbee:CurrentSummationDelivered"] == "18342.117000"


@pytest.mark.parametrize(
    ("name", "parse", "message"),
    [
        ("eagle3-device-query-no-components.xml", parse_device_query, "no <Components>"),
        ("eagle3-device-query-no-device.xml", parse_device_query, "no <Device>"),
        ("eagle3-device-list-no-device.xml", lambda s, b: choose_meter(parse_device_list(s, b), raw=b), "no <Device>"),
    ],
)
def test_eagle3_answers_missing_a_part_are_bad_responses(name, parse, message):
    with pytest.raises(BadResponse) as raised:
        parse(200, answer(name))
    assert message in raised.value.message


# --- price and summation -----------------------------------------------------------------------------------


def test_a_legacy_price():
    price = parse_price(200, answer("cloud-price.xml"), "001f2c", "cloud")
    assert price.price == pytest.approx(0.1176)
    assert (price.currency, price.tier, price.rate_label) == (840, 1, "Set by User")
    assert price.meter_timestamp == 0x1C91EC39 + 946684800


def test_a_price_not_set_is_no_time_and_no_price_not_an_error():
    """TimeStamp 0xffffffff and Price `invalid`: read as numbers they were a time in 2136 and a failed poll."""
    price = parse_price(200, answer("cloud-price-not-set.xml"), "001f2c", "cloud")
    assert price.price is None
    assert price.meter_time is None and price.meter_timestamp is None
    assert price.currency is None and price.tier is None
    assert price.raw["TimeStamp"] == "0xffffffff"  # what the device sent stays visible


def test_the_older_summation_root_is_the_same_answer():
    current = parse_summation(200, answer("eagle100-summation.xml"), "001f2c", "eagle100")
    older = parse_summation(200, answer("eagle100-summation-old-root.xml"), "001f2c", "eagle100")
    assert current.delivered_kwh == pytest.approx(18315.813)
    assert current.received_kwh == pytest.approx(1207.934)
    assert (older.delivered_kwh, older.received_kwh, older.meter_timestamp) == (
        current.delivered_kwh,
        current.received_kwh,
        current.meter_timestamp,
    )


def test_another_root_is_still_a_bad_response():
    with pytest.raises(BadResponse, match="expected <CurrentSummation>"):
        parse_summation(200, answer("cloud-price.xml"), "001f2c", "cloud")


def test_an_eagle200_summation_without_delivered_is_read_not_failed():
    """Asked by name, some EAGLE-200 firmware leaves CurrentSummationDelivered out: received is still there."""
    summation = summation_from_answer(
        parse_device_query(200, answer("eagle200-device-query-by-name-no-delivered.xml")), "001f2c"
    )
    assert summation.delivered_kwh is None
    assert summation.received_kwh == pytest.approx(1207.95)


def test_all_variables_give_price_and_summation_in_one_answer():
    both = price_and_summation_from_answer(parse_device_query(200, answer("eagle200-device-query-all.xml")), "001f2c")
    assert both.price.price == pytest.approx(0.1176)
    assert (both.price.currency, both.price.tier, both.price.rate_label) == (840, 1, "Off Peak")
    assert both.summation.delivered_kwh == pytest.approx(18342.117)
    assert both.summation.received_kwh == pytest.approx(1207.95)
    assert both.price.meter_timestamp == both.summation.meter_timestamp == 0x611D885A


def test_an_eagle3_without_a_tariff_has_no_price_not_an_error():
    answer_ = parse_device_query(200, answer("eagle3-device-query-all-price-invalid.xml"))
    both = price_and_summation_from_answer(answer_, "001f2c")
    assert both.price.price is None and both.price.rate_label is None
    assert both.price.currency == 840  # the currency is still reported
    assert both.summation.delivered_kwh == pytest.approx(18342.117)


def _legacy_price_poll(price_answer: tuple[int, bytes], summation_answer: tuple[int, bytes]):
    """Drive the legacy price-and-energy exchange with two answers, as a transport would."""
    from loggerapp.eagle import EagleTarget
    from loggerapp.eagle.legacy import LegacyDialect

    target = EagleTarget("001f2c", "eagle100", password="code", address="192.168.1.20")
    exchange = LegacyDialect(target, "https://relay.example/cgi-bin/post_manager").price_and_summation()
    assert b"get_price" in next(exchange).body
    assert b"get_current_summation" in exchange.send(price_answer).body
    with pytest.raises(StopIteration) as done:
        exchange.send(summation_answer)
    return done.value.value


def test_a_garbled_price_does_not_lose_the_counters():
    both = _legacy_price_poll((200, b"<PriceCluster><Price>cheap</Price>"), (200, answer("eagle100-summation.xml")))
    assert both.price is None and both.price_error.startswith("malformed XML")
    assert both.summation is not None and both.summation.delivered_kwh == pytest.approx(18315.813)
    assert both.summation_error == ""


def test_a_price_poll_with_nothing_usable_fails_with_the_prices_reason():
    with pytest.raises(BadResponse, match="Price is not hexadecimal"):
        _legacy_price_poll((200, answer("cloud-price.xml").replace(b"0x00000498", b"cheap")), (500, b"oops"))


def test_an_eagle200_price_that_is_not_a_number_keeps_the_counters():
    body = answer("eagle200-device-query-all.xml").replace(b"0.117600", b"n/a")
    both = price_and_summation_from_answer(parse_device_query(200, body), "001f2c")
    assert both.price is None and "zigbee:Price: not a number" in both.price_error
    assert both.summation is not None and both.summation.delivered_kwh == pytest.approx(18342.117)
