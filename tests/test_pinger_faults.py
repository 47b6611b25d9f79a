"""The pinger through faults, end to end: the real `manage.py runpinger` in a subprocess against the simulator and
real PostgreSQL, killed, starved of disk, cut off from its database, flooded with slow households (issue 16).

Intervals are short (0.5 s) so that each run takes seconds; rows are committed (transaction=True) so that the
subprocess sees them.
"""

from __future__ import annotations

import re
import signal
import time

import pytest

from loggerapp.models import HouseholdStats
from tests.fixtures.pinger import read_hour_files
from tests.test_pinger_run import INTERVAL, add, lag, secret, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def readings(lines: list[dict]) -> int:
    return sum(1 for line in lines if line["ok"] is True)


def test_after_a_kill_9_statistics_converge_to_the_files_and_the_restart_is_marked(
    eagle_simulator, make_household, start_pinger, database_proxy
):
    """kill -9 loses the counts since the last flush; the next start recounts them from the files, and writes one
    restart line per household carrying the time of its last line before the kill."""
    sim = eagle_simulator
    cloud_ids = ["00d001", "00d002", "00d003"]
    for cloud_id in cloud_ids:
        add(sim, make_household, cloud_id)
    # The database is cut before the kill, so every count since then waits in memory and dies with the process.
    first = start_pinger(
        "--interval", str(INTERVAL), env={"EAGLE_CLOUD_URL": sim.cloud_url, "DATABASE_URL": database_proxy.url}
    )
    assert wait_for(lambda: all(sim.requests(c) >= 4 for c in cloud_ids), timeout=20), first.service_log
    database_proxy.cut()
    counted = {c: sim.requests(c) for c in cloud_ids}
    assert wait_for(lambda: all(sim.requests(c) >= counted[c] + 4 for c in cloud_ids), timeout=20)
    first.stop(signal.SIGKILL)
    before = read_hour_files(first.log_root)
    stored = {c: HouseholdStats.objects.get(household__cloud_id=c).total_events_logged for c in cloud_ids}
    assert all(readings(before[c]) > stored[c] for c in cloud_ids), stored  # counts were lost: the test can fail

    second = start_pinger("--interval", str(INTERVAL), env={"EAGLE_CLOUD_URL": sim.cloud_url})
    assert wait_for(lambda: "raised to the readings their files hold" in second.service_log, timeout=20), (
        second.service_log + second.stderr
    )
    time.sleep(1.5)
    assert second.stop() == 0, second.stderr
    after = read_hour_files(second.log_root)
    for cloud_id in cloud_ids:
        stats = HouseholdStats.objects.get(household__cloud_id=cloud_id)
        assert stats.total_events_logged == readings(after[cloud_id]), cloud_id
        restarts = [line for line in after[cloud_id] if line.get("event") == "restart"]
        assert len(restarts) == 1, restarts
        restart = restarts[0]
        assert restart["ok"] is False and restart["error_kind"] == "restart"
        assert restart["last_line_time"] == pytest.approx(max(line["poll_time"] for line in before[cloud_id]))
        assert restart["poll_time"] > restart["last_line_time"]


LIMIT = 1500


def test_a_full_disk_is_logged_once_per_household_and_cause_and_reported_everywhere(
    eagle_simulator, make_household, start_pinger, client, settings
):
    """Every file, pinger.log included, stops taking bytes at 1.5 KB (RLIMIT_FSIZE: EFBIG, and short writes at the
    edge, as on a full disk). The pinger goes on; each household's failure is logged once, whatever the byte
    counts of the short writes; the service log drops its records without a single logging traceback; the
    heartbeat carries disk_full, which fails /healthz, shows in /metrics and fires the disk alert."""
    from loggerapp.ops.alerts import current_alerts
    from loggerapp.ops.health import check_disk
    from loggerapp.ops.metrics import render_metrics

    sim = eagle_simulator
    cloud_ids = ["00e101", "00e102", "00e103"]
    for cloud_id in cloud_ids:
        add(sim, make_household, cloud_id)
    pinger = start_pinger("--interval", str(INTERVAL), env={"EAGLE_CLOUD_URL": sim.cloud_url}, file_size_limit=LIMIT)
    assert wait_for(lambda: check_disk().ok is False, timeout=30), pinger.service_log
    assert wait_for(lambda: all(sim.requests(c) >= 30 for c in cloud_ids), timeout=30)  # still polling
    service_log = pinger.log_root / "pinger" / "pinger.log"
    assert wait_for(lambda: service_log.stat().st_size > LIMIT - 200, timeout=30)  # pinger.log is full too
    time.sleep(3)  # a summary or two more, refused by the full pinger.log
    assert re.search(r'iseif_pinger_disk_full\{shard="[^"]+"\} 1\.0', render_metrics().decode())
    assert any(alert.key == "disk" for alert in current_alerts())
    settings.METRICS_ALLOW_LOOPBACK = True
    health = client.get("/healthz")
    assert health.status_code == 503
    assert "disk full" in health.json()["checks"]["disk"]["detail"]
    assert pinger.stop() == 0, pinger.stderr

    for cloud_id in cloud_ids:
        assert pinger.stderr.count(f"household {cloud_id}: line not written to its hour file") == 1, pinger.stderr
    assert "Logging error" not in pinger.stderr and "Traceback" not in pinger.stderr, pinger.stderr[-3000:]
    assert pinger.stderr.count("pinger.log cannot be written (EFBIG)") == 1, pinger.stderr[-3000:]
    assert len(pinger.stderr) < 20_000  # not a flood: a few lines per household and per minute
    read_hour_files(pinger.log_root)  # every file holds whole lines only


def test_households_timing_out_never_delay_the_healthy_ones(eagle_simulator, make_household, start_pinger):
    """20 households that never answer in time, against 8 polls in flight: alone they would hold every slot (each
    poll holds one for a second, every half second). Not answering, they poll within their own budget of 3, and
    the healthy households keep their cadence."""
    sim = eagle_simulator
    healthy = ["00f101", "00f102", "00f103", "00f104"]
    slow = [f"00f2{n:02x}" for n in range(20)]
    for cloud_id in healthy + slow:
        add(sim, make_household, cloud_id)
    for cloud_id in slow:
        sim.set_fault(cloud_id, "slow", delay_ms=5000)
    pinger = start_pinger(
        "--interval",
        str(INTERVAL),
        "--max-in-flight",
        "8",
        env={"EAGLE_CLOUD_URL": sim.cloud_url, "EAGLE_READ_TIMEOUT": "1", "PINGER_MAX_SLOW_IN_FLIGHT": "3"},
    )
    assert wait_for(lambda: sim.requests(healthy[0]) >= 4, timeout=20), pinger.service_log
    warm = time.time() + 3  # every slow household has failed once by then
    time.sleep(9)
    assert pinger.stop() == 0, pinger.stderr
    lines = read_hour_files(pinger.log_root)
    for cloud_id in healthy:
        polls = [line for line in lines[cloud_id] if line["poll_time"] > warm and "event" not in line]
        assert len(polls) >= 10, cloud_id
        assert all(line["ok"] for line in polls)
        lags = sorted(lag(line) for line in polls)
        assert lags[-1] < 0.5, (cloud_id, lags)  # without the budget: seconds, and most ticks skipped
        assert not [line for line in lines[cloud_id] if line.get("event") == "skipped" and line["poll_time"] > warm]
    failed = [line for c in slow for line in lines[c] if line["poll_time"] > warm and "event" not in line]
    assert failed and all(line["error_kind"] == "unreachable" for line in failed)
    assert len(failed) <= 3 * 9 / 1.0 + 6  # at most 3 at once, about a second each


def test_a_database_that_never_answers_is_reported_and_never_stops_polling_nor_the_exit(
    eagle_simulator, make_household, start_pinger, database_proxy
):
    """The database behind a proxy that accepts connections and never relays a byte. A running pinger keeps
    polling, says that its flush and its household load are blocked, and on SIGTERM exits in bounded time naming
    what stays unsaved. A pinger started during the outage polls the households of its local cache (passwords
    encrypted there), and takes the database's list again once it answers."""
    sim = eagle_simulator
    cloud_ids = ["00c101", "00c102"]
    for cloud_id in cloud_ids:
        add(sim, make_household, cloud_id)
    env = {
        "EAGLE_CLOUD_URL": sim.cloud_url,
        "DATABASE_URL": database_proxy.url,
        "DB_CONNECT_TIMEOUT": "8",
        "PINGER_BLOCKED_INTERVALS": "4",  # 2 s at 0.5 s
        "PINGER_STOP_WAIT": "2",
    }
    first = start_pinger("--interval", str(INTERVAL), "--refresh", "1", env=env)
    assert wait_for(lambda: all(sim.requests(c) >= 3 for c in cloud_ids), timeout=20), first.service_log
    cache = first.log_root / "pinger" / "households-1of1.json"
    assert wait_for(cache.exists, timeout=5)
    assert cache.stat().st_mode & 0o777 == 0o600
    text = cache.read_text()
    assert "00c101" in text and secret("00c101") not in text  # the ciphertext, never the password

    database_proxy.black_hole()
    assert wait_for(lambda: "statistics flush blocked for" in first.service_log, timeout=15), first.service_log
    assert wait_for(lambda: "household list load blocked for" in first.service_log, timeout=15), first.service_log
    during = sim.requests("00c101")
    assert wait_for(lambda: sim.requests("00c101") >= during + 6, timeout=10)  # still polling
    stopping = time.monotonic()
    assert first.stop(timeout=30) == 0, first.stderr
    assert time.monotonic() - stopping < 15  # supervisor's stopwaitsecs is 30
    assert "households not saved: the database did not answer within 2 s" in first.service_log

    second = start_pinger("--interval", str(INTERVAL), "--refresh", "1", env={**env, "DB_CONNECT_TIMEOUT": "2"})
    assert wait_for(lambda: "polling the 2 households of the cache" in second.service_log, timeout=20), (
        second.service_log + second.stderr
    )
    started = {c: sim.requests(c) for c in cloud_ids}
    assert wait_for(lambda: all(sim.requests(c) >= started[c] + 4 for c in cloud_ids), timeout=15)
    database_proxy.relay_again()
    assert wait_for(lambda: "database reachable again" in second.service_log, timeout=20), second.service_log
    assert second.stop() == 0, second.stderr
    lines = read_hour_files(second.log_root)
    assert all(readings(lines[c]) >= 10 for c in cloud_ids)
    everything = first.service_log + first.stderr + second.stderr
    assert secret("00c101") not in everything
