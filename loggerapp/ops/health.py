"""Liveness checks shared by /healthz, the alerts, the status page and `manage.py doctor`.

Every check returns a CheckResult instead of raising, so one broken part never hides the state of the others.
Details are written for a public endpoint: they name the failing part and the kind of error, never a URL,
a host's credentials or an exception's full text (which for Redis or PostgreSQL could hold a connection string).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

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


def check_redis(url: str | None = None) -> CheckResult:
    started = time.perf_counter()
    client = redis_client(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        return _timed("redis", started, False, f"redis unavailable ({type(exc).__name__})")
    finally:
        client.close()
    return _timed("redis", started, True, "ping")


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
    if stale:
        data["stale"] = stale
        names = ", ".join(f"{name} ({age:.0f} s)" for name, age in stale.items())
        return _timed("pinger", started, False, f"stale heartbeat: {names}", **data)
    return _timed("pinger", started, True, f"{len(heartbeats)} shard(s) fresh", **data)


def run_health_checks(now: datetime | None = None) -> HealthReport:
    """The /healthz checks: database, Redis, pinger heartbeat."""
    checks = [check_database(), check_redis(), check_pinger(now)]
    return HealthReport({check.name: check for check in checks})
