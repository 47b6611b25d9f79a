"""manage.py wait_for_redis (loggerapp/ops/redis_wait.py): RQ's cron scheduler waits out a Redis outage instead of
crash-looping, against a real redis-server the test starts, stops and starts again on its own port."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

import pytest
import redis

from loggerapp.ops.redis_wait import describe
from tests.fixtures.core import manage_command, subprocess_env
from tests.test_pinger_run import free_port, wait_for

pytestmark = pytest.mark.slow


def start_redis(port: int, tmp_path) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    assert wait_for(lambda: _pings(client), timeout=10)
    return process


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def schedulers(port: int) -> int:
    """Cron schedulers registered in this Redis (RQ's registry, see docs/rotation.md)."""
    try:
        return redis.Redis(port=port, socket_connect_timeout=0.5).zcard("rq:cron_schedulers")
    except redis.RedisError:
        return -1


def test_the_url_is_described_without_its_password():
    assert describe("redis://:s3cret@redis.example:6380/2") == "redis.example:6380/2"


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
@pytest.mark.django_db
def test_the_scheduler_waits_for_redis_and_comes_back_after_an_outage(tmp_path):
    port = free_port()
    log = tmp_path / "scheduler.out"
    env = subprocess_env(REDIS_URL=f"redis://127.0.0.1:{port}/0", LOG_ROOT=str(tmp_path / "logs"))
    with open(log, "w") as out:
        wrapper = subprocess.Popen(
            manage_command("wait_for_redis", "--poll", "0.3", "rqcron", "loggerapp.cron"),
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    server = None
    try:
        # 1. No Redis yet: the wrapper waits (alive, saying so once) instead of exiting.
        assert wait_for(lambda: "does not answer; waiting for it" in log.read_text(), timeout=20), log.read_text()
        time.sleep(1.5)
        assert wrapper.poll() is None, log.read_text()
        assert log.read_text().count("does not answer; waiting for it") == 1

        # 2. Redis starts: the scheduler starts and registers itself.
        server = start_redis(port, tmp_path)
        assert wait_for(lambda: schedulers(port) == 1, timeout=30), log.read_text()

        # 3. Redis goes away: the wrapper stays up and waits again; 4. it comes back (empty): so does the scheduler.
        server.terminate()
        server.wait(10)
        # rqcron notices at its next Redis call (its heartbeat or the minute's alert job), then exits.
        assert wait_for(lambda: "Redis went away; waiting for it" in log.read_text(), timeout=90), log.read_text()
        assert wrapper.poll() is None
        server = start_redis(port, tmp_path)
        assert wait_for(lambda: schedulers(port) == 1, timeout=30), log.read_text()
        assert "answers again" in log.read_text()

        # SIGTERM reaches the scheduler; the wrapper ends with it.
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(30) == 0, log.read_text()
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
            wrapper.wait()
        if server is not None:
            server.terminate()
            server.wait(10)


def test_supervisor_runs_the_scheduler_and_the_worker_through_wait_for_redis_and_never_gives_up():
    """supervisord.conf: an outage is waited out by the wrapper, anything else is restarted (never FATAL)."""
    import configparser

    from tests.fixtures.core import REPO_ROOT

    config = configparser.RawConfigParser()
    config.read(REPO_ROOT / "deploy" / "supervisord.conf")
    for program, command in (("scheduler", "rqcron"), ("worker", "rotation_worker")):
        section = config[f"program:{program}"]
        assert f"manage.py wait_for_redis {command}" in section["command"]
        assert section["autorestart"] == "true"
        assert int(section["startretries"]) >= 1000
