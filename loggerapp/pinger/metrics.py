"""Prometheus counters of one pinger process, optionally served on 127.0.0.1:--metrics-port.

A registry of its own (not prometheus_client's global one): several pingers or tests in one process never
collide, and the web side's database-backed /metrics stays separate (loggerapp.ops.metrics).

The three series touched by every poll (polls by outcome, latency and lag histograms) are plain counts in the
event loop's thread, turned into metric families only when scraped: prometheus_client's own Counter and
Histogram take a lock and walk the buckets in Python on every call, about 6 us a poll (bench/pinger.py's
profile). A scrape from the server's thread may see one poll counted in the histogram and not yet in its sum:
harmless for rates and quantiles.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 4.0, 8.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class PingerMetrics:
    """The counters the runner updates; cheap enough to touch on every poll."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.skipped = Counter(
            "iseif_pinger_skipped_ticks",
            "Ticks skipped because the household's previous poll was still in flight.",
            registry=self.registry,
        )
        self.write_errors = Counter(
            "iseif_pinger_write_errors", "Lines the disk refused (ENOSPC, EIO...).", registry=self.registry
        )
        self.latency = Buckets(LATENCY_BUCKETS)
        self.lag = Buckets(LAG_BUCKETS)
        self.outcomes: dict[str, int] = {}
        self.registry.register(_PollCollector(self))
        self.households = Gauge(
            "iseif_pinger_polled_households", "Households this pinger process polls.", registry=self.registry
        )
        self.in_flight = Gauge("iseif_pinger_polls_in_flight", "Polls currently in flight.", registry=self.registry)
        self.price_polls = Counter(
            "iseif_pinger_price_polls",
            "Price-and-energy polls (issue 14), by outcome: ok, an error kind, skipped.",
            ["outcome"],
            registry=self.registry,
        )

    def poll_finished(self, outcome: str, latency_s: float, lag_s: float) -> None:
        """Count one finished poll (from the event loop's thread only)."""
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        self.latency.observe(latency_s)
        self.lag.observe(lag_s if lag_s > 0.0 else 0.0)

    def serve(self, port: int, addr: str = "127.0.0.1") -> tuple[WSGIServer, Thread]:
        """Expose /metrics on loopback only (the pinger has no authentication of its own)."""
        return start_http_server(port, addr=addr, registry=self.registry)


class Buckets:
    """A histogram's counts without locks: one writer thread, read when scraped."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bound >= value, as Prometheus' "le"
        self.sum += value

    def family(self, name: str, documentation: str) -> HistogramMetricFamily:
        counts, total_sum = list(self.counts), self.sum
        cumulative, running = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return HistogramMetricFamily(name, documentation, buckets=cumulative, sum_value=total_sum)


class _PollCollector:
    """The per-poll series of a PingerMetrics, as metric families at scrape time."""

    def __init__(self, metrics: PingerMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        polls = CounterMetricFamily(
            "iseif_pinger_polls", "Polls finished, by outcome (ok or the error kind).", labels=["outcome"]
        )
        for outcome, count in list(self.metrics.outcomes.items()):
            polls.add_metric([outcome], count)
        yield polls
        yield self.metrics.latency.family(
            "iseif_pinger_poll_latency_seconds", "Time from request start to answer or error."
        )
        yield self.metrics.lag.family(
            "iseif_pinger_schedule_lag_seconds", "How late a poll started against its schedule."
        )
