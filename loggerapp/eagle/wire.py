"""Sans-IO HTTP: the request the protocol code builds, and the status-code rules it applies to an answer.

The transports (transport_sync, transport_async) only carry an `HttpRequest` and hand back (status, body).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from loggerapp.eagle.addresses import AddressError, parse_address
from loggerapp.eagle.errors import BadCredentials, BadResponse, Unreachable

POST_MANAGER = "/cgi-bin/post_manager"


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """Everything a transport needs. Headers (which carry credentials) and auth stay out of the repr."""

    method: str
    url: str
    headers: dict[str, str] = field(repr=False)
    body: bytes
    verify_tls: bool = True
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    # True only for the relay (EAGLE_CLOUD_URL, a setting): its host is not checked against the address policy.
    trusted_host: bool = False


def header_value(value: str, what: str) -> str:
    """A value that can travel in an HTTP header (latin-1, one line), or BadCredentials naming only `what`."""
    if "\r" in value or "\n" in value:
        raise BadCredentials(f"the {what} contains a line break, which an HTTP header cannot carry")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise BadCredentials(f"the {what} has characters an HTTP header cannot carry") from None
    return value


def basic_auth_header(user: str, password: str) -> str:
    """`Basic <base64>` computed once per target instead of once per request."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def local_base_url(address: str, cloud_id: str, https: bool = False) -> tuple[str, bool]:
    """(`scheme://host[:port]`, is_https) for a local gateway; a blank address means `eagle-<cloud id>.local`.

    The address must be one host and an optional port (addresses.parse_address): the model and the import refuse
    anything else, and a row that still holds something else is Unreachable here rather than read generously.
    """
    address = (address or "").strip() or f"eagle-{cloud_id}.local"
    try:
        parsed = parse_address(address)
    except AddressError as exc:
        raise Unreachable(f"invalid gateway address {address[:80]!r} ({exc})") from None
    return f"{'https' if https else 'http'}://{parsed.netloc}", https


def check_status(status: int, body: bytes) -> None:
    """Apply the reference's status rules before reading the body.

    1. 2xx: go on and parse.
    2. 401 / 403: the credentials were refused.
    3. 503: a busy EAGLE-100 ("Timeout waiting for response"): unreachable for this poll.
    4. Anything else (other 5xx, 404, 3xx...): a bad response, keeping the body for diagnosis.
    """
    if 200 <= status < 300:
        return
    if status in (401, 403):
        raise BadCredentials(f"HTTP {status}: the gateway refused the credentials", body)
    if status == 503:
        raise Unreachable("HTTP 503: the gateway is busy", body)
    raise BadResponse(f"HTTP {status}", body)
