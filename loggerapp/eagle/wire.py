"""Sans-IO HTTP: the request the protocol code builds, and the status-code rules it applies to an answer.

The transports (transport_sync, transport_async) only carry an `HttpRequest` and hand back (status, body).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

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


def local_base_url(address: str, cloud_id: str) -> tuple[str, bool]:
    """(`scheme://host[:port]`, is_https) for a local gateway; a blank address means `eagle-<cloud id>.local`."""
    address = (address or "").strip()
    if not address:
        address = f"eagle-{cloud_id}.local"
    lowered = address.lower()
    if lowered.startswith("https://"):
        scheme, rest = "https", address[8:]
    elif lowered.startswith("http://"):
        scheme, rest = "http", address[7:]
    else:
        scheme, rest = "http", address
    host = rest.split("/", 1)[0]  # an address pasted with a path keeps only host[:port]
    host = host.rpartition("@")[2]  # and one pasted with `user:password@` loses that: credentials go in auth
    return f"{scheme}://{host}", scheme == "https"


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
