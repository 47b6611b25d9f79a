"""The alert job's schedule for RQ's cron scheduler (rq 2.12 `rq.cron`, run by django-rq's `manage.py rqcron`).

Called from the project's cron module, loggerapp/cron.py, which `manage.py rqcron loggerapp.cron` loads.
Declared in code, so restarting the
scheduler never registers the job twice nor loses it. Every minute by default (ALERT_CRON): a run is a few
cheap queries, and a check missed while the scheduler was down needs no catching up because each run looks
at the current state. Run exactly one scheduler per deployment; two overlapping runs are harmless anyway
(alerts.check_alerts locks its memory).
"""

from __future__ import annotations

from django.conf import settings
from rq import cron

from loggerapp.ops.alerts import run_alerts_job

ALERT_JOB_NAME = "iseif-check-alerts"


def register_alerts() -> dict:
    """Declare the alert job to RQ's cron registry (read by the scheduler loading loggerapp.cron)."""
    return cron.register(
        run_alerts_job,
        queue_name=settings.ALERT_QUEUE,
        cron=settings.ALERT_CRON,
        name=ALERT_JOB_NAME,
        job_timeout=300,
        result_ttl=3600,
        failure_ttl=86400,
    )
