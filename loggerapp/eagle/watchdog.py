"""Ends a blocking HTTP exchange at its deadline, whatever the gateway does.

`requests` has only per-operation timeouts: the read timeout starts again with every byte, so a gateway that
trickles one byte every two seconds holds the calling thread for as long as it likes (issue 11 saw live-read
threads held for minutes). A timeout cannot fix that; closing the socket can. The synchronous transport
registers each request's connection here with its deadline; one daemon thread shuts that socket down
(`shutdown(SHUT_RDWR)`, which wakes a `recv` blocked in another thread) when the deadline passes and the
request is still going. The blocked call then fails at once and the transport reports the deadline.

The connection is only shut down while it still belongs to the same request: a connection that went back to
the pool and was taken by another request is left alone.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from typing import Any

RECHECK_SECONDS = 0.05  # a request not yet connected (connect has its own timeout) is looked at again this soon


class DeadlineToken:
    """One request's deadline (a `time.monotonic()` instant) and the connection carrying it."""

    __slots__ = ("at", "connection", "done", "fired")

    def __init__(self, at: float) -> None:
        self.at = at
        self.connection: Any = None
        self.done = False
        self.fired = False


class Watchdog:
    """A heap of deadlines served by one lazily started daemon thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, DeadlineToken]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, token: DeadlineToken, at: float | None = None) -> None:
        with self._cond:
            heapq.heappush(self._heap, (token.at if at is None else at, next(self._seq), token))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="eagle-deadline-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    while self._heap and self._heap[0][2].done:
                        heapq.heappop(self._heap)  # finished in time: nothing to do
                    if not self._heap:
                        self._cond.wait()
                        continue
                    at = self._heap[0][0]
                    wait = at - time.monotonic()
                    if wait > 0:
                        self._cond.wait(wait)
                        continue
                    token = heapq.heappop(self._heap)[2]
                    break
            self._fire(token)

    def _fire(self, token: DeadlineToken) -> None:
        if token.done:
            return
        connection = token.connection
        if connection is not None and getattr(connection, "_eagle_deadline", None) is not token:
            return  # the request is over and its connection serves another one now
        sock = getattr(connection, "sock", None)
        if sock is None:
            self.arm(token, time.monotonic() + RECHECK_SECONDS)
            return
        token.fired = True
        try:
            # socket.socket's own shutdown, also for an SSLSocket: only the file descriptor is shut down, the
            # TLS object stays with the thread that is using it.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


WATCHDOG = Watchdog()
