"""How often a live read may reach a device, counted in Redis so every web worker shares one count.

Two limits, checked and taken together in one Lua script (atomic, one round trip):
1. per household: one live read every API_LIVE_READ_MIN_INTERVAL seconds (default 2), whoever asks. The
   EAGLE-200 copes with about one request a second and the cloud relay locks accounts it finds too chatty, so
   the device is what this protects.
2. per client (token, or staff user for a session): API_LIVE_READS_PER_MINUTE live reads in a fixed one-minute
   window, so one token cannot sweep thousands of households through their devices (0 turns it off).

A request over either limit is refused with 429 and Retry-After rather than answered from a cached reading:
"live" then always means the device was asked for this request, and a client that is happy with a logged
value has /households/<id>/latest, which never touches the device. If Redis cannot be reached the live read
is refused (503): without the counter nothing protects the devices.
"""

from __future__ import annotations

import math
import threading

import redis
from django.conf import settings

CLIENT_WINDOW_MS = 60_000

# KEYS[1] household key, KEYS[2] client key; ARGV[1] household interval ms, ARGV[2] client limit, ARGV[3] window ms.
# Returns {0, 0} when granted, {1, ms} when the household is busy, {2, ms} when the client is over its budget.
_SCRIPT = """
local busy = redis.call('PTTL', KEYS[1])
if busy > 0 then return {1, busy} end
local limit = tonumber(ARGV[2])
if limit > 0 then
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  if used >= limit then
    local left = redis.call('PTTL', KEYS[2])
    if left < 0 then left = tonumber(ARGV[3]) end
    return {2, left}
  end
end
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
if limit > 0 then
  if redis.call('INCR', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
end
return {0, 0}
"""

_connections: dict[str, redis.Redis] = {}
_lock = threading.Lock()


class Throttled(Exception):
    """Over a limit; scope is "household" or "client"."""

    def __init__(self, scope: str, retry_after_s: float) -> None:
        super().__init__(scope, retry_after_s)
        self.scope = scope
        self.retry_after_s = retry_after_s

    @property
    def retry_after_header(self) -> str:
        """Whole seconds, rounded up, at least 1 (Retry-After takes integers)."""
        return str(max(1, math.ceil(self.retry_after_s)))


class ThrottleUnavailable(Exception):
    """Redis could not be asked; the live read is refused."""


def redis_connection() -> redis.Redis:
    """One client (and connection pool) per REDIS_URL, with short timeouts: a stuck Redis must not hang a view."""
    url = settings.REDIS_URL
    with _lock:
        if url not in _connections:
            _connections[url] = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
        return _connections[url]


def household_key(cloud_id: str) -> str:
    return f"{settings.API_REDIS_PREFIX}live:household:{cloud_id}"


def client_key(throttle_key: str) -> str:
    return f"{settings.API_REDIS_PREFIX}live:client:{throttle_key}"


def acquire_live_read(cloud_id: str, throttle_key: str) -> None:
    """Take the household's and the client's slot for one live read, or raise Throttled / ThrottleUnavailable."""
    interval_ms = max(1, round(settings.API_LIVE_READ_MIN_INTERVAL * 1000))
    limit = max(0, int(settings.API_LIVE_READS_PER_MINUTE))
    try:
        outcome, wait_ms = redis_connection().eval(
            _SCRIPT, 2, household_key(cloud_id), client_key(throttle_key), interval_ms, limit, CLIENT_WINDOW_MS
        )
    except redis.RedisError as exc:
        raise ThrottleUnavailable(type(exc).__name__) from None
    if outcome == 1:
        raise Throttled("household", int(wait_ms) / 1000)
    if outcome == 2:
        raise Throttled("client", int(wait_ms) / 1000)
