"""Is RQ's cron scheduler alive? Each scheduled job records when it ran; /healthz and the alerts read that.

A scheduler in supervisor's FATAL state (or a worker that no longer runs the queue) runs no upload and no alert,
and nothing else would notice: the pinger's heartbeat stays fresh. So the alert job (every minute by default) and
the upload job (hourly) each record the time of their last run in the database, in an ``AlertState`` row named
``_ran:<job>`` (never firing, so no alert view lists it; no migration needed). A job is late when its last run is
older than two of its cron periods plus a minute (cron fires on the minute; the worker may be busy for a while).

A job with no recorded run at all is not judged: a new install whose scheduler never ran yet has nothing to
compare with (``doctor`` and the status page show the queue itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from croniter import croniter
from django.conf import settings
from django.utils import timezone

RAN_PREFIX = "_ran:"
JOB_ALERTS, JOB_ROTATION = "alerts", "rotation"
SLACK = timedelta(minutes=1)


def record_run(job: str, now: datetime | None = None) -> None:
    """Called by a scheduled job when it starts: the scheduler, Redis and a worker got it here."""
    from loggerapp.models import AlertState

    AlertState.objects.update_or_create(
        key=RAN_PREFIX + job, defaults={"since": now or timezone.now(), "firing": False, "message": "last run"}
    )


def cron_period(expression: str, now: datetime | None = None) -> timedelta:
    """The time between two runs of a cron string (the next two after ``now``)."""
    base = now or timezone.now()
    schedule = croniter(expression, base)
    first = schedule.get_next(datetime)
    return schedule.get_next(datetime) - first


def schedules() -> dict[str, str]:
    return {JOB_ALERTS: settings.ALERT_CRON, JOB_ROTATION: settings.ROTATION_CRON}


@dataclass
class JobLateness:
    job: str
    last_run: datetime | None
    allowed: timedelta

    def late(self, now: datetime) -> bool:
        return self.last_run is not None and now - self.last_run > self.allowed

    def describe(self, now: datetime) -> str:
        if self.last_run is None:
            return f"{self.job}: no run recorded yet"
        return f"{self.job}: last run {(now - self.last_run).total_seconds():.0f} s ago"


def scheduled_jobs(now: datetime | None = None) -> list[JobLateness]:
    """Each scheduled job with its last recorded run and how old that may be (module docstring)."""
    from loggerapp.models import AlertState

    now = now or timezone.now()
    ran = dict(AlertState.objects.filter(key__startswith=RAN_PREFIX).values_list("key", "since"))
    return [
        JobLateness(job, ran.get(RAN_PREFIX + job), 2 * cron_period(expression, now) + SLACK)
        for job, expression in schedules().items()
    ]
