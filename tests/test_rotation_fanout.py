"""The upload fanned out to every host: two hosts (two LOG_ROOTs, two real RQ workers in subprocesses, each on its
own host queue), one fan-out job, real SeaweedFS. Uses Redis database 10, emptied before and after each test."""

from __future__ import annotations

import subprocess
import time
from datetime import timedelta

import pytest
import redis
from django.utils import timezone
from rq import Queue
from rq.job import Job

from loggerapp.hourfiles.layout import archive_key, hour_file_path, hour_start
from loggerapp.hourfiles.lines import parse_record
from loggerapp.rotation.fanout import live_host_queues, rotation_fanout
from tests.fixtures.core import manage_command, redis_url, subprocess_env
from tests.fixtures.s3 import hour_content, reading_line

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

REDIS_URL = redis_url(10)
H1 = hour_start(timezone.now()) - timedelta(hours=1)
HOSTS = ("rotation-host-a", "rotation-host-b")


@pytest.fixture
def rq_redis():
    connection = redis.Redis.from_url(REDIS_URL)
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


def wait_for(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def write(root, cloud_id: str, content: bytes):
    path = hour_file_path(root, cloud_id, H1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_one_fanout_uploads_every_hosts_files_and_merges_a_shared_hour(rq_redis, s3_archive, tmp_path):
    roots = {host: tmp_path / host for host in HOSTS}
    start = H1.timestamp()
    # 0fc001 moved from host a to host b in the middle of the hour: each host holds half of its lines.
    shared_a = b"".join(reading_line("0fc001", start + i * 6.0 + 0.25) for i in range(300))
    shared_b = b"".join(reading_line("0fc001", start + i * 6.0 + 0.25) for i in range(300, 600))
    paths = [
        write(roots[HOSTS[0]], "0fc001", shared_a),
        write(roots[HOSTS[1]], "0fc001", shared_b),
        write(roots[HOSTS[0]], "0fc00a", hour_content("0fc00a", H1)),
        write(roots[HOSTS[1]], "0fc00b", hour_content("0fc00b", H1)),
    ]
    workers = [
        subprocess.Popen(
            manage_command("rotation_worker", "--no-scheduler"),
            env=subprocess_env(
                REDIS_URL=REDIS_URL,
                LOG_ROOT=str(roots[host]),
                ROTATION_HOST_QUEUE=host,
                ROTATION_GRACE_SECONDS="0",
                **s3_archive.env(),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for host in HOSTS
    ]
    try:
        assert wait_for(lambda: live_host_queues(rq_redis) == list(HOSTS))
        # What the scheduler does at five past the hour: the fan-out job on the shared queue.
        fanout = Queue("default", connection=rq_redis).enqueue(rotation_fanout)
        wait_for(lambda: Job.fetch(fanout.id, connection=rq_redis).is_finished)
        result = Job.fetch(fanout.id, connection=rq_redis).return_value()
        assert sorted(item["queue"] for item in result["enqueued"]) == list(HOSTS)
        assert "ran_here" not in result  # host queues are live: every run happens on its host
        runs = [Job.fetch(item["job"], connection=rq_redis) for item in result["enqueued"]]
        wait_for(
            lambda: all(Job.fetch(run.id, connection=rq_redis).get_status() in ("finished", "failed") for run in runs)
        )
        for run in runs:
            run = Job.fetch(run.id, connection=run.connection)
            assert run.is_finished, run.latest_result()
            assert run.return_value()["failures"] == []
            assert "skipped" not in run.return_value()["counts"]
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.communicate(timeout=30)

    keys = {cloud_id: archive_key(cloud_id, H1) for cloud_id in ("0fc001", "0fc00a", "0fc00b")}
    assert sorted(s3_archive.keys()) == sorted(keys.values())
    merged = [parse_record(line) for line in s3_archive.get(keys["0fc001"]).decode().splitlines()]
    assert sorted(line["poll_time"] for line in merged) == [start + i * 6.0 + 0.25 for i in range(600)]
    assert not any(path.exists() for path in paths)


def test_without_a_live_host_queue_the_fanout_uploads_here(rq_redis, s3_archive, log_root, settings):
    """A single install whose worker listens on the shared queue only: the fan-out runs the upload itself."""
    settings.ROTATION_GRACE_SECONDS = 0
    path = write(log_root, "0fc00c", hour_content("0fc00c", H1))
    result = rotation_fanout()
    assert result["enqueued"] == []
    assert result["ran_here"]["counts"] == {"uploaded": 1}
    assert s3_archive.keys() == [archive_key("0fc00c", H1)]
    assert not path.exists()
