"""Liveness checks shared by /healthz, the alerts, the status page and `manage.py doctor`.

Every check returns a CheckResult instead of raising, so one broken part never hides the state of the others.
Details name the failing part and the kind of error, never a URL, a host's credentials or an exception's full
text (which for Redis or PostgreSQL could hold a connection string). Anonymous /healthz callers get even less:
``HealthReport.summary()``, one word per part (loggerapp/ops/views.py decides who gets which).

A hung Redis (one that accepts the connection and never answers, or answers a byte at a time) must not hold the
web server's threads: the Redis check is one PING per process at a time, in a thread of its own, ended at
HEALTH_REDIS_TIMEOUT by closing its socket, and every caller waits at most that long for it. However many
/healthz requests arrive while Redis hangs, the process holds one connection to it, and each request ends in time.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from loggerapp.fleet.ops import fleet_summary
from loggerapp.models import PingerHeartbeat


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str = ""
    elapsed_ms: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result.pop("name")
        result["elapsed_ms"] = round(self.elapsed_ms, 1)
        return result


@dataclass
class HealthReport:
    checks: dict[str, CheckResult]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks.values())

    @property
    def failing(self) -> list[str]:
        return [name for name, check in self.checks.items() if not check.ok]

    def to_dict(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"status": "ok" if self.ok else "failing"}
        if not self.ok:
            payload["failing"] = self.failing
        payload["checks"] = {name: check.to_dict() for name, check in self.checks.items()}
        return payload

    def summary(self) -> dict[str, Any]:
        """What anyone may know: the overall status and one word per part, nothing about the installation."""
        return {
            "status": "ok" if self.ok else "failing",
            "checks": {name: "ok" if check.ok else "failing" for name, check in self.checks.items()},
        }


def _timed(name: str, started: float, ok: bool, detail: str, **data: Any) -> CheckResult:
    return CheckResult(name, ok, detail, (time.perf_counter() - started) * 1000, data)


def check_database(db: BaseDatabaseWrapper | None = None) -> CheckResult:
    """SELECT 1 on the default connection (or `db`, a wrapper the tests point at a closed port)."""
    started = time.perf_counter()
    db = db or connection
    try:
        db.ensure_connection()
        with db.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        # A broken connection must not stay cached for the next request of this worker.
        db.close_if_unusable_or_obsolete()
        return _timed("database", started, False, f"database unavailable ({type(exc).__name__})")
    return _timed("database", started, True, db.vendor)


def redis_client(url: str | None = None, timeout: float | None = None) -> redis.Redis:
    timeout = settings.HEALTH_REDIS_TIMEOUT if timeout is None else timeout
    return redis.Redis.from_url(url or settings.REDIS_URL, socket_connect_timeout=timeout, socket_timeout=timeout)


_pings: dict[str, Future] = {}  # Redis URL -> the PING in flight in this process (module docstring)
_pings_lock = threading.Lock()


def check_redis(url: str | None = None) -> CheckResult:
    """PING Redis within HEALTH_REDIS_TIMEOUT, sharing a PING already in flight for the same URL."""
    started = time.perf_counter()
    url = url or settings.REDIS_URL
    timeout = float(settings.HEALTH_REDIS_TIMEOUT)
    with _pings_lock:
        ping = _pings.get(url)
        if ping is None or ping.done():
            ping = _pings[url] = Future()
            threading.Thread(target=_ping, args=(url, timeout, ping), name="health-redis-ping", daemon=True).start()
    try:
        error = ping.result(timeout=timeout + 0.05)  # the PING's own timer fires at `timeout`; this is the backstop
    except FutureTimeout:
        error = f"no answer within {timeout:g} s"
    if error:
        return _timed("redis", started, False, f"redis unavailable ({error})")
    return _timed("redis", started, True, "ping")


def _ping(url: str, timeout: float, outcome: Future) -> None:
    """One PING; its socket is closed at ``timeout`` whatever Redis does (a reply trickled byte by byte would
    otherwise restart the socket timeout with every byte). Sets the error's type name, or None."""
    client = redis_client(url, timeout)
    late = threading.Event()

    def end() -> None:
        late.set()
        client.connection_pool.disconnect()

    timer = threading.Timer(timeout, end)
    timer.daemon = True
    timer.start()
    try:
        client.ping()
    except Exception as exc:  # RedisError, or an OSError from the socket closed under it: both are "unavailable"
        outcome.set_result(f"no answer within {timeout:g} s" if late.is_set() else type(exc).__name__)
    else:
        outcome.set_result(None)
    finally:
        timer.cancel()
        client.close()


def heartbeat_stale_after(heartbeat: PingerHeartbeat) -> float:
    """Seconds after which a shard's heartbeat counts as stale: two of its own intervals (with a floor, because
    the pinger writes its heartbeat together with its batched statistics)."""
    interval = heartbeat.interval if heartbeat.interval and heartbeat.interval > 0 else settings.PINGER_INTERVAL
    return max(settings.HEALTH_HEARTBEAT_INTERVALS * interval, settings.HEALTH_HEARTBEAT_MIN_SECONDS)


def check_pinger(now: datetime | None = None) -> CheckResult:
    """Every pinger shard seen within HEALTH_HEARTBEAT_FORGET_MINUTES must have beaten recently.

    1. Heartbeats older than the forget window are shards that were retired (renamed host, new sharding):
       they are ignored, or one old row would keep /healthz red forever.
    2. No recent heartbeat at all is a failure (unless HEALTH_REQUIRE_PINGER is off): no pinger is running.
    3. Otherwise each remaining shard must be fresh; the stale ones are named with their age.
    """
    started = time.perf_counter()
    now = now or timezone.now()
    forget_before = now - timedelta(minutes=settings.HEALTH_HEARTBEAT_FORGET_MINUTES)
    try:
        heartbeats = list(PingerHeartbeat.objects.filter(beat_at__gte=forget_before).order_by("name"))
    except DatabaseError as exc:
        return _timed("pinger", started, False, f"unknown: database unavailable ({type(exc).__name__})")
    if not heartbeats:
        required = settings.HEALTH_REQUIRE_PINGER
        detail = f"no pinger heartbeat in the last {settings.HEALTH_HEARTBEAT_FORGET_MINUTES} min"
        return _timed("pinger", started, not required, detail, shards=0)
    stale: dict[str, float] = {}
    households = 0
    worst_age = 0.0
    for heartbeat in heartbeats:
        age = max(0.0, (now - heartbeat.beat_at).total_seconds())
        worst_age = max(worst_age, age)
        households += heartbeat.households
        if age > heartbeat_stale_after(heartbeat):
            stale[heartbeat.name] = round(age, 1)
    data = {"shards": len(heartbeats), "households": households, "oldest_beat_age_s": round(worst_age, 1)}
    fleet = fleet_summary()  # fleet members, their shares and hand-overs (loggerapp/fleet/ops.py)
    if fleet:
        data["fleet"] = fleet
    if stale:
        data["stale"] = stale
        names = ", ".join(f"{name} ({age:.0f} s)" for name, age in stale.items())
        return _timed("pinger", started, False, f"stale heartbeat: {names}", **data)
    return _timed("pinger", started, True, f"{len(heartbeats)} shard(s) fresh", **data)


def check_disk(now: datetime | None = None) -> CheckResult:
    """No pinger shard reports a full disk: its hour files refuse lines (heartbeat details ``disk_full``).

    Read from the heartbeats, because the pinger's disk is the one that matters and may be another host's. A
    shard that stopped beating is check_pinger's business; its last word on the disk is still reported here.
    """
    started = time.perf_counter()
    now = now or timezone.now()
    forget_before = now - timedelta(minutes=settings.HEALTH_HEARTBEAT_FORGET_MINUTES)
    try:
        heartbeats = list(PingerHeartbeat.objects.filter(beat_at__gte=forget_before).order_by("name"))
    except DatabaseError as exc:
        return _timed("disk", started, False, f"unknown: database unavailable ({type(exc).__name__})")
    full = {
        heartbeat.name: int((heartbeat.details or {}).get("failing_writes") or 0)
        for heartbeat in heartbeats
        if (heartbeat.details or {}).get("disk_full")
    }
    if full:
        names = ", ".join(f"{name} ({count} households failing)" for name, count in full.items())
        return _timed("disk", started, False, f"disk full, hour files not written: {names}", full=full)
    return _timed("disk", started, True, "hour files written")


def check_scheduler(now: datetime | None = None) -> CheckResult:
    """RQ's cron scheduler is alive: every scheduled job ran within two of its periods (ops/scheduler.py)."""
    from loggerapp.ops.scheduler import scheduled_jobs

    started = time.perf_counter()
    now = now or timezone.now()
    try:
        jobs = scheduled_jobs(now)
    except DatabaseError as exc:
        return _timed("scheduler", started, False, f"unknown: database unavailable ({type(exc).__name__})")
    late = [job for job in jobs if job.late(now)]
    data = {job.job: job.last_run.isoformat() if job.last_run else None for job in jobs}
    if late:
        detail = "scheduled jobs late (scheduler or worker down?): " + ", ".join(job.describe(now) for job in late)
        return _timed("scheduler", started, False, detail, last_runs=data)
    return _timed("scheduler", started, True, "; ".join(job.describe(now) for job in jobs), last_runs=data)


def run_health_checks(now: datetime | None = None) -> HealthReport:
    """The /healthz checks: database, Redis, pinger heartbeat, the pinger's disk, the scheduler."""
    checks = [check_database(), check_redis(), check_pinger(now), check_disk(now), check_scheduler(now)]
    return HealthReport({check.name: check for check in checks})
