"""loggerapp/live.py: one bounded live read for the admin, doctor and the API, against the EAGLE simulator over a
real socket (the `slow` fault holds an answer back for delay_ms)."""

from __future__ import annotations

import threading
import time

import pytest

from loggerapp import live
from loggerapp.eagle import EagleTarget, SyncEagleClient
from loggerapp.live import deadline_in, live_read, live_reads

pytestmark = pytest.mark.django_db


@pytest.fixture
def sim(request, settings):
    simulator = request.getfixturevalue("eagle_simulator")
    settings.EAGLE_CLOUD_URL = simulator.cloud_url
    settings.EAGLE_CONNECT_TIMEOUT = 1.0
    settings.EAGLE_READ_TIMEOUT = 10.0  # long on purpose: the deadline, not the socket timeout, must end a read
    return simulator


@pytest.fixture
def households(sim, make_household):
    """Factory: n households known to the simulator and the database, with matching credentials."""

    def make(n: int, protocol: str = "cloud"):
        made = []
        for index in range(n):
            cloud_id = f"00c{index:03x}"
            password, email = f"pw-{cloud_id}-x", f"h{cloud_id}@example.org"
            sim.add_household(cloud_id, protocol=protocol, user_email=email, password=password)
            address = "" if protocol == "cloud" else sim.address
            made.append(
                make_household(cloud_id, protocol=protocol, user_email=email, password=password, address=address)
            )
        return made

    return make


def test_a_read_answers_the_demand(households):
    (household,) = households(1)
    read = live_read(household, deadline_in(5))
    assert read.ok and read.reading.demand_kw > 0 and read.cloud_id == household.cloud_id


def test_slow_households_are_read_side_by_side_within_one_budget(sim, households):
    """Nine gateways 1.2 s slow each: one after another they would take 10.8 s; side by side, about 1.2 s."""
    chosen = households(9)
    for household in chosen:
        sim.set_fault(household.cloud_id, "slow", delay_ms=1200)
    started = time.monotonic()
    reads = live_reads(chosen, deadline_in(6))
    elapsed = time.monotonic() - started
    assert [read.cloud_id for read in reads] == [h.cloud_id for h in chosen]  # in the order given
    assert all(read.ok for read in reads), [read.error_message for read in reads if not read.ok]
    assert elapsed < 4.0, f"{elapsed:.1f} s"


def test_the_deadline_ends_the_wait_whatever_the_socket_timeouts(sim, households):
    fast, slow = households(2)
    sim.set_fault(slow.cloud_id, "slow", delay_ms=4000)
    started = time.monotonic()
    reads = live_reads([fast, slow], deadline_in(0.8))
    elapsed = time.monotonic() - started
    assert elapsed < 1.6, f"{elapsed:.1f} s"
    assert reads[0].ok
    # Ended by the transport at the deadline, or (if it were not) by the caller's own bound: unreachable either way.
    assert reads[1].error_kind == "unreachable"
    assert "by the deadline" in reads[1].error_message or reads[1].error_message == "No answer within 0.8 s."


def test_a_spent_deadline_answers_at_once(households):
    (household,) = households(1)
    started = time.monotonic()
    read = live_read(household, time.monotonic() - 1)
    assert time.monotonic() - started < 0.5
    assert read.error_kind == "unreachable"


def test_failures_are_classified_and_never_raised(sim, households):
    wrong, broken = households(2)
    sim.set_fault(wrong.cloud_id, "bad_credentials")
    sim.set_fault(broken.cloud_id, "garbage")
    reads = live_reads([wrong, broken], deadline_in(5))
    assert [read.error_kind for read in reads] == ["bad_credentials", "bad_response"]
    assert all(not read.ok and read.error_message for read in reads)


def test_each_pool_thread_has_its_own_client(sim, households):
    """The decision of live.py: a requests.Session is never shared between threads (module docstring)."""
    households(1)
    barrier = threading.Barrier(4)

    def client_of_this_thread():
        barrier.wait(timeout=5)  # four reads in four threads at once
        return threading.get_ident(), id(live._client())

    pool = live._executor()
    seen = dict(future.result(timeout=10) for future in [pool.submit(client_of_this_thread) for _ in range(4)])
    assert len(seen) == 4 and len(set(seen.values())) == 4


def test_the_synchronous_client_sends_no_household_another_ones_cookie(settings, recording_gateway):
    """Two households behind one relay: a cookie the relay set while reading the first must not be sent with
    the second's request (issue 11: the synchronous client shares cookies between households)."""
    recording_gateway.headers["Set-Cookie"] = "relay-session=belongs-to-002506; Path=/"
    first = EagleTarget(cloud_id="002506", protocol="cloud", user_email="a@example.org", password="pw-a-1")
    second = EagleTarget(cloud_id="00abcd", protocol="cloud", user_email="b@example.org", password="pw-b-2")
    with SyncEagleClient(cloud_url=recording_gateway.url, connect_timeout=1, read_timeout=2) as client:
        for target in (first, second):
            with pytest.raises(Exception):  # noqa: B017 -- the recorder's answer is not a reading
                client.instantaneous_demand(target)
    sent = recording_gateway.requests()
    assert len(sent) == 2
    assert "belongs-to-002506" not in sent[1].headers.get("cookie", "")
