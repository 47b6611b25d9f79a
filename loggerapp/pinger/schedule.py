"""The schedule of polls: pure arithmetic, no clock and no I/O, so it can be tested exactly.

Decisions:
1. Time is absolute. Poll k of a household is due at ``phase + k * interval`` in Unix seconds, so the schedule
   never drifts (a late poll does not push the next one) and a restarted pinger keeps the same ticks.
2. The phase is a stable hash of the cloud id spread uniformly over the interval, so 5,000 households do not
   all start at once and a household keeps its phase across restarts and refreshes.
3. Shards use a different hash of the cloud id (``int(sha1(cloud_id)) % N``) so that every shard still spreads
   its households over the whole interval. Shards are numbered 1..N on the command line (``--shard 2/3``).
4. Back-off after repeated bad credentials doubles from two intervals up to a ceiling (300 s) and always lands
   on one of the household's own ticks, so a healed household goes straight back to its usual cadence.
5. The ticks waiting to run sit in a ``TickQueue``: a heap ordered by due time, holding whatever the loop
   schedules (today a household and its tick number; another kind of tick, e.g. a price poll at its own
   cadence, is one more kind of item). An entry made obsolete (a household removed, a tick moved by back-off) is
   not searched for and removed: the loop drops it when it comes out (``decisions.on_tick``).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

MAX_BACKOFF_SECONDS = 300.0


def _hash_fraction(text: str) -> float:
    """A stable number in [0, 1) derived from text (the first 8 bytes of its SHA-1)."""
    digest = hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def phase_of(cloud_id: str, interval: float) -> float:
    """Offset in [0, interval) of a household's ticks; the salt keeps it independent of the shard hash."""
    return _hash_fraction(f"phase:{cloud_id}") * interval


def shard_of(cloud_id: str, shards: int) -> int:
    """1-based shard (1..shards) of a cloud id."""
    if shards < 1:
        raise ValueError("the number of shards must be at least 1")
    digest = hashlib.sha1(cloud_id.encode("utf-8"), usedforsecurity=False).hexdigest()
    return int(digest, 16) % shards + 1


@dataclass(frozen=True)
class Shard:
    """Shard K of N (1 <= K <= N); ``Shard(1, 1)`` is everything."""

    index: int = 1
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 1 <= self.index <= self.count:
            raise ValueError(f"shard must be K/N with 1 <= K <= N, not {self.index}/{self.count}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Parse "K/N" (e.g. "2/4")."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"shard must look like K/N (e.g. 2/4), not {text!r}") from None
        return cls(index, count)

    def holds(self, cloud_id: str) -> bool:
        return self.count == 1 or shard_of(cloud_id, self.count) == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def due_time(phase: float, tick: int, interval: float) -> float:
    """Unix time at which poll number ``tick`` is due."""
    return phase + tick * interval


def next_tick(now: float, phase: float, interval: float) -> int:
    """The first tick due at or after ``now``."""
    return math.ceil((now - phase) / interval)


TICK_TOLERANCE = 0.001  # a start time read back from a file may be a rounding error before its due time


def tick_at_or_before(moment: float, phase: float, interval: float) -> int:
    """The tick whose due time is the latest one not after ``moment`` (how a start time read from a line maps
    to its tick; within TICK_TOLERANCE before a due time counts as that tick)."""
    return math.floor((moment + TICK_TOLERANCE - phase) / interval)


def backoff_seconds(consecutive_bad_credentials: int, interval: float, ceiling: float = MAX_BACKOFF_SECONDS) -> float:
    """Wait after the n-th bad-credentials answer in a row: 2, 4, 8... intervals, at most ``ceiling``.

    Never less than one interval (the normal cadence), even when the ceiling is below it.
    """
    if consecutive_bad_credentials <= 0:
        return interval
    exponent = min(consecutive_bad_credentials, 32)  # 2**32 intervals is beyond any ceiling
    return max(interval, min(interval * 2.0**exponent, ceiling))


def ticks_to_skip(wait: float, interval: float) -> int:
    """How many ticks ahead the next poll goes so that at least ``wait`` seconds pass (at least 1)."""
    return max(1, math.ceil(wait / interval - 1e-9))


class TickQueue[T]:
    """Items ordered by due time (Unix seconds); items due at the same time come out in the order they went in."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due: float, item: T) -> None:
        heapq.heappush(self._heap, (due, next(self._order), item))

    def next_due(self) -> float | None:
        """When the earliest item is due; None when the queue is empty."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> Iterator[tuple[float, T]]:
        """Take out every item due at or before ``now``, earliest first, as (due, item).

        Lazy: items pushed while iterating are taken too if they are already due.
        """
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, _, item = heapq.heappop(heap)
            yield due, item
