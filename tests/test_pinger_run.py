"""runpinger end to end: the real command in a subprocess, the real EAGLE simulator over sockets, real PostgreSQL.

Intervals are short (0.5 s) so that each run takes seconds; rows are committed (transaction=True) so that the
subprocess sees them.
"""

from __future__ import annotations

import itertools
import json
import signal
import socket
import time

import pytest
import requests

from loggerapp.models import HouseholdStats, PingerHeartbeat
from loggerapp.pinger import schedule
from loggerapp.pinger.schedule import Shard
from tests.fixtures.core import OLD_LOGGER_FIELDS
from tests.fixtures.pinger import read_hour_files

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

INTERVAL = 0.5
LEGACY_KEYS = set(OLD_LOGGER_FIELDS)


def secret(cloud_id: str) -> str:
    return f"Pw{cloud_id}-Xq7!zz"


def add(sim, make_household, cloud_id: str, protocol: str = "cloud", exports: bool = False, **fields):
    """The same household in the simulator and in the database (local protocols point at the simulator)."""
    sim.add_household(
        cloud_id, protocol=protocol, user_email=f"h{cloud_id}@example.org", password=secret(cloud_id), exports=exports
    )
    if protocol != "cloud":
        fields.setdefault("address", sim.address)
    return make_household(cloud_id, protocol=protocol, password=secret(cloud_id), **fields)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def signed_kw(line: dict) -> float:
    """The correct kW from the legacy (unsigned) fields: 24- or 32-bit two's complement."""
    demand = line["Demand"]
    if demand >= 2**31:
        demand -= 2**32
    elif 2**23 <= demand < 2**24:
        demand -= 2**24
    return demand * (line["Multiplier"] or 1) / (line["Divisor"] or 1)


def lag(line: dict, interval: float = INTERVAL) -> float:
    phase = schedule.phase_of(line["cloud_id"], interval)
    tick = schedule.tick_at_or_before(line["poll_time"], phase, interval)
    return max(0.0, line["poll_time"] - schedule.due_time(phase, tick, interval))


def test_a_running_pinger_logs_every_household_on_its_schedule(eagle_simulator, make_household, start_pinger):
    """One run, several behaviours: files and lines, signed kW, cadence and spread, a slow household isolated,
    bad credentials backed off, failure lines, statistics, heartbeat, clean SIGTERM, no password anywhere."""
    sim = eagle_simulator
    add(sim, make_household, "00a001")
    add(sim, make_household, "00a002", exports=True)
    add(sim, make_household, "00a003", protocol="eagle100")
    add(sim, make_household, "00a004", protocol="eagle200")
    add(sim, make_household, "00b001")  # wrong credentials
    add(sim, make_household, "00b002")  # slow
    add(sim, make_household, "00b003")  # answers HTTP 500
    add(sim, make_household, "00b004", protocol="eagle100", address=f"127.0.0.1:{free_port()}")  # nothing there
    sim.set_fault("00b001", "bad_credentials")
    sim.set_fault("00b002", "slow", delay_ms=1600)
    sim.set_fault("00b003", "http_500")
    healthy = ["00a001", "00a002", "00a003", "00a004"]

    port = free_port()
    pinger = start_pinger(
        "--interval", str(INTERVAL), "--metrics-port", str(port), env={"EAGLE_CLOUD_URL": sim.cloud_url}
    )
    assert wait_for(lambda: sim.requests("00a001") >= 12, timeout=20), pinger.service_log
    metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'iseif_pinger_polls_total{outcome="ok"}' in metrics
    assert 'iseif_pinger_polls_total{outcome="bad_credentials"}' in metrics
    assert "iseif_pinger_polled_households 8.0" in metrics
    assert pinger.stop(signal.SIGTERM) == 0, pinger.stderr
    lines = read_hour_files(pinger.log_root)  # every line of every file parses: nothing half-written

    # Files and success lines.
    for cloud_id in healthy:
        assert len(lines[cloud_id]) >= 8, cloud_id
        for line in lines[cloud_id]:
            assert line["ok"] is True, line
            assert line["protocol"] == ("cloud" if cloud_id in ("00a001", "00a002") else line["protocol"])
            assert isinstance(line["demand_kw"], float)
            assert isinstance(line["repeat"], bool)
            assert line["latency_ms"] >= 0
    for cloud_id in ("00a001", "00a002", "00a003"):  # legacy protocols keep the old integer fields
        for line in lines[cloud_id]:
            assert LEGACY_KEYS <= set(line), line
            assert isinstance(line["meter_time"], int)
            assert line["demand_kw"] == pytest.approx(signed_kw(line), abs=1e-6)
    assert any(line["repeat"] for line in lines["00a001"][1:])  # the meter reads every ~10 s, we poll faster

    # An exporting household: negative kW, while the legacy Demand stays the old unsigned value.
    exported = lines["00a002"]
    assert all(line["demand_kw"] < 0 for line in exported)
    assert all(line["Demand"] > 2**23 for line in exported)

    # Failure lines explain every gap.
    assert lines["00b003"], "a failing household still gets lines"
    for line in lines["00b003"]:
        assert line["ok"] is False
        assert line["error_kind"] == "bad_response"
        assert line["error"]
        assert "demand_kw" not in line
    assert lines["00b004"] and {line["error_kind"] for line in lines["00b004"]} == {"unreachable"}
    assert "cannot connect" in lines["00b004"][0]["error"]

    # Cadence: consecutive polls one interval apart, each close to its own tick; households at different phases.
    for cloud_id in healthy:
        times = [line["poll_time"] for line in lines[cloud_id]]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(INTERVAL * 0.7 < gap < INTERVAL * 1.3 for gap in gaps), (cloud_id, gaps)
        lags = sorted(lag(line) for line in lines[cloud_id])
        assert lags[len(lags) // 2] < 0.05, (cloud_id, lags)
        assert lags[-1] < 0.25, (cloud_id, lags)
    phases = {round(lines[cloud_id][0]["poll_time"] % INTERVAL, 2) for cloud_id in healthy}
    assert len(phases) >= 3

    # The slow household (1.6 s per answer) is polled every 2 s: the ticks that came while its poll was in flight
    # were skipped, not queued; the others kept their cadence (above).
    # Each skipped tick left a "skipped" line at its due time, so the gap is explained in the file.
    slow_polls = [line for line in lines["00b002"] if "event" not in line]
    skipped = [line for line in lines["00b002"] if line.get("event") == "skipped"]
    assert all(line["ok"] for line in slow_polls)
    assert len(skipped) >= 2 and all(not line["ok"] and line["error_kind"] == "skipped" for line in skipped)
    slow_times = [line["poll_time"] for line in slow_polls]
    assert all(b - a >= 1.4 for a, b in itertools.pairwise(slow_times))

    # Bad credentials: backed off (2, 4, 8 intervals...), far fewer requests than a healthy household.
    assert sim.requests("00b001") <= 4 < 12 <= sim.requests("00a001")
    assert {line["error_kind"] for line in lines["00b001"]} == {"bad_credentials"}

    # Statistics in the database, flushed in batches and once more at shutdown.
    stats = {s.household.cloud_id: s for s in HouseholdStats.objects.select_related("household")}
    for cloud_id in healthy:
        ok_lines = [line for line in lines[cloud_id] if line["ok"]]
        assert stats[cloud_id].total_events_logged == len(ok_lines)
        assert stats[cloud_id].first_timestamp.timestamp() == pytest.approx(ok_lines[0]["poll_time"], abs=0.002)
        assert stats[cloud_id].last_timestamp.timestamp() == pytest.approx(ok_lines[-1]["poll_time"], abs=0.002)
        assert stats[cloud_id].last_demand_kw == pytest.approx(ok_lines[-1]["demand_kw"])
        assert stats[cloud_id].status == "ok"
        assert stats[cloud_id].consecutive_failures == 0
    assert stats["00b001"].status == "bad_credentials"
    assert stats["00b003"].status == "bad_response"
    assert stats["00b003"].consecutive_failures == len(lines["00b003"])
    assert stats["00b003"].total_events_logged == 0
    assert stats["00b003"].last_error

    heartbeat = PingerHeartbeat.objects.get()
    assert heartbeat.households == 8
    polls = sum(1 for v in lines.values() for line in v if "event" not in line)
    assert heartbeat.details["polls"] >= polls - 7
    assert heartbeat.details["skipped"] == len(skipped)
    assert heartbeat.details["failures"]["bad_response"] >= 1
    assert heartbeat.details["skipped"] >= 2  # the slow household's ticks, skipped rather than queued

    # State changes are logged with the cloud id and the cause; no password in any log.
    log = pinger.service_log
    assert "00b001: never_polled -> bad_credentials" in log
    assert "00b003: never_polled -> bad_response" in log
    assert "stopping (SIGTERM)" in log
    assert "last 2 s: 8 households, polls " in log  # the periodic summary line
    everything = log + pinger.stdout + pinger.stderr + json.dumps(lines)
    for cloud_id in [*healthy, "00b001", "00b002", "00b003", "00b004"]:
        assert secret(cloud_id) not in everything


def test_households_added_and_deactivated_while_running(eagle_simulator, make_household, start_pinger):
    sim = eagle_simulator
    add(sim, make_household, "00c001")
    leaving = add(sim, make_household, "00c002")
    pinger = start_pinger("--interval", str(INTERVAL), "--refresh", "1", env={"EAGLE_CLOUD_URL": sim.cloud_url})
    assert wait_for(lambda: sim.requests("00c002") >= 3, timeout=20), pinger.service_log

    add(sim, make_household, "00c003")
    leaving.active = False
    leaving.save(update_fields=["active"])
    assert wait_for(lambda: sim.requests("00c003") >= 4, timeout=10), pinger.service_log
    left_at = sim.requests("00c002")
    time.sleep(1.5)
    assert pinger.stop() == 0, pinger.stderr
    assert sim.requests("00c002") == left_at  # no poll since it was deactivated
    assert sim.requests("00c001") >= 8  # the rest kept going
    assert "household 00c003 added" in pinger.service_log
    assert "household 00c002 removed or deactivated" in pinger.service_log
    assert HouseholdStats.objects.get(household__cloud_id="00c003").total_events_logged >= 4


def test_once_polls_every_household_once_and_exits(eagle_simulator, make_household, start_pinger):
    sim = eagle_simulator
    for n in range(1, 6):
        add(sim, make_household, f"00d00{n}")
    make_household("00d009", active=False)
    pinger = start_pinger("--once", env={"EAGLE_CLOUD_URL": sim.cloud_url})
    assert pinger.wait(timeout=30) == 0, pinger.stderr
    lines = read_hour_files(pinger.log_root)
    assert sorted(lines) == [f"00d00{n}" for n in range(1, 6)]
    assert all(len(household_lines) == 1 and household_lines[0]["ok"] for household_lines in lines.values())
    assert set(HouseholdStats.objects.filter(household__active=True).values_list("total_events_logged", flat=True)) == {
        1
    }


def test_shards_split_the_households(eagle_simulator, make_household, start_pinger):
    sim = eagle_simulator
    cloud_ids = [f"00e{n:03x}" for n in range(12)]
    for cloud_id in cloud_ids:
        add(sim, make_household, cloud_id)
    expected = {cloud_id for cloud_id in cloud_ids if Shard(2, 3).holds(cloud_id)}
    assert 0 < len(expected) < len(cloud_ids)
    pinger = start_pinger("--once", "--shard", "2/3", env={"EAGLE_CLOUD_URL": sim.cloud_url})
    assert pinger.wait(timeout=30) == 0, pinger.stderr
    assert set(read_hour_files(pinger.log_root)) == expected
    assert {cloud_id for cloud_id in cloud_ids if sim.requests(cloud_id)} == expected

    bad = start_pinger("--once", "--shard", "0/3", env={"EAGLE_CLOUD_URL": sim.cloud_url})
    assert bad.wait(timeout=30) != 0
    assert "1 <= K <= N" in bad.stderr


def test_sigterm_while_polls_are_in_flight_leaves_whole_lines(eagle_simulator, make_household, start_pinger):
    """Stop in the middle of slow answers: in-flight polls finish, every line is whole, files closed, exit 0."""
    sim = eagle_simulator
    for n in range(1, 21):
        add(sim, make_household, f"00f{n:03x}")
        sim.set_fault(f"00f{n:03x}", "slow", delay_ms=300)
    pinger = start_pinger("--interval", str(INTERVAL), env={"EAGLE_CLOUD_URL": sim.cloud_url})
    assert wait_for(lambda: sim.requests("00f001") >= 4, timeout=20), pinger.service_log
    started = time.monotonic()
    assert pinger.stop(signal.SIGTERM) == 0, pinger.stderr
    assert time.monotonic() - started < 10
    lines = read_hour_files(pinger.log_root)
    total = sum(1 for v in lines.values() for line in v if "event" not in line)  # polls, not skipped ticks
    requests = sum(sim.requests(f"00f{n:03x}") for n in range(1, 21))
    assert total == requests  # every request that was sent got its line, none was cut off
    assert "pinger stopped" in pinger.service_log


def test_database_outage_keeps_polling_and_loses_no_counts(
    eagle_simulator, make_household, start_pinger, database_proxy
):
    """The database goes away for a few seconds: polling and files go on, statistics wait in memory and are
    all saved once it is back; the outage is logged once, its end once."""
    sim = eagle_simulator
    add(sim, make_household, "00a101")
    pinger = start_pinger(
        "--interval",
        str(INTERVAL),
        "--refresh",
        "1",
        env={"EAGLE_CLOUD_URL": sim.cloud_url, "DATABASE_URL": database_proxy.url},
    )
    assert wait_for(lambda: sim.requests("00a101") >= 3, timeout=20), pinger.service_log
    database_proxy.cut()
    during = sim.requests("00a101")
    assert wait_for(lambda: "statistics not saved, database unavailable" in pinger.service_log, timeout=10)
    assert wait_for(lambda: sim.requests("00a101") >= during + 6, timeout=10)  # still polling
    database_proxy.restore()
    assert wait_for(lambda: "database reachable again" in pinger.service_log, timeout=10), pinger.service_log
    assert pinger.stop() == 0, pinger.stderr
    lines = read_hour_files(pinger.log_root)["00a101"]
    assert HouseholdStats.objects.get(household__cloud_id="00a101").total_events_logged == len(lines)
    assert pinger.service_log.count("statistics not saved, database unavailable") == 1


def test_a_household_whose_password_cannot_be_decrypted_never_stops_the_others(
    eagle_simulator, make_household, start_pinger
):
    """A stored password no key can decrypt (a rotated FIELD_ENCRYPTION_KEY, a row written by hand): that household
    is left out and logged, the others are polled from the start, and later refreshes still pick up changes."""
    from django.db import connection

    sim = eagle_simulator
    add(sim, make_household, "00a201")
    broken = add(sim, make_household, "00a202")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE loggerapp_household SET password = %s WHERE id = %s", ["not-a-fernet-token", broken.pk])
    pinger = start_pinger("--interval", str(INTERVAL), "--refresh", "1", env={"EAGLE_CLOUD_URL": sim.cloud_url})
    assert wait_for(lambda: sim.requests("00a201") >= 3, timeout=20), pinger.service_log + pinger.stderr
    add(sim, make_household, "00a203")  # added while running: the refresh must still work
    assert wait_for(lambda: sim.requests("00a203") >= 3, timeout=10), pinger.service_log + pinger.stderr
    assert pinger.stop() == 0, pinger.stderr
    assert sim.requests("00a202") == 0
    assert "password cannot be decrypted" in pinger.service_log and "00a202" in pinger.service_log
    assert pinger.service_log.count("password cannot be decrypted") == 1  # not once per refresh
