"""The scheduled upload, fanned out to every host that writes hour files (issue 13).

Each pinger host keeps its hour files on its own disk, so the upload must run on every such host. Each host runs
``manage.py rotation_worker``: an RQ worker on the shared queue (ROTATION_QUEUE) and on its own host queue
(ROTATION_HOST_QUEUE, ``rotation-<hostname>``).

Decisions:
1. The cron job (``rotation_fanout``) finds the host queues from RQ's own registry of live workers
   (``Worker.all``): a host whose worker is down gets no run, and its files wait for the next one (nothing is
   lost; the alert for files not uploaded fires after ALERT_UPLOAD_FAILING_MINUTES).
2. One ``rotation_job`` is enqueued on each host queue; the runs are independent (each claims its own files in
   the ledger, and a household's hour written on two hosts is merged into one object by the archive's merge).
3. Claims are per household and hour, whatever the host: a household handed over during an hour has files on two
   hosts, and the second run to reach it skips it while the first holds the claim. A host's run therefore tries
   again, every RETRY_PAUSE seconds for at most RETRY_LIMIT seconds, while it skipped files held by a live run;
   the retry finds the hour uploaded and merges its lines into the object (rotation/archive.py).
4. When no worker listens on any host queue (a single install whose worker listens on the shared queue only, as
   before), the fan-out runs the upload itself: a single install behaves as today. In a fleet, every host that
   writes hour files runs ``rotation_worker``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings

logger = logging.getLogger("loggerapp.rotation.fanout")

HOST_QUEUE_PREFIX = "rotation-"
RETRY_PAUSE = 5.0  # seconds between two tries of the files another host's run held
RETRY_LIMIT = 600.0  # seconds a host's run keeps trying them; what is left waits for the next hour's run


def host_rotation_job(hour: str | None = None) -> dict[str, Any]:
    """One host's upload (enqueued on its host queue): a run, then more while files were held by another run."""
    from loggerapp.rotation.job import rotation_job

    summary = rotation_job(hour)
    deadline = time.monotonic() + RETRY_LIMIT
    tries = 1
    while summary.get("counts", {}).get("skipped") and time.monotonic() < deadline:
        time.sleep(RETRY_PAUSE)
        again = rotation_job(hour)
        tries += 1
        for outcome, count in again.get("counts", {}).items():
            if outcome != "skipped":
                summary["counts"][outcome] = summary["counts"].get(outcome, 0) + count
        summary["counts"].pop("skipped", None)
        if again.get("counts", {}).get("skipped"):
            summary["counts"]["skipped"] = again["counts"]["skipped"]
        summary["failures"] = summary.get("failures", []) + again.get("failures", [])
    summary["tries"] = tries
    return summary


def live_host_queues(connection: Any) -> list[str]:
    """The host queues some live RQ worker listens on, sorted."""
    from rq import Worker

    return sorted(
        {
            name
            for worker in Worker.all(connection=connection)
            for name in worker.queue_names()
            if name.startswith(HOST_QUEUE_PREFIX)
        }
    )


def rotation_fanout() -> dict[str, Any]:
    """The RQ cron job: one upload run per live host queue; here too when this host has none (see decision 3)."""
    import django_rq
    from rq import Queue

    connection = django_rq.get_connection(settings.ROTATION_QUEUE)
    queues = live_host_queues(connection)
    enqueued = []
    for name in queues:
        job = Queue(name, connection=connection).enqueue(
            host_rotation_job,
            job_timeout=settings.ROTATION_JOB_TIMEOUT,
            ttl=settings.ROTATION_JOB_TIMEOUT,  # a host whose worker is gone does not pile up hourly runs
            result_ttl=7 * 24 * 3600,
            failure_ttl=30 * 24 * 3600,
            description=f"hourly upload on {name}",
        )
        enqueued.append({"queue": name, "job": job.id})
    if enqueued:
        logger.info("upload runs enqueued on %d host queues: %s", len(queues), ", ".join(queues))
    result: dict[str, Any] = {"enqueued": enqueued}
    if not queues:
        result["ran_here"] = host_rotation_job()
    return result
