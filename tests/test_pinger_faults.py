"""The pinger through faults, end to end: the real `manage.py runpinger` in a subprocess against the simulator and
real PostgreSQL, killed, starved of disk, cut off from its database, flooded with slow households (issue 16).

Intervals are short (0.5 s) so that each run takes seconds; rows are committed (transaction=True) so that the
subprocess sees them.
"""

from __future__ import annotations

import signal
import time

import pytest

from loggerapp.models import HouseholdStats
from tests.fixtures.pinger import read_hour_files
from tests.test_pinger_run import INTERVAL, add, wait_for

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
