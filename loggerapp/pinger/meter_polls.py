"""Price-and-energy polls (issue 14): each household's price and cumulative energy at their own cadence.

Decisions:
1. The same drift-free schedule as the demand polls (``schedule``), with its own interval
   (``PINGER_PRICE_INTERVAL``, 60 s; 0 turns them off) and its own phase per household, a different hash of the
   cloud id, so the price polls are spread over their interval and do not line up with the demand polls.
2. Their ticks are another kind of item (``PriceTick``) in the pinger's one ``schedule.TickQueue``. When demand
   and price ticks fall due together, the demand ticks are launched first (the runner hands price ticks here
   only after the batch).
3. They never take a demand poll's place: a semaphore of their own (``PricePolls.budget`` polls in flight), and
   the client's connection pool is enlarged by that budget. A price poll still in flight when its next tick
   comes makes that tick a skip; a household in bad-credentials back-off is not asked for its price either (its
   demand polls find out when it is healed).
4. Each poll is one exchange (``AsyncEagleClient.price_and_summation``: two requests on the legacy protocols,
   one ``device_query`` for all variables on the EAGLE-200) and one line in the household's price hour file
   (``hourfiles.price_lines``), written by a writer thread of its own, so a price file never holds up a demand
   line. A failure writes the demand file's kind of failure line, into the price file; it changes nothing of
   the household's status, which the demand polls own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loggerapp.hourfiles.layout import PRICE
from loggerapp.hourfiles.lines import failure_line
from loggerapp.hourfiles.price_lines import price_line
from loggerapp.models import Status
from loggerapp.pinger import schedule
from loggerapp.pinger.files import HourFileWriter, LineJob, WriterThread

logger = logging.getLogger("loggerapp.pinger.prices")

MIN_BUDGET = 4


@dataclass(frozen=True, slots=True)
class PriceTick:
    """A price poll due in the tick queue: the household and the tick number (stale when it no longer matches)."""

    cloud_id: str
    tick: int


class _PriceState:
    __slots__ = ("next_tick", "phase", "polling")

    def __init__(self, phase: float, next_tick: int) -> None:
        self.phase = phase
        self.next_tick = next_tick
        self.polling = False


def price_phase(cloud_id: str, interval: float) -> float:
    """A household's offset within the price interval: stable, spread, and unrelated to its demand phase."""
    return schedule.phase_of(f"price:{cloud_id}", interval)


def budget_for(max_in_flight: int) -> int:
    """Price polls in flight at most: a sixteenth of the demand budget, at least MIN_BUDGET."""
    return max(MIN_BUDGET, max_in_flight // 16)


class PricePolls:
    """The price polls of one pinger run. Driven by the runner from its event loop; writes through its own thread."""

    def __init__(
        self,
        log_root: Path,
        interval: float,
        budget: int,
        poll_deadline: float,
        max_open: int,
        hour_grace: float,
        metrics: Any = None,  # PingerMetrics: its price_polls counter
    ) -> None:
        self.metrics = metrics
        self.interval = interval
        self.budget = budget
        self.poll_deadline = poll_deadline
        self.states: dict[str, _PriceState] = {}
        self.counts: Counter[str] = Counter()  # the whole run
        self.window: Counter[str] = Counter()  # since the last summary line
        self.tasks: set[asyncio.Task] = set()
        self.client: Any = None
        self.stopping = False  # set by drain: a poll still waiting for the budget then gives up
        self._semaphore = asyncio.Semaphore(budget)
        self.writer = WriterThread(HourFileWriter(log_root, max_open, kind=PRICE), hour_grace=hour_grace)
        self.writer.name = "pinger-price-writer"

    def count(self, outcome: str) -> None:
        self.counts[outcome] += 1
        self.window[outcome] += 1
        if self.metrics is not None:
            self.metrics.price_polls.labels(outcome=outcome).inc()

    def take_window(self) -> str:
        """The price polls since the last call, for the pinger's summary line (``price polls: ok 83, ...``)."""
        window, self.window = self.window, Counter()
        return "price polls: " + (", ".join(f"{k} {n}" for k, n in sorted(window.items())) or "none")

    def stop(self) -> None:
        """Write what is queued, close the files, and log the run's price counts."""
        self.writer.stop()
        if self.counts:
            logger.info("price polls: %s", ", ".join(f"{k} {n}" for k, n in sorted(self.counts.items())))

    # --- the schedule ----------------------------------------------------------------------------------------

    def sync(self, households: Mapping[str, Any], ticks: schedule.TickQueue, now: float) -> None:
        """Follow the household list: new households get their first price tick, removed ones are forgotten
        (their queued ticks are dropped when they come out)."""
        for cloud_id in [cloud_id for cloud_id in self.states if cloud_id not in households]:
            del self.states[cloud_id]
        for cloud_id in households:
            if cloud_id not in self.states:
                phase = price_phase(cloud_id, self.interval)
                state = _PriceState(phase, schedule.next_tick(now, phase, self.interval))
                self.states[cloud_id] = state
                ticks.push(
                    schedule.due_time(phase, state.next_tick, self.interval), PriceTick(cloud_id, state.next_tick)
                )

    def on_tick(self, item: PriceTick, households: Mapping[str, Any], ticks: schedule.TickQueue) -> None:
        """A due price tick: queue the next one, then poll (or skip, or drop a stale tick)."""
        state = self.states.get(item.cloud_id)
        household = households.get(item.cloud_id)
        if state is None or household is None or item.tick != state.next_tick:
            return  # removed, or superseded
        state.next_tick = item.tick + 1
        ticks.push(
            schedule.due_time(state.phase, state.next_tick, self.interval), PriceTick(item.cloud_id, state.next_tick)
        )
        if state.polling or household.status == Status.BAD_CREDENTIALS:
            self.count("skipped")
            return
        state.polling = True
        task = asyncio.create_task(self._poll(state, household.entry))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # --- one poll --------------------------------------------------------------------------------------------

    async def _poll(self, state: _PriceState, entry: Any) -> None:
        try:
            async with self._semaphore:
                if self.stopping:
                    self.count("not started (stopping)")
                    return
                started = time.time()
                line, ok = await self._ask(entry, started)
        finally:
            state.polling = False
        self.writer.put(LineJob(entry.household_id, entry.cloud_id, started, ok, line))

    async def _ask(self, entry: Any, started: float) -> tuple[bytes, bool]:
        """One price-and-energy exchange within the poll deadline: its line, and whether it is a success."""
        from loggerapp.eagle import EagleError

        clock = time.perf_counter()
        try:
            async with asyncio.timeout(self.poll_deadline):
                both = await self.client.price_and_summation(entry.target)
        except EagleError as exc:
            kind, message = str(exc.kind), exc.message or ""
        except TimeoutError:
            kind, message = Status.UNREACHABLE.value, f"no answer within {self.poll_deadline:g} s"
        except Exception as exc:  # the client promises EagleError only; a bug must not stop the loop
            logger.exception("household %s: unexpected error while polling its price", entry.cloud_id)
            kind, message = Status.BAD_RESPONSE.value, f"internal error ({type(exc).__name__})"
        else:
            self.count("ok")
            return price_line(both, started), True
        self.count(kind)
        return failure_line(entry.cloud_id, started, kind, message, time.perf_counter() - clock), False

    async def drain(self, timeout: float) -> None:
        """Let price polls in flight finish; those still waiting for the budget do not start. Cancel what
        outlives ``timeout``."""
        self.stopping = True
        pending = {task for task in self.tasks if not task.done()}
        if pending:
            _done, pending = await asyncio.wait(pending, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
