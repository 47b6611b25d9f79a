"""The clients: drive a protocol exchange (legacy.py / eagle200.py) over a transport, time it, classify failures.

- SyncEagleClient: `requests`, for the REST endpoint, the admin action and management commands.
- AsyncEagleClient: aiohttp, for the pinger.
- client_for(household_or_target): a target bound to a shared synchronous client (admin, doctor).

Each client keeps one dialect per target (headers, auth and bodies built once; the EAGLE-200 meter address
remembered). Only EagleError subclasses leave the three public methods, with any echoed password blanked out.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any

from loggerapp.eagle.eagle200 import Eagle200Dialect
from loggerapp.eagle.errors import BadResponse, EagleError
from loggerapp.eagle.legacy import Exchange, LegacyDialect
from loggerapp.eagle.models import PROTOCOLS, EagleTarget, Price, Reading, Summation
from loggerapp.eagle.transport_async import AsyncTransport
from loggerapp.eagle.transport_sync import SyncTransport
from loggerapp.eagle.wire import basic_auth_header

Dialect = LegacyDialect | Eagle200Dialect
logger = logging.getLogger(__name__)
MAX_DIALECTS = 50_000  # cached targets per client; past this the cache starts over (households come and go)


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
    cloud_url: str | None, connect_timeout: float | None, read_timeout: float | None
) -> tuple[str, float, float]:
    """Both clients' relay URL and timeouts: the arguments given, else the EAGLE_* settings."""
    return (
        _settings_default("EAGLE_CLOUD_URL", cloud_url),
        float(_settings_default("EAGLE_CONNECT_TIMEOUT", connect_timeout)),
        float(_settings_default("EAGLE_READ_TIMEOUT", read_timeout)),
    )


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
    """Blocking client over a pooled requests.Session; defaults from settings EAGLE_CLOUD_URL / _TIMEOUTs."""

    def __init__(
        self,
        cloud_url: str | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> None:
        self.cloud_url, self.connect_timeout, self.read_timeout = _client_settings(
            cloud_url, connect_timeout, read_timeout
        )
        self._transport = SyncTransport(self.connect_timeout, self.read_timeout)
        self._dialects = _DialectCache(self.cloud_url)

    def __repr__(self) -> str:
        return f"<SyncEagleClient cloud_url={self.cloud_url!r}>"

    def _run(self, target: EagleTarget, command: str) -> Any:
        """Drive one exchange: send each request it yields, feed it the answer, return what it returns."""
        started = time.perf_counter()
        try:
            exchange: Exchange = getattr(self._dialects.get(target), command)()
            request = next(exchange)
            while True:
                answer = self._transport.send(request)
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

    def instantaneous_demand(self, target: EagleTarget) -> Reading:
        """Demand now (signed kW), with the meter's time and the raw fields."""
        return self._run(target, "demand")

    def price(self, target: EagleTarget) -> Price:
        """The current price (None when the device reports none)."""
        return self._run(target, "price")

    def summation(self, target: EagleTarget) -> Summation:
        """Cumulative kWh delivered and received."""
        return self._run(target, "summation")

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
    ) -> None:
        self.cloud_url, self.connect_timeout, self.read_timeout = _client_settings(
            cloud_url, connect_timeout, read_timeout
        )
        self.max_connections = max_connections
        self._transport = AsyncTransport(self.connect_timeout, self.read_timeout, max_connections)
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
                try:
                    request = exchange.send(answer)
                except StopIteration as done:
                    result = done.value
                    break
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
        return await self._run(target, "demand")

    async def price(self, target: EagleTarget) -> Price:
        return await self._run(target, "price")

    async def summation(self, target: EagleTarget) -> Summation:
        return await self._run(target, "summation")

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncEagleClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


# --- client_for: one target, a shared synchronous client ------------------------------------------------

_shared_lock = threading.Lock()
_shared: dict[tuple[Any, ...], SyncEagleClient] = {}


def shared_sync_client() -> SyncEagleClient:
    """A process-wide SyncEagleClient for the current settings (rebuilt when tests override them)."""
    from django.conf import settings

    key = (settings.EAGLE_CLOUD_URL, settings.EAGLE_CONNECT_TIMEOUT, settings.EAGLE_READ_TIMEOUT)
    with _shared_lock:
        client = _shared.get(key)
        if client is None:
            _shared.clear()
            client = _shared[key] = SyncEagleClient(*key)
        return client


class BoundClient:
    """A target and a client: `.instantaneous_demand()`, `.price()`, `.summation()` take no arguments."""

    def __init__(self, target: EagleTarget, client: SyncEagleClient) -> None:
        self.target = target
        self.client = client

    def __repr__(self) -> str:
        return f"<BoundClient {self.target.cloud_id} {self.target.protocol}>"

    def instantaneous_demand(self) -> Reading:
        return self.client.instantaneous_demand(self.target)

    def price(self) -> Price:
        return self.client.price(self.target)

    def summation(self) -> Summation:
        return self.client.summation(self.target)


def client_for(household_or_target: Any, client: SyncEagleClient | None = None) -> BoundClient:
    """Bind a Household (or an EagleTarget) to a synchronous client (the shared one unless given)."""
    target = (
        household_or_target
        if isinstance(household_or_target, EagleTarget)
        else EagleTarget.from_household(household_or_target)
    )
    return BoundClient(target, client or shared_sync_client())
