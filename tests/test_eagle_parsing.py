"""The EAGLE protocols, parsed without any I/O: a specification of how answers are read and classified.

Every row of the reference's failure table and its numeric edge cases (docs/eagle-protocol.md) appears here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from loggerapp.eagle import BadCredentials, BadResponse, EagleError, EagleTarget, MeterNotJoined, Unreachable
from loggerapp.eagle.documents import classify_error_text, escape_stray_ampersands
from loggerapp.eagle.eagle200 import (
    Eagle200Dialect,
    choose_meter,
    parse_device_list,
    parse_device_query,
    parse_value,
    reading_from_answer,
    summation_from_answer,
    unwrap_demand,
)
from loggerapp.eagle.errors import RAW_LIMIT, truncate_raw
from loggerapp.eagle.hexfields import parse_hex, parse_signed_demand, scale, unix_to_datetime, zigbee_to_unix
from loggerapp.eagle.legacy import LegacyDialect, parse_instantaneous_demand, parse_price, parse_summation
from loggerapp.eagle.wire import check_status, local_base_url

DEMAND_FIELDS = {
    "DeviceMacId": "0xd8d5b9000000a1b2",
    "MeterMacId": "0x00078100001234ab",
    "TimeStamp": "0x1c91ec39",
    "Demand": "0x0004d2",
    "Multiplier": "0x00000001",
    "Divisor": "0x000003e8",
    "DigitsRight": "0x03",
    "DigitsLeft": "0x06",
    "SuppressLeadingZero": "Y",
}


def xml_doc(root: str, fields: dict[str, str]) -> bytes:
    inner = "".join(f"  <{name}>{value}</{name}>\n" for name, value in fields.items())
    return f"<{root}>\n{inner}</{root}>\n".encode()


def demand_xml(**changes: str | None) -> bytes:
    fields = {**DEMAND_FIELDS, **changes}
    return xml_doc("InstantaneousDemand", {k: v for k, v in fields.items() if v is not None})


def demand(body: bytes, status: int = 200):
    return parse_instantaneous_demand(status, body, "0a1b2c", "cloud")


# --- hex fields --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0x000003e8", 1000),
        ("0x3e8", 1000),
        ("0X3E8", 1000),
        ("3e8", 1000),  # some firmware drops the prefix
        (" 0x01 ", 1),
        ("0xd8d5b9000000a1b2", 0xD8D5B9000000A1B2),
    ],
)
def test_hex_fields_are_unsigned_integers(text, value):
    assert parse_hex(text) == value


@pytest.mark.parametrize("text", ["", "0x", "0xzz", "invalid", "-0x10", "+0x10", "0x1_000", "12.5", "0x 12"])
def test_non_hex_text_is_a_bad_response(text):
    with pytest.raises(BadResponse):
        parse_hex(text, "Demand")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0x0004d2", 1234),
        ("0xfffb2e", -1234),  # int24 two's complement: exported solar power
        ("0x7fffff", 8_388_607),  # largest positive int24
        ("0x800000", -8_388_608),  # the boundary: from here on six digits are negative
        ("0xffffff", -1),
        ("0x000000", 0),
        ("0x04d2", 1234),  # shorter fields are int24 too
        ("0xfffffc18", -1000),  # eight digits: signed 32-bit
        ("0x00fffb2e", 16_775_982),  # eight digits with a positive sign bit stay positive
        ("0x80000000", -2_147_483_648),
        ("0x7fffffff", 2_147_483_647),
        ("0xfffffffffffffc18", -1000),  # sixteen digits: signed 64-bit
    ],
)
def test_demand_is_signed_by_the_width_of_its_field(text, value):
    assert parse_signed_demand(text) == value


def test_a_demand_wider_than_64_bits_is_a_bad_response():
    with pytest.raises(BadResponse):
        parse_signed_demand("0x" + "f" * 17)


@pytest.mark.parametrize(
    ("value", "multiplier", "divisor", "kw"),
    [
        (1234, 1, 1000, 1.234),
        (-1234, 1, 1000, -1.234),
        (1234, 0, 1000, 1.234),  # a zero multiplier counts as 1
        (1234, 1, 0, 1234.0),  # a zero divisor counts as 1
        (1234, 0, 0, 1234.0),
        (5, 2, 10, 1.0),
    ],
)
def test_kw_is_demand_times_multiplier_over_divisor(value, multiplier, divisor, kw):
    assert scale(value, multiplier, divisor) == pytest.approx(kw)


def test_the_zigbee_epoch_starts_in_2000():
    assert zigbee_to_unix(0) == 946684800
    assert unix_to_datetime(zigbee_to_unix(0x1C91EC39)) == datetime(2015, 3, 10, 17, 54, 1, tzinfo=UTC)


# --- legacy answers: healthy ------------------------------------------------------------------------------


def test_the_reference_answer_reads_1_234_kw_at_the_meter_time():
    reading = demand(demand_xml())
    assert reading.demand_kw == pytest.approx(1.234)
    assert reading.meter_time == datetime(2015, 3, 10, 17, 54, 1, tzinfo=UTC)
    assert reading.meter_timestamp == 1426010041
    assert reading.cloud_id == "0a1b2c"
    assert reading.protocol == "cloud"
    assert reading.raw == DEMAND_FIELDS  # the fields as the device sent them


def test_legacy_fields_are_the_old_loggers_integers_with_demand_unsigned():
    reading = demand(demand_xml(Demand="0xfffb2e"))
    assert reading.demand_kw == pytest.approx(-1.234)
    assert reading.legacy == {
        "DeviceMacId": 0xD8D5B9000000A1B2,
        "MeterMacId": 0x00078100001234AB,
        "TimeStamp": 0x1C91EC39,  # ZigBee seconds, as the old logger kept them
        "Demand": 0xFFFB2E,  # 16,776,046 unsigned: what the old files hold during export
        "Multiplier": 1,
        "Divisor": 1000,
        "DigitsRight": 3,
        "DigitsLeft": 6,
        "SuppressLeadingZero": "Y",
    }


@pytest.mark.parametrize(
    ("changes", "kw"),
    [
        ({"Demand": "0xfffb2e"}, -1.234),
        ({"Demand": "0xfffffc18"}, -1.0),
        ({"Demand": "0x800001"}, -8388.607),  # the most negative real int24 reading (0x800000 is "no value")
        ({"Demand": "0x7fffff"}, 8388.607),
        ({"Multiplier": "0x00000000"}, 1.234),
        ({"Divisor": "0x00000000"}, 1234.0),
        ({"Multiplier": "0x00000002", "Divisor": "0x00000064"}, 24.68),
    ],
)
def test_legacy_demand_edge_cases(changes, kw):
    assert demand(demand_xml(**changes)).demand_kw == pytest.approx(kw)


def _json_demand(braces: bool) -> bytes:
    text = json.dumps({"InstantaneousDemand": DEMAND_FIELDS})
    return (text if braces else text[1:-1]).encode()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(demand_xml(), id="xml"),
        pytest.param(_json_demand(braces=True), id="json"),
        pytest.param(_json_demand(braces=False), id="json-without-outer-braces"),
        pytest.param(b"\xef\xbb\xbf" + demand_xml(), id="xml-with-bom"),
        pytest.param(b'<?xml version="1.0" encoding="UTF-8"?>\n' + demand_xml(), id="xml-with-declaration"),
    ],
)
def test_xml_and_json_answers_read_the_same(body):
    reading = demand(body)
    assert reading.demand_kw == pytest.approx(1.234)
    assert reading.meter_timestamp == 1426010041
    assert reading.raw["Demand"] == "0x0004d2"
    assert reading.legacy["Demand"] == 1234


def test_optional_display_fields_may_be_missing():
    reading = demand(demand_xml(DigitsRight=None, DigitsLeft=None, SuppressLeadingZero=None, DeviceMacId=None))
    assert reading.demand_kw == pytest.approx(1.234)
    assert "DigitsRight" not in reading.legacy


# --- legacy answers: the failure table --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("Invalid credentials: the user name or password is not correct", BadCredentials),
        ("Authentication failed", BadCredentials),
        ("Unauthorized", BadCredentials),
        ("Wrong password", BadCredentials),
        ("Unknown user foo@example.org", BadCredentials),
        ("Meter not joined: the gateway has no connection to the meter", MeterNotJoined),
        ("No meter found", MeterNotJoined),
        ("Gateway offline: the EAGLE has not contacted the cloud recently", Unreachable),
        # The Cloud-ID is one of the relay's three credentials: no retry fixes a record naming an unknown one.
        ("Unknown cloud id: no gateway is registered under this Cloud-ID", BadCredentials),
        ("Gateway not registered", BadCredentials),
        ("Command failed: the gateway is busy, try again later", Unreachable),
        ("Timeout waiting for response", Unreachable),
        ("Unknown command", BadResponse),
        ("Something odd happened", BadResponse),
        ("", BadResponse),
    ],
)
def test_error_roots_are_classified_by_their_wording(text, error):
    assert type(classify_error_text(text)) is error
    with pytest.raises(error) as raised:
        demand(f"<Error>{text}</Error>".encode())
    assert raised.value.raw is not None  # the answer is kept for diagnosis
    with pytest.raises(error):
        demand(json.dumps({"Error": text}).encode())


def test_an_error_root_with_child_elements_is_classified_by_all_its_text():
    with pytest.raises(BadCredentials):
        demand(b"<Error><Code>3</Code><Text>Invalid password</Text></Error>")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, BadCredentials),
        (403, BadCredentials),
        (503, Unreachable),  # a busy EAGLE-100
        (500, BadResponse),
        (502, BadResponse),
        (504, BadResponse),
        (404, BadResponse),
        (302, BadResponse),
    ],
)
def test_http_status_classes(status, error):
    with pytest.raises(error) as raised:
        demand(b"Timeout waiting for response", status=status)
    assert raised.value.raw == "Timeout waiting for response"


def test_2xx_passes_the_status_check():
    check_status(200, b"")
    check_status(204, b"")


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"<html><body>Bad Gateway</body></html>", "expected <InstantaneousDemand>"),
        (b"Internal Server Error", "neither XML nor JSON"),
        (b"\xff\xfe\x00garbage", "neither XML nor JSON"),
        (demand_xml()[:60], "malformed XML"),  # truncated in the middle
        (b'{"InstantaneousDemand": {"Demand": ', "neither XML nor JSON"),
        (b"[1, 2, 3]", "JSON object"),
        (b'{"Something": {}}', "JSON object"),
        (b"<PriceCluster><Price>0x01</Price></PriceCluster>", "expected <InstantaneousDemand>"),
    ],
)
def test_unreadable_answers_are_bad_responses(body, what):
    with pytest.raises(BadResponse) as raised:
        demand(body)
    assert what in raised.value.message


@pytest.mark.parametrize("field", ["Demand", "TimeStamp", "Multiplier", "Divisor"])
def test_a_missing_required_field_is_a_bad_response(field):
    with pytest.raises(BadResponse, match=f"lacks {field}"):
        demand(demand_xml(**{field: None}))


@pytest.mark.parametrize("field", ["Demand", "TimeStamp", "Multiplier", "Divisor", "MeterMacId", "DigitsRight"])
@pytest.mark.parametrize("value", ["0xzz12", "12.5", "-0x10", "invalid"])
def test_a_non_hex_field_is_a_bad_response_that_keeps_the_raw_answer(field, value):
    body = demand_xml(**{field: value})
    with pytest.raises(BadResponse) as raised:
        demand(body)
    assert field in raised.value.message
    assert raised.value.raw == body.decode()


def test_an_empty_required_field_is_a_bad_response():
    with pytest.raises(BadResponse):
        demand(demand_xml(Demand=""))


def test_raw_text_is_truncated_to_500_characters():
    body = b"<InstantaneousDemand>" + b"x" * 5000
    with pytest.raises(BadResponse) as raised:
        demand(body)
    assert len(raised.value.raw) == RAW_LIMIT == 500
    assert truncate_raw("y" * 1000) == "y" * 500
    assert truncate_raw(None) is None


def test_an_xml_entity_bomb_is_refused_without_expanding_it():
    bomb = (
        b'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n <!ENTITY lol "lol">\n'
        b' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n'
        b' <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">\n'
        b"]>\n<InstantaneousDemand><Demand>&lol3;</Demand></InstantaneousDemand>"
    )
    with pytest.raises(BadResponse, match="unsafe XML"):
        demand(bomb)


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_an_entity_bomb_in_utf16_without_a_bom_is_refused_too(encoding):
    """Guards the always-defusedxml rule: in UTF-16 the bytes `<!` never appear, yet expat reads the DTD."""
    bomb = (
        '<!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        "<InstantaneousDemand><Demand>&b;</Demand></InstantaneousDemand>"
    ).encode(encoding)
    assert b"<!" not in bomb
    with pytest.raises(BadResponse):
        demand(bomb)


def test_an_external_entity_is_refused():
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<InstantaneousDemand><Demand>&x;</Demand></InstantaneousDemand>"
    )
    with pytest.raises(BadResponse, match="unsafe XML"):
        demand(xxe)


# --- price and summation ----------------------------------------------------------------------------------

PRICE_FIELDS = {
    "DeviceMacId": "0xd8d5b9000000a1b2",
    "MeterMacId": "0x00078100001234ab",
    "TimeStamp": "0x1c91ec39",
    "Price": "0x00000498",
    "Currency": "0x0348",
    "TrailingDigits": "0x04",
    "Tier": "0x01",
    "RateLabel": "Set by User",
}


def test_price_is_price_over_ten_to_the_trailing_digits():
    price = parse_price(200, xml_doc("PriceCluster", PRICE_FIELDS), "0a1b2c", "eagle100")
    assert price.price == pytest.approx(0.1176)
    assert price.currency == 840  # USD
    assert price.tier == 1
    assert price.rate_label == "Set by User"
    assert price.meter_time == datetime(2015, 3, 10, 17, 54, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "changes",
    [
        {"Price": "invalid", "TrailingDigits": "invalid", "Tier": "invalid"},
        {"Currency": None},
        {"Price": None},
    ],
    ids=["price-invalid", "currency-missing", "price-missing"],
)
def test_invalid_price_or_missing_currency_is_no_price_not_a_failure(changes):
    fields = {k: v for k, v in {**PRICE_FIELDS, **changes}.items() if v is not None}
    price = parse_price(200, xml_doc("PriceCluster", fields), "0a1b2c", "cloud")
    assert price.price is None


def test_a_non_hex_price_other_than_invalid_is_a_bad_response():
    with pytest.raises(BadResponse):
        parse_price(200, xml_doc("PriceCluster", {**PRICE_FIELDS, "Price": "cheap"}), "0a1b2c", "cloud")


def test_summation_reads_kwh_delivered_and_received():
    fields = {
        "TimeStamp": "0x1c91ec39",
        "SummationDelivered": "0x00000000004c4b40",
        "SummationReceived": "0x00000000000f4240",
        "Multiplier": "0x00000001",
        "Divisor": "0x000003e8",
    }
    summation = parse_summation(200, xml_doc("CurrentSummation", fields), "0a1b2c", "cloud")
    assert summation.delivered_kwh == pytest.approx(5000.0)
    assert summation.received_kwh == pytest.approx(1000.0)
    assert summation.meter_timestamp == 1426010041


def test_summation_without_delivered_is_a_bad_response():
    with pytest.raises(BadResponse, match="SummationDelivered"):
        parse_summation(200, xml_doc("CurrentSummation", {"Multiplier": "0x1", "Divisor": "0x1"}), "a", "cloud")


# --- EAGLE-200 -------------------------------------------------------------------------------------------

LIVE = "0x0007810000abcdef"
STALE = "0x0007810000000001"


def device_xml(address: str, status: str = "Connected", model: str = "electric_meter") -> str:
    return (
        f"<Device><HardwareAddress>{address}</HardwareAddress><ModelId>{model}</ModelId>"
        f"<ConnectionStatus>{status}</ConnectionStatus><LastContact>0x5e0be100</LastContact>"
        "<Name>Power Meter</Name><Protocol>Zigbee</Protocol></Device>"
    )


def device_list_xml(*devices: str) -> bytes:
    return ("<DeviceList>" + "".join(devices) + "</DeviceList>").encode()


def query_xml(value: str, units: str | None = "kW", status: str = "Connected", description: str = "Demand") -> bytes:
    units_element = f"<Units>{units}</Units>" if units is not None else ""
    return (
        f"<Device><DeviceDetails><HardwareAddress>{LIVE}</HardwareAddress><LastContact>0x5e0be100</LastContact>"
        f"<ConnectionStatus>{status}</ConnectionStatus></DeviceDetails>"
        "<Components><Component><Name>Main</Name><Variables>"
        f"<Variable><Name>zigbee:InstantaneousDemand</Name><Value>{value}</Value>{units_element}"
        f"<Description>{description}</Description></Variable>"
        "<Variable><Name>zigbee:CurrentSummationDelivered</Name><Value>12345.678000</Value><Units>kWh</Units>"
        "</Variable>"
        "<Variable><Name>zigbee:CurrentSummationReceived</Name><Value>45.5 kWh</Value></Variable>"
        "</Variables></Component></Components></Device>"
    ).encode()


def eagle200_reading(body: bytes, status: int = 200):
    return reading_from_answer(parse_device_query(status, body), "0a1b2c")


@pytest.mark.parametrize(
    ("value", "units", "kw"),
    [
        ("2.790000", "kW", 2.79),  # separate <Units>
        ("21.499 kW", None, 21.499),  # the unit inside the value
        ("-3.712000", "kW", -3.712),  # exporting
        ("-0.5 kW", None, -0.5),
        ("1500 W", None, 1.5),
        ("0.000000", "kW", 0.0),
        ("4294963.584000", "kW", -3.712),  # the unsigned wrap of one firmware
        ("4294963.584 kW", None, -3.712),
        ("2147483.648", "kW", 2147483.648),  # the boundary itself is not a wrap
        ("1.234000", None, 1.234),  # no unit at all: kW
    ],
)
def test_eagle200_value_forms(value, units, kw):
    reading = eagle200_reading(query_xml(value, units))
    assert reading.demand_kw == pytest.approx(kw)
    assert reading.protocol == "eagle200"
    assert reading.legacy == {}


def test_eagle200_last_contact_counts_from_the_unix_epoch():
    reading = eagle200_reading(query_xml("1.0"))
    assert reading.meter_timestamp == 0x5E0BE100
    assert reading.meter_time == datetime(2020, 1, 1, 0, 0, 0, tzinfo=UTC)
    assert reading.raw["zigbee:InstantaneousDemand"] == "1.0"
    assert reading.raw["ConnectionStatus"] == "Connected"


def test_eagle200_summation_variables():
    summation = summation_from_answer(parse_device_query(200, query_xml("1.0")), "0a1b2c")
    assert summation.delivered_kwh == pytest.approx(12345.678)
    assert summation.received_kwh == pytest.approx(45.5)


def test_unwrap_only_above_the_signed_32_bit_milliwatt_limit():
    assert unwrap_demand(4294963.584) == pytest.approx(-3.712)
    assert unwrap_demand(2147483.648) == 2147483.648
    assert unwrap_demand(-1.0) == -1.0


@pytest.mark.parametrize("value", ["abc", "1.2.3", "", "12 parsecs", "--1"])
def test_eagle200_unreadable_values_are_bad_responses(value):
    with pytest.raises(BadResponse):
        eagle200_reading(query_xml(value, units=None))


def test_parse_value_converts_watts_and_rejects_other_units():
    assert parse_value("250", "W", "W") == pytest.approx(0.25)
    assert parse_value("2.5 kWh", "", "Wh") == pytest.approx(2.5)
    with pytest.raises(BadResponse):
        parse_value("2", "MW", "W")


def test_a_bare_ampersand_in_the_description_does_not_lose_the_value():
    reading = eagle200_reading(query_xml("2.500000", description="Demand & Power"))
    assert reading.demand_kw == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("body", "escaped"),
    [
        (b"a & b", b"a &amp; b"),
        (b"a &amp; b", b"a &amp; b"),
        (b"&lt;&#38;&#x26;", b"&lt;&#38;&#x26;"),
        (b"AT&T", b"AT&amp;T"),
        (b"&;", b"&amp;;"),
    ],
)
def test_stray_ampersands_are_escaped_and_entities_kept(body, escaped):
    assert escape_stray_ampersands(body) == escaped


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b"<Response>\n</Response>\n", "no <Device>"),
        (
            f"<Device><DeviceDetails><HardwareAddress>{LIVE}</HardwareAddress></DeviceDetails></Device>".encode(),
            "no <Components>",
        ),
        (b"<Device><Components><Component><Variables></Variables></Component></Components></Device>", "lacks zigbee"),
    ],
)
def test_eagle200_missing_parts_are_bad_responses(body, what):
    with pytest.raises(BadResponse) as raised:
        eagle200_reading(body)
    assert what in raised.value.message


def test_eagle200_a_meter_not_connected_is_not_joined():
    with pytest.raises(MeterNotJoined):
        eagle200_reading(query_xml("", status="Not Joined"))


def test_eagle200_http_401_is_bad_credentials():
    with pytest.raises(BadCredentials):
        parse_device_list(401, b"Unauthorized")


@pytest.mark.parametrize(
    ("devices", "preferred", "chosen"),
    [
        pytest.param([device_xml(STALE, "Not Joined"), device_xml(LIVE)], "", LIVE, id="stale-meter-listed-first"),
        pytest.param([device_xml(LIVE), device_xml(STALE, "Not Joined")], "", LIVE, id="live-meter-first"),
        pytest.param(
            [device_xml("0x00aa", "Connected", "thermostat"), device_xml(LIVE)], "", LIVE, id="not-a-meter-skipped"
        ),
        pytest.param(
            [device_xml(STALE), device_xml(LIVE)], LIVE.upper().replace("0X", "0x"), LIVE, id="household-names"
        ),
        pytest.param([device_xml(STALE), device_xml(LIVE)], LIVE[2:], LIVE, id="household-names-without-0x"),
    ],
)
def test_the_meter_is_the_connected_electric_meter_or_the_one_named(devices, preferred, chosen):
    assert choose_meter(parse_device_list(200, device_list_xml(*devices)), preferred) == chosen


@pytest.mark.parametrize(
    ("devices", "preferred", "error"),
    [
        pytest.param([device_xml(STALE, "Not Joined")], "", MeterNotJoined, id="no-connected-meter"),
        pytest.param([device_xml("0x00aa", "Connected", "thermostat")], "", MeterNotJoined, id="no-meter"),
        pytest.param([device_xml(STALE, "Not Joined"), device_xml(LIVE)], STALE, MeterNotJoined, id="named-stale"),
        pytest.param([device_xml(LIVE)], "0x0007810000999999", MeterNotJoined, id="named-not-listed"),
        pytest.param([], "", BadResponse, id="empty-device-list"),
    ],
)
def test_no_usable_meter(devices, preferred, error):
    with pytest.raises(error):
        choose_meter(parse_device_list(200, device_list_xml(*devices)), preferred)


def test_a_device_list_answer_must_be_a_device_list():
    with pytest.raises(BadResponse):
        parse_device_list(200, b"<Device></Device>")


# --- the EAGLE-200 exchange: two requests first, then one; rediscovery -----------------------------------


def drive(exchange, answers):
    """Feed (status, body) answers to an exchange; returns (result, requests it made)."""
    sent = [next(exchange)]
    for answer in answers:
        try:
            sent.append(exchange.send(answer))
        except StopIteration as done:
            return done.value, sent
    raise AssertionError("the exchange wanted more answers")


def test_eagle200_discovers_once_then_polls_with_one_request():
    dialect = Eagle200Dialect(EagleTarget("0a1b2c", "eagle200", password="install", address="10.0.0.5"))
    listing = (200, device_list_xml(device_xml(STALE, "Not Joined"), device_xml(LIVE)))
    reading, sent = drive(dialect.demand(), [listing, (200, query_xml("1.5"))])
    assert reading.demand_kw == pytest.approx(1.5)
    assert [b"device_list" in r.body for r in sent] == [True, False]
    assert LIVE.encode() in sent[1].body and STALE.encode() not in sent[1].body
    assert dialect.meter_address == LIVE
    reading, sent = drive(dialect.demand(), [(200, query_xml("-2.0"))])
    assert reading.demand_kw == pytest.approx(-2.0)
    assert len(sent) == 1 and b"device_query" in sent[0].body


def test_eagle200_rediscovers_when_the_cached_meter_is_no_longer_connected():
    dialect = Eagle200Dialect(EagleTarget("0a1b2c", "eagle200", password="install"))
    dialect.meter_address = STALE
    listing = (200, device_list_xml(device_xml(STALE, "Not Joined"), device_xml(LIVE)))
    reading, sent = drive(dialect.demand(), [(200, query_xml("", status="Not Joined")), listing, (200, query_xml("3"))])
    assert reading.demand_kw == pytest.approx(3.0)
    assert len(sent) == 3
    assert dialect.meter_address == LIVE


def test_eagle200_rediscovers_when_the_gateway_no_longer_knows_the_cached_meter():
    dialect = Eagle200Dialect(EagleTarget("0a1b2c", "eagle200", password="install"))
    dialect.meter_address = STALE
    listing = (200, device_list_xml(device_xml(LIVE)))
    reading, sent = drive(dialect.demand(), [(200, b"<Error>Unknown device</Error>"), listing, (200, query_xml("4"))])
    assert reading.demand_kw == pytest.approx(4.0)
    assert [b"device_list" in r.body for r in sent] == [False, True, False]
    assert dialect.meter_address == LIVE


def test_eagle200_a_meter_that_stays_unknown_is_not_joined_after_one_rediscovery():
    dialect = Eagle200Dialect(EagleTarget("0a1b2c", "eagle200", password="install"))
    dialect.meter_address = STALE
    unknown = (200, b"<Error>Unknown device</Error>")
    exchange = dialect.demand()
    next(exchange)
    exchange.send(unknown)  # -> device_list
    exchange.send((200, device_list_xml(device_xml(LIVE))))  # -> device_query of LIVE
    with pytest.raises(MeterNotJoined):
        exchange.send(unknown)
    assert dialect.meter_address is None


def test_eagle200_a_bad_answer_forgets_the_meter_but_unreachable_does_not_matter_here():
    dialect = Eagle200Dialect(EagleTarget("0a1b2c", "eagle200", password="install"))
    dialect.meter_address = LIVE
    exchange = dialect.demand()
    next(exchange)
    with pytest.raises(BadResponse):
        exchange.send((200, b"<Response></Response>"))
    assert dialect.meter_address is None


# --- requests: URLs, credentials, certificate checks -------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "https", "url"),
    [
        ("", False, "http://eagle-0a1b2c.local"),
        ("192.168.1.20", False, "http://192.168.1.20"),
        ("192.168.1.20:8080", False, "http://192.168.1.20:8080"),
        ("eagle3.lan:443", True, "https://eagle3.lan:443"),
        ("[2001:db8::20]:8080", False, "http://[2001:db8::20]:8080"),
    ],
)
def test_local_addresses(address, https, url):
    assert local_base_url(address, "0a1b2c", https) == (url, https)


@pytest.mark.parametrize(
    "address", ["http://eagle.lan/", "https://192.168.1.20", "admin:hunter2@10.0.0.5:80", "10.0.0.5/cgi-bin", "127.1"]
)
def test_an_address_that_is_not_host_and_port_is_refused_not_guessed(address):
    """Rows saved before the address rule are migrated (0005); anything left is refused, never read generously."""
    with pytest.raises(Unreachable, match="invalid gateway address"):
        local_base_url(address, "0a1b2c")


def test_certificate_checks_are_off_only_for_an_eagle200_marked_https():
    https = Eagle200Dialect(EagleTarget("0a1b2c", "eagle200", password="p", address="10.0.0.5", https=True))
    http = Eagle200Dialect(EagleTarget("0a1b2c", "eagle200", password="p", address="10.0.0.5"))
    legacy = LegacyDialect(EagleTarget("0a1b2c", "eagle100", password="p", address="10.0.0.5", https=True), "x")
    cloud = LegacyDialect(EagleTarget("0a1b2c", "cloud", "a@b.org", "p"), "https://relay/cgi-bin/post_manager")
    assert https.device_list_request.verify_tls is False
    assert https.device_list_request.url.startswith("https://10.0.0.5/")
    assert http.device_list_request.verify_tls is True
    assert legacy.demand_request.verify_tls is True
    assert legacy.demand_request.url.startswith("https://10.0.0.5/")
    assert cloud.demand_request.verify_tls is True


def test_only_the_relay_is_a_trusted_host():
    """The address policy applies to every gateway; the relay (a setting) is exempt (addresses.py)."""
    cloud = LegacyDialect(EagleTarget("0a1b2c", "cloud", "a@b.org", "p"), "https://relay/cgi-bin/post_manager")
    local = LegacyDialect(EagleTarget("0a1b2c", "eagle100", password="p", address="10.0.0.5"), "x")
    eagle200 = Eagle200Dialect(EagleTarget("0a1b2c", "eagle200", password="p", address="10.0.0.5"))
    assert cloud.demand_request.trusted_host is True
    assert local.demand_request.trusted_host is False
    assert eagle200.device_list_request.trusted_host is False
    assert eagle200.query_request("0x01", ("zigbee:InstantaneousDemand",)).trusted_host is False


def test_cloud_credentials_travel_as_headers_and_local_ones_as_basic_auth():
    cloud = LegacyDialect(EagleTarget("0a1b2c", "cloud", "a@b.org", "s3cret!"), "https://relay/cgi-bin/post_manager")
    request = cloud.demand_request
    assert request.url == "https://relay/cgi-bin/post_manager"
    assert (request.headers["Cloud-ID"], request.headers["User"], request.headers["Password"]) == (
        "0a1b2c",
        "a@b.org",
        "s3cret!",
    )
    assert b"<Name>get_instantaneous_demand</Name>" in request.body
    local = LegacyDialect(EagleTarget("0a1b2c", "eagle100", password="abc123"), "unused")
    assert local.demand_request.url == "http://eagle-0a1b2c.local/cgi-bin/post_manager"
    assert local.demand_request.headers["Authorization"] == "Basic MGExYjJjOmFiYzEyMw=="  # 0a1b2c:abc123
    assert local.demand_request.basic_auth == ("0a1b2c", "abc123")


def test_a_password_that_cannot_travel_in_a_header_is_bad_credentials_without_showing_it():
    with pytest.raises(BadCredentials) as raised:
        LegacyDialect(EagleTarget("0a1b2c", "cloud", "a@b.org", "hunter2\nsecret"), "https://relay")
    assert "hunter2" not in str(raised.value) and "secret" not in raised.value.message


def test_credentials_never_appear_in_reprs():
    target = EagleTarget("0a1b2c", "cloud", "a@b.org", "hunter2-secret")
    request = LegacyDialect(target, "https://relay").demand_request
    assert "hunter2-secret" not in repr(target)
    assert "hunter2-secret" not in repr(request)
    local = LegacyDialect(EagleTarget("0a1b2c", "eagle100", password="hunter2-secret"), "x").demand_request
    assert "hunter2" not in repr(local) and "Basic" not in repr(local)


def test_an_echoed_password_is_scrubbed_from_errors():
    error = classify_error_text("Invalid password hunter2-secret", b"<Error>Invalid password hunter2-secret</Error>")
    error.scrub("hunter2-secret")
    assert "hunter2" not in error.message and "hunter2" not in error.raw and "hunter2" not in str(error)
    assert isinstance(error, EagleError) and error.kind == "bad_credentials"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (Unreachable, "unreachable"),
        (BadCredentials, "bad_credentials"),
        (MeterNotJoined, "meter_not_joined"),
        (BadResponse, "bad_response"),
    ],
)
def test_error_kinds_are_household_status_values(error, kind):
    from loggerapp.models import Status

    assert error.kind == kind == Status(kind).value
    assert issubclass(error, EagleError)
