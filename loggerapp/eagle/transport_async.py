"""Carries an HttpRequest over aiohttp: the pinger's hot path (thousands of households every six seconds).

One ClientSession and one TCPConnector for the client's lifetime (keep-alive, `limit=max_connections`,
no per-host limit), a ClientTimeout with connect, sock_read and total, no cookie jar (nothing to keep, and
cookies must never cross households), no environment proxies.
"""

from __future__ import annotations

import ssl

import aiohttp

from loggerapp.eagle.errors import BadResponse, EagleError, Unreachable
from loggerapp.eagle.wire import HttpRequest


class AsyncTransport:
    """`await send(request) -> (status, body)` or an EagleError. Create and use inside one event loop."""

    def __init__(self, connect_timeout: float, read_timeout: float, max_connections: int = 1024) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            limit_per_host=0,  # the cloud relay is one host serving every cloud household
            keepalive_timeout=30,
            ttl_dns_cache=300,
        )
        timeout = aiohttp.ClientTimeout(
            total=self.connect_timeout + self.read_timeout,
            connect=self.connect_timeout,
            sock_read=self.read_timeout,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            raise_for_status=False,
            auto_decompress=True,
        )
        return self._session

    async def send(self, request: HttpRequest) -> tuple[int, bytes]:
        """Send and read the whole answer.

        As in the sync transport, the EagleError is raised after the `except` block so that the library's
        exception (which may carry request details) is not chained to it.
        """
        session = self._session or self._open()
        try:
            async with session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                ssl=request.verify_tls,
                allow_redirects=False,
            ) as response:
                return response.status, await response.read()
        except TimeoutError:  # aiohttp's connect and read timeouts are TimeoutError subclasses
            error: EagleError = Unreachable(
                f"no answer from {request.url} within {self.connect_timeout:g} s connect / {self.read_timeout:g} s read"
            )
        except (aiohttp.ClientSSLError, ssl.SSLError):
            error = Unreachable(f"TLS failure talking to {request.url}")
        except aiohttp.ClientConnectorError as exc:
            error = Unreachable(f"cannot connect to {request.url} ({_os_reason(exc)})")
        except aiohttp.ServerDisconnectedError:
            error = Unreachable(f"{request.url} closed the connection without answering")
        except aiohttp.ClientPayloadError:
            error = Unreachable(f"the answer from {request.url} was cut off")
        except aiohttp.InvalidURL:
            error = Unreachable(f"invalid address {request.url!r}")
        except (aiohttp.ClientError, OSError) as exc:
            error = Unreachable(f"request to {request.url} failed ({type(exc).__name__})")
        except Exception as exc:  # never let a library error escape (CancelledError is a BaseException: passes)
            error = BadResponse(f"request to {request.url} failed ({type(exc).__name__})")
        raise error

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _os_reason(exc: aiohttp.ClientConnectorError) -> str:
    os_error = getattr(exc, "os_error", None)
    return (getattr(os_error, "strerror", None) or type(os_error or exc).__name__) if os_error else type(exc).__name__
