"""The upload's schedule: RQ's cron scheduler (`manage.py rqcron loggerapp.cron`) and a real worker.

Uses Redis database 14 (REDIS_URL for the subprocesses), emptied before each test: it is this module's alone.
"""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import timedelta

import pytest
import redis
from django.utils import timezone
from rq.cron import CronScheduler
from rq.job import Job

from loggerapp.hourfiles.layout import hour_start
from loggerapp.models import HourFile
from tests.fixtures.core import manage_command, redis_url, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_URL = redis_url(14)
H1 = hour_start(timezone.now()) - timedelta(hours=1)


@pytest.fixture
def rq_redis():
    connection = redis.Redis.from_url(REDIS_URL)
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


def _schedulers(connection) -> list[CronScheduler]:
    return CronScheduler.all(connection)


def _start_scheduler(log_root) -> subprocess.Popen:
    return subprocess.Popen(
        manage_command("rqcron", "loggerapp.cron"),
        env=subprocess_env(REDIS_URL=REDIS_URL, LOG_ROOT=str(log_root)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting")


def test_cron_job_is_registered_exactly_once_across_restarts(rq_redis, log_root):
    for restart in range(2):
        scheduler = _start_scheduler(log_root)
        try:
            live = _wait_for(lambda: _schedulers(rq_redis))
            # What RQ keeps in Redis: the registry of live schedulers, each with the cron jobs it runs.
            assert len(live) == 1, f"restart {restart}: {len(live)} schedulers registered"
            jobs = {job.name: job for job in live[0].get_jobs()}
            assert sorted(jobs) == ["iseif-check-alerts", "rotate-logs"]  # each once
            job = jobs["rotate-logs"]
            assert job.name == "rotate-logs"
            assert job.func_name == "loggerapp.rotation.fanout.rotation_fanout"
            assert job.cron == "5 * * * *" and job.queue_name == "default"
            assert job.next_enqueue_time.minute == 5 and job.next_enqueue_time > timezone.now()
        finally:
            scheduler.send_signal(signal.SIGTERM)
            output, _ = scheduler.communicate(timeout=20)
        assert scheduler.returncode == 0, output.decode()
        # A clean stop deregisters, so the restart does not leave a second entry behind.
        assert _schedulers(rq_redis) == []


def test_real_worker_runs_the_scheduled_job_end_to_end(rq_redis, s3_archive, write_hour_file, log_root):
    paths = [write_hour_file(cloud_id, H1, lines=50) for cloud_id in ("002506", "00ab12")]
    # Enqueue exactly what the scheduler enqueues at five past the hour: the cron job the config module declares.
    scheduler = CronScheduler(connection=rq_redis)
    scheduler.load_config_from_file("loggerapp.cron")
    (cron_job,) = [job for job in scheduler.get_jobs() if job.name == "rotate-logs"]
    job = cron_job.enqueue(rq_redis)

    worker = subprocess.run(
        manage_command("rqworker", "--burst", "default"),
        env=subprocess_env(REDIS_URL=REDIS_URL, LOG_ROOT=str(log_root), ROTATION_GRACE_SECONDS="0", **s3_archive.env()),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert worker.returncode == 0, worker.stderr

    job = Job.fetch(job.id, connection=rq_redis)
    assert job.is_finished, job.latest_result()
    result = job.return_value()["ran_here"]  # no host queue is live: the fan-out ran the upload itself
    assert result["counts"] == {"uploaded": 2} and result["failures"] == []
    assert s3_archive.keys() == sorted(
        f"rainforest-logs/{cloud_id}/{H1:%Y/%m/%d}/iseif-rainforest-{cloud_id}-{H1:%Y-%m-%d-%H}.jl"
        for cloud_id in ("002506", "00ab12")
    )
    assert not any(path.exists() for path in paths)
    assert HourFile.objects.filter(state=HourFile.State.UPLOADED).count() == 2
    assert "rotated 2 files" in (log_root / "rotate" / "rotate.log").read_text()
    assert cron_job.get_job_ids(rq_redis) == [job.id]  # recorded in the cron job's history, as the dashboard shows
