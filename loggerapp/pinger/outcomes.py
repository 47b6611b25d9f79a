"""Counting what the polls did, in one place: the run's total, the summary window, and Prometheus together.

Every finished poll, skipped tick and write error is counted once, here, and lands in all three reports: the
whole run's ``Tally`` (returned by ``Pinger.run`` and written in the heartbeat that /healthz and /metrics
read), the current window's ``Tally`` (the periodic summary line in pinger.log) and the process's Prometheus
counters (``--metrics-port``). They cannot disagree because nothing else counts.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from loggerapp.models import Status
from loggerapp.pinger.metrics import PingerMetrics


@dataclass
class Tally:
    """Counts over a window (the summary line's) or the whole run."""

    polls: int = 0
    successes: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    worst_lag: float = 0.0

    def add_poll(self, outcome: str, lag: float) -> None:
        self.polls += 1
        if outcome == Status.OK:
            self.successes += 1
        else:
            self.failures[outcome] += 1
        if lag > self.worst_lag:
            self.worst_lag = lag

    def as_dict(self) -> dict[str, Any]:
        return {
            "polls": self.polls,
            "successes": self.successes,
            "failures": {str(kind): count for kind, count in self.failures.items()},
            "skipped": self.skipped,
            "worst_lag_s": round(self.worst_lag, 3),
        }

    def describe(self) -> str:
        failures = ", ".join(f"{kind} {count}" for kind, count in sorted(self.failures.items())) or "none"
        return (
            f"polls {self.polls}, successes {self.successes}, failures: {failures}, "
            f"skipped ticks {self.skipped}, worst lag {self.worst_lag:.3f} s"
        )


class PollCounts:
    """The one counter of outcomes (see the module docstring). Used from the event loop only, except
    ``write_errors``, which the summary and the last report call with the writer thread's own total."""

    def __init__(self, metrics: PingerMetrics) -> None:
        self.metrics = metrics
        self.total = Tally()
        self.window = Tally()
        self.write_errors_seen = 0

    def poll_finished(self, outcome: str, latency_s: float, lag_s: float) -> None:
        """One poll ended: ``outcome`` is Status.OK or the error kind."""
        outcome = str(outcome)
        self.total.add_poll(outcome, lag_s)
        self.window.add_poll(outcome, lag_s)
        self.metrics.poll_finished(outcome, latency_s, lag_s)

    def tick_skipped(self) -> None:
        self.total.skipped += 1
        self.window.skipped += 1
        self.metrics.skipped.inc()

    def write_errors(self, total_so_far: int) -> int:
        """Bring the Prometheus counter up to the writer's running total of refused lines; returns that total."""
        new = total_so_far - self.write_errors_seen
        if new > 0:
            self.metrics.write_errors.inc(new)
            self.write_errors_seen = total_so_far
        return self.write_errors_seen

    def take_window(self) -> Tally:
        """The window's counts, and a fresh window."""
        window, self.window = self.window, Tally()
        return window
