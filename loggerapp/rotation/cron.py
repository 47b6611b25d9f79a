"""The hourly upload's entry in RQ's cron schedule (loaded through loggerapp/cron.py by `manage.py rqcron`).

The schedule lives here, in code, not in Redis: every scheduler start builds it afresh from this module, so
restarts never register it twice nor lose it. Cron strings are UTC. RQ's scheduler does not make up a run
missed while it was down and does not stop a second scheduler from enqueueing too; the job copes with both
(it uploads every finished hour, and claims each file in the database). Run one scheduler per deployment.

Registration is a function, not an import side effect: RQ re-imports only the module it was pointed at
(loggerapp.cron), so that module must call it on every load.
"""

from __future__ import annotations

from django.conf import settings
from rq import cron

from loggerapp.rotation.fanout import rotation_fanout

JOB_NAME = "rotate-logs"


def register_rotation() -> dict:
    """Declare the upload job to RQ's cron registry (read by the scheduler that loads this module): the fan-out,
    which enqueues one run per live host queue (loggerapp/rotation/fanout.py)."""
    return cron.register(
        rotation_fanout,
        queue_name=settings.ROTATION_QUEUE,
        cron=settings.ROTATION_CRON,
        name=JOB_NAME,
        job_timeout=settings.ROTATION_JOB_TIMEOUT,
        result_ttl=7 * 24 * 3600,  # a week of run summaries in the django-rq dashboard
        failure_ttl=30 * 24 * 3600,
    )
