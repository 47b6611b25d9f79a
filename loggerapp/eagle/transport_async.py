"""Carries an HttpRequest over aiohttp: the pinger's hot path (thousands of households every six seconds).

One ClientSession and one TCPConnector for the client's lifetime (keep-alive, `limit=max_connections`,
no per-host limit), a ClientTimeout with connect, sock_read and total, no cookie jar (nothing to keep, and
cookies must never cross households), no environment proxies.

The body is read undecoded (`auto_decompress=False`) in chunks through `BoundedBody`: at most
EAGLE_MAX_ANSWER_BYTES received and as many decoded, so a 600 MB answer or a gzip bomb costs one ceiling of
memory and a fraction of a millisecond of the event loop, then the connection is closed (a half-read
connection never goes back to the pool).

A gateway's connections are made only to addresses the AddressPolicy allows (addresses.py): the connector's
socket factory is handed each address just before the socket connects to it, and refuses the ones the policy
refuses, so a name resolving to 127.0.0.1 (DNS rebinding included) never gets a connection, and neither does a
literal address. Requests to the relay (EAGLE_CLOUD_URL, a trusted setting) use a session of their own, without
the check, so no pooled connection ever serves both.
"""

from __future__ import annotations

import contextvars
import socket
import ssl

import aiohttp

from loggerapp.eagle.addresses import AddressPolicy, RefusedAddress
from loggerapp.eagle.bounded import ACCEPT_ENCODING, DEFAULT_MAX_ANSWER_BYTES, READ_CHUNK, BoundedBody, check_length
from loggerapp.eagle.errors import BadResponse, EagleError, Unreachable
from loggerapp.eagle.wire import HttpRequest


class _Attempts:
    """The addresses the socket factory refused and allowed for the request being sent."""

    __slots__ = ("allowed", "refused")

    def __init__(self) -> None:
        self.refused: list[str] = []
        self.allowed = 0


# aiohttp may try several addresses of a name, in tasks that copy the context: they share the one _Attempts.
_attempts: contextvars.ContextVar[_Attempts | None] = contextvars.ContextVar("eagle_attempts", default=None)


class AsyncTransport:
    """`await send(request) -> (status, body)` or an EagleError. Create and use inside one event loop."""

    def __init__(
        self,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int = 1024,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        address_policy: AddressPolicy | None = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self.max_answer_bytes = max_answer_bytes
        self.address_policy = address_policy or AddressPolicy()
        self._sessions: dict[bool, aiohttp.ClientSession] = {}  # trusted_host -> session

    def _socket_for(self, addr_info: tuple) -> socket.socket:
        """The connector's socket factory for gateways: a socket only for an address the policy allows."""
        family, kind, proto, _name, sockaddr = addr_info
        reason = self.address_policy.refusal(sockaddr[0])
        attempts = _attempts.get()
        if reason is not None:
            if attempts is not None:
                attempts.refused.append(reason)
            raise RefusedAddress(reason)
        if attempts is not None:
            attempts.allowed += 1
        return socket.socket(family=family, type=kind, proto=proto)

    def _open(self, trusted_host: bool) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.max_connections,
            limit_per_host=0,  # the cloud relay is one host serving every cloud household
            keepalive_timeout=30,
            ttl_dns_cache=300,
            socket_factory=None if trusted_host else self._socket_for,
        )
        timeout = aiohttp.ClientTimeout(
            total=self.connect_timeout + self.read_timeout,
            connect=self.connect_timeout,
            sock_read=self.read_timeout,
        )
        session = self._sessions[trusted_host] = aiohttp.ClientSession(
            connector=connector,
            timeout=timeout,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            raise_for_status=False,
            auto_decompress=False,  # BoundedBody decodes, under the ceiling
            headers={"Accept-Encoding": ACCEPT_ENCODING},
        )
        return session

    async def send(self, request: HttpRequest) -> tuple[int, bytes]:
        """Send and read the whole answer.

        As in the sync transport, the EagleError is raised after the `except` block so that the library's
        exception (which may carry request details) is not chained to it.
        """
        session = self._sessions.get(request.trusted_host) or self._open(request.trusted_host)
        attempts = _Attempts()
        _attempts.set(attempts)
        try:
            async with session.request(
                request.method,
                request.url,
                data=request.body,
                headers=request.headers,
                ssl=request.verify_tls,
                allow_redirects=False,
            ) as response:
                try:
                    return response.status, await self._read(response)
                except BaseException:
                    response.close()  # drop the connection: the rest of this answer must not reach the next one
                    raise
        except EagleError as exc:
            error: EagleError = exc
        except TimeoutError:  # aiohttp's connect and read timeouts are TimeoutError subclasses
            error = Unreachable(
                f"no answer from {request.url} within {self.connect_timeout:g} s connect / {self.read_timeout:g} s read"
            )
        except (aiohttp.ClientSSLError, ssl.SSLError):
            error = Unreachable(f"TLS failure talking to {request.url}")
        except aiohttp.ClientConnectorError as exc:
            if attempts.refused and not attempts.allowed:  # every address of the host was refused
                error = Unreachable(f"refused to connect to {request.url}: {attempts.refused[0]}")
            else:
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

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        check_length(response.content_length, self.max_answer_bytes)
        if response.content_length is not None and "Content-Encoding" not in response.headers:
            # The usual answer: a declared length within the ceiling, nothing to decode. The HTTP parser delivers
            # exactly that many bytes, so one read is as bounded as the chunked loop below, and cheaper.
            return await response.read()
        body = BoundedBody(self.max_answer_bytes, response.headers.get("Content-Encoding"))
        async for chunk in response.content.iter_chunked(READ_CHUNK):
            body.feed(chunk)
        return body.finish()

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()


def _os_reason(exc: aiohttp.ClientConnectorError) -> str:
    os_error = getattr(exc, "os_error", None)
    return (getattr(os_error, "strerror", None) or type(os_error or exc).__name__) if os_error else type(exc).__name__
