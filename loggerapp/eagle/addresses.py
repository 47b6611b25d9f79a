"""Gateway addresses: what a household's ``address`` may say, and which network addresses the logger may reach.

Why (issue 11, SSRF): whoever may edit a household chooses where the web server and the pinger send an HTTP
POST. Left open, that reaches this machine's own services (PostgreSQL, Redis, the admin), the cloud metadata
service at 169.254.169.254, and whatever else the server can reach, and the answers tell which ports are open.
Two rules hold it, both here, pure (no I/O, no Django):

1. ``parse_address`` accepts one spelling only: a host (a DNS name, a dotted-quad IPv4 address, or an IPv6
   address in brackets) and an optional decimal port. Nothing else: no scheme, path, query, fragment,
   user name, backslash or white space, and no IPv4 address that only some resolvers read as one (``127.1``,
   ``2130706433``, ``0x7f.0.0.1``, ``0177.0.0.1``, leading zeros). One spelling means the address the admin
   shows is the address the logger uses. (HTTPS, for an EAGLE 3, is the household's own ``https`` flag.)
2. ``AddressPolicy.refusal`` says whether one *resolved* IP address may be connected to. Refused by default:
   loopback, link-local (169.254.0.0/16 with the cloud metadata address, fe80::/10), multicast, unspecified
   and reserved addresses, and AWS's IPv6 metadata address. Private ranges stay allowed: EAGLEs sit on home
   and VPN networks. ``EAGLE_REFUSED_NETWORKS`` refuses more (always wins), ``EAGLE_ALLOWED_NETWORKS`` allows
   some of the refused ones back (the test suite's simulator on 127.0.0.1). IPv4-mapped and NAT64 IPv6
   addresses are judged by the IPv4 address inside them.

The transports apply rule 2 at connect time, to the address actually connected to, so a DNS name that resolves
to 127.0.0.1 (or starts to, DNS rebinding) is refused too. The model, the admin form and the import apply both
rules to what is typed (loggerapp.validators), rule 2 to literal addresses only: a name is judged when it is
resolved. The cloud relay (EAGLE_CLOUD_URL) is a setting, trusted, and not checked.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# (network, what it is): refused unless EAGLE_ALLOWED_NETWORKS allows it back. Order matters only for the
# words of a refusal: the first network that holds the address names it.
BUILTIN_REFUSED: tuple[tuple[str, str], ...] = (
    ("127.0.0.0/8", "loopback"),
    ("0.0.0.0/8", "unspecified"),  # Linux connects 0.0.0.0 to this machine
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),  # includes the broadcast address 255.255.255.255
    ("::1/128", "loopback"),
    ("::/128", "unspecified"),
    ("::/96", "IPv4-compatible (deprecated)"),
    ("fe80::/10", "link-local"),
    ("ff00::/8", "multicast"),
    ("fd00:ec2::254/128", "cloud metadata"),  # AWS's IPv6 instance metadata service
)
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
LOOPBACK_NAMES = re.compile(r"(?:.+\.)?localhost|localhost\.localdomain", re.IGNORECASE)  # RFC 6761
MAX_ADDRESS_LENGTH = 255
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.IGNORECASE)
_PORT = re.compile(r"[1-9][0-9]{0,4}")
_FORBIDDEN = (
    ("://", "no scheme: leave out http:// or https:// (an EAGLE 3's HTTPS is a setting of its own)"),
    ("@", "no user name or password: the install code goes in the password field"),
    ("/", "no path: only the host and an optional :port"),
    ("\\", "no backslash"),
    ("?", "no query ('?')"),
    ("#", "no fragment ('#')"),
    ("%", "no percent sign (no encoded characters, no IPv6 zone)"),
)


class AddressError(ValueError):
    """An address that is not one host and an optional port; the message says what to write instead."""


@dataclass(frozen=True, slots=True)
class GatewayAddress:
    """A parsed address: ``host`` as it goes in the URL (an IPv6 address with its brackets), ``ip`` when the
    host is a literal address, ``port`` when one was given."""

    host: str
    port: int | None = None
    ip: IPAddress | None = None

    @property
    def netloc(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


def parse_address(text: str) -> GatewayAddress:
    """Parse ``host``, ``host:port``, ``a.b.c.d[:port]`` or ``[v6][:port]``; AddressError for anything else."""
    if not isinstance(text, str) or not text:
        raise AddressError("an address is a host name or IP address with an optional :port")
    if len(text) > MAX_ADDRESS_LENGTH:
        raise AddressError(f"an address has at most {MAX_ADDRESS_LENGTH} characters")
    for marker, reason in _FORBIDDEN:
        if marker in text:
            raise AddressError(reason)
    if any(char.isspace() or not char.isprintable() or not char.isascii() for char in text):
        raise AddressError("no spaces or special characters: a host name is letters, digits, '-' and '.'")
    if text.startswith("["):
        return _parse_bracketed(text)
    if text.count(":") > 1:
        raise AddressError("an IPv6 address goes in brackets, e.g. [2001:db8::20] or [2001:db8::20]:8080")
    host, colon, port_text = text.partition(":")
    port = _port(port_text) if colon else None
    return _with_port(_host(host), port)


def _with_port(host: GatewayAddress, port: int | None) -> GatewayAddress:
    return GatewayAddress(host.host, port, host.ip)


def _parse_bracketed(text: str) -> GatewayAddress:
    inner, bracket, rest = text[1:].partition("]")
    if not bracket:
        raise AddressError("an IPv6 address in brackets needs its closing ']'")
    try:
        ip = ipaddress.IPv6Address(inner)
    except ValueError:
        raise AddressError(f"[{inner[:60]}] is not an IPv6 address") from None
    if rest and not rest.startswith(":"):
        raise AddressError("after ']' only a :port may follow")
    port = _port(rest[1:]) if rest else None
    return GatewayAddress(f"[{ip.compressed}]", port, ip)


def _port(text: str) -> int:
    if not _PORT.fullmatch(text) or int(text) > 65535:
        raise AddressError("the port is a number from 1 to 65535, without leading zeros")
    return int(text)


def _host(host: str) -> GatewayAddress:
    if not host:
        raise AddressError("the host is missing before ':'")
    if _looks_numeric(host):
        try:
            ip = ipaddress.IPv4Address(host)
        except ValueError:
            raise AddressError(
                f"{host[:60]!r} is not an IPv4 address as written here: use four decimal numbers from 0 to 255 "
                "without leading zeros, e.g. 192.168.1.20"
            ) from None
        return GatewayAddress(str(ip), None, ip)
    name = host.lower()
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise AddressError(
            f"{host[:60]!r} is not a host name: labels of letters, digits and '-' (not first or last), "
            "separated by single dots"
        )
    return GatewayAddress(name)


def _looks_numeric(host: str) -> bool:
    """True for anything a C resolver may read as an IPv4 address (inet_aton accepts 127.1, 2130706433,
    0x7f000001 and 0177.0.0.1), and for names whose last label is all digits (no real name ends so)."""
    try:
        socket.inet_aton(host)
        return True
    except OSError:
        pass
    return host.rsplit(".", 1)[-1].isdigit()


def loopback_name(host: str) -> bool:
    """``localhost`` and names under ``.localhost``: they mean this machine whatever DNS says (RFC 6761)."""
    return LOOPBACK_NAMES.fullmatch(host.rstrip(".")) is not None


# --- which resolved addresses may be connected to ------------------------------------------------------------


@dataclass(frozen=True)
class AddressPolicy:
    """Which IP addresses a gateway may have (module docstring, rule 2). Hashable: clients compare policies."""

    allowed: tuple[Network, ...] = ()
    refused: tuple[Network, ...] = ()
    builtin: tuple[tuple[Network, str], ...] = field(
        default=tuple((ipaddress.ip_network(net), what) for net, what in BUILTIN_REFUSED), repr=False
    )
    # The pinger asks once per new connection, often for the same few thousand addresses: remembered answers cost
    # under 1 us instead of 10-20 us of network arithmetic.
    _remembered: Callable[[str], str | None] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_remembered", functools.lru_cache(maxsize=8192)(self._judge))

    @classmethod
    def from_settings(cls) -> AddressPolicy:
        """EAGLE_ALLOWED_NETWORKS and EAGLE_REFUSED_NETWORKS (already parsed by iseif/settings.py)."""
        from django.conf import settings

        return cls(
            allowed=tuple(getattr(settings, "EAGLE_ALLOWED_NETWORKS", ())),
            refused=tuple(getattr(settings, "EAGLE_REFUSED_NETWORKS", ())),
        )

    def refusal(self, address: str | IPAddress) -> str | None:
        """None when the logger may connect to ``address``, else why not (one short sentence)."""
        return self._remembered(str(address))

    def _judge(self, address: str) -> str | None:
        try:
            ip: IPAddress = ipaddress.ip_address(address)
        except ValueError:
            return f"{address[:60]!r} is not an IP address"
        shown = str(ip)
        ip = _embedded_ipv4(ip)
        if any(ip in network for network in self.refused if network.version == ip.version):
            return f"{shown} is in EAGLE_REFUSED_NETWORKS"
        if any(ip in network for network in self.allowed if network.version == ip.version):
            return None
        for network, what in self.builtin:
            if network.version == ip.version and ip in network:
                return f"{shown} is refused: {what}, not a gateway's address (EAGLE_ALLOWED_NETWORKS can allow it)"
        return None

    def check_typed(self, text: str) -> None:
        """Both rules on what someone typed: AddressError if the address is malformed or a refused literal."""
        parsed = parse_address(text)
        if parsed.ip is not None:
            reason = self.refusal(parsed.ip)
        elif loopback_name(parsed.host):
            reason = self.refusal(ipaddress.IPv4Address("127.0.0.1"))
            reason = reason and f"{parsed.host} means this machine, not a gateway"
        else:
            reason = None
        if reason:
            raise AddressError(reason)


def _embedded_ipv4(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::a.b.c.d) address carries, else ip."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


class RefusedAddress(OSError):
    """A connection the address policy refused before it was made (the transports catch it)."""
