"""Numbers of the legacy protocols: `0x`-prefixed hex strings, signed demand, ZigBee time.

Pure functions; every malformed value becomes `BadResponse` so a poll fails cleanly instead of crashing.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from loggerapp.eagle.errors import BadResponse

# Seconds from the Unix epoch to the ZigBee epoch (2000-01-01T00:00:00Z).
ZIGBEE_EPOCH = 946684800

# `int(text, 16)` also accepts signs, underscores and surrounding blanks; the devices never send those, so a
# value that has them is malformed. The `0x` prefix is optional: some firmware drops it.
_HEX = re.compile(r"0[xX]([0-9a-fA-F]+)|([0-9a-fA-F]+)")
_HEX_CHARS = frozenset("0123456789abcdefABCDEF")


def hex_digits(text: str, field: str = "value") -> str:
    """The hex digits of a field (without `0x`), or BadResponse."""
    if type(text) is str:  # the usual, exact form first (a set test, no regex): every poll reads 10 of these
        digits = text[2:] if text[:2] in ("0x", "0X") else text
        if digits and _HEX_CHARS.issuperset(digits):
            return digits
    if not isinstance(text, str):
        raise BadResponse(f"{field} is not text: {text!r}"[:200])
    match = _HEX.fullmatch(text.strip())
    if match is None:
        raise BadResponse(f"{field} is not hexadecimal: {text!r}"[:200])
    return match.group(1) or match.group(2)


def parse_hex(text: str, field: str = "value") -> int:
    """An unsigned hex field: `0x000003e8` -> 1000."""
    return int(hex_digits(text, field), 16)


def parse_signed_demand(text: str, field: str = "Demand") -> int:
    """Demand as the meter means it: signed two's complement of the field's width.

    1. Up to six hex digits is a ZigBee int24: `0x800000` and above are negative (`0xfffb2e` = -1234).
    2. Seven or eight digits is a signed 32-bit value (`0xfffffc18` = -1000), as many devices send it.
    3. Wider fields (up to 16 digits) are read as signed 64-bit; anything wider is malformed.
    """
    return signed_from_digits(hex_digits(text, field), text, field)


def signed_from_digits(digits: str, text: str, field: str = "Demand") -> int:
    """parse_signed_demand for digits already checked by hex_digits (`text` only names the field in errors)."""
    value = int(digits, 16)
    width = len(digits)
    if width <= 6:
        bits = 24
    elif width <= 8:
        bits = 32
    elif width <= 16:
        bits = 64
    else:
        raise BadResponse(f"{field} is wider than 64 bits: {text!r}"[:200])
    if value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


# The ZigBee (ZCL) "invalid" value of a signed integer: the meter has no measurement to give. For int24 it is
# 0x800000; devices that send Demand in eight digits sign-extend it (0xff800000); 0x80000000 is int32's own.
# Read as numbers they would be -8,388.608 kW or -2,147,483.648 kW (Divisor 1000): never a real reading.
_INVALID_SIGNED = {6: {0x800000}, 8: {0xFF800000, 0x80000000}}


def is_invalid_demand(text: str) -> bool:
    """Whether a Demand field holds the ZigBee "no value" marker (`0x800000`, `0xff800000`, `0x80000000`)."""
    try:
        digits = hex_digits(text, "Demand")
    except BadResponse:
        return False
    return is_invalid_digits(digits)


def is_invalid_digits(digits: str) -> bool:
    """is_invalid_demand for digits already checked by hex_digits."""
    width = 6 if len(digits) <= 6 else 8 if len(digits) <= 8 else 0
    return int(digits, 16) in _INVALID_SIGNED.get(width, ())


def nonzero(value: int) -> int:
    """A Multiplier or Divisor of 0 counts as 1 (devices send 0 for 'not used')."""
    return value or 1


def scale(value: int, multiplier: int, divisor: int) -> float:
    """value x Multiplier / Divisor, with zeros counting as 1: (1234, 1, 1000) -> 1.234."""
    return value * nonzero(multiplier) / nonzero(divisor)


def zigbee_to_unix(timestamp: int) -> int:
    """ZigBee seconds (since 2000-01-01Z) to Unix seconds: 0x1c91ec39 -> 1426010041 (2015-03-10T17:54:01Z)."""
    return timestamp + ZIGBEE_EPOCH


def unix_to_datetime(seconds: int) -> datetime | None:
    """An aware UTC datetime, or None for a value no calendar can hold."""
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None
