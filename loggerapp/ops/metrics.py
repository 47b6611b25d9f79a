"""Prometheus metrics read from the database at scrape time (the web side; the pinger exports its own counters).

A custom collector instead of module-level gauges: gunicorn runs several worker processes, and gauges set in
one of them would disagree with the others. Reading the database on each scrape gives every worker the same
answer. Every query is bounded and index-backed so that a scrape stays cheap with 5,000 households and years
of ledger rows:

- households: one GROUP BY over households x stats (thousands of rows);
- hour files: only the states that are not "uploaded" (index hourfile_state_hour_idx); uploaded rows grow
  forever and are never counted;
- last upload: the newest uploaded hour through the same index, then max(uploaded_at) over the rows of the
  last two uploaded hours.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Max, Min, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from loggerapp.fleet.ops import fleet_metrics
from loggerapp.models import AlertState, HourFile, Household, HouseholdStats, PingerHeartbeat, Status
from loggerapp.ops.status import silent_q
from loggerapp.rotation.backlog import NOT_UPLOADED


def _numeric_details(details: dict, prefix: str = "") -> Iterator[tuple[str, float]]:
    """The numeric values of a heartbeat's details, flattened: {"failures": {"unreachable": 3}} gives
    ("failures.unreachable", 3.0)."""
    for key, value in details.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            yield name, float(value)
        elif isinstance(value, dict):
            yield from _numeric_details(value, prefix=f"{name}.")


class DatabaseCollector(Collector):
    """Collects the logger's state from the database on every scrape."""

    def collect(self) -> Iterator[Metric]:
        started = time.perf_counter()
        up = GaugeMetricFamily("iseif_database_up", "Whether the metrics could be read from the database.")
        try:
            families = list(self._from_database())
        except DatabaseError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families
        duration = GaugeMetricFamily("iseif_metrics_collect_seconds", "Time spent reading these metrics.")
        duration.add_metric([], time.perf_counter() - started)
        yield duration

    def _from_database(self) -> Iterator[Metric]:
        now = timezone.now()
        yield from self._households(now)
        yield from self._hour_files(now)
        yield from self._pingers(now)
        yield from self._scheduler(now)
        yield from fleet_metrics()
        alerts = GaugeMetricFamily("iseif_alerts_firing", "Alerts currently firing (see check_alerts).")
        alerts.add_metric([], AlertState.objects.filter(firing=True).count())
        yield alerts

    def _households(self, now) -> Iterator[Metric]:
        by_status = GaugeMetricFamily(
            "iseif_households",
            "Households by last poll status and whether they are polled.",
            labels=["status", "active"],
        )
        counts = {(status, active): 0 for status in Status.values for active in (True, False)}
        rows = Household.objects.order_by().values("active", "stats__status").annotate(n=Count("pk"))
        for row in rows:
            status = row["stats__status"] or Status.NEVER_POLLED  # no stats row yet: never polled
            counts[(status, row["active"])] += row["n"]
        for (status, active), value in sorted(counts.items()):
            by_status.add_metric([status, "true" if active else "false"], value)
        yield by_status

        silent = GaugeMetricFamily(
            "iseif_households_silent",
            "Active households without a successful reading for ALERT_SILENCE_MINUTES.",
        )
        silent.add_metric(
            [],
            Household.objects.filter(silent_q(now), active=True).count(),
        )
        yield silent

        events = GaugeMetricFamily("iseif_events_logged", "Sum of total_events_logged over all households.")
        events.add_metric([], HouseholdStats.objects.aggregate(n=Sum("total_events_logged"))["n"] or 0)
        yield events

    def _hour_files(self, now) -> Iterator[Metric]:
        files = GaugeMetricFamily(
            "iseif_hour_files", "Hour files in the ledger not (yet) uploaded, by state.", labels=["state"]
        )
        oldest = GaugeMetricFamily(
            "iseif_hour_files_oldest_hour_age_seconds",
            "Age of the oldest hour still in this state (0 when none).",
            labels=["state"],
        )
        per_state = {
            row["state"]: row
            for row in HourFile.objects.filter(state__in=NOT_UPLOADED)
            .order_by()
            .values("state")
            .annotate(n=Count("pk"), oldest=Min("hour"), attempts=Sum("attempts"))
        }
        for state in NOT_UPLOADED:
            row = per_state.get(state)
            files.add_metric([state], row["n"] if row else 0)
            oldest.add_metric([state], (now - row["oldest"]).total_seconds() if row else 0)
        yield files
        yield oldest

        failures = GaugeMetricFamily(
            "iseif_upload_failures", "Upload attempts of hour files currently marked failed (summed)."
        )
        failed = per_state.get(HourFile.State.FAILED)
        failures.add_metric([], (failed["attempts"] or 0) if failed else 0)
        yield failures

        last = GaugeMetricFamily(
            "iseif_last_upload_timestamp_seconds", "Unix time of the last successful upload (0 if none yet)."
        )
        newest = (
            HourFile.objects.filter(state=HourFile.State.UPLOADED).order_by("-hour").values_list("hour", flat=True)
        ).first()
        value = 0.0
        if newest is not None:
            uploaded_at = HourFile.objects.filter(
                state=HourFile.State.UPLOADED, hour__gte=newest - timedelta(hours=1)
            ).aggregate(last=Max("uploaded_at"))["last"]
            value = uploaded_at.timestamp() if uploaded_at else 0.0
        last.add_metric([], value)
        yield last

    def _scheduler(self, now) -> Iterator[Metric]:
        from loggerapp.ops.scheduler import scheduled_jobs

        last = GaugeMetricFamily(
            "iseif_scheduled_job_last_run_timestamp_seconds",
            "Unix time a scheduled job last started (0: none recorded); stale means the scheduler or worker is down.",
            labels=["job"],
        )
        for job in scheduled_jobs(now):
            last.add_metric([job.job], job.last_run.timestamp() if job.last_run else 0.0)
        yield last

    def _pingers(self, now) -> Iterator[Metric]:
        age = GaugeMetricFamily(
            "iseif_pinger_heartbeat_age_seconds", "Seconds since the shard's heartbeat.", labels=["shard"]
        )
        households = GaugeMetricFamily("iseif_pinger_households", "Households the shard polls.", labels=["shard"])
        interval = GaugeMetricFamily("iseif_pinger_interval_seconds", "The shard's poll interval.", labels=["shard"])
        detail = GaugeMetricFamily(
            "iseif_pinger_detail",
            "Numbers from the shard's last heartbeat (its last minute).",
            labels=["shard", "field"],
        )
        disk_full = GaugeMetricFamily(
            "iseif_pinger_disk_full", "1 while the shard's hour files refuse lines for lack of space.", labels=["shard"]
        )
        forget = now - timedelta(minutes=settings.HEALTH_HEARTBEAT_FORGET_MINUTES)
        for heartbeat in PingerHeartbeat.objects.filter(beat_at__gte=forget).order_by("name"):
            disk_full.add_metric([heartbeat.name], 1 if (heartbeat.details or {}).get("disk_full") else 0)
            age.add_metric([heartbeat.name], max(0.0, (now - heartbeat.beat_at).total_seconds()))
            households.add_metric([heartbeat.name], heartbeat.households)
            interval.add_metric([heartbeat.name], heartbeat.interval)
            for name, value in _numeric_details(heartbeat.details or {}):
                detail.add_metric([heartbeat.name, name], value)
        yield from (age, households, interval, detail, disk_full)


def render_metrics() -> bytes:
    """The Prometheus text exposition of the database's state (a fresh registry per scrape)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return generate_latest(registry)
