"""Carries an HttpRequest over `requests` for synchronous callers (REST endpoint, admin action, commands).

One pooled Session per client; every transport failure becomes an EagleError whose message names the kind of
failure and the URL, never headers (which hold credentials). Three bounds hold whatever a gateway does:

1. Size: the body is read undecoded, in chunks, through `BoundedBody` (EAGLE_MAX_ANSWER_BYTES, compressed and
   decompressed); past it the connection is closed, not returned to the pool half read.
2. Time: each request has a deadline (the caller's, else connect + read timeout from now). The connect and
   read timeouts are cut to what is left of it, and the watchdog (watchdog.py) shuts the socket down when it
   passes, so a gateway trickling a byte at a time cannot hold the thread past it.
3. No cookies: the session's jar refuses every cookie, so nothing one household's gateway (or the relay,
   shared by every cloud household) sets is ever sent on behalf of another.
4. Where: a gateway's connection is made only to an address the AddressPolicy allows (addresses.py). The
   connection resolves the name itself, skips refused addresses, connects to an allowed one and checks the
   peer it got, so a name resolving to 127.0.0.1 (at once, or later: DNS rebinding) is never connected to.
   Requests to the relay (EAGLE_CLOUD_URL, a trusted setting) go through a session of their own, unchecked,
   so that no pooled connection ever serves both.
"""

from __future__ import annotations

import http.cookiejar
import socket
import sys
import threading
import time

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from loggerapp.eagle.addresses import AddressPolicy, RefusedAddress
from loggerapp.eagle.bounded import (
    ACCEPT_ENCODING,
    DEFAULT_MAX_ANSWER_BYTES,
    READ_CHUNK,
    BoundedBody,
    check_length,
)
from loggerapp.eagle.errors import BadResponse, EagleError, Unreachable
from loggerapp.eagle.watchdog import WATCHDOG, DeadlineToken
from loggerapp.eagle.wire import HttpRequest

_current = threading.local()  # the DeadlineToken of the request this thread is sending, for the connection


class _DeadlineConnectionMixin:
    """Tells the request's DeadlineToken which connection carries it (a pooled connection serves many)."""

    def request(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        token = getattr(_current, "token", None)
        self._eagle_deadline = token
        if token is not None:
            token.connection = self
        return super().request(*args, **kwargs)  # type: ignore[misc]


class _CheckedConnectMixin:
    """Connects only to addresses the request's AddressPolicy allows (point 4 of the module docstring).

    The policy comes through the thread (``_current.policy``, set by SyncTransport.send for a gateway's request);
    without one (the relay), urllib3 connects as usual. Exceptions are urllib3's own, as its `_new_conn` raises
    them, so requests classifies them as before; a refusal is also left in ``_current.refused`` for the transport.
    """

    def _new_conn(self):  # type: ignore[no-untyped-def]
        policy = getattr(_current, "policy", None)
        if policy is None:
            return super()._new_conn()  # type: ignore[misc]
        try:
            sock = connect_checked(
                (self._dns_host, self.port),  # type: ignore[attr-defined]
                self.timeout,  # type: ignore[attr-defined]
                policy,
                self.source_address,  # type: ignore[attr-defined]
                self.socket_options,  # type: ignore[attr-defined]
            )
        except RefusedAddress as exc:
            _current.refused = exc
            raise NewConnectionError(self, str(exc)) from None  # type: ignore[arg-type]
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[attr-defined, arg-type]
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out") from exc  # type: ignore[attr-defined]
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc  # type: ignore[arg-type]
        sys.audit("http.client.connect", self, self.host, self.port)  # type: ignore[attr-defined]
        return sock


def connect_checked(
    address: tuple[str, int],
    timeout: object,
    policy: AddressPolicy,
    source_address: tuple[str, int] | None = None,
    socket_options: list | None = None,
) -> socket.socket:
    """A socket connected to an address of ``address``'s host that ``policy`` allows, or RefusedAddress.

    Refused addresses among several are skipped (an mDNS name often resolves to a link-local IPv6 address beside
    the gateway's IPv4 one); only when none is left is the connection refused. The peer actually connected to
    is checked once more before the socket is handed over.
    """
    host, port = address
    host = host.strip("[]")
    infos = socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)
    allowed = [info for info in infos if policy.refusal(str(info[4][0])) is None]
    if not allowed:
        raise RefusedAddress(policy.refusal(str(infos[0][4][0])) if infos else f"{host} has no address")
    error: OSError | None = None
    for family, kind, proto, _name, sockaddr in allowed:
        sock = socket.socket(family, kind, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)  # type: ignore[arg-type]
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            reason = policy.refusal(sock.getpeername()[0])
            if reason:
                raise RefusedAddress(reason)
            return sock
        except OSError as exc:
            sock.close()
            if isinstance(exc, RefusedAddress):
                raise
            error = exc
    assert error is not None
    raise error


class _HTTPConnection(_DeadlineConnectionMixin, _CheckedConnectMixin, HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineConnectionMixin, _CheckedConnectMixin, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class _DeadlineAdapter(HTTPAdapter):
    """An HTTPAdapter whose pools make connections the watchdog can find."""

    def init_poolmanager(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


class _RefuseCookies(http.cookiejar.DefaultCookiePolicy):
    """Store no cookie and send none: an EAGLE exchange needs none, and a shared jar would cross households."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False


class SyncTransport:
    """A pooled `requests.Session`; `send(request, deadline) -> (status, body)` or an EagleError."""

    def __init__(
        self,
        connect_timeout: float,
        read_timeout: float,
        pool_size: int = 32,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        address_policy: AddressPolicy | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_answer_bytes = max_answer_bytes
        self.address_policy = address_policy or AddressPolicy()
        self.session = self._session(pool_size)  # gateways: connections checked against the address policy
        self.relay_session = self._session(pool_size)  # the relay (a trusted setting): never checked

    @staticmethod
    def _session(pool_size: int) -> requests.Session:
        session = requests.Session()
        # No proxies, no ~/.netrc: .netrc credentials would replace our Authorization header, and a gateway on
        # the local network must not be sent through a proxy from the environment.
        session.trust_env = False
        session.cookies.set_policy(_RefuseCookies())
        session.headers["Accept-Encoding"] = ACCEPT_ENCODING
        adapter = _DeadlineAdapter(pool_connections=8, pool_maxsize=pool_size, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def send(self, request: HttpRequest, deadline: float | None = None) -> tuple[int, bytes]:
        """Send and read the whole answer by `deadline` (a `time.monotonic()` instant; None: connect + read
        timeout from now), or raise an EagleError.

        The EagleError is raised after the `except` blocks on purpose: raised inside one, the library's exception
        would stay attached as `__context__`, and a requests exception carries the request with its headers.
        """
        now = time.monotonic()
        if deadline is None:
            deadline = now + self.connect_timeout + self.read_timeout
        left = deadline - now
        if left <= 0:
            raise Unreachable(f"no time left to ask {request.url} (the deadline has passed)")
        timeout = (min(self.connect_timeout, left), min(self.read_timeout, left))
        token = DeadlineToken(deadline)
        _current.token = token
        _current.policy = None if request.trusted_host else self.address_policy
        _current.refused = None
        session = self.relay_session if request.trusted_host else self.session
        WATCHDOG.arm(token)
        response = None
        try:
            response = session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=timeout,
                verify=request.verify_tls,
                allow_redirects=False,
                stream=True,
            )
            return response.status_code, self._read(response)
        except EagleError as exc:
            error: EagleError = exc
        except requests.exceptions.RequestException as exc:
            error = self._classify(exc, request.url)
        except urllib3.exceptions.HTTPError as exc:  # raised while reading the body
            error = self._classify_read(exc, request.url)
        except Exception as exc:  # e.g. a header requests refuses; never let a library error escape
            error = BadResponse(f"request to {request.url} failed ({type(exc).__name__})")
        finally:
            token.done = True
            _current.token = None
            _current.policy = None
            refused, _current.refused = _current.refused, None
            if response is not None:
                # After a complete read urllib3 has already put the connection back in the pool and this is a
                # no-op; after a refused or broken read it closes the connection instead of pooling it.
                response.close()
        if refused is not None:
            error = Unreachable(f"refused to connect to {request.url}: {refused}")
        elif token.fired:
            error = Unreachable(f"no complete answer from {request.url} by the deadline ({left:.3g} s)")
        raise error

    def _read(self, response: requests.Response) -> bytes:
        """The body, undecoded off the wire and bounded by BoundedBody."""
        length = response.headers.get("Content-Length")
        check_length(int(length) if length and length.strip().isdigit() else None, self.max_answer_bytes)
        body = BoundedBody(self.max_answer_bytes, response.headers.get("Content-Encoding"))
        for chunk in response.raw.stream(READ_CHUNK, decode_content=False):
            body.feed(chunk)
        return body.finish()

    def _classify(self, exc: requests.exceptions.RequestException, url: str) -> EagleError:
        """Every transport failure is the gateway or relay being unreachable for this poll."""
        if isinstance(exc, requests.exceptions.SSLError):
            return Unreachable(f"TLS failure talking to {url}")
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return Unreachable(f"no connection to {url} within {self.connect_timeout:g} s")
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return Unreachable(f"no answer from {url} within {self.read_timeout:g} s")
        if isinstance(exc, requests.exceptions.ConnectionError):
            return Unreachable(f"cannot talk to {url} ({_reason(exc)})")
        if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
            return Unreachable(f"the answer from {url} was cut off ({type(exc).__name__})")
        if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)):
            return Unreachable(f"invalid address {url!r}")
        return Unreachable(f"request to {url} failed ({type(exc).__name__})")

    def _classify_read(self, exc: urllib3.exceptions.HTTPError, url: str) -> EagleError:
        if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
            return Unreachable(f"no answer from {url} within {self.read_timeout:g} s")
        if isinstance(exc, urllib3.exceptions.SSLError):
            return Unreachable(f"TLS failure talking to {url}")
        return Unreachable(f"the answer from {url} was cut off ({type(exc).__name__})")

    def close(self) -> None:
        self.session.close()
        self.relay_session.close()


def _reason(exc: BaseException) -> str:
    """A short cause ("Connection refused", "Name or service not known") without the library's noise."""
    text = str(exc)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "nodename nor servname",
        "No route to host",
        "Connection reset",
        "Temporary failure in name resolution",
        "Network is unreachable",
        "RemoteDisconnected",
        "Connection aborted",
    ):
        if marker in text:
            return marker
    return type(exc).__name__
