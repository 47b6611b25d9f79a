"""Carries an HttpRequest over `requests` for synchronous callers (REST endpoint, admin action, commands).

One pooled Session per client; explicit (connect, read) timeouts; every transport failure becomes an
EagleError whose message names the kind of failure and the URL, never headers (which hold credentials).
"""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter

from loggerapp.eagle.errors import BadResponse, EagleError, Unreachable
from loggerapp.eagle.wire import HttpRequest


class SyncTransport:
    """A pooled `requests.Session`; `send(request) -> (status, body)` or an EagleError."""

    def __init__(self, connect_timeout: float, read_timeout: float, pool_size: int = 32) -> None:
        self.timeout = (connect_timeout, read_timeout)
        session = requests.Session()
        # No proxies, no ~/.netrc: .netrc credentials would replace our Authorization header, and a gateway on
        # the local network must not be sent through a proxy from the environment.
        session.trust_env = False
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=pool_size, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self.session = session

    def send(self, request: HttpRequest) -> tuple[int, bytes]:
        """Send and read the whole answer (timeouts: connect, then each read).

        The EagleError is raised after the `except` block on purpose: raised inside it, the library's exception
        would stay attached as `__context__`, and a requests exception carries the request with its headers.
        """
        try:
            response = self.session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=self.timeout,
                verify=request.verify_tls,
                allow_redirects=False,
            )
            return response.status_code, response.content
        except requests.exceptions.RequestException as exc:
            error = self._classify(exc, request.url)
        except Exception as exc:  # e.g. a header requests refuses; never let a library error escape
            error = BadResponse(f"request to {request.url} failed ({type(exc).__name__})")
        raise error

    def _classify(self, exc: requests.exceptions.RequestException, url: str) -> EagleError:
        """Every transport failure is the gateway or relay being unreachable for this poll."""
        if isinstance(exc, requests.exceptions.SSLError):
            return Unreachable(f"TLS failure talking to {url}")
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return Unreachable(f"no connection to {url} within {self.timeout[0]:g} s")
        if isinstance(exc, requests.exceptions.ReadTimeout):
            return Unreachable(f"no answer from {url} within {self.timeout[1]:g} s")
        if isinstance(exc, requests.exceptions.ConnectionError):
            return Unreachable(f"cannot talk to {url} ({_reason(exc)})")
        if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
            return Unreachable(f"the answer from {url} was cut off ({type(exc).__name__})")
        if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema)):
            return Unreachable(f"invalid address {url!r}")
        return Unreachable(f"request to {url} failed ({type(exc).__name__})")

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
