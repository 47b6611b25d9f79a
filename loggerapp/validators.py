"""Validation of values that end up in file names, S3 keys and URLs."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

CLOUD_ID_RE = re.compile(r"[0-9a-f]{6}")


def normalize_cloud_id(value: str) -> str:
    """Lower-case a cloud id; it keeps its leading zeros because it is text, never an integer."""
    return value.strip().lower() if isinstance(value, str) else value


def is_cloud_id(value: object) -> bool:
    return isinstance(value, str) and CLOUD_ID_RE.fullmatch(value) is not None


def validate_cloud_id(value: str) -> None:
    """Exactly six hex digits: the id becomes part of paths and keys, so nothing else may pass."""
    if not is_cloud_id(value):
        raise ValidationError(
            "A cloud id is exactly 6 hexadecimal digits (for example 002506), not %(value)r.",
            code="invalid_cloud_id",
            params={"value": value if not isinstance(value, str) else value[:40]},
        )


def validate_gateway_address(value: str) -> None:
    """One host (name, IPv4, [IPv6]) and an optional port, and not a refused address: the one rule of the model,
    the admin form and import_households (loggerapp/eagle/addresses.py says why). Blank is allowed (the
    gateway's mDNS name); names are judged again when the transports resolve them."""
    from loggerapp.eagle.addresses import AddressError, AddressPolicy

    value = value.strip() if isinstance(value, str) else value  # surrounding blanks: the client strips them too
    if not value:
        return
    try:
        AddressPolicy.from_settings().check_typed(value)
    except AddressError as exc:
        raise ValidationError(
            "Not a gateway address: %(reason)s.", code="invalid_gateway_address", params={"reason": str(exc)}
        ) from None
