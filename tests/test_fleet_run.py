"""Fleet mode end to end: real `manage.py runpinger` members in subprocesses, real PostgreSQL, the simulator.

Each member writes under its own LOG_ROOT, so the hour files say who polled which tick. Intervals are 1 s and
heartbeats 0.5 s (timeout 2 s, join delay 1 s) so that the whole story takes well under a minute.
"""

from __future__ import annotations

import signal
import time

import pytest

from loggerapp.models import PingerHeartbeat, PingerMember
from tests.fixtures.fleet import polled_ticks, ticks_between
from tests.fixtures.pinger import read_hour_files

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

INTERVAL = 1.0
TIMEOUT = 2.0
FLEET = ("--interval", str(INTERVAL), "--refresh", "1", "--fleet-heartbeat", "0.5", "--fleet-timeout", str(TIMEOUT))
HOUSEHOLDS = [f"0fa{n:03x}" for n in range(24)]


def add(sim, make_household, cloud_id: str) -> None:
    password = f"Pw{cloud_id}-fleet!"
    sim.add_household(cloud_id, user_email=f"h{cloud_id}@example.org", password=password)
    make_household(cloud_id, password=password)


def wait_for(predicate, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def live_members() -> int:
    return PingerMember.objects.count()


def check_window(roots, start: float, end: float, cloud_ids, who=None, one_owner: bool = True) -> dict[str, str]:
    """Every tick of every household in [start, end) polled exactly once, each household by one member (unless
    ``one_owner`` is off: a hand-over inside the window); returns the (first) poller of each household."""
    ticks = polled_ticks(roots, INTERVAL)
    owners: dict[str, str] = {}
    for cloud_id in cloud_ids:
        pollers: list[str] = []
        for tick in ticks_between(cloud_id, start, end, INTERVAL):
            members = ticks[cloud_id].get(tick, [])
            assert len(members) == 1, f"{cloud_id} tick {tick}: polled by {members or 'nobody'}"
            if members[0] not in pollers:
                pollers.append(members[0])
        if one_owner:
            assert len(pollers) == 1, f"{cloud_id} polled by {sorted(pollers)} in one steady window"
        owners[cloud_id] = pollers[0]
        if who is not None:
            assert owners[cloud_id] in who
    return owners


def duplicates(roots, start: float, end: float, cloud_ids) -> list[tuple[str, int]]:
    ticks = polled_ticks(roots, INTERVAL)
    return [
        (cloud_id, tick)
        for cloud_id in cloud_ids
        for tick in ticks_between(cloud_id, start, end, INTERVAL)
        if len(ticks[cloud_id].get(tick, [])) > 1
    ]


def test_members_share_take_over_a_dead_one_and_settle_after_a_restart(eagle_simulator, make_household, start_member):
    sim = eagle_simulator
    for cloud_id in HOUSEHOLDS:
        add(sim, make_household, cloud_id)
    env = {"EAGLE_CLOUD_URL": sim.cloud_url}
    members = {name: start_member(name, *FLEET, env=env) for name in ("a", "b", "c")}
    roots = {name: member.log_root for name, member in members.items()}
    assert wait_for(lambda: live_members() == 3, 30)
    time.sleep(3.0)  # every join effective (1 s after it) and read by everyone

    # 1. Three members share: every tick polled once, every household by one member, each member has some.
    steady = time.time()
    time.sleep(5.0)
    owners = check_window(roots, steady, time.time() - 1.0, HOUSEHOLDS)
    assert set(owners.values()) == {"a", "b", "c"}

    # 2. Kill -9 one: its households are polled again by the others within the timeout and two intervals.
    victim = "b"
    orphans = [cloud_id for cloud_id, name in owners.items() if name == victim]
    members[victim].process.send_signal(signal.SIGKILL)
    members[victim].wait(10)
    killed_at = time.time()
    time.sleep(TIMEOUT + 0.5 + 2 * INTERVAL + 4.0)
    picked_up = killed_at + TIMEOUT + 0.5 + 2 * INTERVAL  # timeout + one heartbeat + two intervals
    survivors = {name: roots[name] for name in ("a", "c")}
    after_kill = check_window(survivors, picked_up, time.time() - 1.0, HOUSEHOLDS, who={"a", "c"})
    assert {after_kill[cloud_id] for cloud_id in orphans} <= {"a", "c"}
    for cloud_id, name in owners.items():
        if name != victim:
            assert after_kill[cloud_id] == name  # nobody else's household moved
    assert duplicates(roots, killed_at - 1.0, time.time() - 1.0, HOUSEHOLDS) == []
    victim_id = f":{members[victim].process.pid}:"
    assert PingerMember.objects.filter(member_id__contains=victim_id).exists()  # silent, kept for the alert
    assert not PingerHeartbeat.objects.filter(name__contains=victim_id).exists()  # taken over: /healthz is fine
    assert PingerHeartbeat.objects.count() == 2

    # 3. Restart it (a new member): the shares settle, the hand-over at its join doubles nothing.
    restarted_at = time.time()
    members["b2"] = start_member("b2", *FLEET, env=env)
    roots["b2"] = members["b2"].log_root
    assert wait_for(
        lambda: PingerMember.objects.filter(member_id__contains=f":{members['b2'].process.pid}:").exists(), 30
    )
    time.sleep(4.0)
    settled = time.time()
    time.sleep(4.0)
    final = check_window(roots, settled, time.time() - 1.0, HOUSEHOLDS, who={"a", "c", "b2"})
    assert "b2" in final.values()
    # A tick due within a millisecond of the join may land on both sides of it (two clocks read separately).
    assert len(duplicates(roots, restarted_at, time.time() - 1.0, HOUSEHOLDS)) <= 1

    # 4. A household added while they run is polled by exactly one member.
    add(sim, make_household, "0fb001")
    assert wait_for(lambda: "0fb001" in polled_ticks(roots, INTERVAL), 15)
    first = min(polled_ticks(roots, INTERVAL)["0fb001"])
    time.sleep(3.0)
    check_window(roots, first + 1.0, time.time() - 1.0, ["0fb001"])

    # 5. A clean stop is announced: its households go to the others at one instant, nothing missed or doubled.
    stopping = time.time()
    assert members["a"].stop() == 0
    time.sleep(3.0)
    handed = check_window(roots, stopping - 2.0, time.time() - 1.0, HOUSEHOLDS, one_owner=False)
    assert "a" in handed.values()  # it polled until its announced time...
    after = check_window(roots, time.time() - 3.0, time.time() - 1.0, HOUSEHOLDS, who={"c", "b2"})
    assert set(after.values()) == {"c", "b2"}  # ...and the others took everything
    assert "fleet: leaving" in members["a"].service_log
    assert members["c"].stop() == 0
    assert PingerHeartbeat.objects.count() == 1  # left while others polled: no stale heartbeat behind
    assert members["b2"].stop() == 0
    # The last member keeps its heartbeat: /healthz sees that nobody polls. The killed member's row stays until it
    # is forgotten.
    assert PingerHeartbeat.objects.count() == 1
    assert list(PingerMember.objects.values_list("pid", flat=True)) == [members[victim].process.pid]
    log = members["a"].service_log
    assert "fleet: member" in log


def test_a_member_cut_off_from_the_database_stops_when_told_to_and_rejoins(
    eagle_simulator, make_household, start_member, database_proxy
):
    """FLEET_STOP_WHEN_CUT_OFF=1: the member stops polling before the others take its households; when the
    database is back it joins again (announced), and every tick is polled once."""
    sim = eagle_simulator
    for cloud_id in HOUSEHOLDS[:12]:
        add(sim, make_household, cloud_id)
    env = {"EAGLE_CLOUD_URL": sim.cloud_url}
    cut = start_member("cut", *FLEET, env={**env, "DATABASE_URL": database_proxy.url, "FLEET_STOP_WHEN_CUT_OFF": "1"})
    other = start_member("other", *FLEET, env=env)
    roots = {"cut": cut.log_root, "other": other.log_root}
    assert wait_for(lambda: live_members() == 2, 30)
    time.sleep(3.0)
    shares = check_window(roots, time.time() - 2.0, time.time() - 1.0, HOUSEHOLDS[:12])
    assert set(shares.values()) == {"cut", "other"}

    database_proxy.cut()
    cut_at = time.time()
    time.sleep(TIMEOUT + 0.5 + 2 * INTERVAL + 3.0)
    ticks = polled_ticks(roots, INTERVAL)
    late = [cloud_id for cloud_id, by_tick in ticks.items() for names in by_tick.values() if "cut" in names]
    assert late  # it did poll before the cut...
    last_cut_poll = max(line["poll_time"] for lines in read_hour_files(cut.log_root).values() for line in lines)
    assert last_cut_poll < cut_at + TIMEOUT  # ...and stopped before the others could take over
    check_window(roots, cut_at + TIMEOUT + 0.5 + 2 * INTERVAL, time.time() - 1.0, HOUSEHOLDS[:12], who={"other"})
    assert "stopped polling all" in cut.service_log

    database_proxy.restore()
    restored = time.time()
    time.sleep(5.0)
    final = check_window(roots, restored + 3.0, time.time() - 1.0, HOUSEHOLDS[:12])
    assert set(final.values()) == {"cut", "other"}  # back with its share
    assert duplicates(roots, restored, time.time() - 1.0, HOUSEHOLDS[:12]) == []
    assert "heartbeat written again" in cut.service_log
    assert cut.stop() == 0 and other.stop() == 0


def test_a_timeout_a_heartbeat_could_miss_is_a_usage_error(start_member):
    member = start_member("bad", "--fleet-heartbeat", "3", "--fleet-timeout", "4")
    assert member.wait(60) != 0
    assert "at least two heartbeats" in member.stderr
