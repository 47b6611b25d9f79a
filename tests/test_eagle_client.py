"""The EAGLE clients over real sockets against the EAGLE simulator: a specification of what a caller sees.

For each protocol: a healthy read with the correct signed kW (sync and async clients), every fault the
simulator injects mapped to the exception that tells the operator what to do, a healthy household answering
while a sick one fails, timeouts that hold, closed ports, DNS and TLS failures, and no credential in any error,
repr or log line. Only the client-for-a-Household test uses the database.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import socket
import ssl
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from loggerapp.eagle import (
    AsyncEagleClient,
    BadCredentials,
    BadResponse,
    EagleError,
    EagleTarget,
    MeterNotJoined,
    Reading,
    SyncEagleClient,
    Unreachable,
)
from tests.fixtures.core import OLD_LOGGER_FIELDS

PROTOCOLS = ("cloud", "eagle100", "eagle200")
CONNECT_TIMEOUT = 1.0
READ_TIMEOUT = 2.0

# What each simulator fault must become (the reference's failure table). "slow" has its own tests below.
FAULTS = {
    "bad_credentials": BadCredentials,  # cloud: <Error> about credentials; local: HTTP 401
    "error": Unreachable,  # a generic <Error>: gateway offline (relay) or busy (local)
    "meter_not_joined": MeterNotJoined,  # <Error> about the meter; eagle200: ConnectionStatus not Connected
    "http_500": BadResponse,
    "http_503": Unreachable,  # a busy EAGLE-100
    "garbage": BadResponse,
    "truncated": BadResponse,
    "empty": BadResponse,
    "reset": Unreachable,
}

_next_id = iter(range(0xA00000, 0xB00000))


def add_household(sim, protocol: str, password: str | None = None, **quirks: Any) -> EagleTarget:
    """A simulated household and the target that reaches it (`password` overrides what the client sends)."""
    cloud_id = f"{next(_next_id):06x}"
    real_password = f"pw-{cloud_id}-s3cret"
    email = f"h{cloud_id}@example.org"
    sim.add_household(cloud_id, protocol=protocol, user_email=email, password=real_password, **quirks)
    return EagleTarget(
        cloud_id=cloud_id,
        protocol=protocol,
        user_email=email if protocol == "cloud" else "",
        password=real_password if password is None else password,
        address="" if protocol == "cloud" else sim.address,
    )


@contextmanager
def sync_client(sim=None, cloud_url: str | None = None, **timeouts: float) -> Iterator[SyncEagleClient]:
    timeouts = {"connect_timeout": CONNECT_TIMEOUT, "read_timeout": READ_TIMEOUT, **timeouts}
    with SyncEagleClient(cloud_url=cloud_url or sim.cloud_url, **timeouts) as client:
        yield client


def run_async(
    sim, body: Callable[[AsyncEagleClient], Awaitable[Any]], cloud_url: str | None = None, **options: Any
) -> Any:
    """Run `body(client)` with a fresh AsyncEagleClient in a fresh event loop (as the pinger owns its loop)."""
    options = {"connect_timeout": CONNECT_TIMEOUT, "read_timeout": READ_TIMEOUT, **options}

    async def main() -> Any:
        async with AsyncEagleClient(cloud_url=cloud_url or sim.cloud_url, **options) as client:
            return await body(client)

    return asyncio.run(main())


def assert_demand_is_what_the_simulator_sent(sim, target: EagleTarget, read: Callable[[], Reading]) -> Reading:
    """The reading's kW equals the simulator's own value (taken before and after, in case a 10 s step passed)."""
    before = sim.demand_kw(target.cloud_id)
    reading = read()
    after = sim.demand_kw(target.cloud_id)
    assert reading.demand_kw == pytest.approx(before, abs=1e-6) or reading.demand_kw == pytest.approx(after, abs=1e-6)
    assert reading.cloud_id == target.cloud_id and reading.protocol == target.protocol
    assert reading.meter_time is not None and reading.meter_time.tzinfo is not None
    assert abs(reading.meter_time.timestamp() - time.time()) < 120
    assert reading.meter_timestamp == int(reading.meter_time.timestamp())
    assert 0 < reading.latency_s < READ_TIMEOUT
    return reading


# --- healthy reads --------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_healthy_household_reads_its_signed_demand_sync(eagle_simulator, protocol):
    exporting = add_household(eagle_simulator, protocol, exports=True)
    importing = add_household(eagle_simulator, protocol, solar=False)
    with sync_client(eagle_simulator) as client:
        reading = assert_demand_is_what_the_simulator_sent(
            eagle_simulator, exporting, lambda: client.instantaneous_demand(exporting)
        )
        assert reading.demand_kw < 0  # exported solar power is negative
        reading = assert_demand_is_what_the_simulator_sent(
            eagle_simulator, importing, lambda: client.instantaneous_demand(importing)
        )
        assert reading.demand_kw > 0


@pytest.mark.parametrize("protocol", ("cloud", "eagle100"))
def test_legacy_readings_keep_the_old_loggers_unsigned_fields(eagle_simulator, protocol):
    target = add_household(eagle_simulator, protocol, exports=True)
    with sync_client(eagle_simulator) as client:
        reading = client.instantaneous_demand(target)
    assert reading.demand_kw < 0
    assert reading.legacy["Demand"] >= 0x800000  # read unsigned, as the old files hold it during export
    assert reading.legacy["Demand"] == int(reading.raw["Demand"], 16)
    assert reading.legacy["Divisor"] == 1000 and reading.legacy["SuppressLeadingZero"] == "Y"
    assert reading.legacy["TimeStamp"] + 946684800 == reading.meter_timestamp  # the ZigBee epoch
    assert set(reading.legacy) == set(OLD_LOGGER_FIELDS)


def test_eagle200_readings_have_no_legacy_fields_and_keep_the_raw_variables(eagle_simulator):
    target = add_household(eagle_simulator, "eagle200")
    with sync_client(eagle_simulator) as client:
        reading = client.instantaneous_demand(target)
    assert reading.legacy == {}
    assert float(reading.raw["zigbee:InstantaneousDemand"]) == pytest.approx(reading.demand_kw)
    assert reading.raw["ConnectionStatus"] == "Connected"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_healthy_household_reads_its_signed_demand_async(eagle_simulator, protocol):
    exporting = add_household(eagle_simulator, protocol, exports=True)

    async def body(client: AsyncEagleClient) -> None:
        first = await client.instantaneous_demand(exporting)
        second = await client.instantaneous_demand(exporting)  # the same session, kept alive
        for reading in (first, second):
            assert reading.demand_kw < 0
            assert reading.demand_kw == pytest.approx(eagle_simulator.demand_kw(exporting.cloud_id), abs=1e-6)

    run_async(eagle_simulator, body)


def test_the_async_client_reads_many_households_at_once_through_few_connections(eagle_simulator):
    targets = [add_household(eagle_simulator, PROTOCOLS[n % 3], exports=n % 2 == 0) for n in range(60)]

    async def body(client: AsyncEagleClient) -> list[Reading]:
        return await asyncio.gather(*(client.instantaneous_demand(t) for t in targets))

    before = {t.cloud_id: eagle_simulator.demand_kw(t.cloud_id) for t in targets}
    readings = run_async(eagle_simulator, body, max_connections=8)
    after = {t.cloud_id: eagle_simulator.demand_kw(t.cloud_id) for t in targets}
    for target, reading in zip(targets, readings, strict=True):
        assert reading.cloud_id == target.cloud_id
        # the simulated meter takes a new reading every 10 s: the answer is the one before or after the reads
        sent = (before[target.cloud_id], after[target.cloud_id])
        assert any(reading.demand_kw == pytest.approx(value, abs=1e-6) for value in sent), (reading.demand_kw, sent)


@pytest.mark.parametrize(
    "quirks",
    [
        {"wide_demand": True},  # Demand as eight hex digits: signed 32-bit
        {"multiplier": 0, "divisor": 0},  # zeros count as 1
        {"multiplier": 2, "divisor": 100},
    ],
    ids=["int32-demand", "zero-multiplier-and-divisor", "multiplier-2-divisor-100"],
)
@pytest.mark.parametrize("protocol", ("cloud", "eagle100"))
def test_legacy_number_formats_over_the_wire(eagle_simulator, protocol, quirks):
    target = add_household(eagle_simulator, protocol, exports=True, **quirks)
    with sync_client(eagle_simulator) as client:
        reading = assert_demand_is_what_the_simulator_sent(
            eagle_simulator, target, lambda: client.instantaneous_demand(target)
        )
    assert reading.demand_kw < 0


@pytest.mark.parametrize(
    "quirks",
    [
        {"inline_units": True},  # <Value>21.499 kW</Value>
        {"unsigned_wrap": True},  # exported power as 4294963.584 kW
        {"stale_meter": True},  # a not-joined meter listed before the live one
        {"bare_ampersand": True},  # an unescaped & in <Description>
        {"inline_units": True, "unsigned_wrap": True, "stale_meter": True, "bare_ampersand": True},
    ],
    ids=["inline-units", "unsigned-wrap", "stale-meter-first", "bare-ampersand", "all-at-once"],
)
def test_eagle200_firmware_quirks_still_read_correctly(eagle_simulator, quirks):
    target = add_household(eagle_simulator, "eagle200", exports=True, **quirks)
    with sync_client(eagle_simulator) as client:
        reading = assert_demand_is_what_the_simulator_sent(
            eagle_simulator, target, lambda: client.instantaneous_demand(target)
        )
    assert reading.demand_kw < 0


@pytest.mark.parametrize("missing", ["device", "components"])
def test_eagle200_answers_missing_parts_are_bad_responses(eagle_simulator, missing):
    target = add_household(eagle_simulator, "eagle200", missing=missing)
    with sync_client(eagle_simulator) as client, pytest.raises(BadResponse) as raised:
        client.instantaneous_demand(target)
    assert raised.value.raw  # kept for diagnosis


# --- the EAGLE-200 meter cache ----------------------------------------------------------------------------


def test_eagle200_finds_the_meter_once_then_polls_with_one_request_and_rediscovers_when_it_goes(eagle_simulator):
    target = add_household(eagle_simulator, "eagle200", stale_meter=True)
    requests = lambda: eagle_simulator.requests(target.cloud_id)  # noqa: E731
    with sync_client(eagle_simulator) as client:
        client.instantaneous_demand(target)
        assert requests() == 2  # device_list, then device_query
        client.instantaneous_demand(target)
        client.instantaneous_demand(target)
        assert requests() == 4  # the steady state: one request per poll
        eagle_simulator.set_fault(target.cloud_id, "meter_not_joined")
        with pytest.raises(MeterNotJoined):
            client.instantaneous_demand(target)
        assert requests() == 6  # the cached meter was not Connected: one more device_list, still none
        eagle_simulator.clear_fault(target.cloud_id)
        client.instantaneous_demand(target)
        assert requests() == 8  # found again
        client.instantaneous_demand(target)
        assert requests() == 9


def test_the_async_client_keeps_the_eagle200_meter_between_polls_too(eagle_simulator):
    target = add_household(eagle_simulator, "eagle200")

    async def body(client: AsyncEagleClient) -> None:
        for _ in range(4):
            await client.instantaneous_demand(target)

    run_async(eagle_simulator, body)
    assert eagle_simulator.requests(target.cloud_id) == 5


# --- price and summation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_price_and_summation(eagle_simulator, protocol):
    target = add_household(eagle_simulator, protocol)
    with sync_client(eagle_simulator) as client:
        price = client.price(target)
        summation = client.summation(target)
    assert price.price is not None and 0 < price.price < 5
    assert summation.delivered_kwh is not None and summation.delivered_kwh > 0
    assert summation.received_kwh is not None and summation.received_kwh >= 0
    if protocol != "eagle200":
        assert price.currency == 840  # USD
        assert price.meter_time is not None


@pytest.mark.parametrize("protocol", ("cloud", "eagle100"))
def test_an_invalid_price_is_no_price_not_a_failure(eagle_simulator, protocol):
    target = add_household(eagle_simulator, protocol, invalid_price=True)
    with sync_client(eagle_simulator) as client:
        assert client.price(target).price is None


def test_price_and_summation_through_the_async_client(eagle_simulator):
    target = add_household(eagle_simulator, "eagle100")

    async def body(client: AsyncEagleClient) -> tuple[Any, Any]:
        return await client.price(target), await client.summation(target)

    price, summation = run_async(eagle_simulator, body)
    assert price.currency == 840 and summation.delivered_kwh > 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_price_and_summation_in_one_exchange_sync_and_async(eagle_simulator, protocol):
    """The pinger's price poll: the price in USD (840) and energy totals that only grow, on every protocol."""
    target = add_household(eagle_simulator, protocol)
    with sync_client(eagle_simulator) as client:
        first = client.price_and_summation(target)
    second = run_async(eagle_simulator, lambda client: client.price_and_summation(target))
    for both in (first, second):
        assert both.price.price is not None and 0 < both.price.price < 5
        assert both.price.currency == 840
        assert both.price.meter_timestamp is not None
        assert both.summation.delivered_kwh is not None and both.summation.received_kwh is not None
        assert both.latency_s > 0
    assert second.summation.delivered_kwh >= first.summation.delivered_kwh
    assert second.summation.received_kwh >= first.summation.received_kwh


def test_an_eagle200_price_and_summation_poll_is_one_request_once_the_meter_is_known(eagle_simulator):
    target = add_household(eagle_simulator, "eagle200")
    with sync_client(eagle_simulator) as client:
        client.price_and_summation(target)  # device_list, then device_query
        before = eagle_simulator.requests(target.cloud_id)
        client.price_and_summation(target)
    assert eagle_simulator.requests(target.cloud_id) == before + 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_price_not_set_is_no_price_and_no_time_not_a_failure(eagle_simulator, protocol):
    target = add_household(eagle_simulator, protocol, invalid_price=True)
    with sync_client(eagle_simulator) as client:
        both = client.price_and_summation(target)
    assert both.price.price is None
    if protocol != "eagle200":
        assert both.price.meter_timestamp is None  # TimeStamp 0xffffffff: not 2136
    assert both.summation.delivered_kwh is not None  # the energy is still read


def test_the_older_summation_root_reads_as_the_current_one(eagle_simulator):
    older = add_household(eagle_simulator, "eagle100", old_summation_root=True)
    with sync_client(eagle_simulator) as client:
        summation = client.summation(older)
    assert summation.delivered_kwh is not None and summation.delivered_kwh > 0


def test_an_eagle200_that_omits_delivered_by_name_still_gives_it_when_asked_for_all(eagle_simulator):
    target = add_household(eagle_simulator, "eagle200", omit_delivered=True)
    with sync_client(eagle_simulator) as client:
        by_name = client.summation(target)
        everything = client.price_and_summation(target)
    assert by_name.delivered_kwh is None and by_name.received_kwh is not None  # read, not failed
    assert everything.summation.delivered_kwh is not None and everything.summation.delivered_kwh > 0


# --- faults: the right exception, and the neighbours unaffected ---------------------------------------------


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_each_fault_is_classified_while_a_healthy_household_still_answers(eagle_simulator, protocol, fault):
    expected = FAULTS[fault]
    sick = add_household(eagle_simulator, protocol)
    healthy = add_household(eagle_simulator, protocol)
    eagle_simulator.set_fault(sick.cloud_id, fault)

    with sync_client(eagle_simulator) as client:
        with pytest.raises(expected) as raised:
            client.instantaneous_demand(sick)
        assert raised.value.kind == expected.kind
        assert client.instantaneous_demand(healthy).demand_kw == pytest.approx(
            eagle_simulator.demand_kw(healthy.cloud_id), abs=1e-6
        )

    async def body(client: AsyncEagleClient) -> list[Any]:
        return await asyncio.gather(
            client.instantaneous_demand(sick), client.instantaneous_demand(healthy), return_exceptions=True
        )

    sick_result, healthy_result = run_async(eagle_simulator, body)
    assert type(sick_result) is expected, repr(sick_result)
    assert isinstance(healthy_result, Reading), repr(healthy_result)

    eagle_simulator.clear_fault(sick.cloud_id)  # healed: it answers again
    with sync_client(eagle_simulator) as client:
        assert isinstance(client.instantaneous_demand(sick), Reading)


def test_bad_responses_keep_the_raw_answer_truncated(eagle_simulator):
    target = add_household(eagle_simulator, "eagle100")
    eagle_simulator.set_fault(target.cloud_id, "garbage")
    with sync_client(eagle_simulator) as client, pytest.raises(BadResponse) as raised:
        client.instantaneous_demand(target)
    assert raised.value.raw and len(raised.value.raw) <= 500


def test_an_unknown_cloud_id_at_the_relay_is_bad_credentials(eagle_simulator):
    target = EagleTarget("abcdef", "cloud", "nobody@example.org", "whatever")  # never added to the simulator
    with sync_client(eagle_simulator) as client, pytest.raises(BadCredentials):
        client.instantaneous_demand(target)


# --- timeouts and unreachable gateways ----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_slow_gateway_times_out_as_unreachable_without_delaying_the_others(eagle_simulator, protocol):
    slow = add_household(eagle_simulator, protocol)
    healthy = add_household(eagle_simulator, protocol)
    eagle_simulator.set_fault(slow.cloud_id, "slow", delay_ms=1000)

    with sync_client(eagle_simulator, read_timeout=0.3) as client:
        started = time.perf_counter()
        with pytest.raises(Unreachable):
            client.instantaneous_demand(slow)
        assert time.perf_counter() - started < 1.0

    async def body(client: AsyncEagleClient) -> tuple[list[Any], float]:
        started = time.perf_counter()
        results = await asyncio.gather(
            client.instantaneous_demand(slow), client.instantaneous_demand(healthy), return_exceptions=True
        )
        return results, time.perf_counter() - started

    (slow_result, healthy_result), elapsed = run_async(eagle_simulator, body, read_timeout=0.3)
    assert isinstance(slow_result, Unreachable), repr(slow_result)
    assert isinstance(healthy_result, Reading), repr(healthy_result)
    assert healthy_result.latency_s < 0.3  # answered while the slow one was still waiting
    assert elapsed < 1.0


def test_a_slow_answer_within_the_timeout_is_a_reading(eagle_simulator):
    target = add_household(eagle_simulator, "cloud")
    eagle_simulator.set_fault(target.cloud_id, "slow", delay_ms=200)
    with sync_client(eagle_simulator, read_timeout=2.0) as client:
        reading = client.instantaneous_demand(target)
    assert reading.latency_s >= 0.2


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _unreachable_targets(port: int) -> list[EagleTarget]:
    return [
        EagleTarget("0a0a0a", "cloud", "a@example.org", "pw"),
        EagleTarget("0b0b0b", "eagle100", password="pw", address=f"127.0.0.1:{port}"),
        EagleTarget("0c0c0c", "eagle200", password="pw", address=f"127.0.0.1:{port}"),
        EagleTarget("0d0d0d", "eagle100", password="pw", address="eagle-0d0d0d.invalid"),  # DNS failure
    ]


def test_a_closed_port_or_unknown_host_is_unreachable_sync():
    port = _closed_port()
    with sync_client(cloud_url=f"http://127.0.0.1:{port}/cgi-bin/post_manager") as client:
        for target in _unreachable_targets(port):
            started = time.perf_counter()
            with pytest.raises(Unreachable):
                client.instantaneous_demand(target)
            assert time.perf_counter() - started < CONNECT_TIMEOUT + 0.5


def test_a_closed_port_or_unknown_host_is_unreachable_async():
    port = _closed_port()
    targets = _unreachable_targets(port)

    async def body(client: AsyncEagleClient) -> list[Any]:
        return await asyncio.gather(*(client.instantaneous_demand(t) for t in targets), return_exceptions=True)

    started = time.perf_counter()
    results = run_async(None, body, cloud_url=f"http://127.0.0.1:{port}/cgi-bin/post_manager")
    assert [type(result) for result in results] == [Unreachable] * len(targets), results
    assert time.perf_counter() - started < CONNECT_TIMEOUT + 0.5


def test_a_connect_timeout_is_unreachable_within_the_connect_timeout():
    # A listening socket whose backlog is full never completes new handshakes: the connect times out.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(8):  # fill the accept queue (never accepted)
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            target = EagleTarget("0e0e0e", "eagle100", password="pw", address=f"127.0.0.1:{port}")
            with sync_client(cloud_url="http://unused", connect_timeout=0.3, read_timeout=0.3) as client:
                started = time.perf_counter()
                with pytest.raises(Unreachable, match=r"no connection .* within 0\.3 s"):
                    client.instantaneous_demand(target)
                assert time.perf_counter() - started < 1.5
        finally:
            for filler in fillers:
                filler.close()


# --- TLS: certificate checks off only for an EAGLE 3 (an eagle200 household marked HTTPS) ------------------


@pytest.fixture(scope="module")
def self_signed_certificate(tmp_path_factory) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "eagle3.local")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@contextmanager
def tls_front(backend_port: int, cert_path: Path, key_path: Path) -> Iterator[int]:
    """A TLS terminator with a self-signed certificate in front of the simulator, as an EAGLE 3 serves."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    loop = asyncio.new_event_loop()
    ready: list[int] = []
    started = threading.Event()
    stop = asyncio.Event()
    handlers: set[asyncio.Task] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())
        backend_reader, backend_writer = await asyncio.open_connection("127.0.0.1", backend_port)
        await asyncio.gather(pipe(reader, backend_writer), pipe(backend_reader, writer))

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
        ready.append(server.sockets[0].getsockname()[1])
        started.set()
        await stop.wait()
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    assert started.wait(5)
    try:
        yield ready[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(5)
        loop.close()


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # the point of this test
def test_an_eagle3_with_a_self_signed_certificate_is_read_over_https(eagle_simulator, self_signed_certificate):
    target = add_household(eagle_simulator, "eagle200", exports=True)
    with tls_front(eagle_simulator.port, *self_signed_certificate) as port:
        eagle3 = EagleTarget(
            target.cloud_id, "eagle200", password=target.password, address=f"127.0.0.1:{port}", https=True
        )
        with sync_client(eagle_simulator) as client:
            assert client.instantaneous_demand(eagle3).demand_kw < 0

        async def body(client: AsyncEagleClient) -> Reading:
            return await client.instantaneous_demand(eagle3)

        assert run_async(eagle_simulator, body).demand_kw < 0


def test_certificate_checks_stay_on_for_the_cloud_relay_and_the_eagle100(eagle_simulator, self_signed_certificate):
    cloud = add_household(eagle_simulator, "cloud")
    eagle100 = add_household(eagle_simulator, "eagle100")
    with tls_front(eagle_simulator.port, *self_signed_certificate) as port:
        relay_url = f"https://127.0.0.1:{port}/cgi-bin/post_manager"
        local = EagleTarget(
            eagle100.cloud_id, "eagle100", password=eagle100.password, address=f"127.0.0.1:{port}", https=True
        )
        with sync_client(cloud_url=relay_url) as client:
            for target in (cloud, local):
                with pytest.raises(Unreachable, match="TLS"):
                    client.instantaneous_demand(target)

        async def body(client: AsyncEagleClient) -> list[Any]:
            return await asyncio.gather(
                client.instantaneous_demand(cloud), client.instantaneous_demand(local), return_exceptions=True
            )

        results = run_async(None, body, cloud_url=relay_url)
        assert [type(result) for result in results] == [Unreachable, Unreachable], results
        assert all("TLS" in result.message for result in results)


def test_https_to_a_plain_http_gateway_is_unreachable(eagle_simulator):
    target = add_household(eagle_simulator, "eagle200")
    eagle3 = EagleTarget(
        target.cloud_id, "eagle200", password=target.password, address=eagle_simulator.address, https=True
    )
    with sync_client(eagle_simulator) as client, pytest.raises(Unreachable):
        client.instantaneous_demand(eagle3)


# --- credentials never shown ------------------------------------------------------------------------------


def _everything_shown(error: EagleError) -> str:
    return "\n".join(
        [
            str(error),
            repr(error),
            error.message,
            error.raw or "",
            repr(error.args),
            "".join(traceback.format_exception(error)),
        ]
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_credentials_never_appear_in_errors_reprs_or_logs(eagle_simulator, protocol, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "hunter2-Zq9-never-shown"
    wrong = add_household(eagle_simulator, protocol, password=secret)
    authorization = base64.b64encode(f"{wrong.cloud_id}:{secret}".encode()).decode()
    port = _closed_port()
    down = EagleTarget(wrong.cloud_id, protocol, wrong.user_email, secret, address=f"127.0.0.1:{port}")

    errors: list[EagleError] = []
    with sync_client(eagle_simulator) as client:
        with pytest.raises(BadCredentials) as raised:
            client.instantaneous_demand(wrong)
        errors.append(raised.value)
        assert secret not in repr(client)
    with sync_client(cloud_url=f"http://127.0.0.1:{port}/cgi-bin/post_manager") as client:
        with pytest.raises(Unreachable) as raised:
            client.instantaneous_demand(down)
        errors.append(raised.value)

    async def body(client: AsyncEagleClient) -> list[Any]:
        return await asyncio.gather(client.instantaneous_demand(wrong), return_exceptions=True)

    errors += run_async(eagle_simulator, body)
    assert type(errors[-1]) is BadCredentials

    for error in errors:
        shown = _everything_shown(error)
        assert secret not in shown and authorization not in shown
        assert error.__cause__ is None and error.__context__ is None  # no library exception holding the request
    assert secret not in repr(wrong) and secret not in repr(down)
    assert secret not in caplog.text and authorization not in caplog.text


# --- a gateway that echoes the credentials it refused ------------------------------------------------------

# A strong password holds characters that XML and JSON escape, and runs of white space that an <Error> text
# collapses; the echoes below reach the client in those forms, not as the password itself.
ECHOED_SECRET = 'Zq9 & <x>  "hunter2"\'s-ü'


def _echo_answer(mode: str, password: str, authorization: str) -> tuple[str, bytes]:
    from xml.sax.saxutils import escape

    basic = authorization.removeprefix("Basic ")
    padding = "x" * 280  # puts the password across the 300-character cut of the message
    if mode == "xml":
        text = f"Invalid password {escape(password, {chr(34): '&quot;', chr(39): '&apos;'})} for this user"
        return "text/xml", f"<Error><Text>{text}</Text></Error>".encode()
    if mode == "json":
        return "application/json", json.dumps({"Error": f"Invalid password {password}"}).encode()
    if mode == "basic":
        return "text/xml", f"<Error>authorization refused: Basic {basic}</Error>".encode()
    if mode == "cut":  # the password straddles both the message's and the raw answer's cut
        body = f"<Error>{padding} password {escape(password)} {padding} {escape(password)}</Error>"
        return "text/xml", body.encode()
    raise AssertionError(mode)


@contextmanager
def _echoing_gateway(mode: str) -> Iterator[int]:
    """A real HTTP server on loopback answering 200 with an <Error> that quotes the credentials it received."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Echo(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            authorization = self.headers.get("Authorization", "")
            password = self.headers.get("Password")
            if password is None:
                decoded = base64.b64decode(authorization.removeprefix("Basic ")).decode()
                password = decoded.partition(":")[2]
            else:
                password = password.encode("latin-1").decode("utf-8")
            content_type, body = _echo_answer(mode, password, authorization)
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("protocol", "mode"),
    [(p, m) for p in ("cloud", "eagle100") for m in ("xml", "json", "basic", "cut") if (p, m) != ("cloud", "basic")],
)
def test_credentials_echoed_in_any_form_are_blanked_from_errors(protocol, mode):
    from xml.sax.saxutils import escape

    secret = ECHOED_SECRET if protocol == "eagle100" else "Zq9&<x>hunter2-s3cret"  # headers are latin-1
    authorization = base64.b64encode(f"0a1b2c:{secret}".encode()).decode()
    fragments = [
        secret,
        escape(secret),
        escape(secret, {'"': "&quot;", "'": "&apos;"}),
        json.dumps(secret)[1:-1],
        " ".join(secret.split()),
        authorization,
        secret[:8],  # half a password, left by a cut
        escape(secret)[-8:],
        "hunter2",
    ]
    with _echoing_gateway(mode) as port:
        url = f"http://127.0.0.1:{port}/cgi-bin/post_manager"
        target = EagleTarget("0a1b2c", protocol, "a@example.org", secret, address=f"127.0.0.1:{port}")
        with sync_client(cloud_url=url) as client, pytest.raises(EagleError) as raised:
            client.instantaneous_demand(target)

        async def body(client: AsyncEagleClient) -> list[Any]:
            return await asyncio.gather(client.instantaneous_demand(target), return_exceptions=True)

        errors = [raised.value, *run_async(None, body, cloud_url=url)]
    for error in errors:
        assert isinstance(error, EagleError), error
        shown = _everything_shown(error)
        leaked = [fragment for fragment in fragments if fragment in shown]
        assert not leaked, (leaked, shown)
        assert "***" in error.message


# --- a household record, as the live read uses it -------------------------------------------------------


def test_a_household_record_is_read_through_its_target(eagle_simulator, make_household):
    simulated = add_household(eagle_simulator, "eagle200", exports=True)
    household = make_household(
        simulated.cloud_id, protocol="eagle200", password=simulated.password, address=eagle_simulator.address
    )
    with sync_client(eagle_simulator) as client:
        reading = client.instantaneous_demand(EagleTarget.from_household(household))
    assert reading.cloud_id == household.cloud_id and reading.demand_kw < 0
