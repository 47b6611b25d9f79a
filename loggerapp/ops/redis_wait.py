"""Run an RQ process (the cron scheduler, a worker) that waits for Redis instead of crash-looping.

``rqcron`` and ``rqworker`` exit as soon as Redis is unreachable; under supervisor that is a restart loop (51
restarts in a 152 s outage) and, with supervisor's defaults, FATAL after a few quick exits, after which no upload
and no alert ever runs again. ``manage.py wait_for_redis <command> [args]`` supervises one such command:

1. Wait until Redis answers a PING (logging once that it waits, and once when Redis is back).
2. Start ``manage.py <command> [args]`` as a child and wait for it. SIGTERM/SIGINT are passed on to the child,
   and the wrapper then exits with the child's status.
3. When the child exits and Redis does not answer: go back to 1. When Redis answers, exit with the child's
   status (a real failure, for supervisor to see and restart).

The URL is logged as host:port/db only (it may hold a password).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import redis

logger = logging.getLogger("loggerapp.ops.redis_wait")

MANAGE_PY = Path(__file__).resolve().parents[2] / "manage.py"


def describe(url: str) -> str:
    """host:port/db of a Redis URL, never its password."""
    parts = urlsplit(url)
    return f"{parts.hostname or '?'}:{parts.port or 6379}{parts.path or '/0'}"


def redis_answers(url: str, timeout: float = 2.0) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


class RedisWaiter:
    def __init__(self, url: str, command: list[str], poll: float = 2.0) -> None:
        self.url = url
        self.command = command
        self.poll = poll
        self.stopping = False
        self.child: subprocess.Popen | None = None

    def stop(self, signum: int, _frame: object = None) -> None:
        self.stopping = True
        child = self.child
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    def wait_for_redis(self, sleep: Callable[[float], None] = time.sleep) -> bool:
        """True once Redis answers; False if asked to stop meanwhile."""
        if redis_answers(self.url):
            return True
        logger.warning("Redis at %s does not answer; waiting for it before starting %s", describe(self.url), self.name)
        waited = time.monotonic()
        while not self.stopping:
            sleep(self.poll)
            if redis_answers(self.url):
                logger.warning("Redis at %s answers again after %.0f s", describe(self.url), time.monotonic() - waited)
                return True
        return False

    @property
    def name(self) -> str:
        return self.command[0] if self.command else "?"

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.stop)
        status = 0
        while not self.stopping:
            if not self.wait_for_redis():
                break
            logger.info("starting %s", " ".join(self.command))
            # The operator's own command line (supervisor's config), run with this interpreter's manage.py.
            self.child = subprocess.Popen([sys.executable, str(MANAGE_PY), *self.command])  # noqa: S603
            status = self.child.wait()
            self.child = None
            if self.stopping:
                break
            if redis_answers(self.url):
                logger.error("%s exited with status %d while Redis answers; not restarting it here", self.name, status)
                return status
            logger.warning(
                "%s exited (status %d): Redis went away; waiting for it, then starting it again", self.name, status
            )
        return status
