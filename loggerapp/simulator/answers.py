"""The bodies the simulated gateways send, as the reference (docs/eagle-protocol.md) describes them. Pure.

Legacy protocols (cloud relay, EAGLE-100): every number as 0x-prefixed hex, Demand as signed int24 in six
digits (or int32 in eight, per household), the TimeStamp in the ZigBee epoch, XML unless the command asked for
``<Format>JSON</Format>``. EAGLE-200: DeviceList / Device answers with decimal values, plus the quirks that
field reports describe (inline units, unsigned wrap, stale meter, missing parts, bare ampersand).
"""

from __future__ import annotations

import json
import struct
import zlib
from functools import lru_cache

from loggerapp.simulator.households import SimHousehold
from loggerapp.simulator.meter import MeterReading, Profile, local_hour

XML = "text/xml; charset=utf-8"
JSON = "application/json"
WRAP_KW = 4294967.296  # 2**32 / 1000: the unsigned wrap of one EAGLE-200 firmware

ERROR_TEXTS = {
    "unknown_cloud_id": "Unknown cloud id: no gateway is registered under this Cloud-ID",
    "bad_credentials": "Invalid credentials: the user name or password is not correct",
    "meter_not_joined": "Meter not joined: the gateway has no connection to the meter",
    "error_cloud": "Gateway offline: the EAGLE has not contacted the cloud recently",
    "error_local": "Command failed: the gateway is busy, try again later",
    "unknown_command": "Unknown command",
}


def device_mac(household: SimHousehold) -> str:
    return f"0xd8d5b90000{household.cloud_id}"


def meter_mac(profile: Profile) -> str:
    return f"0x000781{profile.key & 0xFFFFFFFFFF:010x}"


def stale_meter_mac(profile: Profile) -> str:
    return f"0x000781{(profile.key >> 24) & 0xFFFFFFFFFF:010x}"


def encode_demand(kw: float, multiplier: int, divisor: int, wide: bool) -> str:
    """Signed kW -> the hex Demand field: two's complement int24 (6 digits) or int32 (8 digits)."""
    raw = round(kw * (divisor or 1) / (multiplier or 1))
    if wide:
        raw = max(-(2**31), min(2**31 - 1, raw))
        return f"0x{raw & 0xFFFFFFFF:08x}"
    raw = max(-(2**23), min(2**23 - 1, raw))
    return f"0x{raw & 0xFFFFFF:06x}"


def wire_demand_kw(household: SimHousehold, kw: float) -> float:
    """The kW a correct client reads back from what we send (rounded to the meter's resolution)."""
    if household.protocol == "eagle200":
        coarse = household.inline_units or (household.unsigned_wrap and kw < 0)
        return round(kw, 3) if coarse else round(kw, 6)
    multiplier, divisor = household.multiplier or 1, household.divisor or 1
    raw = round(kw * divisor / multiplier)
    limit = 2**31 if household.wide_demand else 2**23
    raw = max(-limit, min(limit - 1, raw))
    return raw * multiplier / divisor


def _xml(root: str, items: list[tuple[str, str]]) -> str:
    inner = "".join(f"  <{name}>{value}</{name}>\n" for name, value in items)
    return f"<{root}>\n{inner}</{root}>\n"


def legacy_document(root: str, items: list[tuple[str, str]], want_json: bool) -> tuple[str, str]:
    """(body, content type) of a legacy answer in the form the command asked for. Always whole: the firmware
    bug that drops the outer braces concerns only the lists (``legacy_list``)."""
    if not want_json:
        return _xml(root, items), XML
    return json.dumps({root: dict(items)}), JSON


# Roots of the answers the EAGLE-100's braceless-JSON bug affects: only these lists (clients that work around
# the bug, such as the `eagle100` package, test for exactly these two).
BRACELESS_ROOTS = frozenset({"HistoryData", "ScheduleList"})


def legacy_list(
    root: str, item_root: str, entries: list[list[tuple[str, str]]], want_json: bool, braceless: bool
) -> tuple[str, str]:
    """A list answer (``HistoryData``, ``ScheduleList``): in JSON, ``{root: {item_root: [...]}}``, without its
    outer braces when the household has the ``braceless_json`` firmware bug."""
    if not want_json:
        inner = "".join(_xml(item_root, items).replace("\n", "\n  ") for items in entries)
        return f"<{root}>\n  {inner.rstrip()}\n</{root}>\n", XML
    text = json.dumps({root: {item_root: [dict(items) for items in entries]}})
    return (text[1:-1] if braceless and root in BRACELESS_ROOTS else text), JSON


def legacy_error(text: str, want_json: bool) -> tuple[str, str]:
    if want_json:
        return json.dumps({"Error": text}), JSON
    return f"<Error>{text}</Error>\n", XML


# The ZigBee invalid value of Demand (no measurement), in the household's field width.
NO_READING_DEMAND = {False: "0x800000", True: "0xff800000"}


def instantaneous_demand(household: SimHousehold, profile: Profile, reading: MeterReading) -> list[tuple[str, str]]:
    if household.no_reading:
        demand = NO_READING_DEMAND[household.wide_demand]
    else:
        demand = encode_demand(reading.demand_kw, household.multiplier, household.divisor, household.wide_demand)
    return [
        ("DeviceMacId", device_mac(household)),
        ("MeterMacId", meter_mac(profile)),
        ("TimeStamp", f"0x{reading.zigbee_time:08x}"),
        ("Demand", demand),
        ("Multiplier", f"0x{household.multiplier:08x}"),
        ("Divisor", f"0x{household.divisor:08x}"),
        ("DigitsRight", "0x03"),
        ("DigitsLeft", "0x06"),
        ("SuppressLeadingZero", "Y"),
    ]


def is_peak(profile: Profile, reading: MeterReading) -> bool:
    """Peak hours of the simulated time-of-use tariff: 14-19 h local time."""
    return 14.0 <= local_hour(profile, reading.unix_time) < 19.0


def price_per_kwh(profile: Profile, reading: MeterReading) -> float:
    """The tariff now, in USD/kWh to four decimals; peak costs half as much again (the same on every protocol)."""
    return round(profile.price_per_kwh * (1.5 if is_peak(profile, reading) else 1.0), 4)


def price_cluster(household: SimHousehold, profile: Profile, reading: MeterReading) -> list[tuple[str, str]]:
    """Time-of-use price in USD/kWh with four trailing digits; peak (14-19 h local) costs half as much again."""
    peak = is_peak(profile, reading)
    items = [
        ("DeviceMacId", device_mac(household)),
        ("MeterMacId", meter_mac(profile)),
        # No tariff programmed: the firmware sends the ZigBee "not set" time, not the meter's.
        ("TimeStamp", "0xffffffff" if household.invalid_price else f"0x{reading.zigbee_time:08x}"),
    ]
    if household.invalid_price:
        items += [("Price", "invalid"), ("TrailingDigits", "invalid"), ("Tier", "invalid")]
    else:
        price = round(price_per_kwh(profile, reading) * 10_000)
        items += [
            ("StartTime", "0xffffffff"),
            ("Duration", "0xffff"),
            ("Price", f"0x{price:08x}"),
            ("Currency", "0x0348"),
            ("TrailingDigits", "0x04"),
            ("Tier", "0x02" if peak else "0x01"),
        ]
    items.append(("RateLabel", "Peak" if peak and not household.invalid_price else "Set by User"))
    return items


def current_summation(
    household: SimHousehold, profile: Profile, reading: MeterReading, delivered_kwh: float, received_kwh: float
) -> list[tuple[str, str]]:
    multiplier, divisor = household.multiplier or 1, household.divisor or 1
    return [
        ("DeviceMacId", device_mac(household)),
        ("MeterMacId", meter_mac(profile)),
        ("TimeStamp", f"0x{reading.zigbee_time:08x}"),
        ("SummationDelivered", f"0x{round(delivered_kwh * divisor / multiplier):016x}"),
        ("SummationReceived", f"0x{round(received_kwh * divisor / multiplier):016x}"),
        ("Multiplier", f"0x{household.multiplier:08x}"),
        ("Divisor", f"0x{household.divisor:08x}"),
        ("DigitsRight", "0x03"),
        ("DigitsLeft", "0x06"),
        ("SuppressLeadingZero", "Y"),
    ]


EAGLE100_MODEL = "Z109-EAGLE"
MANUFACTURER = "Rainforest Automation, Inc."


def network_info(household: SimHousehold, profile: Profile) -> list[tuple[str, str]]:
    """``get_network_info``: what the gateway is (clients tell an EAGLE-100 by ``ModelId`` Z109-EAGLE).

    The codes are made up from the household's profile; the simulator never echoes the install code a client
    authenticated with, so a test that prints this answer prints no password."""
    key = profile.key
    return [
        ("DeviceMacId", device_mac(household)),
        ("InstallCode", f"0x{(key * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF:016x}"),
        ("LinkKey", f"0x{(key * 0xC2B2AE3D27D4EB4F) & (2**128 - 1):032x}"),
        ("FWVersion", "2.0.21 (7964)"),
        ("HWVersion", "1.2.5"),
        ("ImageType", "0x1301"),
        ("Manufacturer", MANUFACTURER),
        ("ModelId", EAGLE100_MODEL),
        ("DateCode", "2014081323520712"),
        ("Protocol", "Zigbee"),
    ]


def network_status(household: SimHousehold, profile: Profile, joined: bool) -> list[tuple[str, str]]:
    """``get_network_status``: the ZigBee link to the meter. The firmware answers it under the same
    ``NetworkInfo`` root as ``get_network_info``, with other fields."""
    return [
        ("DeviceMacId", device_mac(household)),
        ("CoordMacId", meter_mac(profile)),
        ("Status", "Connected" if joined else "Rejoining"),
        ("Description", "Successfully Joined" if joined else "Meter not joined"),
        ("ExtPanId", meter_mac(profile)),
        ("Channel", "20"),
        ("ShortAddr", "0xe1ab"),
        ("LinkStrength", "0x64" if joined else "0x00"),
        ("Protocol", "Zigbee"),
    ]


SCHEDULE_EVENTS = (("time", 900), ("price", 90), ("demand", 10), ("summation", 300), ("message", 120))


def schedule_list(household: SimHousehold, profile: Profile, event: str) -> list[list[tuple[str, str]]]:
    """``get_schedule``: how often the gateway asks the meter for each kind of data (one entry, or all)."""
    return [
        [
            ("DeviceMacId", device_mac(household)),
            ("MeterMacId", meter_mac(profile)),
            ("Event", name),
            ("Frequency", f"0x{seconds:04x}"),
            ("Enabled", "Y"),
        ]
        for name, seconds in SCHEDULE_EVENTS
        if not event or event == name
    ]


# --- EAGLE-200 -------------------------------------------------------------------------------------------


def _device(address: str, connected: bool, last_contact: int, name: str) -> str:
    return (
        "  <Device>\n"
        f"    <HardwareAddress>{address}</HardwareAddress>\n"
        "    <Manufacturer>Generic</Manufacturer>\n"
        "    <ModelId>electric_meter</ModelId>\n"
        f"    <Protocol>Zigbee</Protocol>\n"
        f"    <LastContact>0x{last_contact:08x}</LastContact>\n"
        f"    <ConnectionStatus>{'Connected' if connected else 'Not Joined'}</ConnectionStatus>\n"
        "    <NetworkAddress>0x0000</NetworkAddress>\n"
        f"    <Name>{name}</Name>\n"
        "  </Device>\n"
    )


def device_list(household: SimHousehold, profile: Profile, reading: MeterReading, joined: bool) -> str:
    """``<DeviceList>``: the live meter, after a stale one for households with that quirk."""
    if household.missing == "device":
        return "<DeviceList>\n</DeviceList>\n"
    devices = []
    if household.stale_meter:
        devices.append(_device(stale_meter_mac(profile), False, reading.unix_time - 86400 * 40, "Old Meter"))
    devices.append(_device(meter_mac(profile), joined, reading.unix_time, "Power Meter"))
    return "<DeviceList>\n" + "".join(devices) + "</DeviceList>\n"


_DESCRIPTIONS = {
    "zigbee:InstantaneousDemand": ("Instantaneous Demand", "kW"),
    "zigbee:CurrentSummationDelivered": ("Total Meter Reading (Delivered)", "kWh"),
    "zigbee:CurrentSummationReceived": ("Total Meter Reading (Received)", "kWh"),
    "zigbee:Multiplier": ("Multiplier", ""),
    "zigbee:Divisor": ("Divisor", ""),
    "zigbee:Price": ("Price", "USD"),
    "zigbee:PriceTrailingDigits": ("Price Trailing Digits", ""),
    "zigbee:PriceCurrency": ("Price Currency", ""),
    "zigbee:PriceTier": ("Price Tier", ""),
    "zigbee:PriceRateLabel": ("Price Rate Label", ""),
}
_TEXT_VARIABLES = ("zigbee:PriceCurrency", "zigbee:PriceRateLabel")
ALL_VARIABLES = tuple(_DESCRIPTIONS)


def _value(household: SimHousehold, number: float | None, units: str) -> tuple[str, str]:
    """(Value text, Units text) in the household's firmware style."""
    if number is None:
        return "", units
    if household.inline_units and units:
        return f"{number:.3f} {units}", ""
    return f"{number:.6f}", units


def device_query(
    household: SimHousehold,
    profile: Profile,
    reading: MeterReading,
    joined: bool,
    names: list[str],
    totals: tuple[float, float],
    address: str = "",
) -> str:
    """``<Device>`` with DeviceDetails and the asked-for variables of the Main component (all when none asked).

    A meter that is not joined answers its details with ConnectionStatus "Not Joined" and empty values."""
    delivered, received = totals
    kw = reading.demand_kw
    if household.unsigned_wrap and kw < 0:
        kw = WRAP_KW + round(kw, 3)
    numbers: dict[str, float | None] = {
        "zigbee:InstantaneousDemand": kw,
        "zigbee:CurrentSummationDelivered": delivered,
        "zigbee:CurrentSummationReceived": received,
        "zigbee:Multiplier": float(household.multiplier),
        "zigbee:Divisor": float(household.divisor),
        "zigbee:Price": None if household.invalid_price else price_per_kwh(profile, reading),
        "zigbee:PriceTrailingDigits": 255.0 if household.invalid_price else 4.0,
        "zigbee:PriceTier": 0.0 if household.invalid_price else (2.0 if is_peak(profile, reading) else 1.0),
    }
    texts = {
        "zigbee:PriceCurrency": "USD",
        "zigbee:PriceRateLabel": "invalid"
        if household.invalid_price
        else ("Peak" if is_peak(profile, reading) else "Off Peak"),
    }
    details = (
        "  <DeviceDetails>\n"
        f"    <HardwareAddress>{address or meter_mac(profile)}</HardwareAddress>\n"
        "    <Name>Power Meter</Name>\n"
        "    <Manufacturer>Generic</Manufacturer>\n"  # the device's details carry these too (aioeagle reads them)
        "    <ModelId>electric_meter</ModelId>\n"
        "    <Protocol>Zigbee</Protocol>\n"
        f"    <LastContact>0x{reading.unix_time:08x}</LastContact>\n"
        f"    <ConnectionStatus>{'Connected' if joined else 'Not Joined'}</ConnectionStatus>\n"
        "    <NetworkAddress>0x0000</NetworkAddress>\n"
        "  </DeviceDetails>\n"
    )
    if household.missing == "device":
        return "<Response>\n</Response>\n"
    if household.missing == "components":
        return f"<Device>\n{details}</Device>\n"
    variables = []
    asked = names or ALL_VARIABLES
    if household.omit_delivered and names:  # that firmware's bug: only when variables are named
        asked = [name for name in asked if name != "zigbee:CurrentSummationDelivered"]
    for name in asked:
        description, units = _DESCRIPTIONS.get(name, ("", ""))
        if household.bare_ampersand and name == "zigbee:InstantaneousDemand":
            description = "Instantaneous Demand & Power"  # deliberately not escaped: that firmware's bug
        if name in _TEXT_VARIABLES:
            value = texts[name] if joined else ""
        elif name == "zigbee:Price" and household.invalid_price and joined:
            value, units = "invalid", ""
        elif name in ("zigbee:PriceTrailingDigits", "zigbee:PriceTier"):
            value = f"{numbers[name]:.0f}" if joined else ""
        else:
            value, units = _value(household, numbers.get(name) if joined else None, units)
        units_element = f"<Units>{units}</Units>" if units else ""
        variables.append(
            f"        <Variable><Name>{name}</Name><Value>{value}</Value>{units_element}"
            f"<Description>{description}</Description></Variable>\n"
        )
    return (
        "<Device>\n"
        f"{details}"
        "  <Components>\n"
        "    <Component>\n"
        "      <HardwareId>0x0</HardwareId>\n"
        "      <FixedId>0</FixedId>\n"
        "      <Name>Main</Name>\n"
        "      <Variables>\n"
        f"{''.join(variables)}"
        "      </Variables>\n"
        "    </Component>\n"
        "  </Components>\n"
        "</Device>\n"
    )


# --- hostile answers (faults) ----------------------------------------------------------------------------

_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
_BOMB_BLOCK = 1 << 20


@lru_cache(maxsize=4)
def gzip_bomb(size: int) -> bytes:
    """A valid gzip stream of ``size`` zero bytes (rounded up to whole MiB), built in about 0.1 s per 100 MB.

    Compressing that much would take seconds; instead one MiB of zeros is deflated once, ending in a full flush
    (which makes each compressed block independent, so identical input gives identical bytes), and that block
    is repeated. Only the CRC-32 in the trailer needs the whole length. About 1,000:1."""
    blocks = max(1, -(-size // _BOMB_BLOCK))
    zeros = bytes(_BOMB_BLOCK)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    compressor.compress(zeros)
    compressor.flush(zlib.Z_FULL_FLUSH)  # the first block may differ (no history yet); the second is canonical
    block = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    final = compressor.flush()
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(zeros, crc)
    total = blocks * _BOMB_BLOCK
    return _GZIP_HEADER + block * blocks + final + struct.pack("<II", crc, total & 0xFFFFFFFF)


def huge_chunks(size: int, chunk: int = 65536):
    """``size`` bytes of an answer that starts like a demand answer and never ends usefully."""
    head = b"<InstantaneousDemand>\n  <Padding>"
    yield head[:size]
    left = size - len(head)
    filler = b"x" * chunk
    while left > 0:
        yield filler[: min(chunk, left)]
        left -= chunk


def deep_json(depth: int) -> bytes:
    """JSON nested ``depth`` levels: what once made the client log a traceback on every poll."""
    return b'{"InstantaneousDemand": ' + b"[" * depth + b"]" * depth + b"}"
