"""A bound on the polls in flight whose release costs the same however many polls wait.

asyncio.Semaphore wakes the next waiter by walking its queue past every waiter already woken but not yet run
(Python 3.13's ``_wake_up_next``); once the loop falls behind and a few hundred polls wait, every release walks
hundreds of futures, which slows the loop further (the profile in docs/pinger.md: 7.5 million ``Future.done``
calls in 40 s). Here a release hands its slot straight to the oldest waiter still waiting, first come first
served, so a release is O(1) and a poll's wait shows up as schedule lag, as before.
"""

from __future__ import annotations

import asyncio
from collections import deque


class InFlightLimit:
    """``async with limit:`` holds one of ``size`` slots; for one event loop (not thread-safe)."""

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("the limit must be at least 1")
        self._free = size
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    async def acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # a release gives this waiter its slot (see release)
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the slot came, then the poll was cancelled: pass it on
            else:
                try:
                    self._waiters.remove(waiter)  # O(n), only on cancellation (the pinger stopping)
                except ValueError:
                    pass
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes to it directly: _free is unchanged
                return
        self._free += 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()
