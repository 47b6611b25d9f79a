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
"""

from __future__ import annotations

import http.cookiejar
import threading
import time

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

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


class _HTTPConnection(_DeadlineConnectionMixin, HTTPConnection):
    pass


class _HTTPSConnection(_DeadlineConnectionMixin, HTTPSConnection):
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
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_answer_bytes = max_answer_bytes
        session = requests.Session()
        # No proxies, no ~/.netrc: .netrc credentials would replace our Authorization header, and a gateway on
        # the local network must not be sent through a proxy from the environment.
        session.trust_env = False
        session.cookies.set_policy(_RefuseCookies())
        session.headers["Accept-Encoding"] = ACCEPT_ENCODING
        adapter = _DeadlineAdapter(pool_connections=8, pool_maxsize=pool_size, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self.session = session

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
        WATCHDOG.arm(token)
        response = None
        try:
            response = self.session.request(
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
            if response is not None:
                # After a complete read urllib3 has already put the connection back in the pool and this is a
                # no-op; after a refused or broken read it closes the connection instead of pooling it.
                response.close()
        if token.fired:
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
