"""The pinger's event loop: every active household polled on its own drift-free schedule.

``Pinger.run`` is its four steps:
1. Start: the writer thread (hour files), the flush thread (statistics + heartbeat), the signal handlers, the
   optional metrics server, and one aiohttp-based AsyncEagleClient for the whole run.
2. Loop: load the households, then the scheduler takes each due tick out of the tick queue and asks
   ``decisions.on_tick`` what to do: a tick is launched as its own task (the household's next tick is queued at
   once, so a slow poll can never delay anything else), skipped and counted when the household's previous poll
   is still in flight, or dropped when it is stale. A limit (``limiter.InFlightLimit``) bounds the polls in
   flight (``--max-in-flight``); the time a poll waits for it shows up as schedule lag. Every ``refresh``
   seconds the household list is reloaded; while the database is down the known list keeps being polled.
   ``--once`` instead polls every household once, at once.
3. Drain: SIGTERM/SIGINT (or ``--duration``, or the end of ``--once``) stop the scheduler; polls in flight finish
   (bounded by the client's timeouts), the writer writes everything queued and closes every file, the flush
   thread saves the statistics and a last heartbeat.
4. Summary: the run's counts, logged and returned.

Each finished poll becomes one line for the writer thread, one update of the statistics, one count
(``outcomes.PollCounts``: run, window and Prometheus together) and one decision about the household
(``decisions``: its status, failures and next tick); a change of status is logged with the cloud id and the
cause, never a password. The loop is built to grow: another kind of tick is another kind of item in the same
``schedule.TickQueue`` with its own ``on_tick``; the price-and-energy polls (``meter_polls``, issue 14) are one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from threading import Thread
from typing import Any
from wsgiref.simple_server import WSGIServer

from loggerapp.fleet.membership import FleetSettings, new_member_id
from loggerapp.fleet.share import FleetShare
from loggerapp.hourfiles.lines import failure_line, skipped_line, success_line
from loggerapp.models import Status
from loggerapp.pinger import decisions, household_cache, schedule, startup
from loggerapp.pinger.budget import PollBudget
from loggerapp.pinger.decisions import HouseholdState, PollDecision, TickAction
from loggerapp.pinger.files import HourFileWriter, LineJob, WriterThread, usable_open_files
from loggerapp.pinger.flusher import StatsFlusher
from loggerapp.pinger.limiter import InFlightLimit
from loggerapp.pinger.meter_polls import PricePolls, PriceTick, budget_for
from loggerapp.pinger.metrics import PingerMetrics
from loggerapp.pinger.outcomes import PollCounts, Tally
from loggerapp.pinger.registry import HouseholdEntry, HouseholdLoader, RegistryUnavailable, apply_load, log_changes
from loggerapp.pinger.registry import diff as diff_entries
from loggerapp.pinger.stats import StatsAccumulator

logger = logging.getLogger("loggerapp.pinger")
poll_logger = logging.getLogger("loggerapp.pinger.polls")

MAX_SCHEDULER_SLEEP = 0.25  # how long the scheduler may sleep: new households start within this
DB_RETRY_SECONDS = 5.0  # household list retry while the database is down and nothing is known yet
LINE_BATCH_SECONDS = 0.1  # lines wait at most this long in the loop before they go to the writer thread
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class PingerConfig:
    """Everything a run needs; the management command fills it from options and settings."""

    log_root: Path
    interval: float = 6.0
    refresh: float = 60.0
    max_in_flight: int = 1024
    max_slow_in_flight: int = 256  # polls in flight of households whose last poll failed (pinger/budget.py)
    max_open_files: int = 16384
    shard: schedule.Shard = field(default_factory=schedule.Shard)
    once: bool = False
    duration: float | None = None
    log_each_poll: bool = False
    metrics_port: int | None = None
    max_backoff: float = schedule.MAX_BACKOFF_SECONDS
    flush_every: float = 5.0
    summary_every: float = 60.0
    hour_grace: float = 30.0
    poll_deadline: float = 7.0  # outer bound of one poll; the client's own timeouts normally end it first
    cloud_url: str | None = None
    heartbeat_name: str = ""
    stop_wait: float = 10.0  # longest wait for the last statistics flush at stop (a hung database)
    blocked_intervals: int = 5  # a flush or load blocked this many intervals is logged
    price_interval: float = 60.0  # seconds between price-and-energy polls of a household; 0: none
    fleet: FleetSettings | None = None  # fleet mode (loggerapp/fleet): share the households with live members
    member_id: str = ""

    def __post_init__(self) -> None:
        if self.interval <= 0 or not math.isfinite(self.interval):
            raise ValueError("interval must be a positive number of seconds")
        if self.refresh <= 0:
            raise ValueError("refresh must be a positive number of seconds")
        if self.max_in_flight < 1:
            raise ValueError("max-in-flight must be at least 1")
        if self.price_interval < 0 or not math.isfinite(self.price_interval):
            raise ValueError("the price interval must be 0 (no price polls) or a positive number of seconds")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("duration must be a positive number of seconds")
        if self.fleet is not None and not self.member_id:
            self.member_id = new_member_id()
        if not self.heartbeat_name:
            self.heartbeat_name = self.member_id or f"{socket.gethostname()}:{self.shard}"[:100]


@dataclass
class _Services:
    """The threads and servers a run starts, and stops at its end."""

    writer: WriterThread
    flusher: StatsFlusher
    metrics_server: tuple[WSGIServer, Thread] | None = None


@dataclass(slots=True)
class _Answer:
    """What one request to an EAGLE gave: a reading, or an error kind (a Status value) and its message."""

    started: float  # Unix time the request started: the line's poll_time
    latency: float = 0.0
    reading: Any = None  # loggerapp.eagle.Reading
    kind: str = ""
    message: str = ""
    raw: str | None = None


class Pinger:
    def __init__(self, config: PingerConfig, metrics: PingerMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or PingerMetrics()
        self.counts = PollCounts(self.metrics)
        self.households: dict[str, HouseholdState] = {}
        self.ticks: schedule.TickQueue[tuple[HouseholdState, int] | PriceTick] = schedule.TickQueue()
        self.prices: PricePolls | None = None
        self.stats = StatsAccumulator()
        self.loader = HouseholdLoader(config.shard, warn_after=max(1.0, config.blocked_intervals * config.interval))
        self._flusher: StatsFlusher | None = None
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False
        self._stop_event: asyncio.Event | None = None
        self._client: Any = None
        self._writer: WriterThread | None = None
        self._semaphore: InFlightLimit | None = None
        self._budget: PollBudget | None = None
        self._started_at = 0.0
        self._lines: list[LineJob] = []  # finished polls' lines not yet handed to the writer thread
        self._asking = 0  # requests under way (the in-flight gauge reads it when scraped)
        self.metrics.in_flight.set_function(lambda: self._asking)
        self.share: FleetShare | None = None
        if config.fleet is not None:
            self.share = FleetShare(
                config.fleet,
                config.member_id,
                config.interval,
                self.households,
                self._queue_next_tick,
                after_apply=self._polled_set_changed,
            )

    def stop(self, reason: str = "asked to stop") -> None:
        """Stop scheduling; polls in flight finish. Safe to call more than once."""
        if self._stopping:
            return
        if self.share is not None and self.share.leave_first(self.stop, reason):  # fleet: hand over first
            return
        self._stopping = True
        logger.info("stopping (%s): finishing %d polls in flight", reason, self.in_flight)
        if self._stop_event is not None:
            self._stop_event.set()

    @property
    def blocked_after(self) -> float:
        return max(1.0, self.config.blocked_intervals * self.config.interval)

    @property
    def in_flight(self) -> int:
        """Polls launched and not finished (tasks leave the set when done). len() is safe from other threads,
        iterating the set would not be."""
        return len(self._tasks)

    async def run(self) -> Tally:
        """Start, loop, drain, summary (see the module docstring); returns the whole run's counts."""
        services = self._start()
        try:
            async with self._open_client() as client:
                self._client = client
                if self.prices is not None:
                    self.prices.client = client
                await self._loop()
                await self._drain()
        finally:
            self._stop_services(services)
        return self._summary(services.writer)

    # --- 1. start ---------------------------------------------------------------------------------------

    def _start(self) -> _Services:
        config = self.config
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._semaphore = InFlightLimit(config.max_in_flight)
        self._budget = PollBudget(self._semaphore, config.max_slow_in_flight)
        self._started_at = time.time()
        for signum in _STOP_SIGNALS:
            try:
                loop.add_signal_handler(signum, self.stop, signal.Signals(signum).name)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests in a thread)
                pass
        # The sockets of the polls in flight need descriptors beside the hour files: the limit must hold both.
        pool_size = max(1, usable_open_files(config.max_open_files + config.max_in_flight) - config.max_in_flight)
        writer = WriterThread(
            HourFileWriter(config.log_root, pool_size), on_written=self._line_written, hour_grace=config.hour_grace
        )
        flusher = StatsFlusher(
            self.stats,
            every=min(config.flush_every, config.interval) if not config.once else 3600.0,
            heartbeat_name=config.heartbeat_name,
            interval=config.interval,
            heartbeat=self._heartbeat,
            warn_after=self.blocked_after,
        )
        self._writer = writer
        self._flusher = flusher
        if config.once:
            flusher.released.set()  # --once writes no restart lines and recounts nothing
        writer.start()
        if config.price_interval > 0 and not config.once:
            self.prices = PricePolls(
                config.log_root,
                config.price_interval,
                budget_for(config.max_in_flight),
                config.poll_deadline,
                max(1, min(64, pool_size // 8)),  # within usable_open_files' reserve
                config.hour_grace,
                self.metrics,
            )
            self.prices.writer.start()
        flusher.start()
        services = _Services(writer, flusher)
        if self.share is not None:
            self.share.start()
        if config.metrics_port is not None:
            services.metrics_server = self.metrics.serve(config.metrics_port)
        logger.info(
            "pinger starting: %s, interval %g s, refresh %g s, at most %d polls in flight, %d open files, "
            "writing under %s",
            f"fleet member {config.member_id}" if self.share is not None else f"shard {config.shard}",
            config.interval,
            config.refresh,
            config.max_in_flight,
            pool_size,
            config.log_root,
        )
        return services

    def _open_client(self) -> Any:
        from loggerapp.eagle import AsyncEagleClient

        price_budget = self.prices.budget if self.prices is not None else 0  # price polls never take a demand's
        options: dict[str, Any] = {
            "max_connections": self.config.max_in_flight + self.config.max_slow_in_flight + price_budget
        }
        if self.config.cloud_url:
            options["cloud_url"] = self.config.cloud_url
        return AsyncEagleClient(**options)

    def _stop_services(self, services: _Services) -> None:
        loop = asyncio.get_running_loop()
        for signum in _STOP_SIGNALS:
            try:
                loop.remove_signal_handler(signum)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        # Blocking joins are fine here: nothing is scheduled any more.
        self._flush_lines()
        services.writer.stop()
        if self.prices is not None:
            self.prices.stop()
        services.flusher.stop(timeout=self.config.stop_wait)
        if services.flusher.is_alive():  # the database did not answer the last flush in time
            logger.error(
                "statistics of %d households not saved: the database did not answer within %g s; exiting anyway "
                "(the totals are recounted from the files at the next start)",
                services.flusher.unsaved(),
                self.config.stop_wait,
            )
        if self.share is not None:  # after the last heartbeat, which leaving the fleet removes
            self.share.stop()
        self.loader.close()
        if services.metrics_server is not None:
            server, _thread = services.metrics_server
            server.shutdown()

    # --- 2. loop ----------------------------------------------------------------------------------------

    async def _loop(self) -> None:
        if self.config.once:
            await self._poll_everyone_once()
        else:
            await self._poll_until_stopped()

    async def _poll_until_stopped(self) -> None:
        assert self._stop_event is not None
        if not await self._refresh(initial=True):
            self._start_from_cache()
        await self._after_first_load()
        background = [
            asyncio.create_task(self._scheduler(), name="scheduler"),
            asyncio.create_task(self._watch_blocked(), name="watch-blocked"),
            asyncio.create_task(self._refresher(), name="refresher"),
            asyncio.create_task(self._summaries(), name="summaries"),
        ]
        if self.share is not None:
            background.append(asyncio.create_task(self.share.watch(), name="fleet"))
        if self.config.duration is not None:
            asyncio.get_running_loop().call_later(self.config.duration, self.stop, "--duration reached")
        try:
            await self._stop_event.wait()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)

    async def _poll_everyone_once(self) -> None:
        """Poll every household once, at once (bounded by the semaphore), and return when all are done."""
        if not await self._refresh(initial=True):
            raise RegistryUnavailable("the household list could not be read from the database")
        now = time.time()
        for state in list(self.households.values()):
            self._launch(state, now, state.next_tick)
        while self._tasks and not self._stopping:
            await asyncio.wait(set(self._tasks), timeout=0.5)

    async def _refresh(self, initial: bool = False) -> bool:
        """Reload the household list and queue the ticks it calls for; False when it could not be read."""
        loaded: dict[str, HouseholdEntry] | None = await self.loader.load(len(self.households))
        if loaded is None:
            return False
        if self.share is not None:
            diff = diff_entries(self.share.all, loaded)
            if (diff or initial) and not self.config.once:
                self._save_cache(loaded)  # every household: a start without the database cannot know its share
            log_changes(diff, len(loaded), initial)
            await self.share.reloaded(loaded)
            self.metrics.households.set(len(self.households))
            return True
        changes, to_queue = apply_load(self.households, loaded, time.time(), self.config.interval)
        if (changes or initial) and not self.config.once:
            self._save_cache(loaded)
        for state in to_queue:
            self._queue_next_tick(state)
        self._polled_set_changed()
        log_changes(changes, len(self.households), initial)
        return True

    def _polled_set_changed(self) -> None:
        """What follows the polled set (after a reload, or a fleet share's change): the price polls, the gauge."""
        if self.prices is not None:
            self.prices.sync(self.households, self.ticks, time.time())
        self.metrics.households.set(len(self.households))

    def _save_cache(self, loaded: dict[str, HouseholdEntry]) -> None:
        path = household_cache.cache_path(self.config.log_root, self.config.shard)

        def save() -> None:
            try:
                household_cache.save(path, loaded.values())
            except OSError as exc:
                logger.warning("household cache %s not written (%s)", path, exc.strerror or exc)

        Thread(target=save, name="pinger-cache", daemon=True).start()

    def _start_from_cache(self) -> None:
        """The database cannot be read at start: poll the households of the last good load (household_cache)."""
        path = household_cache.cache_path(self.config.log_root, self.config.shard)
        cached = household_cache.load(path)
        if cached is None:
            logger.error("database unavailable at start and no household cache at %s: nothing to poll yet", path)
            return
        entries, saved_at = cached
        if self.share is not None:
            self.share.all = entries  # its applies keep them until the membership can be read
        _changes, to_queue = apply_load(self.households, entries, time.time(), self.config.interval)
        for state in to_queue:
            self._queue_next_tick(state)
        self.metrics.households.set(len(self.households))
        logger.warning(
            "database unavailable at start: polling the %d households of the cache saved %s UTC, until it answers",
            len(self.households),
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(saved_at)),
        )

    async def _watch_blocked(self) -> None:
        """Say when a flush or a household load has been blocked for several intervals (pinger/blocking.py)."""
        while not self._stopping:
            await asyncio.sleep(1.0)
            if self._flusher is not None:
                self._flusher.watch.check(f"statistics of {self._flusher.unsaved()} households wait in memory")
            self.loader.watch.check(f"polling the {len(self.households)} known households")

    async def _after_first_load(self) -> None:
        """Restart lines before the first poll; the recount of the statistics from the files in the background
        (pinger/startup.py), the flush thread holding this run's counts until it is done."""
        assert self._writer is not None and self._flusher is not None
        loop = asyncio.get_running_loop()
        started = time.time()
        # A fleet member owns nothing yet at this point (its share starts after its announced join): every household
        # is a candidate, and only those with recent lines on this host's disk get a restart line.
        entries = self.share.all.values() if self.share is not None else (s.entry for s in self.households.values())
        ids = {entry.cloud_id: entry.household_id for entry in entries}
        lines = await loop.run_in_executor(None, startup.gap_lines, self.config.log_root, list(ids), started)
        for cloud_id, line in lines:
            self._writer.put(LineJob(ids[cloud_id], cloud_id, started, False, line))
        if not ids:
            self._flusher.released.set()
            return
        # A daemon thread: a hung database must neither delay polling nor the exit.
        args = (self.config.log_root, ids, started, self._flusher.released.set)
        Thread(target=startup.reconcile, args=args, name="pinger-reconcile", daemon=True).start()

    async def _refresher(self) -> None:
        while not self._stopping:
            wait = DB_RETRY_SECONDS if (self.loader.database_down and not self.households) else self.config.refresh
            await asyncio.sleep(min(wait, self.config.refresh))
            if not self._stopping:
                await self._refresh()

    def _queue_next_tick(self, state: HouseholdState) -> None:
        due = schedule.due_time(state.phase, state.next_tick, self.config.interval)
        self.ticks.push(due, (state, state.next_tick))

    async def _scheduler(self) -> None:
        while not self._stopping:
            price_ticks = []  # launched after the demand ticks due with them
            for due, item in self.ticks.pop_due(time.time()):
                if isinstance(item, PriceTick):
                    price_ticks.append(item)
                    continue
                state, tick = item
                action = decisions.on_tick(state, tick)
                if action is TickAction.STALE:
                    continue
                state.next_tick = tick + 1  # the cadence goes on whatever this tick does
                self._queue_next_tick(state)
                if action is TickAction.SKIP:
                    self._skipped(state, due)
                else:
                    self._launch(state, due, tick)
            for price_tick in price_ticks:
                assert self.prices is not None
                self.prices.on_tick(price_tick, self.households, self.ticks)
            next_due = self.ticks.next_due()
            delay = next_due - time.time() if next_due is not None else MAX_SCHEDULER_SLEEP
            await asyncio.sleep(min(max(delay, 0.0), MAX_SCHEDULER_SLEEP))

    def _skipped(self, state: HouseholdState, due: float) -> None:
        assert self._writer is not None
        entry = state.entry
        self._writer.put(LineJob(entry.household_id, entry.cloud_id, due, False, skipped_line(entry.cloud_id, due)))
        self.counts.tick_skipped()
        if self.config.log_each_poll:
            poll_logger.info("household %s: tick skipped, previous poll still in flight", state.entry.cloud_id)

    def _launch(self, state: HouseholdState, due: float, tick: int) -> None:
        state.polling = True
        task = asyncio.create_task(self._poll(state, due, tick))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _poll(self, state: HouseholdState, due: float, tick: int) -> None:
        try:
            assert self._budget is not None
            answer = await self._ask(state.entry, self._budget.for_state(state))
        finally:
            state.polling = False
        if answer is None:
            return  # stopped before it started: nothing to record
        lag = max(0.0, answer.started - due) if not self.config.once else 0.0
        if answer.reading is not None:
            self._record_success(state, answer, lag)
        else:
            self._record_failure(state, answer, lag, tick)

    async def _ask(self, entry: HouseholdEntry, budget: InFlightLimit | None = None) -> _Answer | None:
        """One request to the household's EAGLE within poll_deadline; every failure becomes an error kind.
        ``budget``: the limit of its polls in flight (pinger/budget.py), the main one by default."""
        from loggerapp.eagle import EagleError

        assert self._semaphore is not None
        async with budget or self._semaphore:
            if self._stopping:
                return None  # never started: nothing to finish
            self._asking += 1
            answer = _Answer(started=time.time())
            clock = time.perf_counter()
            try:
                async with asyncio.timeout(self.config.poll_deadline):
                    answer.reading = await self._client.instantaneous_demand(entry.target)
            except EagleError as exc:
                answer.kind, answer.message, answer.raw = str(exc.kind), exc.message or "", exc.raw
            except TimeoutError:
                answer.kind = Status.UNREACHABLE.value
                answer.message = f"no answer within {self.config.poll_deadline:g} s"
            except Exception as exc:  # the client promises EagleError only; a bug must not stop the loop
                logger.exception("household %s: unexpected error while polling", entry.cloud_id)
                answer.kind, answer.message = Status.BAD_RESPONSE.value, f"internal error ({type(exc).__name__})"
            finally:
                self._asking -= 1
            answer.latency = time.perf_counter() - clock
        return answer

    def _record_success(self, state: HouseholdState, answer: _Answer, lag: float) -> None:
        entry, reading = state.entry, answer.reading
        assert self._writer is not None
        decision = decisions.after_success(state, reading.meter_timestamp)
        line = success_line(reading, answer.started, decision.repeat)
        self._hand_over(LineJob(entry.household_id, entry.cloud_id, answer.started, True, line))
        self.stats.record_success(entry.household_id, answer.started, reading.demand_kw, reading.meter_timestamp)
        self.counts.poll_finished(Status.OK.value, answer.latency, lag)
        self._log_status_change(entry.cloud_id, decision, f" ({reading.demand_kw:.3f} kW)")
        decisions.apply(state, decision)
        if self.config.log_each_poll:
            poll_logger.info(
                "household %s: %.3f kW%s in %.0f ms, lag %.0f ms",
                entry.cloud_id,
                reading.demand_kw,
                " (repeat)" if decision.repeat else "",
                answer.latency * 1000,
                lag * 1000,
            )

    def _record_failure(self, state: HouseholdState, answer: _Answer, lag: float, tick: int) -> None:
        entry = state.entry
        assert self._writer is not None
        config = self.config
        decision = decisions.after_failure(state, answer.kind, tick, config.interval, config.max_backoff)
        line = failure_line(entry.cloud_id, answer.started, answer.kind, answer.message, answer.latency)
        self._hand_over(LineJob(entry.household_id, entry.cloud_id, answer.started, False, line))
        self.stats.record_failure(entry.household_id, answer.started, answer.kind, answer.message, decision.failures)
        self.counts.poll_finished(answer.kind, answer.latency, lag)
        decisions.apply(state, decision)
        if decision.moved:
            self._queue_next_tick(state)
        backoff = f"; next try in about {decision.backoff_s:g} s" if decision.backoff_s is not None else ""
        # The device's answer (truncated, scrubbed by the client) goes to the log once per change, for diagnosis,
        # rather than onto every failure line.
        answer_note = f"; answer began {answer.raw[:200]!r}" if answer.raw else ""
        self._log_status_change(entry.cloud_id, decision, f": {answer.message}{backoff}{answer_note}")
        if config.log_each_poll:
            poll_logger.info(
                "household %s: %s (%s) after %.0f ms, lag %.0f ms%s",
                entry.cloud_id,
                answer.kind,
                answer.message,
                answer.latency * 1000,
                lag * 1000,
                backoff,
            )

    def _hand_over(self, job: LineJob) -> None:
        """Queue a line for the writer thread. Lines are handed over in batches, every LINE_BATCH_SECONDS, not one
        by one: one queue operation and one wake-up of the writer thread (one fight for the GIL) per batch
        instead of per line. A stop hands over what is left before the writer's last drain."""
        if not self._lines:
            asyncio.get_running_loop().call_later(LINE_BATCH_SECONDS, self._flush_lines)
        self._lines.append(job)

    def _flush_lines(self) -> None:
        lines, self._lines = self._lines, []
        if lines and self._writer is not None:
            self._writer.put_many(lines)

    @staticmethod
    def _log_status_change(cloud_id: str, decision: PollDecision, detail: str) -> None:
        level = decisions.status_change_level(decision.previous_status, decision.status)
        if level is not None:
            logger.log(level, "household %s: %s -> %s%s", cloud_id, decision.previous_status, decision.status, detail)

    def _line_written(self, job: LineJob) -> None:
        """Called by the writer thread for each line on disk: only written readings count as events."""
        if job.ok:
            self.stats.record_written(job.household_id, job.poll_time)

    def _heartbeat(self) -> tuple[int, dict[str, Any]]:
        """Called from the flush thread: the numbers /healthz and operators look at."""
        writer = self._writer.writer if self._writer is not None else None
        details = self.counts.total.as_dict()
        details.update(
            shard=str(self.config.shard) if self.share is None else "fleet",
            in_flight=self.in_flight,
            write_errors=writer.counters.errors if writer is not None else 0,
            failing_writes=writer.failing_households if writer is not None else 0,
            disk_full=writer.disk_full if writer is not None else False,
            write_error=writer.last_error if writer is not None and writer.failing_households else "",
            open_files=writer.open_files if writer is not None else 0,
            database_down=self.loader.database_down,
            started_at=round(self._started_at, 3),
        )
        return len(self.households), details

    async def _summaries(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.config.summary_every)
            write_errors = self.counts.write_errors(self._writer.writer.counters.errors if self._writer else 0)
            window = self.counts.take_window()
            logger.info(
                "last %g s: %d households, %s, %d in flight, %d write errors so far",
                self.config.summary_every,
                len(self.households),
                window.describe(),
                self.in_flight,
                write_errors,
            )
            if self.prices is not None:
                logger.info("last %g s: %s", self.config.summary_every, self.prices.take_window())

    # --- 3. drain ---------------------------------------------------------------------------------------

    async def _drain(self) -> None:
        """Let polls in flight finish (they end by the client's timeouts), cancel what outlives the deadline."""
        self._stopping = True
        prices = self.prices.drain(self.config.poll_deadline + 1.0) if self.prices is not None else None
        price_drain = asyncio.create_task(prices) if prices is not None else None  # side by side with the demand's
        pending = {task for task in self._tasks if not task.done()}
        if pending:
            _done, pending = await asyncio.wait(pending, timeout=self.config.poll_deadline + 1.0)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            logger.warning("%d polls did not finish in time and were abandoned", len(pending))
        if price_drain is not None:
            await price_drain

    # --- 4. summary -------------------------------------------------------------------------------------

    def _summary(self, writer: WriterThread) -> Tally:
        counters = writer.writer.counters
        self.counts.write_errors(counters.errors)
        logger.info(
            "pinger stopped after %.1f s: %d households, %s; %d lines written, %d write errors",
            time.time() - self._started_at,
            len(self.households),
            self.counts.total.describe(),
            counters.lines,
            counters.errors,
        )
        return self.counts.total


def run_pinger(config: PingerConfig, event_loop: str = "asyncio", profile: Path | None = None) -> Tally:
    """Run a pinger to the end in this thread (the management command's one call), on the chosen event loop."""
    from loggerapp.pinger import eventloop

    return eventloop.run(Pinger(config).run(), event_loop, profile)
