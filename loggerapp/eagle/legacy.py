"""The legacy protocols: the Rainforest cloud relay (`cloud`) and the local EAGLE-100 (`eagle100`).

Both take the same commands and give the same answers; only the URL and the way credentials travel differ
(three headers for the relay, HTTP Basic with cloud id / install code for the EAGLE-100).

Decision: requests carry no `<Format>`, so the devices answer XML, their default and the form every firmware
produces in full. The parser still accepts JSON (with or without its outer braces) in case a relay or a
firmware answers JSON anyway.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any
from xml.etree.ElementTree import Element

from loggerapp.eagle.documents import error_from_document, parse_body, simple_fields
from loggerapp.eagle.errors import BadResponse
from loggerapp.eagle.hexfields import (
    hex_digits,
    is_invalid_digits,
    parse_hex,
    scale,
    signed_from_digits,
    unix_to_datetime,
    zigbee_to_unix,
)
from loggerapp.eagle.models import EagleTarget, Price, PriceAndSummation, Reading, Summation
from loggerapp.eagle.wire import (
    POST_MANAGER,
    HttpRequest,
    basic_auth_header,
    check_status,
    header_value,
    local_base_url,
)

DEMAND = "InstantaneousDemand"
PRICE = "PriceCluster"
SUMMATION = "CurrentSummation"
# Older firmware answers get_current_summation under this root, with the same fields.
SUMMATION_OLD_ROOT = "CurrentSummationDelivered"
# A 32-bit ZigBee time of all ones is "not set" (price answers carry it when no tariff is programmed).
NOT_SET_TIME = 0xFFFFFFFF

# The old logger turned these into ints (Demand unsigned) and kept SuppressLeadingZero as text.
LEGACY_INT_FIELDS = (
    "DeviceMacId",
    "MeterMacId",
    "TimeStamp",
    "Demand",
    "Multiplier",
    "Divisor",
    "DigitsRight",
    "DigitsLeft",
)
LEGACY_TEXT_FIELDS = ("SuppressLeadingZero",)
NO_READING = "no reading"  # how the message of a poll whose Demand is the ZigBee invalid value begins


def command_body(name: str) -> bytes:
    """The XML command for one legacy command name."""
    return f"<Command>\n  <Name>{name}</Name>\n</Command>\n".encode("ascii")


# --- parsing (pure) -------------------------------------------------------------------------------------


def answer_fields(status: int, body: bytes, root_name: str) -> dict[str, str]:
    """The fields of an answer whose root is `root_name`, as text; every failure is classified.

    1. HTTP status rules (wire.check_status).
    2. XML or JSON (documents.parse_body); an `<Error>` root becomes its classified exception.
    3. The expected root, then its children as {name: text}.
    """
    check_status(status, body)
    fields = simple_fields(body, root_name)  # the usual answer, read without building a tree
    if fields is not None:
        return fields
    document = parse_body(body)
    error = error_from_document(document, body)
    if error is not None:
        raise error
    if isinstance(document, Element):
        if document.tag != root_name and document.tag.lower() != root_name.lower():
            raise BadResponse(f"expected <{root_name}>, got <{document.tag}>"[:200], body)
        return {child.tag: (child.text or "").strip() for child in document}
    return _json_fields(document, root_name, body)


def _json_fields(document: Any, root_name: str, body: bytes) -> dict[str, str]:
    if not isinstance(document, dict):
        raise BadResponse(f"expected a JSON object with {root_name}", body)
    inner = document.get(root_name)
    if inner is None:
        lowered = root_name.lower()
        inner = next((value for key, value in document.items() if str(key).lower() == lowered), None)
    if not isinstance(inner, dict):
        raise BadResponse(f"expected a JSON object with {root_name}", body)
    return {str(key): "" if value is None else str(value).strip() for key, value in inner.items()}


def _required(fields: dict[str, str], name: str, body: bytes) -> str:
    value = fields.get(name)
    if not value:
        raise BadResponse(f"the answer lacks {name}", body)
    return value


def _hex(fields: dict[str, str], name: str, body: bytes) -> int:
    try:
        return parse_hex(_required(fields, name, body), name)
    except BadResponse as exc:
        raise BadResponse(exc.message, body) from None


def parse_instantaneous_demand(status: int, body: bytes, cloud_id: str, protocol: str) -> Reading:
    """A Reading from a `get_instantaneous_demand` answer.

    kW = signed Demand x Multiplier / Divisor (zeros count as 1); meter time = TimeStamp + ZigBee epoch.
    The ZigBee invalid value (`0x800000`, `0xff800000`, `0x80000000`) is BadResponse("no reading: ...").
    `legacy` keeps the old logger's view: every hex field as an unsigned int, SuppressLeadingZero as text.
    """
    fields = answer_fields(status, body, DEMAND)
    demand_text = _required(fields, "Demand", body)
    try:
        digits = hex_digits(demand_text, "Demand")
    except BadResponse as exc:
        raise BadResponse(exc.message, body) from None
    if is_invalid_digits(digits):
        # A poll that got an answer but no measurement: a failed poll (bad_response) with a message of its own,
        # rather than a reading of -8,388.608 kW or a reading without a value (see docs/eagle-client.md).
        raise BadResponse(f"{NO_READING}: Demand {demand_text} is the ZigBee invalid value (the meter sent none)", body)
    try:
        signed = signed_from_digits(digits, demand_text)
    except BadResponse as exc:
        raise BadResponse(exc.message, body) from None
    multiplier = _hex(fields, "Multiplier", body)
    divisor = _hex(fields, "Divisor", body)
    zigbee_time = _hex(fields, "TimeStamp", body)
    # Each hex field is read once: the four above are reused, the others read here.
    known = {"Demand": int(digits, 16), "Multiplier": multiplier, "Divisor": divisor, "TimeStamp": zigbee_time}
    legacy: dict[str, int | str] = {}
    for name in LEGACY_INT_FIELDS:
        text = fields.get(name)
        if text:
            value = known.get(name)
            if value is None:
                try:
                    value = parse_hex(text, name)
                except BadResponse as exc:
                    raise BadResponse(exc.message, body) from None
            legacy[name] = value
    for name in LEGACY_TEXT_FIELDS:
        if name in fields:
            legacy[name] = fields[name]
    unix_time = zigbee_to_unix(zigbee_time)
    return Reading(
        cloud_id=cloud_id,
        protocol=protocol,
        demand_kw=scale(signed, multiplier, divisor),
        meter_time=unix_to_datetime(unix_time),
        meter_timestamp=unix_time,
        raw=fields,
        legacy=legacy,
    )


def _optional_hex(fields: dict[str, str], name: str, body: bytes) -> int | None:
    """A hex field that may be missing or read `invalid` (-> None); any other non-hex text is malformed."""
    text = fields.get(name, "")
    if not text or text.lower() == "invalid":
        return None
    try:
        return parse_hex(text, name)
    except BadResponse as exc:
        raise BadResponse(exc.message, body) from None


def parse_price(status: int, body: bytes, cloud_id: str, protocol: str) -> Price:
    """A Price from a `get_price` answer; `invalid` fields or a missing currency mean "no price" (None)."""
    fields = answer_fields(status, body, PRICE)
    raw_price = _optional_hex(fields, "Price", body)
    trailing = _optional_hex(fields, "TrailingDigits", body)
    currency = _optional_hex(fields, "Currency", body)
    tier = _optional_hex(fields, "Tier", body)
    zigbee_time = _optional_hex(fields, "TimeStamp", body)
    if zigbee_time == NOT_SET_TIME:
        zigbee_time = None  # "not set": no time, and no error (docs/eagle-protocol.md)
    price = None
    if raw_price is not None and currency is not None:
        price = raw_price / 10 ** (trailing or 0)
    rate_label = fields.get("RateLabel") or None
    if rate_label is not None and rate_label.lower() == "invalid":
        rate_label = None
    unix_time = zigbee_to_unix(zigbee_time) if zigbee_time is not None else None
    return Price(
        cloud_id=cloud_id,
        protocol=protocol,
        price=price,
        currency=currency,
        tier=tier,
        rate_label=rate_label,
        meter_time=unix_to_datetime(unix_time) if unix_time is not None else None,
        meter_timestamp=unix_time,
        raw=fields,
    )


def parse_summation(status: int, body: bytes, cloud_id: str, protocol: str) -> Summation:
    """A Summation from a `get_current_summation` answer: kWh = value x Multiplier / Divisor.

    The root is `<CurrentSummation>`, or `<CurrentSummationDelivered>` on older firmware (the same answer).
    """
    try:
        fields = answer_fields(status, body, SUMMATION)
    except BadResponse as exc:
        if not exc.message.startswith(("expected <", "expected a JSON object")):
            raise
        try:
            fields = answer_fields(status, body, SUMMATION_OLD_ROOT)
        except BadResponse:
            raise exc from None
    delivered = _hex(fields, "SummationDelivered", body)
    received = _optional_hex(fields, "SummationReceived", body)
    multiplier = _hex(fields, "Multiplier", body)
    divisor = _hex(fields, "Divisor", body)
    zigbee_time = _optional_hex(fields, "TimeStamp", body)
    if zigbee_time == NOT_SET_TIME:
        zigbee_time = None
    unix_time = zigbee_to_unix(zigbee_time) if zigbee_time is not None else None
    return Summation(
        cloud_id=cloud_id,
        protocol=protocol,
        delivered_kwh=scale(delivered, multiplier, divisor),
        received_kwh=scale(received, multiplier, divisor) if received is not None else None,
        meter_time=unix_to_datetime(unix_time) if unix_time is not None else None,
        meter_timestamp=unix_time,
        raw=fields,
    )


def _usable(parse: Any, *args: Any) -> tuple[Any, BadResponse | None]:
    """(result, None), or (None, the BadResponse) for an unusable answer; other failures propagate."""
    try:
        return parse(*args), None
    except BadResponse as exc:
        return None, exc


def both_or_raise(
    price: Price | None,
    price_error: BadResponse | None,
    summation: Summation | None,
    summation_error: BadResponse | None,
) -> PriceAndSummation:
    """The poll's result when at least one half was usable; otherwise the price's error (the first asked)."""
    if price is None and summation is None:
        raise price_error or summation_error or BadResponse("no usable price or summation")
    return PriceAndSummation(
        price,
        summation,
        price_error=price_error.message if price_error is not None else "",
        summation_error=summation_error.message if summation_error is not None else "",
    )


# --- requests and exchanges (pure) ----------------------------------------------------------------------

Exchange = Generator[HttpRequest, tuple[int, bytes], Any]


class LegacyDialect:
    """Requests for one cloud or EAGLE-100 target, built once (headers, auth and bodies never change).

    `demand()`, `price()` and `summation()` are exchanges: generators that yield the request to send, receive
    (status, body) and return the parsed result. The transports drive them; no I/O happens here.
    """

    __slots__ = ("_demand", "_price", "_summation", "cloud_id", "protocol", "secrets")

    def __init__(self, target: EagleTarget, cloud_url: str) -> None:
        self.cloud_id = target.cloud_id
        self.protocol = target.protocol
        self.secrets = (target.password,)
        headers = {"Content-Type": "text/xml"}
        if target.protocol == "cloud":
            url = cloud_url
            headers["Cloud-ID"] = header_value(target.cloud_id, "cloud id")
            headers["User"] = header_value(target.user_email, "account e-mail")
            headers["Password"] = header_value(target.password, "password")
            auth = None
        else:
            base, _https = local_base_url(target.address, target.cloud_id, target.https)
            url = base + POST_MANAGER
            auth = (target.cloud_id, target.password)
            headers["Authorization"] = basic_auth_header(*auth)
        # Certificate checks stay on for both legacy protocols (the relay has a real certificate; an EAGLE-100
        # speaks plain HTTP). Only the relay, a setting, is exempt from the address policy (addresses.py).
        relay = target.protocol == "cloud"

        def request(command: str) -> HttpRequest:
            return HttpRequest("POST", url, headers, command_body(command), True, auth, trusted_host=relay)

        self._demand = request("get_instantaneous_demand")
        self._price = request("get_price")
        self._summation = request("get_current_summation")

    @property
    def demand_request(self) -> HttpRequest:
        return self._demand

    def demand(self) -> Exchange:
        status, body = yield self._demand
        return parse_instantaneous_demand(status, body, self.cloud_id, self.protocol)

    def price(self) -> Exchange:
        status, body = yield self._price
        return parse_price(status, body, self.cloud_id, self.protocol)

    def summation(self) -> Exchange:
        status, body = yield self._summation
        return parse_summation(status, body, self.cloud_id, self.protocol)

    def price_and_summation(self) -> Exchange:
        """Two requests: `get_price`, then `get_current_summation`. An unusable answer (BadResponse) to one of
        them leaves that half None with its reason; both unusable, or any other failure, fails the poll."""
        status, body = yield self._price
        price, price_error = _usable(parse_price, status, body, self.cloud_id, self.protocol)
        status, body = yield self._summation
        summation, summation_error = _usable(parse_summation, status, body, self.cloud_id, self.protocol)
        return both_or_raise(price, price_error, summation, summation_error)
