"""Prometheus counters of one pinger process, optionally served on 127.0.0.1:--metrics-port.

A registry of its own (not prometheus_client's global one): several pingers or tests in one process never
collide, and the web side's database-backed /metrics stays separate (loggerapp.ops.metrics).
"""

from __future__ import annotations

from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 4.0, 8.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class PingerMetrics:
    """The counters the runner updates; cheap enough to touch on every poll."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.polls = Counter(
            "iseif_pinger_polls",
            "Polls finished, by outcome (ok or the error kind).",
            ["outcome"],
            registry=self.registry,
        )
        self.skipped = Counter(
            "iseif_pinger_skipped_ticks",
            "Ticks skipped because the household's previous poll was still in flight.",
            registry=self.registry,
        )
        self.write_errors = Counter(
            "iseif_pinger_write_errors", "Lines the disk refused (ENOSPC, EIO...).", registry=self.registry
        )
        self.latency = Histogram(
            "iseif_pinger_poll_latency_seconds",
            "Time from request start to answer or error.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.lag = Histogram(
            "iseif_pinger_schedule_lag_seconds",
            "How late a poll started against its schedule.",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
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
        self._outcomes: dict[str, Counter] = {}

    def poll_finished(self, outcome: str, latency_s: float, lag_s: float) -> None:
        counter = self._outcomes.get(outcome)
        if counter is None:
            counter = self._outcomes[outcome] = self.polls.labels(outcome=outcome)
        counter.inc()
        self.latency.observe(latency_s)
        self.lag.observe(max(0.0, lag_s))

    def serve(self, port: int, addr: str = "127.0.0.1") -> tuple[WSGIServer, Thread]:
        """Expose /metrics on loopback only (the pinger has no authentication of its own)."""
        return start_http_server(port, addr=addr, registry=self.registry)
