"""Hostile and broken gateways (issue 11, "High"), over real sockets against the simulator.

Each test here failed before the fix: an answer of any size was read whole (a gzip bomb decompressed whole),
the synchronous client had no overall deadline, its session kept cookies across households, deeply nested
JSON reached the client's "internal error" path with a logged traceback, and Demand 0x800000 was a reading
of -8,388.608 kW. The pure ceiling (BoundedBody) has plain unit tests at the end.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
import tracemalloc
import zlib
from typing import Any

import pytest

from loggerapp.eagle import AsyncEagleClient, BadResponse, Reading, Unreachable
from loggerapp.eagle.bounded import BoundedBody, check_length
from loggerapp.simulator.answers import gzip_bomb
from tests.test_eagle_client import PROTOCOLS, add_household, run_async, sync_client

CAP = 65536  # the default EAGLE_MAX_ANSWER_BYTES
# Peak Python memory allowed while reading oversized answers. tracemalloc sees the whole process, the
# simulator's thread included (its 64 KB write chunks, the bomb it sends), so this is not 2 x CAP; but it is
# far below the smallest oversized answer here (32 MiB), which the client used to hold whole.
PEAK_LIMIT = 8 * 1024 * 1024


def peak_python_memory(read) -> tuple[Any, int]:
    """(what read() returned or raised, the peak bytes Python allocated meanwhile)."""
    for fault, params, _message in OVERSIZED:  # built (and cached) before counting: the simulator's part
        if fault == "gzip_bomb":
            gzip_bomb(params["size"])
    tracemalloc.start()
    try:
        try:
            result: Any = read()
        except Exception as exc:  # returned for the test to inspect
            result = exc
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# --- size ------------------------------------------------------------------------------------------------

# (fault, parameters, what the message says). A 32 MiB bomb is 33 KB on the wire, under the ceiling, so it is
# stopped while decompressing; a 1 GiB one declares 1 MB and is refused before its body is read; `huge` has no
# Content-Length and is stopped while it streams.
OVERSIZED = [
    ("huge", {"size": 200 * 1024 * 1024}, "answer is larger than 65,536 bytes"),
    ("gzip_bomb", {"size": 32 * 1024 * 1024}, "decompressed answer is larger than 65,536 bytes"),
    ("gzip_bomb", {"size": 1024 * 1024 * 1024}, "answer is larger than 65,536 bytes"),
]


@pytest.mark.parametrize(("fault", "params", "message"), OVERSIZED, ids=["huge", "bomb-32M", "bomb-1G"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_oversized_answer_is_a_bad_response_read_no_further_sync(eagle_simulator, protocol, fault, params, message):
    sick = add_household(eagle_simulator, protocol)
    healthy = add_household(eagle_simulator, protocol)
    eagle_simulator.set_fault(sick.cloud_id, fault, **params)
    with sync_client(eagle_simulator) as client:
        started = time.perf_counter()
        error, peak = peak_python_memory(lambda: client.instantaneous_demand(sick))
        elapsed = time.perf_counter() - started
        assert isinstance(error, BadResponse), repr(error)
        assert message in error.message
        assert peak < PEAK_LIMIT, peak
        assert elapsed < 1.0
        for _ in range(3):  # the same pooled session goes on reading healthy answers
            assert isinstance(client.instantaneous_demand(healthy), Reading)
            with pytest.raises(BadResponse):
                client.instantaneous_demand(sick)


@pytest.mark.parametrize(("fault", "params", "message"), OVERSIZED, ids=["huge", "bomb-32M", "bomb-1G"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_oversized_answer_is_a_bad_response_and_the_pool_stays_healthy_async(
    eagle_simulator, protocol, fault, params, message
):
    """Two connections in the pool and five oversized answers in a row: each connection is dropped, never
    left half read or leaked, so the healthy household is still served within its timeout."""
    sick = add_household(eagle_simulator, protocol)
    healthy = add_household(eagle_simulator, protocol)
    eagle_simulator.set_fault(sick.cloud_id, fault, **params)

    async def body(client: AsyncEagleClient) -> list[Any]:
        results: list[Any] = []
        for _ in range(5):
            results += await asyncio.gather(
                client.instantaneous_demand(sick), client.instantaneous_demand(healthy), return_exceptions=True
            )
        return results

    results, peak = peak_python_memory(lambda: run_async(eagle_simulator, body, max_connections=2))
    for sick_result in results[0::2]:
        assert isinstance(sick_result, BadResponse), repr(sick_result)
        assert message in sick_result.message
    assert all(isinstance(result, Reading) for result in results[1::2]), results[1::2]
    assert peak < PEAK_LIMIT, peak


def test_the_ceiling_is_a_setting_and_a_normal_answer_fits_a_small_one(eagle_simulator):
    """EAGLE_MAX_ANSWER_BYTES reaches both clients; an EAGLE-200 answer with every variable is ~2 KB."""
    target = add_household(eagle_simulator, "eagle200")
    eagle_simulator.set_fault(target.cloud_id, "huge", size=5000)
    with sync_client(eagle_simulator, max_answer_bytes=4096) as client, pytest.raises(BadResponse) as raised:
        client.instantaneous_demand(target)
    assert "larger than 4,096 bytes" in raised.value.message
    eagle_simulator.clear_fault(target.cloud_id)
    with sync_client(eagle_simulator, max_answer_bytes=4096) as client:
        assert isinstance(client.instantaneous_demand(target), Reading)
        assert client.summation(target).delivered_kwh > 0


def test_the_setting_is_the_default_of_both_clients(settings):
    settings.EAGLE_MAX_ANSWER_BYTES = 12345
    with sync_client(cloud_url="http://127.0.0.1:9/cgi-bin/post_manager") as client:
        assert client.max_answer_bytes == 12345
        assert client._transport.max_answer_bytes == 12345
    assert AsyncEagleClient(cloud_url="http://127.0.0.1:9/").max_answer_bytes == 12345


# --- time --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_trickling_gateway_cannot_hold_a_synchronous_read_past_its_deadline(eagle_simulator, protocol):
    """One byte every 0.3 s restarts the 1 s read timeout forever (the answer would take minutes); the
    deadline ends the exchange on time, and the client goes on serving other households."""
    sick = add_household(eagle_simulator, protocol)
    healthy = add_household(eagle_simulator, protocol)
    eagle_simulator.set_fault(sick.cloud_id, "trickle", interval_ms=300)
    with sync_client(eagle_simulator, connect_timeout=0.5, read_timeout=1.0) as client:
        started = time.monotonic()
        with pytest.raises(Unreachable) as raised:
            client.instantaneous_demand(sick, deadline=started + 1.5)
        elapsed = time.monotonic() - started
        assert 1.4 < elapsed < 1.9, elapsed
        assert "deadline" in raised.value.message
        # Without a deadline of its own, a request still ends by connect + read timeout (1.5 s here).
        started = time.monotonic()
        with pytest.raises(Unreachable):
            client.instantaneous_demand(sick)
        assert time.monotonic() - started < 1.9
        assert isinstance(client.instantaneous_demand(healthy, deadline=time.monotonic() + 2), Reading)


def test_the_deadline_covers_every_request_of_an_exchange(eagle_simulator):
    """A cold EAGLE-200 read is two requests (device_list, device_query) of 0.4 s each: a 0.6 s deadline ends
    the second one; with room for both it is a reading."""
    target = add_household(eagle_simulator, "eagle200")
    eagle_simulator.set_fault(target.cloud_id, "slow", delay_ms=400)
    with sync_client(eagle_simulator) as client:
        started = time.monotonic()
        with pytest.raises(Unreachable):
            client.instantaneous_demand(target, deadline=started + 0.6)
        assert time.monotonic() - started < 0.9
        assert eagle_simulator.requests(target.cloud_id) == 2
    with sync_client(eagle_simulator) as client:
        assert isinstance(client.instantaneous_demand(target, deadline=time.monotonic() + 3), Reading)


def test_a_deadline_already_passed_sends_nothing(eagle_simulator):
    target = add_household(eagle_simulator, "cloud")
    with sync_client(eagle_simulator) as client:
        for method in (client.instantaneous_demand, client.price, client.summation):
            with pytest.raises(Unreachable):
                method(target, deadline=time.monotonic() - 0.01)
    assert eagle_simulator.requests(target.cloud_id) == 0


def test_every_command_of_the_sync_client_ends_at_the_deadline(eagle_simulator):
    target = add_household(eagle_simulator, "cloud")
    eagle_simulator.set_fault(target.cloud_id, "trickle", interval_ms=300)
    with sync_client(eagle_simulator) as client:
        for method in (client.instantaneous_demand, client.price, client.summation):
            started = time.monotonic()
            with pytest.raises(Unreachable):
                method(target, deadline=started + 0.5)
            assert time.monotonic() - started < 0.9


def test_a_trickling_gateway_ends_within_the_async_clients_total_timeout(eagle_simulator):
    sick = add_household(eagle_simulator, "eagle100")
    healthy = add_household(eagle_simulator, "eagle100")
    eagle_simulator.set_fault(sick.cloud_id, "trickle", interval_ms=200)

    async def body(client: AsyncEagleClient) -> tuple[list[Any], float]:
        started = time.monotonic()
        results = await asyncio.gather(
            client.instantaneous_demand(sick), client.instantaneous_demand(healthy), return_exceptions=True
        )
        return results, time.monotonic() - started

    (sick_result, healthy_result), elapsed = run_async(eagle_simulator, body, connect_timeout=0.5, read_timeout=1.0)
    assert isinstance(sick_result, Unreachable), repr(sick_result)
    assert isinstance(healthy_result, Reading)
    assert elapsed < 1.9


# --- cookies, deep JSON, no reading -------------------------------------------------------------------------


def test_no_cookie_set_by_one_household_is_ever_sent_for_another(eagle_simulator):
    """Every cloud household shares the relay's host: a cookie the relay sets while answering one household
    must not travel with the next household's request (nor with the same household's: we need none)."""
    setter = add_household(eagle_simulator, "cloud", set_cookie=True)
    other = add_household(eagle_simulator, "cloud")
    local = add_household(eagle_simulator, "eagle100", set_cookie=True)
    with sync_client(eagle_simulator) as client:
        for _ in range(2):
            for target in (setter, other, local):
                client.instantaneous_demand(target)
        assert not client._transport.session.cookies

    async def body(client: AsyncEagleClient) -> None:
        for _ in range(2):
            for target in (setter, other, local):
                await client.instantaneous_demand(target)

    run_async(eagle_simulator, body)
    for target in (setter, other, local):
        assert eagle_simulator.requests(target.cloud_id) == 4
        assert eagle_simulator.cookie_requests(target.cloud_id) == 0, target.cloud_id


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_deeply_nested_json_is_a_bad_response_without_a_traceback(eagle_simulator, protocol, caplog):
    target = add_household(eagle_simulator, protocol)
    eagle_simulator.set_fault(target.cloud_id, "deep_json", depth=20000)
    caplog.set_level(logging.DEBUG)
    with sync_client(eagle_simulator) as client, pytest.raises(BadResponse) as raised:
        client.instantaneous_demand(target)
    assert "nested deeper than" in raised.value.message or "expected an XML answer" in raised.value.message

    async def body(client: AsyncEagleClient) -> Any:
        return await asyncio.gather(client.instantaneous_demand(target), return_exceptions=True)

    (result,) = run_async(eagle_simulator, body)
    assert isinstance(result, BadResponse) and "internal error" not in result.message
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR], caplog.text
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text


@pytest.mark.parametrize("wide", [False, True], ids=["0x800000", "0xff800000"])
@pytest.mark.parametrize("protocol", ("cloud", "eagle100"))
def test_the_zigbee_no_value_demand_is_a_failed_poll_not_a_huge_export(eagle_simulator, protocol, wide):
    target = add_household(eagle_simulator, protocol, no_reading=True, wide_demand=wide)
    with sync_client(eagle_simulator) as client, pytest.raises(BadResponse) as raised:
        client.instantaneous_demand(target)
    assert raised.value.message.startswith("no reading: Demand 0x")
    assert raised.value.kind == "bad_response"

    async def body(client: AsyncEagleClient) -> Any:
        return await asyncio.gather(client.instantaneous_demand(target), return_exceptions=True)

    (result,) = run_async(eagle_simulator, body)
    assert isinstance(result, BadResponse) and result.message.startswith("no reading")


# --- BoundedBody (pure) ------------------------------------------------------------------------------------


def feed_all(body: BoundedBody, data: bytes, step: int = 1000) -> bytes:
    for start in range(0, len(data), step):
        body.feed(data[start : start + step])
    return body.finish()


def test_a_plain_answer_up_to_the_ceiling_is_kept_whole_and_one_byte_more_is_refused():
    data = bytes(range(256)) * 16  # 4096 bytes
    assert feed_all(BoundedBody(4096), data) == data
    with pytest.raises(BadResponse, match="larger than 4,096 bytes"):
        feed_all(BoundedBody(4096), data + b"x")


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "deflate", "GZIP"])
def test_compressed_answers_are_decoded_up_to_the_ceiling(encoding):
    data = b"<InstantaneousDemand>" + b"0" * 4000 + b"</InstantaneousDemand>"
    packed = zlib.compress(data) if encoding == "deflate" else gzip.compress(data)
    assert feed_all(BoundedBody(len(data), encoding), packed, step=7) == data
    with pytest.raises(BadResponse, match="decompressed answer is larger than"):
        feed_all(BoundedBody(len(data) - 1, encoding), packed, step=7)


def test_a_bomb_costs_one_ceiling_of_output_not_its_expansion():
    bomb = gzip.compress(bytes(50 * 1024 * 1024), compresslevel=9)  # 50 MiB of zeros in ~50 KB
    assert len(bomb) < CAP
    body = BoundedBody(CAP, "gzip")
    started = time.process_time()
    with pytest.raises(BadResponse, match="decompressed answer is larger than 65,536 bytes"):
        feed_all(body, bomb, step=16384)
    assert time.process_time() - started < 0.05  # decompressing all of it takes ~0.1 s


@pytest.mark.parametrize(
    ("encoding", "data", "message"),
    [
        ("br", b"anything", "encoding that was not asked for"),
        ("gzip", gzip.compress(b"<a>" * 100)[:-12], "cut off"),
        ("gzip", b"\x1f\x8b\x08\x00not gzip at all", "corrupt"),
    ],
)
def test_unasked_encodings_and_broken_compression_are_bad_responses(encoding, data, message):
    with pytest.raises(BadResponse, match=message):
        feed_all(BoundedBody(CAP, encoding), data)


def test_a_declared_length_over_the_ceiling_is_refused_before_reading():
    check_length(None, CAP)
    check_length(CAP, CAP)
    with pytest.raises(BadResponse, match="larger than"):
        check_length(CAP + 1, CAP)
