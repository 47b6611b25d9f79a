"""The pinger's Prometheus series: the per-poll ones are plain counts turned into families when scraped, and
read exactly as prometheus_client's own Counter and Histogram would."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from loggerapp.pinger.metrics import LAG_BUCKETS, LATENCY_BUCKETS, PingerMetrics


def exposition(registry: CollectorRegistry, prefix: str) -> list[str]:
    """The registry's sample lines of one series (creation times left out: they differ by construction)."""
    return [
        line
        for line in generate_latest(registry).decode().splitlines()
        if line.startswith(prefix) and "_created" not in line
    ]


def test_polls_latency_and_lag_read_as_prometheus_clients_own_series():
    ours = PingerMetrics()
    theirs = CollectorRegistry()
    polls = Counter("iseif_pinger_polls", "x", ["outcome"], registry=theirs)
    latency = Histogram("iseif_pinger_poll_latency_seconds", "x", buckets=LATENCY_BUCKETS, registry=theirs)
    lag = Histogram("iseif_pinger_schedule_lag_seconds", "x", buckets=LAG_BUCKETS, registry=theirs)
    rng = random.Random(15)
    values = [0.0, 0.05, 0.1, 1.0, 8.0, 9.5, 0.001, 5.0]  # on the bounds, beyond the last one
    values += [rng.choice((rng.random(), rng.random() * 10)) for _ in range(500)]
    for value in values:
        outcome = rng.choice(("ok", "unreachable"))
        ours.poll_finished(outcome, value, value / 3)
        polls.labels(outcome=outcome).inc()
        latency.observe(value)
        lag.observe(value / 3)
    ours.poll_finished("ok", 0.2, -0.5)  # a negative lag (an early start) counts as none
    polls.labels(outcome="ok").inc()
    latency.observe(0.2)
    lag.observe(0.0)
    for series in ("iseif_pinger_polls_total", "iseif_pinger_poll_latency_seconds", "iseif_pinger_schedule_lag"):
        mine, reference = exposition(ours.registry, series), exposition(theirs, series)
        assert mine and len(mine) == len(reference)
        for line, expected in zip(sorted(mine), sorted(reference), strict=True):
            name, value = line.rsplit(" ", 1)
            expected_name, expected_value = expected.rsplit(" ", 1)
            assert name == expected_name
            assert abs(float(value) - float(expected_value)) < 1e-9


def test_the_in_flight_gauge_is_read_when_scraped():
    metrics = PingerMetrics()
    asking = [3]
    metrics.in_flight.set_function(lambda: asking[0])
    assert "iseif_pinger_polls_in_flight 3.0" in exposition(metrics.registry, "iseif_pinger_polls_in_flight")
    asking[0] = 0
    assert "iseif_pinger_polls_in_flight 0.0" in exposition(metrics.registry, "iseif_pinger_polls_in_flight")
