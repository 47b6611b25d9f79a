"""Database calls that may block for ever, watched from the event loop.

A database that accepts connections and never answers (a frozen host, a proxy that black-holes) blocks a query
on a connection already open: libpq's connect timeout does not apply, and the server never sees the statement, so
its statement timeout cannot fire either. The pinger cannot end such a call, but it must not be silent about it:

- ``BlockedWatch`` times one call at a time (a statistics flush, a household load); the event loop checks it
  every second and logs a warning once a call has been blocked longer than ``warn_after``, and once more when
  calls return in time again: one pair of lines per episode, however many calls it lasts.
- ``run_in_daemon_thread`` runs a blocking call in a daemon thread of its own: a call that never returns then
  neither holds up the loop nor the process's exit (a ThreadPoolExecutor's threads are joined at exit).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("loggerapp.pinger.blocking")


class BlockedWatch:
    """Thread-safe enough for its use: one thread calls begin/end, the event loop calls check."""

    def __init__(self, what: str, warn_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.what = what
        self.warn_after = warn_after
        self.clock = clock
        self.started: float | None = None
        self.warned = False

    def begin(self) -> None:
        self.started = self.clock()

    def end(self) -> None:
        """The call returned. The warning stays given while calls keep taking too long (each ending at a timeout,
        say); the first call back in time ends the episode, logged once."""
        started, self.started = self.started, None
        if started is None or not self.warned:
            return
        took = self.clock() - started
        if took <= self.warn_after:
            self.warned = False
            logger.warning("%s returns in time again (%.1f s)", self.what, took)

    def blocked_for(self) -> float:
        started = self.started
        return 0.0 if started is None else self.clock() - started

    def check(self, detail: str = "") -> bool:
        """Log once when the call in progress has been blocked longer than warn_after; True while it is."""
        blocked = self.blocked_for()
        if blocked <= self.warn_after:
            return False
        if not self.warned:
            self.warned = True
            logger.warning(
                "%s blocked for %.0f s: the database accepts connections but does not answer%s",
                self.what,
                blocked,
                f"; {detail}" if detail else "",
            )
        return True


async def run_in_daemon_thread[T](function: Callable[..., T], *args: Any, name: str = "pinger-db") -> T:
    """``function(*args)`` in a new daemon thread; the result (or exception) comes back to the event loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def target() -> None:
        outcome: Callable[[], None]
        try:
            result = function(*args)
        except BaseException as exc:  # handed to the awaiting coroutine, which decides
            error = exc
            outcome = lambda: future.set_exception(error)  # noqa: E731
        else:
            outcome = lambda: future.set_result(result)  # noqa: E731
        try:
            loop.call_soon_threadsafe(settle, outcome)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future
