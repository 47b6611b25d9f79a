"""The clients: drive a protocol exchange (legacy.py / eagle200.py) over a transport, time it, classify failures.

- SyncEagleClient: `requests`, for the REST endpoint, the admin action and management commands.
- AsyncEagleClient: aiohttp, for the pinger.

Each client keeps one dialect per target (headers, auth and bodies built once; the EAGLE-200 meter address
remembered). Only EagleError subclasses leave the three public methods, with any echoed password blanked out.

Where (issue 11): a local gateway's connection goes only to an address the AddressPolicy allows (addresses.py;
from EAGLE_ALLOWED_NETWORKS / EAGLE_REFUSED_NETWORKS unless given), checked by both transports at connect time.

Bounds (issue 11): every answer is capped at EAGLE_MAX_ANSWER_BYTES by the transports; the synchronous methods
take an overall `deadline` for the whole exchange; the async client parses an answer larger than
INLINE_PARSE_BYTES in a worker thread, so that even the costliest answer under the cap (about 15 ms of XML
parsing for 64 KB of elements, against 0.1 ms for a real one; bench/eagle_answers.py) never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from typing import Any

from loggerapp.eagle.addresses import AddressPolicy
from loggerapp.eagle.eagle200 import Eagle200Dialect
from loggerapp.eagle.errors import BadResponse, EagleError, Unreachable
from loggerapp.eagle.legacy import Exchange, LegacyDialect
from loggerapp.eagle.models import PROTOCOLS, EagleTarget, Price, PriceAndSummation, Reading, Summation
from loggerapp.eagle.transport_async import AsyncTransport
from loggerapp.eagle.transport_sync import SyncTransport
from loggerapp.eagle.wire import basic_auth_header

Dialect = LegacyDialect | Eagle200Dialect
logger = logging.getLogger(__name__)
MAX_DIALECTS = 50_000  # cached targets per client; past this the cache starts over (households come and go)
# Answers longer than this are parsed off the event loop. Real answers are 0.3-3 KB; only a broken or hostile
# gateway sends more, and such an answer can cost tens of milliseconds of parsing.
INLINE_PARSE_BYTES = 16384


def _settings_default(name: str, value: Any) -> Any:
    if value is not None:
        return value
    from django.conf import settings

    return getattr(settings, name)


def _scrubbed(exc: EagleError, target: EagleTarget) -> EagleError:
    """Blank the target's credentials out of an error, including the Basic header a local gateway could echo."""
    if target.protocol == "cloud":
        return exc.scrub(target.password, target.user_email)
    basic = basic_auth_header(target.cloud_id, target.password).removeprefix("Basic ") if target.password else ""
    return exc.scrub(target.password, basic)


def _internal_error(exc: Exception, target: EagleTarget) -> BadResponse:
    """A bug in the client becomes a BadResponse for this poll, logged with where it happened.

    Only the traceback's frames are logged, not the exception's text: a library's message can quote a header.
    """
    frames = "".join(traceback.format_tb(exc.__traceback__))
    logger.error("EAGLE client bug (%s) polling %s:\n%s", type(exc).__name__, target.cloud_id, frames)
    return BadResponse(f"internal error ({type(exc).__name__})")


def _client_settings(
    cloud_url: str | None, connect_timeout: float | None, read_timeout: float | None, max_answer_bytes: int | None
) -> tuple[str, float, float, int]:
    """Both clients' relay URL, timeouts and answer ceiling: the arguments given, else the EAGLE_* settings."""
    return (
        _settings_default("EAGLE_CLOUD_URL", cloud_url),
        float(_settings_default("EAGLE_CONNECT_TIMEOUT", connect_timeout)),
        float(_settings_default("EAGLE_READ_TIMEOUT", read_timeout)),
        int(_settings_default("EAGLE_MAX_ANSWER_BYTES", max_answer_bytes)),
    )


def _step(exchange: Exchange, answer: tuple[int, bytes]) -> tuple[bool, Any]:
    """Feed an answer to an exchange: (False, next request) or (True, result). StopIteration cannot cross a
    thread's Future, so it is turned into a value here."""
    try:
        return False, exchange.send(answer)
    except StopIteration as done:
        return True, done.value


class _DialectCache:
    """target -> dialect, built on first use. Safe enough across threads: a race builds a dialect twice."""

    def __init__(self, cloud_url: str) -> None:
        self.cloud_url = cloud_url
        self._dialects: dict[EagleTarget, Dialect] = {}

    def get(self, target: EagleTarget) -> Dialect:
        dialect = self._dialects.get(target)
        if dialect is None:
            if target.protocol not in PROTOCOLS:
                raise BadResponse(f"unsupported protocol {target.protocol!r}"[:200])
            if len(self._dialects) >= MAX_DIALECTS:
                self._dialects.clear()
            if target.protocol == "eagle200":
                dialect = Eagle200Dialect(target)
            else:
                dialect = LegacyDialect(target, self.cloud_url)
            self._dialects[target] = dialect
        return dialect

    def forget(self, target: EagleTarget) -> None:
        self._dialects.pop(target, None)


class SyncEagleClient:
    """Blocking client over a pooled requests.Session; defaults from the settings EAGLE_CLOUD_URL, _TIMEOUTs and
    EAGLE_MAX_ANSWER_BYTES.

    `deadline` (a `time.monotonic()` instant) ends the whole exchange, all its requests, by then: a gateway that
    has not answered completely is Unreachable. Without one, each request ends by connect + read timeout.
    """

    def __init__(
        self,
        cloud_url: str | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        max_answer_bytes: int | None = None,
        address_policy: AddressPolicy | None = None,
    ) -> None:
        self.cloud_url, self.connect_timeout, self.read_timeout, self.max_answer_bytes = _client_settings(
            cloud_url, connect_timeout, read_timeout, max_answer_bytes
        )
        self.address_policy = address_policy or AddressPolicy.from_settings()
        self._transport = SyncTransport(
            self.connect_timeout,
            self.read_timeout,
            max_answer_bytes=self.max_answer_bytes,
            address_policy=self.address_policy,
        )
        self._dialects = _DialectCache(self.cloud_url)

    def __repr__(self) -> str:
        return f"<SyncEagleClient cloud_url={self.cloud_url!r}>"

    def _run(self, target: EagleTarget, command: str, deadline: float | None = None) -> Any:
        """Drive one exchange: send each request it yields, feed it the answer, return what it returns."""
        started = time.perf_counter()
        try:
            if deadline is not None and deadline <= time.monotonic():
                raise Unreachable("no time left to ask the gateway (the deadline has passed)")
            exchange: Exchange = getattr(self._dialects.get(target), command)()
            request = next(exchange)
            while True:
                answer = self._transport.send(request, deadline)
                try:
                    request = exchange.send(answer)
                except StopIteration as done:
                    result = done.value
                    break
        except EagleError as exc:
            error = _scrubbed(exc, target)
        except Exception as exc:  # a bug must still surface as an EagleError; the type names it
            error = _internal_error(exc, target)
        else:
            result.latency_s = time.perf_counter() - started
            return result
        raise error

    def instantaneous_demand(self, target: EagleTarget, *, deadline: float | None = None) -> Reading:
        """Demand now (signed kW), with the meter's time and the raw fields; Unreachable if not done by
        `deadline` (a `time.monotonic()` instant)."""
        result: Reading = self._run(target, "demand", deadline)
        return result

    def price(self, target: EagleTarget, *, deadline: float | None = None) -> Price:
        """The current price (None when the device reports none)."""
        result: Price = self._run(target, "price", deadline)
        return result

    def summation(self, target: EagleTarget, *, deadline: float | None = None) -> Summation:
        """Cumulative kWh delivered and received."""
        result: Summation = self._run(target, "summation", deadline)
        return result

    def price_and_summation(self, target: EagleTarget, *, deadline: float | None = None) -> PriceAndSummation:
        """Price and cumulative energy in one exchange (two requests on the legacy protocols, one on eagle200)."""
        result: PriceAndSummation = self._run(target, "price_and_summation", deadline)
        return result

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> SyncEagleClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncEagleClient:
    """The pinger's client: one aiohttp session for all households; use as `async with`, or call close()."""

    def __init__(
        self,
        cloud_url: str | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        max_connections: int = 1024,
        max_answer_bytes: int | None = None,
        address_policy: AddressPolicy | None = None,
    ) -> None:
        self.cloud_url, self.connect_timeout, self.read_timeout, self.max_answer_bytes = _client_settings(
            cloud_url, connect_timeout, read_timeout, max_answer_bytes
        )
        self.max_connections = max_connections
        self.address_policy = address_policy or AddressPolicy.from_settings()
        self._transport = AsyncTransport(
            self.connect_timeout,
            self.read_timeout,
            max_connections,
            max_answer_bytes=self.max_answer_bytes,
            address_policy=self.address_policy,
        )
        self._dialects = _DialectCache(self.cloud_url)

    def __repr__(self) -> str:
        return f"<AsyncEagleClient cloud_url={self.cloud_url!r} max_connections={self.max_connections}>"

    async def _run(self, target: EagleTarget, command: str) -> Any:
        """As SyncEagleClient._run, awaiting the transport. CancelledError (a BaseException) passes untouched."""
        started = time.perf_counter()
        try:
            exchange: Exchange = getattr(self._dialects.get(target), command)()
            request = next(exchange)
            while True:
                answer = await self._transport.send(request)
                if len(answer[1]) > INLINE_PARSE_BYTES:
                    finished, value = await asyncio.to_thread(_step, exchange, answer)
                else:
                    finished, value = _step(exchange, answer)
                if finished:
                    result = value
                    break
                request = value
        except EagleError as exc:
            error = _scrubbed(exc, target)
        except Exception as exc:
            error = _internal_error(exc, target)
        else:
            result.latency_s = time.perf_counter() - started
            return result
        raise error

    async def instantaneous_demand(self, target: EagleTarget) -> Reading:
        """Demand now (signed kW), with the meter's time and the raw fields."""
        result: Reading = await self._run(target, "demand")
        return result

    async def price(self, target: EagleTarget) -> Price:
        result: Price = await self._run(target, "price")
        return result

    async def summation(self, target: EagleTarget) -> Summation:
        result: Summation = await self._run(target, "summation")
        return result

    async def price_and_summation(self, target: EagleTarget) -> PriceAndSummation:
        """Price and cumulative energy in one exchange (the pinger's price poll)."""
        result: PriceAndSummation = await self._run(target, "price_and_summation")
        return result

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncEagleClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
