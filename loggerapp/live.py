"""One bounded live read of a household's EAGLE: the admin's "test connection now", `doctor` and /api/event/.

A live read asks the gateway now, on behalf of a person waiting for the answer, so it must end in bounded
time whatever the gateway does (a trickling peer keeps a socket read alive for ever, an EAGLE-200 read is two
requests). The rules, the same for all three callers:

1. The budget is an absolute ``time.monotonic()`` instant, the *deadline*. Callers that read several
   households (the admin action) give all of them the same deadline, so N slow gateways cost one budget, not N.
2. The client is told the deadline (``SyncEagleClient``'s ``deadline=`` keyword, which ends the exchange in the
   transport, trickling gateways included), and the caller also stops waiting at the deadline: a read still
   queued or running then is abandoned and reported as ``unreachable``, so no caller waits past its budget.
3. Reads run on one process-wide pool of ``MAX_CONCURRENT`` threads: a page request never starts unbounded
   threads, and the reads of one admin action run side by side.
4. A ``requests.Session`` is never shared between threads. requests does not promise that a Session is
   thread-safe (every response mutates its cookie jar, and adapters are configured per Session), so each pool
   thread keeps its own ``SyncEagleClient`` (its own Session and connection pool), reused for that thread's
   reads. Connections to the relay are still reused; nothing is locked.
5. The household is turned into an ``EagleTarget`` on the caller's thread (the password is decrypted where the
   database is used); pool threads never touch the database.

Every outcome is a ``LiveRead``: a reading, or a classified failure with the client's message (which may quote
a gateway; callers that answer outsiders, like the API, show only the kind).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from loggerapp.models import Household, Status

MAX_CONCURRENT = 20  # threads of the pool, and the most households one admin action reads

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_local = threading.local()


@dataclass(frozen=True)
class LiveRead:
    """A reading (``reading`` set) or a classified failure (``error_kind`` a Status value, ``error_message``)."""

    cloud_id: str
    poll_time: datetime
    reading: Any = None  # loggerapp.eagle.Reading
    error_kind: str = ""
    error_message: str = ""

    @property
    def ok(self) -> bool:
        return self.reading is not None


def deadline_in(seconds: float | None = None) -> float:
    """The deadline ``seconds`` from now (default LIVE_READ_DEADLINE), as a ``time.monotonic()`` instant."""
    budget = settings.LIVE_READ_DEADLINE if seconds is None else seconds
    return time.monotonic() + max(0.0, float(budget))


def live_read(household: Household, deadline: float) -> LiveRead:
    """Ask the household's EAGLE for its instantaneous demand, by ``deadline`` at the latest; never raises."""
    return live_reads([household], deadline)[0]


def live_reads(households: Sequence[Household], deadline: float) -> list[LiveRead]:
    """Read several households side by side, all by the same ``deadline``; results in the order given."""
    from loggerapp.eagle import EagleTarget

    budget = round(max(0.0, deadline - time.monotonic()), 1)
    started = [
        (household.cloud_id, timezone.now(), _executor().submit(_read, EagleTarget.from_household(household), deadline))
        for household in households
    ]
    return [_outcome(cloud_id, poll_time, future, deadline, budget) for cloud_id, poll_time, future in started]


def _outcome(cloud_id: str, poll_time: datetime, future: Future, deadline: float, budget: float) -> LiveRead:
    from loggerapp.eagle import EagleError

    try:
        reading = future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        future.cancel()  # if it never started; a running read is abandoned (its own deadline ends it)
        return LiveRead(
            cloud_id, poll_time, error_kind=Status.UNREACHABLE, error_message=f"No answer within {budget:g} s."
        )
    except EagleError as exc:
        return LiveRead(cloud_id, poll_time, error_kind=exc.kind, error_message=exc.message)
    return LiveRead(cloud_id, poll_time, reading=reading)


def _read(target, deadline: float):
    """On a pool thread: one exchange through this thread's client, ended by the transport at the deadline."""
    client = _client()
    if time.monotonic() >= deadline:  # waited in the queue past the deadline: do not start the read at all
        from loggerapp.eagle import Unreachable

        raise Unreachable("no answer within the deadline (the read never started)")
    return client.instantaneous_demand(target, deadline=deadline)


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=MAX_CONCURRENT, thread_name_prefix="live-read")
        return _pool


def _client():
    """This thread's client for the current settings (tests point EAGLE_CLOUD_URL at a simulator)."""
    from loggerapp.eagle import SyncEagleClient

    config = (
        settings.EAGLE_CLOUD_URL,
        settings.EAGLE_CONNECT_TIMEOUT,
        settings.EAGLE_READ_TIMEOUT,
        settings.EAGLE_ALLOWED_NETWORKS,  # the address policy (the client reads it from the settings)
        settings.EAGLE_REFUSED_NETWORKS,
    )
    if getattr(_local, "config", None) != config:
        if getattr(_local, "client", None) is not None:
            _local.client.close()  # settings changed (tests): do not keep the old connection pool open
        _local.client = SyncEagleClient(cloud_url=config[0], connect_timeout=config[1], read_timeout=config[2])
        _local.config = config
    return _local.client
