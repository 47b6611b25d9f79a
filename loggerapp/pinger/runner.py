"""The pinger's event loop: every active household polled on its own drift-free schedule.

How one run goes (``Pinger.run``), in the spirit of a long-running loop that must stop cleanly:
1. Start the writer thread (hour files) and the flush thread (statistics + heartbeat), load the households
   (in a worker thread), open one aiohttp-based AsyncEagleClient for the whole run.
2. The scheduler coroutine keeps a heap of (due time, household). When a tick is due it is launched as its own
   task and the household's next tick is pushed at once, so a slow poll can never delay anything else. A tick
   whose previous poll is still in flight is skipped and counted, never queued. A semaphore bounds the polls
   in flight (``--max-in-flight``); the time a poll waits for it shows up as schedule lag.
3. Each finished poll becomes one line handed to the writer thread, one update of the in-memory statistics and
   of the metrics; a change of a household's status is logged with its cloud id and cause (never a password).
   Bad credentials push the next poll back 2, 4, 8... intervals (at most ``max_backoff``), always onto one of
   the household's own ticks; every other failure keeps the normal cadence.
4. Every ``refresh`` seconds the household list is reloaded (added, removed, changed credentials); if the
   database is down the known list keeps being polled and the load is retried.
5. SIGTERM/SIGINT (or ``--duration``, or the end of ``--once``) stop the scheduler; polls in flight finish
   (bounded by the client's timeouts), then the writer writes everything queued and closes every file, the
   flush thread saves the statistics and a last heartbeat, and ``run`` returns a summary.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import signal
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loggerapp.hourfiles.lines import failure_line, is_repeat, success_line
from loggerapp.pinger import schedule
from loggerapp.pinger.files import HourFileWriter, LineJob, WriterThread, usable_open_files
from loggerapp.pinger.flusher import StatsFlusher
from loggerapp.pinger.metrics import PingerMetrics
from loggerapp.pinger.registry import HouseholdEntry, RegistryUnavailable, diff, load_households
from loggerapp.pinger.stats import StatsAccumulator

logger = logging.getLogger("loggerapp.pinger")
poll_logger = logging.getLogger("loggerapp.pinger.polls")

OK = "ok"
NEVER_POLLED = "never_polled"
BAD_CREDENTIALS = "bad_credentials"
UNREACHABLE = "unreachable"
BAD_RESPONSE = "bad_response"
MAX_SCHEDULER_SLEEP = 0.25  # how long the scheduler may sleep: new households start within this
DB_RETRY_SECONDS = 5.0  # household list retry while the database is down and nothing is known yet


@dataclass
class PingerConfig:
    """Everything a run needs; the management command fills it from options and settings."""

    log_root: Path
    interval: float = 6.0
    refresh: float = 60.0
    max_in_flight: int = 1024
    max_open_files: int = 1024
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

    def __post_init__(self) -> None:
        if self.interval <= 0 or not math.isfinite(self.interval):
            raise ValueError("interval must be a positive number of seconds")
        if self.refresh <= 0:
            raise ValueError("refresh must be a positive number of seconds")
        if self.max_in_flight < 1:
            raise ValueError("max-in-flight must be at least 1")
        if self.duration is not None and self.duration <= 0:
            raise ValueError("duration must be a positive number of seconds")
        if not self.heartbeat_name:
            self.heartbeat_name = f"{socket.gethostname()}:{self.shard}"[:100]


class HouseholdState:
    """What the loop knows about one household between polls."""

    __slots__ = (
        "bad_credentials",
        "entry",
        "failures",
        "last_meter_timestamp",
        "next_tick",
        "phase",
        "polling",
        "removed",
        "status",
    )

    def __init__(self, entry: HouseholdEntry, phase: float, next_tick: int) -> None:
        self.entry = entry
        self.phase = phase
        self.next_tick = next_tick
        self.polling = False
        self.removed = False
        self.last_meter_timestamp: int | None = None
        self.status = entry.status
        self.failures = entry.consecutive_failures
        # A restart continues a back-off that was under way.
        self.bad_credentials = entry.consecutive_failures if entry.status == BAD_CREDENTIALS else 0


@dataclass
class Tally:
    """Counts over a window (the minute's summary) or the whole run."""

    polls: int = 0
    successes: int = 0
    failures: Counter = field(default_factory=Counter)
    skipped: int = 0
    worst_lag: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "polls": self.polls,
            "successes": self.successes,
            "failures": dict(self.failures),
            "skipped": self.skipped,
            "worst_lag_s": round(self.worst_lag, 3),
        }

    def describe(self) -> str:
        failures = ", ".join(f"{kind} {count}" for kind, count in sorted(self.failures.items())) or "none"
        return (
            f"polls {self.polls}, successes {self.successes}, failures: {failures}, "
            f"skipped ticks {self.skipped}, worst lag {self.worst_lag:.3f} s"
        )


class Pinger:
    def __init__(self, config: PingerConfig, metrics: PingerMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or PingerMetrics()
        self.households: dict[str, HouseholdState] = {}
        self.total = Tally()
        self.window = Tally()
        self.stats = StatsAccumulator()
        self.write_errors_seen = 0
        self._heap: list[tuple[float, int, HouseholdState, int]] = []
        self._seq = itertools.count()
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False
        self._stop_event: asyncio.Event | None = None
        self._db_down = False
        self._db_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pinger-db")
        self._client: Any = None
        self._writer: WriterThread | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._started_at = 0.0

    # --- lifecycle --------------------------------------------------------------------------------------

    def stop(self, reason: str = "asked to stop") -> None:
        """Stop scheduling; polls in flight finish. Safe to call more than once."""
        if self._stopping:
            return
        self._stopping = True
        logger.info("stopping (%s): finishing %d polls in flight", reason, self.in_flight)
        if self._stop_event is not None:
            self._stop_event.set()

    @property
    def in_flight(self) -> int:
        """Polls launched and not finished (tasks leave the set when done). len() is safe from other threads,
        iterating the set would not be."""
        return len(self._tasks)

    async def run(self) -> Tally:
        """Run until stopped (signal, --duration, or the end of --once); returns the whole run's counts."""
        from loggerapp.eagle import AsyncEagleClient

        config = self.config
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._semaphore = asyncio.Semaphore(config.max_in_flight)
        self._started_at = time.time()
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, self.stop, signal.Signals(signum).name)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests in a thread)
                pass

        pool_size = usable_open_files(config.max_open_files)
        writer = WriterThread(
            HourFileWriter(config.log_root, pool_size), on_written=self._line_written, hour_grace=config.hour_grace
        )
        flusher = StatsFlusher(
            self.stats,
            every=min(config.flush_every, config.interval) if not config.once else 3600.0,
            heartbeat_name=config.heartbeat_name,
            interval=config.interval,
            heartbeat=self._heartbeat,
        )
        self._writer = writer
        writer.start()
        flusher.start()
        metrics_server = None
        if config.metrics_port is not None:
            metrics_server = self.metrics.serve(config.metrics_port)
        logger.info(
            "pinger starting: shard %s, interval %g s, refresh %g s, at most %d polls in flight, %d open files, "
            "writing under %s",
            config.shard,
            config.interval,
            config.refresh,
            config.max_in_flight,
            pool_size,
            config.log_root,
        )
        try:
            client_options: dict[str, Any] = {"max_connections": config.max_in_flight}
            if config.cloud_url:
                client_options["cloud_url"] = config.cloud_url
            async with AsyncEagleClient(**client_options) as client:
                self._client = client
                if config.once:
                    await self._run_once()
                else:
                    await self._run_forever()
                await self._drain()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.remove_signal_handler(signum)
                except (NotImplementedError, RuntimeError, ValueError):
                    pass
            # Blocking joins are fine here: nothing is scheduled any more.
            writer.stop()
            flusher.stop()
            self._db_executor.shutdown(wait=False, cancel_futures=True)
            if metrics_server is not None:
                server = metrics_server[0] if isinstance(metrics_server, tuple) else metrics_server
                server.shutdown()
        self._account_write_errors()
        logger.info(
            "pinger stopped after %.1f s: %d households, %s; %d lines written, %d write errors",
            time.time() - self._started_at,
            len(self.households),
            self.total.describe(),
            writer.writer.counters.lines,
            writer.writer.counters.errors,
        )
        return self.total

    async def _run_forever(self) -> None:
        assert self._stop_event is not None
        await self._refresh(initial=True)
        background = [
            asyncio.create_task(self._scheduler(), name="scheduler"),
            asyncio.create_task(self._refresher(), name="refresher"),
            asyncio.create_task(self._summaries(), name="summaries"),
        ]
        if self.config.duration is not None:
            asyncio.get_running_loop().call_later(self.config.duration, self.stop, "--duration reached")
        try:
            await self._stop_event.wait()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)

    async def _run_once(self) -> None:
        """Poll every household once, at once (bounded by the semaphore), and return when all are done."""
        loaded = await self._load()
        if loaded is None:
            raise RegistryUnavailable("the household list could not be read from the database")
        self._apply(loaded)
        now = time.time()
        for state in list(self.households.values()):
            self._launch(state, now, state.next_tick)
        while self._tasks and not self._stopping:
            await asyncio.wait(set(self._tasks), timeout=0.5)

    async def _drain(self) -> None:
        """Let polls in flight finish (they end by the client's timeouts), cancel what outlives the deadline."""
        self._stopping = True
        pending = {task for task in self._tasks if not task.done()}
        if pending:
            _done, pending = await asyncio.wait(pending, timeout=self.config.poll_deadline + 1.0)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            logger.warning("%d polls did not finish in time and were abandoned", len(pending))

    # --- households -------------------------------------------------------------------------------------

    async def _load(self) -> dict[str, HouseholdEntry] | None:
        loop = asyncio.get_running_loop()
        try:
            loaded = await loop.run_in_executor(self._db_executor, load_households, self.config.shard)
        except RegistryUnavailable as exc:
            if not self._db_down:
                self._db_down = True
                logger.warning(
                    "household list not refreshed, database unavailable (%s); polling the %d known households",
                    exc,
                    len(self.households),
                )
            return None
        except Exception:  # a bug must not end the refresher (nor the run): keep the known list, retry later
            logger.exception(
                "household list could not be loaded; polling the %d known households", len(self.households)
            )
            return None
        if self._db_down:
            self._db_down = False
            logger.warning("database reachable again; household list refreshed")
        return loaded

    async def _refresh(self, initial: bool = False) -> None:
        loaded = await self._load()
        if loaded is not None:
            self._apply(loaded, initial=initial)

    async def _refresher(self) -> None:
        while not self._stopping:
            wait = DB_RETRY_SECONDS if (self._db_down and not self.households) else self.config.refresh
            await asyncio.sleep(min(wait, self.config.refresh))
            if not self._stopping:
                await self._refresh()

    def _apply(self, loaded: dict[str, HouseholdEntry], initial: bool = False) -> None:
        known = {cloud_id: state.entry for cloud_id, state in self.households.items()}
        changes = diff(known, loaded)
        now = time.time()
        interval = self.config.interval
        for entry in changes.added:
            phase = schedule.phase_of(entry.cloud_id, interval)
            state = HouseholdState(entry, phase, schedule.next_tick(now, phase, interval))
            self.households[entry.cloud_id] = state
            self._push(state)
        for cloud_id in changes.removed:
            state = self.households.pop(cloud_id)
            state.removed = True
        for entry in changes.changed:
            state = self.households[entry.cloud_id]
            state.entry = entry
            # New credentials deserve an answer now, not at the end of a back-off.
            if state.bad_credentials:
                state.bad_credentials = 0
                state.next_tick = schedule.next_tick(now, state.phase, interval)
                self._push(state)
        self.metrics.households.set(len(self.households))
        if initial:
            logger.info("polling %d households", len(self.households))
        elif changes:
            logger.info(
                "household list refreshed: %d added, %d removed, %d changed; %d households",
                len(changes.added),
                len(changes.removed),
                len(changes.changed),
                len(self.households),
            )
            for entry in changes.added:
                logger.info("household %s added", entry.cloud_id)
            for cloud_id in changes.removed:
                logger.info("household %s removed or deactivated", cloud_id)
            for entry in changes.changed:
                logger.info("household %s: protocol, address or credentials changed", entry.cloud_id)

    # --- scheduling -------------------------------------------------------------------------------------

    def _push(self, state: HouseholdState) -> None:
        due = schedule.due_time(state.phase, state.next_tick, self.config.interval)
        heapq.heappush(self._heap, (due, next(self._seq), state, state.next_tick))

    async def _scheduler(self) -> None:
        heap = self._heap
        while not self._stopping:
            now = time.time()
            while heap and heap[0][0] <= now:
                due, _, state, tick = heapq.heappop(heap)
                if state.removed or state.next_tick != tick:
                    continue  # a removed household, or a tick moved by back-off or a refresh
                state.next_tick = tick + 1
                self._push(state)
                self._launch(state, due, tick)
            delay = heap[0][0] - time.time() if heap else MAX_SCHEDULER_SLEEP
            await asyncio.sleep(min(max(delay, 0.0), MAX_SCHEDULER_SLEEP))

    def _launch(self, state: HouseholdState, due: float, tick: int) -> None:
        if state.polling:
            self.total.skipped += 1
            self.window.skipped += 1
            self.metrics.skipped.inc()
            if self.config.log_each_poll:
                poll_logger.info("household %s: tick skipped, previous poll still in flight", state.entry.cloud_id)
            return
        state.polling = True
        task = asyncio.create_task(self._poll(state, due, tick))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- one poll ---------------------------------------------------------------------------------------

    async def _poll(self, state: HouseholdState, due: float, tick: int) -> None:
        from loggerapp.eagle import EagleError

        assert self._semaphore is not None
        entry = state.entry
        try:
            async with self._semaphore:
                if self._stopping:
                    return  # never started: nothing to finish
                self.metrics.in_flight.inc()
                started = time.time()
                clock = time.perf_counter()
                reading = None
                raw: str | None = None
                try:
                    async with asyncio.timeout(self.config.poll_deadline):
                        reading = await self._client.instantaneous_demand(entry.target)
                except EagleError as exc:
                    kind, message, raw = exc.kind, exc.message, exc.raw
                except TimeoutError:
                    kind, message = UNREACHABLE, f"no answer within {self.config.poll_deadline:g} s"
                except Exception as exc:  # the client promises EagleError only; a bug must not stop the loop
                    logger.exception("household %s: unexpected error while polling", entry.cloud_id)
                    kind, message = BAD_RESPONSE, f"internal error ({type(exc).__name__})"
                finally:
                    self.metrics.in_flight.dec()
                latency = time.perf_counter() - clock
        finally:
            state.polling = False
        lag = max(0.0, started - due) if not self.config.once else 0.0
        if reading is not None:
            self._succeeded(state, reading, started, latency, lag)
        else:
            self._failed(state, kind, message, started, latency, lag, tick, raw)

    def _count(self, outcome: str, latency: float, lag: float) -> None:
        for tally in (self.total, self.window):
            tally.polls += 1
            if outcome == OK:
                tally.successes += 1
            else:
                tally.failures[outcome] += 1
            if lag > tally.worst_lag:
                tally.worst_lag = lag
        self.metrics.poll_finished(outcome, latency, lag)

    def _succeeded(self, state: HouseholdState, reading: Any, started: float, latency: float, lag: float) -> None:
        entry = state.entry
        repeat = is_repeat(state.last_meter_timestamp, reading.meter_timestamp)
        if reading.meter_timestamp is not None:
            state.last_meter_timestamp = reading.meter_timestamp
        line = success_line(reading, started, repeat)
        self._writer.put(LineJob(entry.household_id, entry.cloud_id, started, True, line))
        self.stats.record_success(entry.household_id, started, reading.demand_kw, reading.meter_timestamp)
        self._count(OK, latency, lag)
        if state.status != OK:
            level = logging.DEBUG if state.status == NEVER_POLLED else logging.INFO
            logger.log(level, "household %s: %s -> ok (%.3f kW)", entry.cloud_id, state.status, reading.demand_kw)
        state.status = OK
        state.failures = 0
        state.bad_credentials = 0
        if self.config.log_each_poll:
            poll_logger.info(
                "household %s: %.3f kW%s in %.0f ms, lag %.0f ms",
                entry.cloud_id,
                reading.demand_kw,
                " (repeat)" if repeat else "",
                latency * 1000,
                lag * 1000,
            )

    def _failed(
        self,
        state: HouseholdState,
        kind: str,
        message: str,
        started: float,
        latency: float,
        lag: float,
        tick: int,
        raw: str | None = None,
    ) -> None:
        entry = state.entry
        line = failure_line(entry.cloud_id, started, kind, message, latency)
        self._writer.put(LineJob(entry.household_id, entry.cloud_id, started, False, line))
        state.failures += 1
        self.stats.record_failure(entry.household_id, started, kind, message, state.failures)
        self._count(kind, latency, lag)
        backoff_note = ""
        if kind == BAD_CREDENTIALS:
            state.bad_credentials += 1
            wait = schedule.backoff_seconds(state.bad_credentials, self.config.interval, self.config.max_backoff)
            later = tick + schedule.ticks_to_skip(wait, self.config.interval)
            if later > state.next_tick and not state.removed:
                state.next_tick = later
                self._push(state)
            backoff_note = f"; next try in about {wait:g} s"
        else:
            state.bad_credentials = 0
        if state.status != kind:
            # The device's answer (truncated, scrubbed by the client) goes to the log once per change, for
            # diagnosis, rather than onto every failure line.
            answer = f"; answer began {raw[:200]!r}" if raw else ""
            logger.warning(
                "household %s: %s -> %s: %s%s%s", entry.cloud_id, state.status, kind, message, backoff_note, answer
            )
            state.status = kind
        if self.config.log_each_poll:
            poll_logger.info(
                "household %s: %s (%s) after %.0f ms, lag %.0f ms%s",
                entry.cloud_id,
                kind,
                message,
                latency * 1000,
                lag * 1000,
                backoff_note,
            )

    def _line_written(self, job: LineJob) -> None:
        """Called by the writer thread for each line on disk: only written readings count as events."""
        if job.ok:
            self.stats.record_written(job.household_id, job.poll_time)

    # --- reporting --------------------------------------------------------------------------------------

    def _account_write_errors(self) -> int:
        errors = self._writer.writer.counters.errors if self._writer is not None else 0
        new = errors - self.write_errors_seen
        if new > 0:
            self.metrics.write_errors.inc(new)
            self.write_errors_seen = errors
        return errors

    def _heartbeat(self) -> tuple[int, dict[str, Any]]:
        """Called from the flush thread: the numbers /healthz and operators look at."""
        details = self.total.as_dict()
        details.update(
            shard=str(self.config.shard),
            in_flight=self.in_flight,
            write_errors=self._writer.writer.counters.errors if self._writer is not None else 0,
            open_files=self._writer.writer.open_files if self._writer is not None else 0,
            database_down=self._db_down,
            started_at=round(self._started_at, 3),
        )
        return len(self.households), details

    async def _summaries(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.config.summary_every)
            self._account_write_errors()
            window, self.window = self.window, Tally()
            logger.info(
                "last %g s: %d households, %s, %d in flight, %d write errors so far",
                self.config.summary_every,
                len(self.households),
                window.describe(),
                self.in_flight,
                self.write_errors_seen,
            )


def run_pinger(config: PingerConfig) -> Tally:
    """Run a pinger to the end in this thread (the management command's one call)."""
    return asyncio.run(Pinger(config).run())
