"""The real pinger (`manage.py runpinger` in a subprocess) beside hostile gateways (issue 11, "High").

Households answering 200 MB, gzip bombs, one byte at a time, JSON nested 20,000 deep, or the ZigBee "no value"
Demand are polled next to healthy ones. Before the answer ceiling, a real pinger with two such households
passed 2 GB and every other household's polls started up to 2.6 s late. Now: the healthy households keep their
cadence, the hostile ones get failure lines that say what happened, no traceback is logged, and the pinger's
peak RSS stays under RSS_CEILING_MB.

The pinger's code is driven from outside only (its modules belong to another part of the work).
"""

from __future__ import annotations

import itertools
import signal
import statistics
import threading
from pathlib import Path

import pytest

from loggerapp.simulator.answers import gzip_bomb
from tests.fixtures.pinger import read_hour_files
from tests.test_pinger_run import INTERVAL, add, lag, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# Peak RSS allowed for the whole pinger process (Python, Django, aiohttp, psycopg) with these 10 households.
# Measured with the ceiling in place: about 95 MB here. Without it the first 200 MB answer alone passes this.
RSS_CEILING_MB = 160
HUGE = 200 * 1024 * 1024
SMALL_BOMB = 48 * 1024 * 1024  # ~50 KB on the wire: refused while decompressing
BIG_BOMB = 1024 * 1024 * 1024  # ~1 MB on the wire: refused by its Content-Length


def memory_mb(pid: int, field: str) -> float:
    """VmRSS / VmHWM (peak) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


def test_hostile_gateways_cost_the_pinger_little_and_never_delay_the_others(
    eagle_simulator, make_household, start_pinger
):
    sim = eagle_simulator
    healthy = {"00a301": "cloud", "00a302": "cloud", "00a303": "eagle100", "00a304": "eagle200"}
    hostile = {
        "00b301": ("cloud", "huge", {"size": HUGE}),
        "00b302": ("eagle100", "gzip_bomb", {"size": SMALL_BOMB}),
        "00b303": ("cloud", "gzip_bomb", {"size": BIG_BOMB}),
        "00b304": ("eagle200", "trickle", {"interval_ms": 200}),
        "00b305": ("cloud", "deep_json", {"depth": 20000}),
    }
    for cloud_id, protocol in healthy.items():
        add(sim, make_household, cloud_id, protocol=protocol)
    for cloud_id, (protocol, fault, params) in hostile.items():
        add(sim, make_household, cloud_id, protocol=protocol)
        sim.set_fault(cloud_id, fault, **params)
    add(sim, make_household, "00b306", protocol="cloud")
    sim.add_household(  # the same credentials, now sending Demand 0x800000
        "00b306", protocol="cloud", user_email="h00b306@example.org", password="Pw00b306-Xq7!zz", no_reading=True
    )
    for size in (SMALL_BOMB, BIG_BOMB):
        gzip_bomb(size)  # built before the pinger starts, so building it never stalls the simulator's loop

    pinger = start_pinger("--interval", str(INTERVAL), env={"EAGLE_CLOUD_URL": sim.cloud_url})
    samples: list[float] = []
    stop_sampling = threading.Event()

    def sample() -> None:
        while not stop_sampling.wait(0.1):
            try:
                samples.append(memory_mb(pinger.process.pid, "VmRSS"))
            except (OSError, AssertionError):
                return

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        assert wait_for(lambda: sim.requests("00a301") >= 20, timeout=40), pinger.service_log + pinger.stderr
        assert all(sim.requests(cloud_id) >= 3 for cloud_id in hostile), {c: sim.requests(c) for c in hostile}
        peak_mb = memory_mb(pinger.process.pid, "VmHWM")
    finally:
        stop_sampling.set()
        sampler.join(timeout=5)
    assert pinger.stop(signal.SIGTERM) == 0, pinger.stderr
    lines = read_hour_files(pinger.log_root)

    assert peak_mb < RSS_CEILING_MB, (peak_mb, max(samples, default=0))

    # The healthy households kept their cadence: one interval apart, each poll close to its own tick.
    for cloud_id in healthy:
        assert all(line["ok"] for line in lines[cloud_id]), lines[cloud_id][:3]
        times = [line["poll_time"] for line in lines[cloud_id]]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(gaps) >= 12, cloud_id
        assert all(INTERVAL * 0.7 < gap < INTERVAL * 1.3 for gap in gaps), (cloud_id, gaps)
        lags = [lag(line) for line in lines[cloud_id]]
        assert statistics.median(lags) < 0.05, (cloud_id, sorted(lags))
        assert max(lags) < 0.25, (cloud_id, sorted(lags))

    # Each hostile household has failure lines that say what happened (and never a reading).
    def kinds_and_errors(cloud_id: str) -> tuple[set[str], set[str]]:
        assert lines[cloud_id], cloud_id
        assert not any(line["ok"] for line in lines[cloud_id]), cloud_id
        polls = [line for line in lines[cloud_id] if "event" not in line]  # not the ticks skipped meanwhile
        return {line["error_kind"] for line in polls}, {line["error"] for line in polls}

    for cloud_id in ("00b301", "00b303"):
        kinds, errors = kinds_and_errors(cloud_id)
        assert kinds == {"bad_response"} and all("answer is larger than 65,536 bytes" in e for e in errors), errors
    kinds, errors = kinds_and_errors("00b302")
    assert kinds == {"bad_response"} and all("decompressed answer is larger than" in e for e in errors), errors
    kinds, _ = kinds_and_errors("00b304")
    assert kinds == {"unreachable"}
    kinds, errors = kinds_and_errors("00b305")
    assert kinds == {"bad_response"} and all("nested deeper than" in e for e in errors), errors
    kinds, errors = kinds_and_errors("00b306")
    assert kinds == {"bad_response"} and all(e.startswith("no reading: Demand 0x800000") for e in errors), errors
    assert all("demand_kw" not in line for line in lines["00b306"])

    log = pinger.service_log + pinger.stderr
    assert "Traceback" not in log and "EAGLE client bug" not in log and "unexpected error" not in log
    assert "00b306: never_polled -> bad_response: no reading" in log
