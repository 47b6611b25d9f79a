"""The thread that writes statistics and the heartbeat to the database, so the event loop never waits on it.

Decisions:
1. One flush every ``every`` seconds (at most every few seconds; never one query per poll): the statistics
   batch (see ``stats.write_deltas``) and then the PingerHeartbeat row of this pinger.
2. The database may be down for a while. The batch is put back into the accumulator, the outage is logged
   once (and its end once), the broken connection is closed, and the next flush retries. Polling and files
   are unaffected.
3. ``stop()`` makes a last flush, so a clean shutdown saves everything that was counted. The runner waits for it
   a bounded time (PINGER_STOP_WAIT): a database that never answers must not keep the process from exiting; what
   stays unsaved is logged, and recounted from the files at the next start (pinger/reconcile.py).
4. Each flush opens its own connection and closes it afterwards. A new connection is bounded by libpq's connect
   timeout (DB_CONNECT_TIMEOUT) and its statements by the server's statement timeout (DB_STATEMENT_TIMEOUT); a
   connection kept open would hang for ever the moment the database stops answering on it. A flush still blocked
   after PINGER_BLOCKED_INTERVALS intervals is logged (``watch``, checked by the runner's event loop).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, close_old_connections, connection
from django.utils import timezone

from loggerapp.pinger.blocking import BlockedWatch
from loggerapp.pinger.stats import StatsAccumulator, write_deltas

logger = logging.getLogger("loggerapp.pinger.flusher")


def write_heartbeat(name: str, interval: float, households: int, details: dict[str, Any]) -> None:
    from loggerapp.models import PingerHeartbeat

    PingerHeartbeat.objects.update_or_create(
        name=name,
        defaults={"beat_at": timezone.now(), "interval": interval, "households": households, "details": details},
    )


class StatsFlusher(threading.Thread):
    def __init__(
        self,
        accumulator: StatsAccumulator,
        every: float,
        heartbeat_name: str,
        interval: float,
        heartbeat: Callable[[], tuple[int, dict[str, Any]]],
        warn_after: float = 30.0,
    ) -> None:
        super().__init__(name="pinger-stats", daemon=True)
        self.accumulator = accumulator
        self.every = every
        self.heartbeat_name = heartbeat_name
        self.interval = interval
        self.heartbeat = heartbeat
        self.outage = False  # the database refused the last flush: its end is logged once
        self._stop_event = threading.Event()
        self.watch = BlockedWatch("statistics flush", warn_after)
        self.batch_in_flight = 0  # households of the batch being written (unsaved if the flush never returns)
        # Set once the start's recount is done (pinger/reconcile.py): until then this run's counts wait in memory,
        # so that the recount sees the total as it was before this run.
        self.released = threading.Event()

    def stop(self, timeout: float | None = None) -> None:
        self._stop_event.set()
        self.join(timeout)

    def run(self) -> None:
        try:
            while not self._stop_event.wait(self.every):
                if self.released.is_set():
                    self.flush()
            if not self.flush():
                pending = len(self.accumulator)
                logger.error("statistics of %d households could not be saved at shutdown (database down)", pending)
        finally:
            connection.close()

    def unsaved(self) -> int:
        """Households whose counted statistics are not in the database (waiting, or in a flush in progress)."""
        return len(self.accumulator) + self.batch_in_flight

    def flush(self) -> bool:
        """One batch and one heartbeat; False (and the batch kept for later) if the database refused."""
        self.watch.begin()
        try:
            return self._flush()
        finally:
            self.batch_in_flight = 0
            self.watch.end()
            try:
                connection.close()  # a fresh, bounded connection next time (decision 4)
            except DatabaseError:
                pass

    def _flush(self) -> bool:
        deltas = self.accumulator.take()
        self.batch_in_flight = len(deltas)
        saved = False  # once the batch is committed it must never be put back: that would count it twice
        try:
            close_old_connections()
            written = write_deltas(deltas)
            saved = True
            households, details = self.heartbeat()
            write_heartbeat(self.heartbeat_name, self.interval, households, details)
        except DatabaseError as exc:
            if not saved:
                self.accumulator.put_back(deltas)
            if not self.outage:
                self.outage = True
                logger.warning(
                    "statistics not saved, database unavailable (%s); keeping them in memory and retrying every %g s",
                    type(exc).__name__,
                    self.every,
                )
            try:
                connection.close()
            except DatabaseError:
                pass
            return False
        except Exception:  # a bug here must not end the thread (and with it every later flush)
            if not saved:
                self.accumulator.put_back(deltas)
            logger.exception("statistics flush failed")
            return False
        if self.outage:
            self.outage = False
            logger.warning("database reachable again; statistics of %d households saved", written)
        return True
