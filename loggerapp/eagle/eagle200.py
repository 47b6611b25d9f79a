"""The EAGLE-200 / EAGLE 3 local API (`eagle200`): `device_list`, then `device_query` of the meter.

The first poll of a household needs two requests (find the meter, then ask it). `Eagle200Dialect` remembers
the meter's HardwareAddress, so the steady state is one request per poll; if the remembered meter stops being
Connected it rediscovers once within the same poll. The dialect holds that state but does no I/O: its
exchanges yield requests and receive (status, body) from whichever transport drives them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

from loggerapp.eagle.currency import currency_number
from loggerapp.eagle.documents import error_from_document, parse_body
from loggerapp.eagle.errors import BadCredentials, BadResponse, MeterNotJoined
from loggerapp.eagle.hexfields import parse_hex, unix_to_datetime
from loggerapp.eagle.legacy import both_or_raise
from loggerapp.eagle.models import EagleTarget, Price, PriceAndSummation, Reading, Summation
from loggerapp.eagle.wire import POST_MANAGER, HttpRequest, basic_auth_header, check_status, local_base_url

METER_MODEL = "electric_meter"
CONNECTED = "connected"
DEMAND_VARIABLE = "zigbee:InstantaneousDemand"
DELIVERED_VARIABLE = "zigbee:CurrentSummationDelivered"
RECEIVED_VARIABLE = "zigbee:CurrentSummationReceived"
PRICE_VARIABLE = "zigbee:Price"
PRICE_CURRENCY_VARIABLE = "zigbee:PriceCurrency"  # letters: `USD`
PRICE_TIER_VARIABLE = "zigbee:PriceTier"
RATE_LABEL_VARIABLE = "zigbee:PriceRateLabel"
ALL_VARIABLES: tuple[str, ...] = ()  # a device_query naming no variable asks for all of them (`<All>Y</All>`)

# One firmware reports exported power as an unsigned 32-bit wrap of milliwatts, in decimal kW:
# 4294963.584 kW is really -3.712 kW. Nothing above 2^31 mW is a real household's demand.
WRAP_LIMIT_KW = 2_147_483.648
WRAP_KW = 4_294_967.296

_VALUE = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*")

Exchange = Generator[HttpRequest, tuple[int, bytes], Any]


# --- parsing (pure) -------------------------------------------------------------------------------------


# An `<Error>` saying the gateway does not know the device asked for: the remembered meter is gone (replaced or
# unpaired), which is the household's meter not being joined, and a reason to look for the meter again.
_UNKNOWN_DEVICE = re.compile(
    r"unknown device|no such device|device not found|invalid (?:hardware ?)?address|unknown hardware", re.IGNORECASE
)


def _document(status: int, body: bytes) -> Element:
    check_status(status, body)
    document = parse_body(body)
    error = error_from_document(document, body)
    if error is not None:
        if not isinstance(error, BadCredentials) and _UNKNOWN_DEVICE.search(error.message):
            raise error.reclassified(MeterNotJoined)
        raise error
    if not isinstance(document, Element):
        raise BadResponse("expected an XML answer", body)
    return document


def _children_text(element: Element) -> dict[str, str]:
    return {child.tag: (child.text or "").strip() for child in element if len(child) == 0}


def parse_device_list(status: int, body: bytes) -> list[dict[str, str]]:
    """The devices of a `device_list` answer, each as {field: text}."""
    root = _document(status, body)
    if root.tag != "DeviceList":
        raise BadResponse(f"expected <DeviceList>, got <{root.tag}>"[:200], body)
    return [_children_text(device) for device in root.iter("Device")]


def _same_address(left: str, right: str) -> bool:
    def norm(text: str) -> str:
        text = text.strip().lower()
        return text[2:] if text.startswith("0x") else text

    return norm(left) == norm(right)


def choose_meter(devices: list[dict[str, str]], preferred: str = "", raw: bytes | None = None) -> str:
    """The HardwareAddress to query.

    1. Only `electric_meter` devices count.
    2. If the household names a meter (`meter_address`), that one, and it must be Connected.
    3. Otherwise the first Connected meter; a stale meter listed before it is skipped.
    4. No Connected meter: MeterNotJoined (the gateway is up but has no live meter).
    An empty list (no `<Device>` at all, seen on EAGLE 3) is a BadResponse, like the other missing parts.
    """
    if not devices:
        raise BadResponse("the device list has no <Device>", raw)
    meters = [d for d in devices if d.get("ModelId", "").strip().lower() == METER_MODEL and d.get("HardwareAddress")]
    if preferred:
        for meter in meters:
            if _same_address(meter["HardwareAddress"], preferred):
                if meter.get("ConnectionStatus", "").strip().lower() != CONNECTED:
                    status = meter.get("ConnectionStatus") or "unknown"
                    raise MeterNotJoined(f"the household's meter {preferred} is {status}"[:200], raw)
                return meter["HardwareAddress"]
        raise MeterNotJoined(f"the household's meter {preferred} is not listed by the gateway"[:200], raw)
    for meter in meters:
        if meter.get("ConnectionStatus", "").strip().lower() == CONNECTED:
            return meter["HardwareAddress"]
    if meters:
        raise MeterNotJoined(f"the gateway lists {len(meters)} meter(s), none Connected", raw)
    raise MeterNotJoined("the gateway lists no electric meter", raw)


@dataclass(slots=True)
class DeviceAnswer:
    """A `device_query` answer: the device's details and its variables as (value, units) text."""

    details: dict[str, str]
    variables: dict[str, tuple[str, str]]
    body: bytes

    def raw(self) -> dict[str, str]:
        fields = dict(self.details)
        for name, (value, units) in self.variables.items():
            fields[name] = value
            if units:
                fields[f"{name}.Units"] = units
        return fields

    def meter_timestamp(self) -> int | None:
        """LastContact: hex Unix seconds here (not the ZigBee epoch of the legacy protocols)."""
        text = self.details.get("LastContact", "")
        if not text:
            return None
        try:
            return parse_hex(text, "LastContact")
        except BadResponse as exc:
            raise BadResponse(exc.message, self.body) from None


def parse_device_query(status: int, body: bytes) -> DeviceAnswer:
    """The details and variables of a `device_query` answer.

    A meter whose ConnectionStatus is not Connected is MeterNotJoined; an answer without `<Device>` or
    `<Components>` (seen on EAGLE 3) is a BadResponse.
    """
    root = _document(status, body)
    device = root if root.tag == "Device" else root.find(".//Device")
    if device is None:
        raise BadResponse("the answer has no <Device>", body)
    details_element = device.find("DeviceDetails")
    details = _children_text(details_element) if details_element is not None else {}
    connection = details.get("ConnectionStatus", "")
    if connection and connection.lower() != CONNECTED:
        raise MeterNotJoined(f"the meter is {connection}"[:200], body)
    components = device.find("Components")
    if components is None:
        raise BadResponse("the answer has no <Components>", body)
    variables: dict[str, tuple[str, str]] = {}
    for variable in components.iter("Variable"):
        name = (variable.findtext("Name") or "").strip()
        if name:
            variables[name] = ((variable.findtext("Value") or "").strip(), (variable.findtext("Units") or "").strip())
    return DeviceAnswer(details, variables, body)


def parse_value(value: str, units: str, base_unit: str) -> float:
    """A decimal value in kilo-`base_unit`: `2.790000` + Units kW, `21.499 kW`, `-0.5 kW`, `1500 W` -> 1.5."""
    match = _VALUE.fullmatch(value)
    if match is None:
        raise BadResponse(f"not a number: {value!r}"[:200])
    number = float(match.group(1))
    unit = (match.group(2) or units).strip().lower()
    if unit in ("", "k" + base_unit.lower()):
        return number
    if unit == base_unit.lower():
        return number / 1000.0
    raise BadResponse(f"unexpected unit {unit!r} for {value!r}"[:200])


def unwrap_demand(kw: float) -> float:
    """Undo the unsigned-wrap firmware bug: 4294963.584 kW -> -3.712 kW."""
    if kw > WRAP_LIMIT_KW:
        return round(kw - WRAP_KW, 6)
    return kw


def _variable(answer: DeviceAnswer, name: str, base_unit: str, required: bool = True) -> float | None:
    value, units = answer.variables.get(name, ("", ""))
    if not value:
        if required:
            raise BadResponse(f"the answer lacks {name}", answer.body)
        return None
    try:
        return parse_value(value, units, base_unit)
    except BadResponse as exc:
        raise BadResponse(f"{name}: {exc.message}", answer.body) from None


def reading_from_answer(answer: DeviceAnswer, cloud_id: str) -> Reading:
    """A Reading from a `device_query` answer (legacy fields stay empty: the old logger never saw eagle200)."""
    demand = unwrap_demand(_variable(answer, DEMAND_VARIABLE, "W"))  # type: ignore[arg-type]
    timestamp = answer.meter_timestamp()
    return Reading(
        cloud_id=cloud_id,
        protocol="eagle200",
        demand_kw=demand,
        meter_time=unix_to_datetime(timestamp) if timestamp is not None else None,
        meter_timestamp=timestamp,
        raw=answer.raw(),
        legacy={},
    )


def summation_from_answer(answer: DeviceAnswer, cloud_id: str) -> Summation:
    """A Summation from zigbee:CurrentSummationDelivered and ...Received.

    Some EAGLE-200 firmware leaves CurrentSummationDelivered out when variables are asked for by name; an
    absent variable is None (not reported), and only an answer with neither is a BadResponse.
    """
    delivered = _variable(answer, DELIVERED_VARIABLE, "Wh", required=False)
    received = _variable(answer, RECEIVED_VARIABLE, "Wh", required=False)
    if delivered is None and received is None:
        raise BadResponse(f"the answer lacks {DELIVERED_VARIABLE} and {RECEIVED_VARIABLE}", answer.body)
    timestamp = answer.meter_timestamp()
    return Summation(
        cloud_id=cloud_id,
        protocol="eagle200",
        delivered_kwh=delivered,
        received_kwh=received,
        meter_time=unix_to_datetime(timestamp) if timestamp is not None else None,
        meter_timestamp=timestamp,
        raw=answer.raw(),
    )


def _text(answer: DeviceAnswer, name: str) -> str:
    """A variable's value, with `invalid` (the device's "not set") as empty."""
    value = answer.variables.get(name, ("", ""))[0]
    return "" if value.lower() == "invalid" else value


def price_from_answer(answer: DeviceAnswer, cloud_id: str) -> Price:
    """zigbee:Price (already decimal), zigbee:PriceCurrency (`USD`), ...PriceTier, ...PriceRateLabel.

    `invalid` (or nothing) is "no price", not a failure; any other non-number is a BadResponse.
    """
    value = _text(answer, PRICE_VARIABLE)
    price = None
    if value:
        match = _VALUE.fullmatch(value)
        if match is None:
            raise BadResponse(f"{PRICE_VARIABLE}: not a number: {value!r}"[:200], answer.body)
        price = float(match.group(1))
    tier_text = _text(answer, PRICE_TIER_VARIABLE)
    tier = int(tier_text) if tier_text.isdigit() and len(tier_text) < 6 else None
    timestamp = answer.meter_timestamp()
    return Price(
        cloud_id=cloud_id,
        protocol="eagle200",
        price=price,
        currency=currency_number(_text(answer, PRICE_CURRENCY_VARIABLE)),
        tier=tier,
        rate_label=_text(answer, RATE_LABEL_VARIABLE)[:100] or None,
        meter_time=unix_to_datetime(timestamp) if timestamp is not None else None,
        meter_timestamp=timestamp,
        raw=answer.raw(),
    )


def price_and_summation_from_answer(answer: DeviceAnswer, cloud_id: str) -> PriceAndSummation:
    """Both from one answer to a query for all variables; a half that cannot be read is None with its reason
    (legacy.both_or_raise), so a garbled price does not lose the counters."""
    try:
        price, price_error = price_from_answer(answer, cloud_id), None
    except BadResponse as exc:
        price, price_error = None, exc
    try:
        summation, summation_error = summation_from_answer(answer, cloud_id), None
    except BadResponse as exc:
        summation, summation_error = None, exc
    return both_or_raise(price, price_error, summation, summation_error)


# --- requests and exchanges (pure, with the meter cache) ------------------------------------------------

DEVICE_LIST_BODY = b"<Command>\n  <Name>device_list</Name>\n</Command>\n"


def device_query_body(hardware_address: str, variables: tuple[str, ...]) -> bytes:
    """The `device_query` command for some variables of one device; no variables asks for all of them."""
    names = "".join(f"<Variable><Name>{escape(name)}</Name></Variable>" for name in variables)
    components = (
        f"<Component><Name>Main</Name><Variables>{names}</Variables></Component>" if variables else "<All>Y</All>"
    )
    return (
        "<Command>\n  <Name>device_query</Name>\n"
        f"  <DeviceDetails><HardwareAddress>{escape(hardware_address.strip())}</HardwareAddress></DeviceDetails>\n"
        f"  <Components>{components}</Components>\n"
        "</Command>\n"
    ).encode()


class Eagle200Dialect:
    """Requests for one EAGLE-200 / EAGLE 3 target, plus the remembered meter address.

    Certificate checks are off only here and only for a household marked HTTPS: the EAGLE 3 serves a
    self-signed certificate on the local network, and there is nothing to verify it against.
    """

    __slots__ = ("_headers", "_list_request", "_queries", "_url", "_verify", "cloud_id", "meter_address", "preferred")

    protocol = "eagle200"

    def __init__(self, target: EagleTarget) -> None:
        self.cloud_id = target.cloud_id
        self.preferred = target.meter_address
        base, https = local_base_url(target.address, target.cloud_id, target.https)
        self._url = base + POST_MANAGER
        self._verify = not https
        self._headers = {
            "Content-Type": "text/xml",
            "Authorization": basic_auth_header(target.cloud_id, target.password),
        }
        self._list_request = HttpRequest("POST", self._url, self._headers, DEVICE_LIST_BODY, self._verify)
        self._queries: dict[tuple[str, tuple[str, ...]], HttpRequest] = {}
        self.meter_address: str | None = None  # the cached HardwareAddress of the live meter

    @property
    def verify_tls(self) -> bool:
        return self._verify

    @property
    def device_list_request(self) -> HttpRequest:
        return self._list_request

    def query_request(self, hardware_address: str, variables: tuple[str, ...]) -> HttpRequest:
        key = (hardware_address, variables)
        request = self._queries.get(key)
        if request is None:
            if len(self._queries) > 16:  # a gateway whose meters keep changing must not grow this forever
                self._queries.clear()
            body = device_query_body(hardware_address, variables)
            request = self._queries[key] = HttpRequest("POST", self._url, self._headers, body, self._verify)
        return request

    def demand(self) -> Exchange:
        return self._exchange((DEMAND_VARIABLE,), reading_from_answer)

    def summation(self) -> Exchange:
        return self._exchange((DELIVERED_VARIABLE, RECEIVED_VARIABLE), summation_from_answer)

    def price(self) -> Exchange:
        return self._exchange((PRICE_VARIABLE, PRICE_CURRENCY_VARIABLE), price_from_answer)

    def price_and_summation(self) -> Exchange:
        """One query for all variables: the summation is there even on firmware that omits it when asked by name."""
        return self._exchange(ALL_VARIABLES, price_and_summation_from_answer)

    def _discover(self) -> Exchange:
        status, body = yield self._list_request
        return choose_meter(parse_device_list(status, body), self.preferred, body)

    def _exchange(self, variables: tuple[str, ...], build: Callable[[DeviceAnswer, str], Any]) -> Exchange:
        """1. Discover the meter unless one is cached. 2. Query it. 3. If a cached meter turned out not to be
        Connected, forget it and go back to 1 once. A bad answer also forgets it (the next poll rediscovers)."""
        meter = self.meter_address
        fresh = meter is None
        if meter is None:
            meter = yield from self._discover()
        for attempt in (1, 2):
            status, body = yield self.query_request(meter, variables)
            try:
                answer = parse_device_query(status, body)
                result = build(answer, self.cloud_id)
            except MeterNotJoined:
                self.meter_address = None
                if fresh or attempt == 2:
                    raise
            except BadResponse:
                self.meter_address = None
                raise
            else:
                self.meter_address = meter
                return result
            meter = yield from self._discover()
            fresh = True
        raise AssertionError("unreachable")  # pragma: no cover
