"""One live read of a household's EAGLE for the API, in bounded time.

The EAGLE client's connect and read timeouts bound each socket operation, but not a whole read: an EAGLE-200
read is two requests, and a peer that trickles bytes can keep a read alive. So the read runs on a small thread
pool and the view waits at most API_LIVE_READ_DEADLINE seconds; a read still running then is abandoned (it
ends by itself within the client's timeouts) and the caller is told the device is unreachable. Each pool thread
keeps its own SyncEagleClient, so pooled connections are reused without sharing a requests.Session between
threads.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from loggerapp.models import Household, Status

POOL_SIZE = 8

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_local = threading.local()


@dataclass(frozen=True)
class LiveRead:
    """A reading (`reading` set) or a classified failure (`error_kind` a Status value, `error_message`)."""

    cloud_id: str
    poll_time: datetime
    reading: Any = None  # loggerapp.eagle.Reading
    error_kind: str = ""
    error_message: str = ""


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="api-live-read")
        return _pool


def _client():
    """This thread's client for the current settings (tests point EAGLE_CLOUD_URL at a simulator)."""
    from loggerapp.eagle import SyncEagleClient

    config = (settings.EAGLE_CLOUD_URL, settings.EAGLE_CONNECT_TIMEOUT, settings.EAGLE_READ_TIMEOUT)
    if getattr(_local, "config", None) != config:
        if getattr(_local, "client", None) is not None:
            _local.client.close()  # settings changed (tests): do not keep the old connection pool open
        _local.client = SyncEagleClient(cloud_url=config[0], connect_timeout=config[1], read_timeout=config[2])
        _local.config = config
    return _local.client


def _read(target, client_factory):
    return client_factory().instantaneous_demand(target)


def live_read(household: Household) -> LiveRead:
    """Ask the household's EAGLE for its instantaneous demand now; every outcome is a LiveRead, none raises."""
    from loggerapp.eagle import EagleError, EagleTarget

    poll_time = timezone.now()
    target = EagleTarget.from_household(household)  # decrypted here, on the request thread, with DB access
    future = _executor().submit(_read, target, _client)
    deadline = settings.API_LIVE_READ_DEADLINE
    try:
        reading = future.result(timeout=deadline)
    except FutureTimeout:
        future.cancel()  # if it never started; a running read ends within the client's own timeouts
        return LiveRead(
            household.cloud_id,
            poll_time,
            error_kind=Status.UNREACHABLE,
            error_message=f"No answer within {deadline:g} s.",
        )
    except EagleError as exc:
        return LiveRead(household.cloud_id, poll_time, error_kind=exc.kind, error_message=exc.message)
    return LiveRead(household.cloud_id, poll_time, reading=reading)
