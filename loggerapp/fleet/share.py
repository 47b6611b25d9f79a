"""This member's share of the households, kept in the pinger's polled set (the runner's one fleet hook).

Decisions:
1. The registry loads every active household (``Shard(1, 1)``); the share keeps that full list and hands the
   runner only the households this member owns, through the registry's own ``apply_load`` (so new owners, lost
   ones and changed credentials follow one path).
2. The share is re-evaluated whenever a membership read changes the picture (a member joined, became effective,
   went silent, or this member's view expired) and after every reload of the household list. The rendezvous
   arithmetic (a hash per household and member) runs in a worker thread, never on the event loop.
3. Hand-overs at a join are exact: the old owner keeps the household with ``last_tick`` = its last tick due
   before the joiner's ``active_from``, the new owner starts at its first tick at or after it (both from the
   household's own phase, schedule.py). After a member's death the survivors take its households at their next
   read, at once (the dead member polls nothing).
4. A view that expired (no heartbeat written for the member timeout) means that the others may have taken over:
   every household is dropped until a heartbeat is written again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from loggerapp.fleet.membership import FleetSettings, FleetView, Membership
from loggerapp.fleet.rendezvous import Window, ownership_windows
from loggerapp.pinger import schedule
from loggerapp.pinger.decisions import HouseholdState
from loggerapp.pinger.registry import HouseholdEntry, apply_load

logger = logging.getLogger("loggerapp.fleet")

WATCH_SECONDS = 0.25  # how often the share looks for a change the membership thread did not wake it for


def _picture(view: FleetView, now: float) -> tuple[Any, ...]:
    """What the share depends on in a view: the effective members, the announced joins and leaves, expiry."""
    return (tuple(view.effective(now)), tuple(view.changes(now)), view.expired(now))


class FleetShare:
    """Owns the membership thread and keeps ``households`` (the runner's polled set) to this member's share."""

    def __init__(
        self,
        fleet: FleetSettings,
        member_id: str,
        interval: float,
        households: dict[str, HouseholdState],
        queue_tick: Callable[[HouseholdState], None],
        after_apply: Callable[[], None] | None = None,
    ) -> None:
        self.interval = interval
        self.households = households
        self.queue_tick = queue_tick
        self.after_apply = after_apply  # the runner's other followers of the polled set (the price polls)
        self.all: dict[str, HouseholdEntry] = {}  # the last full load
        self.membership = Membership(fleet, member_id, status=self._status)
        self.handovers_in = 0
        self.handovers_out = 0
        self._wake: asyncio.Event | None = None
        self._applied: tuple[Any, ...] | None = None
        self._cut_off = False
        self._lock = asyncio.Lock()  # a reload and a membership change never interleave their applies
        self._leaving = False
        self._leave_task: asyncio.Task | None = None

    @property
    def member_id(self) -> str:
        return self.membership.member_id

    def _status(self) -> tuple[int, dict[str, Any]]:
        return len(self.households), {"handovers_in": self.handovers_in, "handovers_out": self.handovers_out}

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        wake = self._wake

        def woken(_view: FleetView) -> None:
            loop.call_soon_threadsafe(wake.set)

        self.membership.on_view = woken
        self.membership.start()

    def leave_first(self, stop: Callable[[str], None], reason: str) -> bool:
        """Called by the runner's ``stop``: True when a leave has started (``stop`` is called again at its end);
        False to stop at once (a second signal while leaving, or not on the loop's thread)."""
        if self._leaving:
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._leaving = True

        async def leave_then_stop() -> None:
            try:
                await self.leave()
            finally:
                stop(reason)

        self._leave_task = loop.create_task(leave_then_stop())
        return True

    async def leave(self) -> None:
        """Hand the households over before stopping: when other members are live, announce the leave and return
        at its time (the households' last ticks are set by the share's apply in the meantime); alone, at once."""
        view = self.membership.view
        now = time.time()
        if view.expired(now) or not view.others(self.member_id, now):
            return
        self.membership.announce_leave()
        deadline = time.monotonic() + self.membership.fleet.join_delay + self.membership.fleet.heartbeat + 2.0
        while time.monotonic() < deadline:
            mine = next((m for m in self.membership.view.members if m.member_id == self.member_id), None)
            if mine is not None and mine.active_until < float("inf"):
                logger.info("fleet: leaving; households handed over in %.1f s", mine.active_until - time.time())
                await asyncio.sleep(max(0.0, mine.active_until - time.time()))
                return
            await asyncio.sleep(0.1)
        logger.warning("fleet: the leave could not be announced; stopping now")

    def stop(self) -> None:
        """Blocking (the loop has nothing scheduled any more): the thread stops and the row is deleted."""
        self.membership.stop(timeout=10.0)

    async def watch(self) -> None:
        """Re-apply the share whenever the picture changes (membership thread wakes it; expiry is a time)."""
        assert self._wake is not None
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), WATCH_SECONDS)
            except TimeoutError:
                pass
            self._wake.clear()
            now = time.time()
            picture = _picture(self.membership.view, now)
            if picture != self._applied:
                await self.apply()

    async def reloaded(self, loaded: dict[str, HouseholdEntry]) -> None:
        """A fresh full household list: keep it and apply the share to it."""
        self.all = loaded
        await self.apply()

    async def apply(self) -> None:
        async with self._lock:
            await self._apply(time.time())

    async def _apply(self, now: float) -> None:
        view = self.membership.view
        picture = _picture(view, now)
        effective, announced, expired = picture
        if view.read_at == 0.0 and not self.membership.fleet.stop_when_cut_off:
            # The membership was never read (the database has not answered since the start, and the households
            # came from the local cache): poll them all, as a member alone would, until it answers. Duplicates
            # rather than gaps, as for a member cut off later (FLEET_STOP_WHEN_CUT_OFF).
            effective, announced = (self.member_id,), ()
        windows: dict[str, Window] = await asyncio.get_running_loop().run_in_executor(
            None, ownership_windows, list(self.all), list(effective), list(announced), self.member_id
        )
        self._applied = picture
        before = set(self.households)
        mine = {cloud_id: self.all[cloud_id] for cloud_id in windows}
        changes, to_queue = apply_load(self.households, mine, now, self.interval)
        added = {entry.cloud_id for entry in changes.added}
        for cloud_id, window in windows.items():
            state = self.households[cloud_id]
            if window.start is not None and window.start > now:
                # Not mine before ``start`` (a member rejoining waits for its announced time like any joiner).
                first = schedule.next_tick(window.start, state.phase, self.interval)
                if state.next_tick < first:
                    state.next_tick = first
                    if cloud_id not in added:
                        self.queue_tick(state)
            self._set_end(state, window, now, cloud_id in added)
        for state in to_queue:
            self.queue_tick(state)
        if self.after_apply is not None:
            self.after_apply()
        self._report(before, expired, len(effective), announced, view)

    def _set_end(self, state: HouseholdState, window: Window, now: float, added: bool) -> None:
        """Set the household's last tick from its window; a household whose window grew again is queued."""
        dormant = state.last_tick is not None and state.next_tick > state.last_tick
        if window.end is None:
            state.last_tick = None
        else:
            state.last_tick = schedule.next_tick(window.end, state.phase, self.interval) - 1
        if dormant and not added and (state.last_tick is None or state.next_tick <= state.last_tick):
            state.next_tick = max(state.next_tick, schedule.next_tick(now, state.phase, self.interval))
            self.queue_tick(state)

    def _report(
        self, before: set[str], expired: bool, effective: int, announced: tuple[Any, ...], view: FleetView
    ) -> None:
        after = set(self.households)
        taken, given = len(after - before), len(before - after)
        if self.all:  # the first load is not a hand-over
            self.handovers_in += taken if before else 0
            self.handovers_out += given
        if expired and not self._cut_off:
            self._cut_off = True
            logger.error(
                "fleet: no heartbeat written for %g s: stopped polling all %d households (the other members may "
                "have taken them); waiting for the database",
                self.membership.fleet.timeout - 1.0,
                given,
            )
            return
        if not expired and self._cut_off:
            self._cut_off = False
            logger.warning("fleet: heartbeat written again; acting on the membership in the database")
        if taken or given or announced:
            logger.info(
                "fleet: member %s polls %d of %d households (+%d taken, -%d handed over); %d members effective, "
                "%d joining or leaving",
                self.member_id,
                len(after),
                len(self.all),
                taken,
                given,
                effective,
                len(announced),
            )
