"""/healthz and health.py against the real database and Redis: each part failing on its own."""

from __future__ import annotations

import json
import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from loggerapp.models import PingerHeartbeat
from loggerapp.ops.health import check_database, check_pinger, check_redis, run_health_checks
from tests.fixtures.core import redis_url

pytestmark = pytest.mark.django_db

REDIS_OK = redis_url(13)


def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def beat(name: str = "host-a:0/1", age_s: float = 1.0, interval: float = 6.0, households: int = 3) -> PingerHeartbeat:
    return PingerHeartbeat.objects.create(
        name=name,
        beat_at=timezone.now() - timedelta(seconds=age_s),
        interval=interval,
        households=households,
        details={"polls": 30, "successes": 29, "failures": {"unreachable": 1}, "skipped": 0, "worst_lag": 0.02},
    )


@pytest.fixture(autouse=True)
def redis_db_13(settings):
    settings.REDIS_URL = REDIS_OK


def get_healthz(client):
    response = client.get("/healthz")
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    return response, json.loads(response.content)


def test_all_parts_healthy_answers_200_without_authentication(client):
    beat()
    response, body = get_healthz(client)
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "pinger", "disk", "scheduler"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["pinger"]["data"]["households"] == 3


def test_redis_down_is_503_naming_redis_and_nothing_else(client, settings):
    beat()
    port = closed_port()
    settings.REDIS_URL = f"redis://:hunter2-redis-password@127.0.0.1:{port}/13"
    response, body = get_healthz(client)
    assert response.status_code == 503
    assert body["status"] == "failing"
    assert body["failing"] == ["redis"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["pinger"]["ok"] is True
    assert body["checks"]["redis"]["detail"] == "redis unavailable (ConnectionError)"
    text = response.content.decode()
    assert "hunter2" not in text and str(port) not in text  # no URL, no password, no host details


def test_stale_heartbeat_is_503_naming_the_shard(client):
    beat("host-a:0/2", age_s=2)
    beat("host-b:1/2", age_s=45)  # two 6-second intervals (and the 10 s floor) are long gone
    response, body = get_healthz(client)
    assert response.status_code == 503
    assert body["failing"] == ["pinger"]
    pinger = body["checks"]["pinger"]
    assert "host-b:1/2" in pinger["detail"] and "host-a" not in pinger["detail"]
    assert set(pinger["data"]["stale"]) == {"host-b:1/2"}


def test_no_heartbeat_at_all_is_503(client):
    response, body = get_healthz(client)
    assert response.status_code == 503
    assert body["failing"] == ["pinger"]
    assert "no pinger heartbeat" in body["checks"]["pinger"]["detail"]


def test_no_heartbeat_is_fine_when_the_host_runs_no_pinger(client, settings):
    settings.HEALTH_REQUIRE_PINGER = False
    response, body = get_healthz(client)
    assert response.status_code == 200, body


def test_a_shard_silent_for_over_an_hour_is_retired_and_ignored():
    beat("host-a:0/1", age_s=3)
    beat("old-host:0/1", age_s=2 * 3600)
    result = check_pinger()
    assert result.ok, result.detail
    assert result.data["shards"] == 1


def test_staleness_follows_each_shards_own_interval(settings):
    settings.HEALTH_HEARTBEAT_MIN_SECONDS = 0
    beat("slow:0/1", age_s=50, interval=30)  # 50 s < 2 x 30 s: fresh
    assert check_pinger().ok
    beat("fast:0/1", age_s=5, interval=2)  # 5 s > 2 x 2 s: stale
    result = check_pinger()
    assert not result.ok and "fast:0/1" in result.detail and "slow" not in result.detail


def test_redis_check_passes_against_the_real_server_and_fails_on_a_closed_port():
    assert check_redis(REDIS_OK).ok
    assert not check_redis(f"redis://127.0.0.1:{closed_port()}/0").ok


def test_only_get_and_head(client):
    beat()
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


def test_report_lists_every_failing_part(settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"
    report = run_health_checks()
    assert not report.ok
    assert report.failing == ["redis", "pinger"]


def test_database_check_fails_on_a_closed_port_without_leaking_the_password():
    from django.db import connections

    real = connections["default"]
    settings_dict = {**real.settings_dict, "PORT": closed_port(), "PASSWORD": "db-secret-pw"}
    broken = type(real)(settings_dict)  # a second wrapper of "default", pointed elsewhere
    result = check_database(broken)
    assert not result.ok
    assert result.detail == "database unavailable (OperationalError)"
    assert check_database().ok


# --- The scheduler's liveness (ops/scheduler.py) and a full disk (heartbeat details) ---------------------------


def test_the_scheduler_is_late_when_a_scheduled_job_has_not_run_for_two_periods(settings):
    from loggerapp.ops.alerts import current_alerts, run_alerts_job
    from loggerapp.ops.health import check_scheduler
    from loggerapp.ops.metrics import render_metrics
    from loggerapp.ops.scheduler import JOB_ROTATION, cron_period, record_run

    settings.ALERT_CRON, settings.ROTATION_CRON = "* * * * *", "5 * * * *"
    assert cron_period("5 * * * *") == timedelta(hours=1)
    assert check_scheduler().ok  # a new install: nothing recorded yet, nothing to judge
    beat()
    run_alerts_job()  # records its own run
    now = timezone.now()
    record_run(JOB_ROTATION, now - timedelta(minutes=100))
    assert check_scheduler(now).ok  # within two hourly periods (and a minute)
    record_run(JOB_ROTATION, now - timedelta(minutes=122))
    late = check_scheduler(now)
    assert not late.ok and "rotation: last run 7320 s ago" in late.detail and "alerts" not in late.detail
    assert [alert.key for alert in current_alerts(now) if alert.key == "scheduler"] == ["scheduler"]
    assert 'iseif_scheduled_job_last_run_timestamp_seconds{job="rotation"}' in render_metrics().decode()
    assert not check_scheduler(now + timedelta(minutes=3)).ok  # the alert job itself is late by then too


def test_a_shard_reporting_a_full_disk_fails_the_disk_check(settings):
    from loggerapp.ops.health import check_disk

    heartbeat = beat()
    assert check_disk().ok
    heartbeat.details = {**heartbeat.details, "disk_full": True, "failing_writes": 3}
    heartbeat.save()
    result = check_disk()
    assert not result.ok and result.detail == "disk full, hour files not written: host-a:0/1 (3 households failing)"
    assert run_health_checks().failing == ["disk"]
