"""Fleet membership: each pinger's row in ``PingerMember``, written and read on a thread of its own.

Decisions:
1. Liveness is judged with the database's clock (``now()``), never with the hosts' clocks: a member is live while
   its ``last_seen`` is within ``timeout`` of the database's now. Times are handed to the loop converted to this
   host's clock with the offset measured at each read (the smallest of the recent readings, so that
   a slow query does not move it).
2. A member id is ``host:pid:random``: a restarted pinger is a new member, so a dead one is never mistaken for
   its successor.
3. Joins are announced ahead: a member that joins a fleet with live members becomes effective ``join_delay`` after
   it joined (``active_from``), so that every member has read it before it takes its share and the hand-over
   happens at one instant for all (see rendezvous.ownership_windows). A member back after a silence past the
   timeout (its households were taken over) joins again the same way. The first member of an empty fleet is
   effective at once (a single install starts polling at once); the check and the insert hold an advisory lock
   on PostgreSQL so that two members starting together do not both count as first.
4. A member that could not write its row for the timeout may have been taken over, or the database may be down
   for everyone: it cannot tell which. By default it goes on polling its share (a partition then costs duplicate
   lines for its households, a database outage costs nothing); with ``FLEET_STOP_WHEN_CUT_OFF=1`` and other
   members in its last view, its view expires ``timeout - margin`` seconds after its last successful write
   (``FleetView.valid_until``) and the runner stops polling everything until a write succeeds again, then acts
   on what the database says. The expiry is a time, not an event, so a query hung on a dead network cannot keep
   such a member polling.
5. A clean stop is announced first when other members are live: the row gets ``active_until`` = now +
   ``join_delay``, the member polls until then and the others take its households from then on, exactly as at a
   join. Then it deletes the row (the others take over at their next read) and, unless it was the last member,
   its PingerHeartbeat row. Rows silent for longer than ``forget``
   are deleted by any member; a member silent past the timeout (killed, cut off) also loses its PingerHeartbeat
   row, because its households have been taken over: /healthz judges the members that are alive, and the fleet
   alert reports the silent one.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models.functions import Now

logger = logging.getLogger("loggerapp.fleet")

EXPIRY_MARGIN = 1.0  # a cut-off member stops this long before the others may take its households
JOIN_LOCK_KEY = 0x15E1F  # PostgreSQL advisory lock taken by a joining member for its transaction
OFFSET_READINGS = 20  # clock offset: the smallest of this many recent readings (the least delayed one)


def new_member_id(host: str | None = None, pid: int | None = None) -> str:
    """``host:pid:random`` (at most 100 characters, the heartbeat's name column)."""
    host = (host or socket.gethostname())[:80]
    return f"{host}:{pid if pid is not None else os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Member:
    """A live member as one read saw it; times on this host's clock (Unix seconds)."""

    member_id: str
    host: str
    active_from: float
    last_seen: float
    households: int = 0
    active_until: float = math.inf  # a member that announced its leave polls until then


@dataclass(frozen=True)
class FleetView:
    """The live members after one read, and until when this view may be acted on."""

    members: tuple[Member, ...] = ()
    valid_until: float = 0.0  # local time; after it the member owns nothing (it may have been taken over)
    read_at: float = 0.0

    def expired(self, now: float) -> bool:
        return now >= self.valid_until

    def effective(self, now: float) -> list[str]:
        """Ids of the members that own households at ``now`` (none once the view has expired)."""
        if self.expired(now):
            return []
        return sorted(m.member_id for m in self.members if m.active_from <= now < m.active_until)

    def changes(self, now: float) -> list[tuple[float, str, bool]]:
        """(when, id, joins) of the joins and leaves announced after ``now``."""
        if self.expired(now):
            return []
        found = [(m.active_from, m.member_id, True) for m in self.members if m.active_from > now]
        found += [(m.active_until, m.member_id, False) for m in self.members if now < m.active_until < math.inf]
        return sorted(found)

    def others(self, me: str, now: float) -> int:
        """Members other than ``me`` effective now or announced."""
        return sum(1 for m in self.members if m.member_id != me and m.active_until > now)


@dataclass
class FleetSettings:
    heartbeat: float = 3.0
    timeout: float = 9.0
    join_delay: float = 6.0
    forget: float = 3600.0
    stop_when_cut_off: bool = False

    def __post_init__(self) -> None:
        if self.heartbeat <= 0:
            raise ValueError("the fleet heartbeat must be a positive number of seconds")
        if self.timeout < 2 * self.heartbeat + EXPIRY_MARGIN:
            raise ValueError("the fleet member timeout must be at least two heartbeats plus one second")
        if self.join_delay < self.heartbeat:
            raise ValueError("the fleet join delay must be at least one heartbeat")


def write_and_read(
    member_id: str,
    host: str,
    pid: int,
    fleet: FleetSettings,
    households: int,
    details: dict[str, Any],
    leave_in: float | None = None,
) -> tuple[list[tuple[Any, ...]], float]:
    """Upsert this member's row (the database's now) and read the live members; returns their rows (id, host,
    active_from, last_seen, households, active_until; times as Unix seconds on the database's clock) and the
    database's now. ``leave_in``: announce that this member stops owning households that many seconds from now."""
    from loggerapp.models import PingerHeartbeat, PingerMember

    live_after = Now() - timedelta(seconds=fleet.timeout)
    with transaction.atomic():
        updated = PingerMember.objects.filter(pk=member_id, last_seen__gt=live_after).update(
            last_seen=Now(), households=households, details=details
        )
        if not updated:
            # New, or back after a silence past the timeout (its households were taken over): a join either way.
            if connection.vendor == "postgresql":  # joins one at a time (an advisory lock: beats never wait)
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [JOIN_LOCK_KEY])
            others = PingerMember.objects.filter(last_seen__gt=live_after).exclude(pk=member_id).exists()
            delay = timedelta(seconds=fleet.join_delay if others else 0.0)
            PingerMember.objects.filter(pk=member_id).delete()
            PingerMember.objects.create(
                member_id=member_id,
                host=host[:100],
                pid=pid,
                started_at=Now(),
                active_from=Now() + delay,
                last_seen=Now(),
                households=households,
                details=details,
            )
        if leave_in is not None:
            PingerMember.objects.filter(pk=member_id).update(active_until=Now() + timedelta(seconds=leave_in))
        rows = list(
            PingerMember.objects.filter(last_seen__gt=live_after)
            .annotate(db_now=Now())
            .values_list("member_id", "host", "active_from", "last_seen", "households", "db_now", "active_until")
        )
        silent = list(
            PingerMember.objects.filter(last_seen__lte=live_after).values_list("member_id", flat=True).order_by()
        )
        if silent:
            PingerHeartbeat.objects.filter(name__in=silent).delete()
        PingerMember.objects.filter(last_seen__lt=Now() - timedelta(seconds=fleet.forget)).delete()
    db_now = next((row[5] for row in rows if row[0] == member_id), None)
    if db_now is None:  # our own row always matches; a clock jump inside the transaction would be a bug
        raise DatabaseError("own member row not read back")
    members = [
        (row[0], row[1], row[2].timestamp(), row[3].timestamp(), row[4], row[6].timestamp() if row[6] else math.inf)
        for row in rows
    ]
    return members, db_now.timestamp()


def leave(member_id: str, timeout: float) -> None:
    """Delete this member's row: the others take its households at their next read. When others are live, its
    pinger heartbeat goes too (its households are polled: no stale shard); the last member keeps it, so that
    /healthz says that nobody polls any more."""
    from loggerapp.models import PingerHeartbeat, PingerMember

    with transaction.atomic():
        PingerMember.objects.filter(pk=member_id).delete()
        if PingerMember.objects.filter(last_seen__gt=Now() - timedelta(seconds=timeout)).exists():
            PingerHeartbeat.objects.filter(name=member_id).delete()


@dataclass
class MembershipCounts:
    reads: int = 0
    failures: int = 0
    handovers_in: int = 0
    handovers_out: int = 0


class Membership(threading.Thread):
    """Writes this member's row and reads the fleet every ``heartbeat`` seconds; the latest ``view`` is read by
    the event loop (an attribute swap, no lock needed), which ``on_view`` wakes."""

    def __init__(
        self,
        fleet: FleetSettings,
        member_id: str | None = None,
        status: Callable[[], tuple[int, dict[str, Any]]] | None = None,
        on_view: Callable[[FleetView], None] | None = None,
    ) -> None:
        super().__init__(name="pinger-fleet", daemon=True)
        self.fleet = fleet
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.member_id = member_id or new_member_id(self.host, self.pid)
        self.status = status or (lambda: (0, {}))
        self.on_view = on_view
        self.view = FleetView()
        self.counts = MembershipCounts()
        self._cut_off = False
        self._offsets: deque[float] = deque(maxlen=OFFSET_READINGS)
        self.leave_in: float | None = None  # set by announce_leave, written by the next beat
        self._stop_event = threading.Event()
        self._beat_now = threading.Event()  # wakes the thread early: a leave to announce, or the stop

    def beat(self) -> FleetView:
        """One write and read; on a database error the previous view stays (it expires on its own)."""
        households, details = self.status()
        try:
            close_old_connections()
            connection.ensure_connection()  # connecting is not part of the clock reading below
            started_local = time.time()
            leave_in, self.leave_in = self.leave_in, None
            rows, db_now = write_and_read(
                self.member_id, self.host, self.pid, self.fleet, households, details, leave_in
            )
        except DatabaseError as exc:
            self.counts.failures += 1
            try:
                connection.close()
            except DatabaseError:
                pass
            if not self._cut_off:
                self._cut_off = True
                logger.warning(
                    "fleet: cannot write this member's heartbeat (%s); if this lasts %g s the other members take "
                    "its households and it stops polling them",
                    type(exc).__name__,
                    self.fleet.timeout,
                )
            return self.view
        finished_local = time.time()
        # now() is the transaction's start on PostgreSQL, i.e. its first statement's: compared with our start it
        # gives the offset plus one trip to the database; the smallest of the recent readings is the best one.
        self._offsets.append(db_now - started_local)
        offset = min(self._offsets)
        members = tuple(
            Member(member_id, host, active_from - offset, last_seen - offset, count, until - offset)
            for member_id, host, active_from, last_seen, count, until in rows
        )
        # Counted from the start of the write: the row's last_seen is at least that late. Alone in the fleet, or
        # without FLEET_STOP_WHEN_CUT_OFF, a cut-off member goes on polling (see decision 4).
        valid_until = math.inf
        if self.fleet.stop_when_cut_off and len(members) > 1:
            valid_until = started_local + self.fleet.timeout - EXPIRY_MARGIN
        view = FleetView(members, valid_until, finished_local)
        if self._cut_off:
            self._cut_off = False
            logger.warning("fleet: heartbeat written again; %d live members", len(members))
        self.counts.reads += 1
        self.view = view
        if self.on_view is not None:
            self.on_view(view)
        return view

    def announce_leave(self) -> None:
        """Announce that this member stops owning households ``join_delay`` from now (written at once)."""
        self.leave_in = self.fleet.join_delay
        self._beat_now.set()

    def run(self) -> None:
        try:
            while True:
                try:
                    self.beat()
                except Exception:  # a bug must not end the thread: the view would expire and polling stop
                    logger.exception("fleet: membership read failed")
                self._beat_now.wait(self.fleet.heartbeat)
                self._beat_now.clear()
                if self._stop_event.is_set():
                    break
            self._leave()
        finally:
            connection.close()

    def _leave(self) -> None:
        """Leave the fleet (best effort: if the database is down the row simply goes stale)."""
        try:
            close_old_connections()
            leave(self.member_id, self.fleet.timeout)
        except DatabaseError as exc:
            logger.warning("fleet: could not remove this member's row (%s); it goes stale", type(exc).__name__)

    def stop(self, timeout: float | None = None) -> None:
        """Stop beating and leave the fleet; called once the member polls nothing any more."""
        self._stop_event.set()
        self._beat_now.set()
        self.join(timeout)
