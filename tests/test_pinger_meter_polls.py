"""Price-and-energy polls (pinger/meter_polls.py): their schedule, and the real runpinger writing price files
at their own cadence beside the demand files, against the simulator, without delaying a demand poll."""

from __future__ import annotations

import asyncio
import itertools
import signal
import socket
import statistics
import time

import pytest
import requests

from loggerapp.pinger import schedule
from loggerapp.pinger.meter_polls import budget_for, price_phase
from tests.fixtures.pinger import read_hour_files, read_price_files

INTERVAL = 0.5
PRICE_INTERVAL = 1.0


def test_price_phases_are_spread_and_unrelated_to_demand_phases():
    ids = [f"{n:06x}" for n in range(2000)]
    phases = [price_phase(cloud_id, 60.0) for cloud_id in ids]
    assert all(0 <= phase < 60 for phase in phases)
    assert [sum(1 for p in phases if k * 6 <= p < (k + 1) * 6) for k in range(10)] == pytest.approx([200] * 10, abs=50)
    demand = [schedule.phase_of(cloud_id, 60.0) for cloud_id in ids]
    assert sum(1 for a, b in zip(phases, demand, strict=True) if abs(a - b) < 0.01) < 5
    assert price_phase("002506", 60.0) == price_phase("002506", 60.0)  # stable across restarts


def test_the_price_budget_is_small_but_never_zero():
    assert budget_for(1) == 4 and budget_for(1024) == 64


def add(sim, make_household, cloud_id: str, protocol: str = "cloud", **quirks):
    password = f"Pw{cloud_id}-Xq7!zz"
    sim.add_household(cloud_id, protocol=protocol, user_email=f"h{cloud_id}@example.org", password=password, **quirks)
    fields = {"address": sim.address} if protocol != "cloud" else {}
    return make_household(cloud_id, protocol=protocol, password=password, **fields)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def price_lines_on_disk(log_root, cloud_id: str) -> int:
    """Whole lines in a household's price files so far (read while the pinger writes them)."""
    return sum(path.read_bytes().count(b"\n") for path in log_root.glob(f"*/iseif-rainforest-price-{cloud_id}-*.jl"))


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def demand_lags(lines: list[dict]) -> list[float]:
    lags = []
    for line in lines:
        phase = schedule.phase_of(line["cloud_id"], INTERVAL)
        tick = schedule.tick_at_or_before(line["poll_time"], phase, INTERVAL)
        lags.append(line["poll_time"] - schedule.due_time(phase, tick, INTERVAL))
    return lags


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_runpinger_writes_price_files_at_their_cadence_beside_untouched_demand_files(
    eagle_simulator, make_household, start_pinger
):
    sim = eagle_simulator
    add(sim, make_household, "00c001")
    add(sim, make_household, "00c002", "eagle100", old_summation_root=True)
    add(sim, make_household, "00c003", "eagle200", omit_delivered=True)
    add(sim, make_household, "00c004", invalid_price=True)  # no tariff: "not set"
    add(sim, make_household, "00c005")
    sim.set_fault("00c005", "http_500")  # a failed price poll is a failure line, the others go on
    healthy = ["00c001", "00c002", "00c003"]

    env = {"EAGLE_CLOUD_URL": sim.cloud_url, "PINGER_PRICE_INTERVAL": str(PRICE_INTERVAL)}
    port = free_port()
    pinger = start_pinger("--interval", str(INTERVAL), "--metrics-port", str(port), env=env)
    # Run until every healthy household has six price lines (about six seconds once the pinger is up).
    assert wait_for(lambda: all(price_lines_on_disk(pinger.log_root, c) >= 6 for c in healthy), 40), pinger.service_log
    metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'iseif_pinger_price_polls_total{outcome="ok"}' in metrics
    assert 'iseif_pinger_price_polls_total{outcome="bad_response"}' in metrics
    assert pinger.stop(signal.SIGTERM) == 0, pinger.stderr
    prices = read_price_files(pinger.log_root)
    demand = read_hour_files(pinger.log_root)

    for cloud_id in healthy:
        lines = prices[cloud_id]
        assert 6 <= len(lines) <= 9, (cloud_id, len(lines))  # one a second, not one per demand poll
        gaps = [b["poll_time"] - a["poll_time"] for a, b in itertools.pairwise(lines)]
        assert statistics.median(gaps) == pytest.approx(PRICE_INTERVAL, abs=0.2)
        for line in lines:
            assert line["ok"] is True, line
            assert 0.05 < line["price"] < 0.5 and line["currency"] == 840
            assert line["delivered_kwh"] > 0 and line["received_kwh"] >= 0
        delivered = [line["delivered_kwh"] for line in lines]
        assert delivered == sorted(delivered)  # the counter only grows
    not_set = prices["00c004"]
    assert not_set and all(line["ok"] and line["price"] is None and line["price_time"] is None for line in not_set)
    assert all(line["delivered_kwh"] > 0 for line in not_set)
    failing = prices["00c005"]
    assert failing and all(not line["ok"] and line["error_kind"] == "bad_response" for line in failing)

    # The demand files are as before: no price key in any demand line, and the demand polls kept their schedule.
    for cloud_id in healthy:
        assert len(demand[cloud_id]) >= 1.5 * len(prices[cloud_id])  # demand every 0.5 s, price every 1 s
        for line in demand[cloud_id]:
            assert not {"price", "delivered_kwh", "currency"} & set(line)
    lags = [lag for cloud_id in healthy for lag in demand_lags(demand[cloud_id])]
    assert statistics.median(lags) < 0.1, lags
    assert "ticks skipped" not in pinger.service_log or "0 ticks skipped" in pinger.service_log
    assert "last 2 s: price polls: " in pinger.service_log  # the summary line counts them, every 2 s here


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_price_interval_of_zero_polls_no_price(eagle_simulator, make_household, start_pinger):
    add(eagle_simulator, make_household, "00c101")
    pinger = start_pinger(
        "--interval", str(INTERVAL), "--duration", "2", env={"EAGLE_CLOUD_URL": eagle_simulator.cloud_url}
    )
    assert pinger.wait() == 0, pinger.stderr
    assert read_hour_files(pinger.log_root)["00c101"]
    assert read_price_files(pinger.log_root) == {}


def test_price_ticks_follow_the_household_list_and_skip_a_household_in_back_off(tmp_path):
    """sync queues one first tick per new household; a removed household's tick is dropped; a household whose
    demand polls found bad credentials is not asked for its price (counted as skipped)."""
    from types import SimpleNamespace

    from loggerapp.models import Status
    from loggerapp.pinger.meter_polls import PricePolls, PriceTick

    def household(cloud_id: str, status: str = Status.OK) -> SimpleNamespace:
        return SimpleNamespace(status=status, entry=SimpleNamespace(cloud_id=cloud_id, household_id=1))

    async def run() -> tuple[PricePolls, schedule.TickQueue]:
        polls = PricePolls(tmp_path, 60.0, 4, 7.0, 8, 30.0)
        ticks: schedule.TickQueue = schedule.TickQueue()
        households = {"00d001": household("00d001", Status.BAD_CREDENTIALS), "00d002": household("00d002")}
        polls.sync(households, ticks, now=1_000_000.0)
        polls.sync(households, ticks, now=1_000_001.0)  # known households are not queued twice
        assert len(ticks) == 2
        del households["00d002"]
        polls.sync(households, ticks, now=1_000_002.0)
        due = [item for _due, item in ticks.pop_due(1_000_060.0)]  # both first ticks, nothing else yet
        assert sorted(item.cloud_id for item in due) == ["00d001", "00d002"]
        for item in due:
            assert isinstance(item, PriceTick)
            polls.on_tick(item, households, ticks)
        assert [item.cloud_id for _due, item in ticks.pop_due(1_000_200.0)] == ["00d001"]  # its next tick only
        return polls, ticks

    polls, _ticks = asyncio.run(run())
    assert polls.counts["skipped"] == 1 and not polls.tasks  # back-off: no request
    assert "00d002" not in polls.states
