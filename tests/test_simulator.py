"""The EAGLE simulator over real sockets: protocol shapes, hex encodings, time, credentials, faults, control.

Talks to the server with plain ``requests`` and defusedxml, never with loggerapp.eagle, so that a bug in the
client cannot hide a bug in the simulator (or the reverse).
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from defusedxml import ElementTree
from django.core.management import CommandError, call_command

from loggerapp.households_import import parse_line
from loggerapp.simulator.faults import parse_fault_rates
from loggerapp.simulator.households import (
    SimHousehold,
    generate_households,
    households_from_db,
    parse_protocol_mix,
    write_credentials,
)
from loggerapp.simulator.meter import ZIGBEE_EPOCH, Totals, demand_at, derive_profile, reading_at
from loggerapp.simulator.server import Simulator, _is_loopback
from loggerapp.simulator.testing import run_simulator
from tests.fixtures.core import OLD_LOGGER_FIELDS, manage_command, subprocess_env

DEMAND = "<Command><Name>get_instantaneous_demand</Name></Command>"
DEMAND_JSON = "<Command><Name>get_instantaneous_demand</Name><Format>JSON</Format></Command>"
DEVICE_LIST = "<Command><Name>device_list</Name></Command>"
LEGACY_FIELDS = list(OLD_LOGGER_FIELDS)


def device_query(address: str = "", *variables: str) -> str:
    details = f"<DeviceDetails><HardwareAddress>{address}</HardwareAddress></DeviceDetails>" if address else ""
    names = variables or ("zigbee:InstantaneousDemand",)
    wanted = "".join(f"<Variable><Name>{name}</Name></Variable>" for name in names)
    return (
        f"<Command><Name>device_query</Name>{details}<Components><Component><Name>Main</Name>"
        f"<Variables>{wanted}</Variables></Component></Components></Command>"
    )


def secret(cloud_id: str) -> str:
    return f"pw-{cloud_id}-Zq9!"


def add(sim, cloud_id: str, protocol: str = "cloud", **options) -> SimHousehold:
    email = f"h{cloud_id}@example.org" if protocol == "cloud" else ""
    return sim.add_household(cloud_id, protocol=protocol, user_email=email, password=secret(cloud_id), **options)


def ask(sim, cloud_id: str, body: str = DEMAND, protocol: str = "cloud", password: str | None = None, **kw):
    """POST a command as that household's client would, with its (or the given) credentials."""
    password = secret(cloud_id) if password is None else password
    timeout = kw.pop("timeout", 5)
    if protocol == "cloud":
        headers = {"Cloud-ID": cloud_id, "User": f"h{cloud_id}@example.org", "Password": password}
        return requests.post(sim.cloud_url, data=body, headers=headers, timeout=timeout, **kw)
    url = f"http://{sim.address}/cgi-bin/post_manager"
    return requests.post(url, data=body, auth=(cloud_id, password), timeout=timeout, **kw)


def post(url: str, **kw) -> requests.Response:
    return requests.post(url, timeout=5, **kw)


def get(url: str, **kw) -> requests.Response:
    return requests.get(url, timeout=5, **kw)


def delete(url: str, **kw) -> requests.Response:
    return requests.delete(url, timeout=5, **kw)


def fields(text: str) -> dict[str, str]:
    root = ElementTree.fromstring(text)
    return {child.tag: (child.text or "") for child in root}


def signed(hex_text: str) -> int:
    """Two's complement by width: six digits int24, eight digits int32."""
    digits = hex_text[2:]
    value, bits = int(digits, 16), 4 * len(digits)
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def legacy_kw(answer: dict[str, str]) -> float:
    return signed(answer["Demand"]) * (int(answer["Multiplier"], 16) or 1) / (int(answer["Divisor"], 16) or 1)


def variable(text: str, name: str) -> str:
    match = re.search(rf"<Name>{re.escape(name)}</Name><Value>([^<]*)</Value>", text)
    assert match, text
    return match.group(1)


# --- protocol shapes ---------------------------------------------------------------------------------------


def test_cloud_answers_instantaneous_demand_in_hex(eagle_simulator):
    sim = eagle_simulator
    add(sim, "002506")
    response = ask(sim, "002506")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/xml")
    answer = fields(response.text)
    assert list(answer) == LEGACY_FIELDS
    for name in LEGACY_FIELDS[:-1]:
        assert re.fullmatch(r"0x[0-9a-f]+", answer[name]), (name, answer[name])
    assert len(answer["DeviceMacId"]) == len(answer["MeterMacId"]) == 18
    assert len(answer["Demand"]) == 8  # 0x + six digits: int24
    assert answer["Divisor"] == "0x000003e8" and answer["SuppressLeadingZero"] == "Y"
    meter_time = int(answer["TimeStamp"], 16) + ZIGBEE_EPOCH
    assert time.time() - 12 < meter_time <= time.time()
    assert legacy_kw(answer) == pytest.approx(sim.demand_kw("002506"), abs=0.0015)
    assert sim.requests("002506") == 1


def test_an_exporting_household_sends_twos_complement(eagle_simulator):
    sim = eagle_simulator
    add(sim, "00e001", exports=True)
    add(sim, "00e002", protocol="eagle100", exports=True, wide_demand=True)
    narrow = fields(ask(sim, "00e001").text)
    assert len(narrow["Demand"]) == 8 and int(narrow["Demand"], 16) >= 0x800000  # unsigned reading: ~16.7 million
    assert legacy_kw(narrow) < 0
    assert legacy_kw(narrow) == pytest.approx(sim.demand_kw("00e001"), abs=0.0015)
    wide = fields(ask(sim, "00e002", protocol="eagle100").text)
    assert len(wide["Demand"]) == 10 and int(wide["Demand"], 16) >= 0x80000000
    assert legacy_kw(wide) < 0
    assert legacy_kw(wide) == pytest.approx(sim.demand_kw("00e002"), abs=0.0015)


def test_json_answers_and_the_braceless_firmware_only_in_lists(eagle_simulator):
    """The EAGLE-100 firmware bug drops the outer braces of the history and schedule lists only; every other
    JSON answer of the same household keeps them (as the `eagle100` package's workaround expects)."""
    sim = eagle_simulator
    add(sim, "00a100", protocol="eagle100")
    add(sim, "00a101", protocol="eagle100", braceless_json=True)
    whole = ask(sim, "00a100", DEMAND_JSON, protocol="eagle100")
    assert whole.headers["Content-Type"].startswith("application/json")
    assert list(whole.json()["InstantaneousDemand"]) == LEGACY_FIELDS
    for command in ("get_instantaneous_demand", "get_price", "get_current_summation", "get_network_info"):
        answer = ask(sim, "00a101", f"<Command><Name>{command}</Name><Format>JSON</Format></Command>", "eagle100")
        assert answer.text.startswith("{"), command
        assert len(answer.json()) == 1, command
    history = "<Command><Name>get_history_data</Name><StartTime>0x1c91d800</StartTime><Format>JSON</Format></Command>"
    schedule = "<Command><Name>get_schedule</Name><Event></Event><Format>JSON</Format></Command>"
    for body, root, item in ((history, "HistoryData", "CurrentSummation"), (schedule, "ScheduleList", "ScheduleInfo")):
        braceless = ask(sim, "00a101", body, protocol="eagle100").text
        assert braceless.startswith(f'"{root}"'), braceless[:40]
        with pytest.raises(json.JSONDecodeError):
            json.loads(braceless)
        entries = json.loads("{" + braceless + "}")[root][item]
        assert entries and all(isinstance(entry, dict) for entry in entries)
        assert ask(sim, "00a100", body, protocol="eagle100").json()[root][item]  # healthy firmware: braces kept
    assert fields(ask(sim, "00a101", protocol="eagle100").text)["Demand"]  # XML is unaffected


def test_price_summation_and_network_info(eagle_simulator):
    sim = eagle_simulator
    add(sim, "00b100")
    add(sim, "00b101", protocol="eagle100", invalid_price=True)
    price = fields(ask(sim, "00b100", "<Command><Name>get_price</Name></Command>").text)
    assert price["Currency"] == "0x0348"
    assert 0.05 < int(price["Price"], 16) / 10 ** int(price["TrailingDigits"], 16) < 0.5
    invalid = fields(ask(sim, "00b101", "<Command><Name>get_price</Name></Command>", protocol="eagle100").text)
    assert invalid["Price"] == "invalid" and "Currency" not in invalid
    summation = ask(sim, "00b100", "<Command><Name>get_current_summation</Name></Command>")
    assert ElementTree.fromstring(summation.text).tag == "CurrentSummation"
    totals = fields(summation.text)
    assert int(totals["SummationDelivered"], 16) / int(totals["Divisor"], 16) > 1000  # kWh on the meter
    assert re.fullmatch(r"0x[0-9a-f]{16}", totals["SummationReceived"])
    # get_network_info says what the gateway is (clients recognise an EAGLE-100 by its ModelId); the network
    # status is another command, answered under the same root with the link's fields.
    for cloud_id, protocol in (("00b100", "cloud"), ("00b101", "eagle100")):
        info = fields(ask(sim, cloud_id, "<Command><Name>get_network_info</Name></Command>", protocol=protocol).text)
        assert info["ModelId"] == "Z109-EAGLE"
        assert info["Manufacturer"] == "Rainforest Automation, Inc."
        assert {"DeviceMacId", "InstallCode", "LinkKey", "FWVersion", "HWVersion", "ImageType", "DateCode"} <= set(info)
        assert "Status" not in info and secret(cloud_id) not in json.dumps(info)
        status = ask(sim, cloud_id, "<Command><Name>get_network_status</Name></Command>", protocol=protocol)
        link = fields(status.text)
        assert link["Status"] == "Connected" and link["LinkStrength"] == "0x64" and "ModelId" not in link
    unknown = ask(sim, "00b100", "<Command><Name>reboot</Name></Command>")
    assert ElementTree.fromstring(unknown.text).tag == "Error"


def test_summation_grows_with_demand():
    profile = derive_profile(1, "00c0de", exports=False, solar=False)
    totals = Totals(profile, 1_700_000_000.0)
    before, received = totals.delivered_kwh, totals.received_kwh
    after, received_after = totals.advance(profile, 1_700_000_000.0 + 86400, 10)
    assert 0.15 * 24 < after - before < 8 * 24  # a day of household load
    assert received_after == received  # no solar, nothing exported


def test_eagle200_device_list_and_query(eagle_simulator):
    sim = eagle_simulator
    add(sim, "00d200", protocol="eagle200")
    listing = ElementTree.fromstring(ask(sim, "00d200", DEVICE_LIST, protocol="eagle200").text)
    assert listing.tag == "DeviceList"
    [device] = listing.findall("Device")
    assert device.findtext("ModelId") == "electric_meter" and device.findtext("ConnectionStatus") == "Connected"
    assert abs(int(device.findtext("LastContact"), 16) - time.time()) < 12  # Unix epoch here, not ZigBee
    address = device.findtext("HardwareAddress")

    answer = ElementTree.fromstring(ask(sim, "00d200", device_query(address), protocol="eagle200").text)
    assert answer.tag == "Device"
    assert answer.findtext("DeviceDetails/HardwareAddress") == address
    [var] = answer.findall("Components/Component/Variables/Variable")
    assert var.findtext("Name") == "zigbee:InstantaneousDemand" and var.findtext("Units") == "kW"
    assert float(var.findtext("Value")) == pytest.approx(sim.demand_kw("00d200"), abs=1e-6)

    everything = ask(sim, "00d200", "<Command><Name>device_query</Name></Command>", protocol="eagle200").text
    assert float(variable(everything, "zigbee:CurrentSummationDelivered")) > 1000
    assert ask(sim, "00d200", DEMAND, protocol="eagle200").text.startswith("<Error>")  # no legacy commands


def test_eagle200_firmware_quirks(eagle_simulator):
    sim = eagle_simulator
    add(sim, "00d201", protocol="eagle200", inline_units=True)
    add(sim, "00d202", protocol="eagle200", unsigned_wrap=True, exports=True)
    add(sim, "00d203", protocol="eagle200", stale_meter=True)
    add(sim, "00d204", protocol="eagle200", missing="components")
    add(sim, "00d205", protocol="eagle200", missing="device")
    add(sim, "00d206", protocol="eagle200", bare_ampersand=True)

    inline = ask(sim, "00d201", device_query(), protocol="eagle200").text
    value = variable(inline, "zigbee:InstantaneousDemand")
    assert value.endswith(" kW") and "<Units>" not in inline.split("zigbee:InstantaneousDemand")[1].split("</Var")[0]
    assert float(value.split()[0]) == pytest.approx(sim.demand_kw("00d201"), abs=1e-3)

    wrapped = float(
        variable(ask(sim, "00d202", device_query(), protocol="eagle200").text, "zigbee:InstantaneousDemand")
    )
    assert wrapped > 2_147_483.648
    assert wrapped - 4_294_967.296 == pytest.approx(sim.demand_kw("00d202"), abs=1e-3)

    devices = ElementTree.fromstring(ask(sim, "00d203", DEVICE_LIST, protocol="eagle200").text).findall("Device")
    assert [d.findtext("ConnectionStatus") for d in devices] == ["Not Joined", "Connected"]
    stale = ask(sim, "00d203", device_query(devices[0].findtext("HardwareAddress")), protocol="eagle200").text
    assert "<ConnectionStatus>Not Joined</ConnectionStatus>" in stale
    live = ask(sim, "00d203", device_query(devices[1].findtext("HardwareAddress")), protocol="eagle200").text
    assert float(variable(live, "zigbee:InstantaneousDemand")) == pytest.approx(sim.demand_kw("00d203"), abs=1e-6)

    no_components = ElementTree.fromstring(ask(sim, "00d204", device_query(), protocol="eagle200").text)
    assert no_components.tag == "Device" and no_components.find("Components") is None
    assert ElementTree.fromstring(ask(sim, "00d205", device_query(), protocol="eagle200").text).tag != "Device"
    assert ElementTree.fromstring(ask(sim, "00d205", DEVICE_LIST, protocol="eagle200").text).find("Device") is None

    ampersand = ask(sim, "00d206", device_query(), protocol="eagle200").text
    with pytest.raises(ElementTree.ParseError):
        ElementTree.fromstring(ampersand)
    assert "Instantaneous Demand & Power" in ampersand
    assert float(variable(ampersand, "zigbee:InstantaneousDemand")) == pytest.approx(sim.demand_kw("00d206"), abs=1e-6)


# --- time and the demand curve ----------------------------------------------------------------------------


def test_timestamp_advances_with_real_time_between_readings():
    with run_simulator(reading_interval_s=1) as sim:
        add(sim, "00f001")
        stamps = [int(fields(ask(sim, "00f001").text)["TimeStamp"], 16) for _ in range(3)]
        assert len(set(stamps)) <= 2 and stamps == sorted(stamps)  # quick polls mostly repeat a reading
        time.sleep(1.3)
        later = int(fields(ask(sim, "00f001").text)["TimeStamp"], 16)
    assert later > stamps[-1]
    assert time.time() - 2 <= later + ZIGBEE_EPOCH <= time.time()


def test_the_meter_reads_every_ten_seconds_so_six_second_polls_sometimes_repeat():
    profile = derive_profile(1, "002506", exports=False)
    polls = [reading_at(profile, 1_700_000_000.0 + 6 * k, 10) for k in range(20)]
    stamps = [poll.zigbee_time for poll in polls]
    assert stamps == sorted(stamps)
    assert any(a == b for a, b in itertools.pairwise(stamps))  # a repeat
    assert len(set(stamps)) >= 10  # but it keeps advancing
    assert all(poll.unix_time % 10 == profile.phase_s for poll in polls)


def test_demand_follows_a_daily_curve_per_household():
    midnight = 1_700_006_400.0  # 2023-11-15 00:00 UTC
    plain = derive_profile(7, "00a0a0", exports=False, solar=False)
    solar = derive_profile(7, "00a0a1", exports=False, solar=True)
    exporter = derive_profile(7, "00a0a2", exports=True)

    def day(profile):
        return [demand_at(profile, midnight + 600 * k, k) for k in range(144)]

    plain_day = day(plain)
    assert min(plain_day) > 0 and max(plain_day) > 2 * min(plain_day)  # peaks over the base load
    solar_day = day(solar)
    assert min(solar_day) < 0 < max(solar_day)  # exports around noon, imports in the evening
    assert max(day(exporter)) < 0  # always exporting
    assert day(derive_profile(7, "00a0a0", exports=False, solar=False)) == plain_day  # deterministic
    assert day(derive_profile(8, "00a0a0", exports=False, solar=False)) != plain_day  # the seed matters


# --- credentials --------------------------------------------------------------------------------------------


def test_cloud_credentials_are_checked(eagle_simulator):
    sim = eagle_simulator
    add(sim, "00c001")
    add(sim, "00c002", protocol="eagle100")
    wrong = ask(sim, "00c001", password="nope")
    assert wrong.status_code == 200 and ElementTree.fromstring(wrong.text).tag == "Error"
    assert "credentials" in wrong.text.lower()
    other_user = post(
        sim.cloud_url, data=DEMAND, headers={"Cloud-ID": "00c001", "User": "x@y.org", "Password": secret("00c001")}
    )
    assert "credentials" in other_user.text.lower()
    for unknown in ("00c0ff", "00c002"):  # never registered / a local gateway the relay does not know
        answer = ask(sim, unknown)
        assert ElementTree.fromstring(answer.text).tag == "Error" and "unknown cloud id" in answer.text.lower()
    assert "Demand" in fields(ask(sim, "00c001").text)
    assert secret("00c001") not in wrong.text


def test_local_credentials_are_checked(eagle_simulator):
    sim = eagle_simulator
    add(sim, "00c003", protocol="eagle200")
    add(sim, "00c004")
    wrong = ask(sim, "00c003", DEVICE_LIST, protocol="eagle200", password="0000")
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic")
    assert requests.post(sim.cloud_url, data=DEVICE_LIST, timeout=5).status_code == 401  # no credentials
    assert ask(sim, "00c0ff", DEVICE_LIST, protocol="eagle200").status_code == 401  # unknown gateway
    assert ask(sim, "00c004", DEMAND, protocol="eagle100").status_code == 401  # a cloud household, not local
    assert ask(sim, "00c003", DEVICE_LIST, protocol="eagle200").status_code == 200
    assert sim.requests("00c003") == 2  # refused requests count too


# --- faults -------------------------------------------------------------------------------------------------


def healthy(sim, cloud_id: str, protocol: str) -> None:
    body = device_query() if protocol == "eagle200" else DEMAND
    response = ask(sim, cloud_id, body, protocol=protocol)
    assert response.status_code == 200
    assert ElementTree.fromstring(response.text).tag == ("Device" if protocol == "eagle200" else "InstantaneousDemand")


@pytest.mark.parametrize("protocol", ["cloud", "eagle100", "eagle200"])
@pytest.mark.parametrize(
    "fault",
    ["bad_credentials", "error", "meter_not_joined", "http_500", "http_503", "garbage", "truncated", "empty", "reset"],
)
def test_each_fault_hits_one_household_while_another_stays_healthy(eagle_simulator, protocol, fault):
    sim = eagle_simulator
    add(sim, "00fa17", protocol=protocol)
    add(sim, "00600d", protocol=protocol)
    sim.set_fault("00fa17", fault)
    body = device_query() if protocol == "eagle200" else DEMAND
    local = protocol != "cloud"

    if fault == "reset":
        with pytest.raises(requests.ConnectionError):
            ask(sim, "00fa17", body, protocol=protocol)
    else:
        response = ask(sim, "00fa17", body, protocol=protocol)
        text = response.text
        expected_status = {"http_500": 500, "http_503": 503, "bad_credentials": 401 if local else 200}.get(fault, 200)
        assert response.status_code == expected_status, text
        if fault == "bad_credentials" and not local:
            assert "credentials" in text.lower() and ElementTree.fromstring(text).tag == "Error"
        elif fault == "error":
            root = ElementTree.fromstring(text)
            assert root.tag == "Error" and not re.search("credential|meter", text, re.IGNORECASE)
        elif fault == "meter_not_joined" and protocol == "eagle200":
            root = ElementTree.fromstring(text)
            assert root.findtext("DeviceDetails/ConnectionStatus") == "Not Joined"
            assert root.findtext("Components/Component/Variables/Variable/Value") == ""
            listing = ask(sim, "00fa17", DEVICE_LIST, protocol=protocol).text
            assert "<ConnectionStatus>Not Joined</ConnectionStatus>" in listing
        elif fault == "meter_not_joined":
            assert ElementTree.fromstring(text).tag == "Error" and "meter" in text.lower()
        elif fault == "garbage":
            assert text
            with pytest.raises(ElementTree.ParseError):
                ElementTree.fromstring(response.content)
            with pytest.raises(ValueError):
                json.loads(response.content)
        elif fault == "truncated":
            assert text.startswith("<Device>" if protocol == "eagle200" else "<InstantaneousDemand>")
            with pytest.raises(ElementTree.ParseError):
                ElementTree.fromstring(text)
        elif fault == "empty":
            assert response.content == b""
    healthy(sim, "00600d", protocol)

    sim.clear_fault("00fa17")
    healthy(sim, "00fa17", protocol)


def test_a_slow_household_does_not_hold_up_another(eagle_simulator):
    sim = eagle_simulator
    add(sim, "005104")
    add(sim, "00600d")
    sim.set_fault("005104", "slow", delay_ms=400)
    outcome: dict[str, float] = {}

    def slow_poll() -> None:
        started = time.monotonic()
        ask(sim, "005104").raise_for_status()
        outcome["slow"] = time.monotonic() - started

    thread = threading.Thread(target=slow_poll)
    thread.start()
    time.sleep(0.05)
    started = time.monotonic()
    healthy(sim, "00600d", "cloud")
    outcome["healthy"] = time.monotonic() - started
    thread.join()
    assert outcome["slow"] >= 0.4
    assert outcome["healthy"] < 0.2
    with pytest.raises(requests.Timeout):
        ask(sim, "005104", timeout=0.1)  # slower than a client's read timeout


def test_latency_and_jitter_delay_every_answer():
    with run_simulator(latency_ms=150, jitter_ms=50) as sim:
        add(sim, "00a7e0")
        durations = []
        for _ in range(4):
            started = time.monotonic()
            ask(sim, "00a7e0").raise_for_status()
            durations.append(time.monotonic() - started)
    assert all(0.095 <= duration < 0.6 for duration in durations), durations


def test_fault_rates_hit_about_that_share_of_requests():
    with run_simulator(fault_rates={"http_500": 0.25}) as sim:
        for cloud_id in ("00a001", "00a002"):
            add(sim, cloud_id)
        session = requests.Session()
        headers = {"Cloud-ID": "00a001", "User": "h00a001@example.org", "Password": secret("00a001")}
        statuses = [session.post(sim.cloud_url, data=DEMAND, headers=headers).status_code for _ in range(200)]
        assert 25 <= statuses.count(500) <= 80 and statuses.count(200) == 200 - statuses.count(500)

        base = sim.base_url
        assert post(f"{base}/_sim/faults", json={"fault": "empty", "rate": 1.0}).status_code == 400
        assert post(f"{base}/_sim/faults", json={"fault": "http_500", "rate": 0}).ok
        assert post(f"{base}/_sim/faults", json={"fault": "empty", "rate": 1.0}).ok  # at runtime
        assert ask(sim, "00a002").content == b""
        assert get(f"{base}/_sim/stats").json()["rates"] == {"empty": 1.0}
        assert delete(f"{base}/_sim/faults").ok  # heals rates too
        healthy(sim, "00a002", "cloud")


def test_fault_rate_options_are_validated():
    assert parse_fault_rates(["http_500=0.01", "reset=0.002,garbage=0.1"]) == {
        "http_500": 0.01,
        "reset": 0.002,
        "garbage": 0.1,
    }
    for bad in (["nonsense=0.1"], ["http_500"], ["http_500=2"], ["http_500=0.6,reset=0.6"]):
        with pytest.raises(ValueError):
            parse_fault_rates(bad)


# --- control over HTTP ---------------------------------------------------------------------------------------


def test_control_endpoints_break_and_heal_a_household(eagle_simulator):
    sim = eagle_simulator
    base = sim.base_url
    created = post(
        f"{base}/_sim/households",
        json={"cloud_id": "00ab01", "protocol": "cloud", "user_email": "h00ab01@example.org", "password": "pw-x"},
    )
    assert created.status_code == 201 and "pw-x" not in created.text
    add(sim, "00ab02")
    assert ask(sim, "00ab01", password="pw-x").status_code == 200

    assert post(f"{base}/_sim/faults", json={"cloud_id": "00ab01", "fault": "http_500"}).ok
    assert ask(sim, "00ab01", password="pw-x").status_code == 500
    state = get(f"{base}/_sim/households/00ab01").json()
    assert state["fault"]["fault"] == "http_500" and state["requests"] == 2 and "password" not in state
    healthy(sim, "00ab02", "cloud")

    assert delete(f"{base}/_sim/faults/00ab01").ok
    assert ask(sim, "00ab01", password="pw-x").status_code == 200

    post(f"{base}/_sim/faults", json={"cloud_id": "00ab01", "fault": "slow", "delay_ms": 250})
    started = time.monotonic()
    ask(sim, "00ab01", password="pw-x")
    assert time.monotonic() - started >= 0.25
    post(f"{base}/_sim/faults", json={"cloud_id": "00ab02", "fault": "garbage"})
    assert get(f"{base}/_sim/stats").json()["faults"].keys() == {"00ab01", "00ab02"}
    assert delete(f"{base}/_sim/faults").ok
    healthy(sim, "00ab02", "cloud")

    stats = get(f"{base}/_sim/stats").json()
    assert stats["households"] == 2 and stats["requests"] >= 6 and stats["faults"] == {}
    assert post(f"{base}/_sim/faults", json={"cloud_id": "00ab01", "fault": "melt"}).status_code == 400
    assert post(f"{base}/_sim/faults", json={"cloud_id": "00ffff", "fault": "empty"}).status_code == 404
    assert post(f"{base}/_sim/households", json={"cloud_id": "../x"}).status_code == 400
    assert post(f"{base}/_sim/households", data="[1]").status_code == 400
    assert delete(f"{base}/_sim/households/00ab01").ok
    assert "unknown cloud id" in ask(sim, "00ab01", password="pw-x").text.lower()


def test_the_python_handle_is_safe_from_many_threads(eagle_simulator):
    sim = eagle_simulator
    for n in range(8):
        add(sim, f"00c1{n:02x}")

    def churn(n: int) -> None:
        for _ in range(25):
            sim.set_fault(f"00c1{n:02x}", "http_500")
            sim.clear_fault(f"00c1{n:02x}")

    threads = [threading.Thread(target=churn, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sim.stats()["faults"] == {}
    with pytest.raises(ValueError):
        sim.set_fault("00c100", "melt")
    with pytest.raises(ValueError):
        sim.add_household("00c1ff", colour="red")


def test_control_endpoints_answer_loopback_only():
    assert _is_loopback("127.0.0.1") and _is_loopback("::1")
    assert not _is_loopback("192.168.1.20") and not _is_loopback(None) and not _is_loopback("garbage")
    with pytest.raises(CommandError, match="loopback"):
        call_command("eagle_simulator", "--host", "0.0.0.0", "--households", "1")  # noqa: S104


# --- households: generated, written, read from the database ------------------------------------------------------


def test_generated_households_and_their_credentials_file(tmp_path):
    mix = parse_protocol_mix("cloud=0.8,eagle100=0.1,eagle200=0.1")
    households = generate_households(40, seed=5, mix=mix)
    assert [h.protocol for h in households].count("cloud") == 32
    assert [h.cloud_id for h in households] == [h.cloud_id for h in generate_households(40, seed=5, mix=mix)]
    assert len({h.cloud_id for h in households}) == 40
    assert all(secret not in repr(h) for h in households for secret in [h.password])

    path = tmp_path / "households.jl"
    path.write_text("old")
    path.chmod(0o644)
    assert write_credentials(path, households, "127.0.0.1:8650") == 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for line, household in zip(path.read_text().splitlines(), households, strict=True):
        record = json.loads(line)
        assert set(record) == {"cloud_id", "user_email", "user_pw", "protocol", "address"}
        parsed = parse_line(line)  # what import_households accepts
        assert parsed.cloud_id == household.cloud_id and parsed.password == household.password
        assert parsed.address == ("" if household.protocol == "cloud" else "127.0.0.1:8650")


def test_the_command_serves_generated_households_without_a_database(tmp_path):
    """The round trip: the command writes credentials, every household answers to them, nothing leaks."""
    credentials = tmp_path / "households.jl"
    env = subprocess_env(DEBUG="1", DATA_DIR=str(tmp_path / "data"))
    env.pop("DATABASE_URL")
    command = manage_command("eagle_simulator", "--port", "0", "--households", "9", "--seed", "11")
    command += ["--protocols", "cloud=1,eagle100=1,eagle200=1", "--credentials-out", str(credentials)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline() + process.stdout.readline()
        match = re.search(r"http://(127\.0\.0\.1:\d+)", first)
        assert match, first + process.stderr.read()
        address = match.group(1)
        records = [json.loads(line) for line in credentials.read_text().splitlines()]
        assert {r["protocol"] for r in records} == {"cloud", "eagle100", "eagle200"}
        url = f"http://{address}/cgi-bin/post_manager"
        for record in records:
            if record["protocol"] == "cloud":
                headers = {"Cloud-ID": record["cloud_id"], "User": record["user_email"], "Password": record["user_pw"]}
                response = requests.post(url, data=DEMAND, headers=headers, timeout=5)
                assert ElementTree.fromstring(response.text).tag == "InstantaneousDemand"
            else:
                assert record["address"] == address
                body = DEVICE_LIST if record["protocol"] == "eagle200" else DEMAND
                response = requests.post(url, data=body, auth=(record["cloud_id"], record["user_pw"]), timeout=5)
                assert response.status_code == 200 and not response.text.startswith("<Error>")
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    output = first + out + err
    assert "stopped" in output and "9 household(s)" in output
    assert not any(record["user_pw"] in output for record in records)
    assert not (tmp_path / "data" / "db.sqlite3").exists()  # no database was opened, not even the embedded one


def test_households_from_db_are_the_active_ones_with_their_passwords(make_household):
    make_household("00d001")
    make_household("00d002", protocol="eagle200", user_email="", address="eagle-00d002.local")
    make_household("00d003", active=False)
    households = {h.cloud_id: h for h in households_from_db()}
    assert set(households) == {"00d001", "00d002"}
    assert households["00d001"].password == "pw-00d001-secret" and households["00d001"].protocol == "cloud"
    assert households["00d002"].protocol == "eagle200" and households["00d002"].origin == "db"

    simulator = Simulator(households.values())
    make_household("00d004", protocol="eagle100", user_email="")
    assert simulator.sync(households_from_db(), origin="db") == (1, 0)
    simulator.add_household("00d0ff", password="kept")  # not from the database: a sync leaves it alone
    assert simulator.sync([], origin="db") == (0, 3)
    assert [h.cloud_id for h in simulator.households()] == ["00d0ff"]


@pytest.mark.django_db(transaction=True)
def test_the_command_serves_the_database_households(make_household, tmp_path):
    make_household("00e0c1")
    make_household("00e0c2", protocol="eagle100", user_email="", address="eagle-00e0c2.local")
    command = manage_command("eagle_simulator", "--from-db", "--port", "0", "--seed", "1")
    process = subprocess.Popen(command, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = process.stdout.readline()
        match = re.search(r"http://(127\.0\.0\.1:\d+): 2 household", first)
        assert match, first + process.stderr.read()
        url = f"http://{match.group(1)}/cgi-bin/post_manager"
        headers = {"Cloud-ID": "00e0c1", "User": "h00e0c1@example.org", "Password": "pw-00e0c1-secret"}
        assert "<Demand>" in requests.post(url, data=DEMAND, headers=headers, timeout=5).text
        # A local household is answered here whatever its address says.
        local = requests.post(url, data=DEMAND, auth=("00e0c2", "pw-00e0c2-secret"), timeout=5)
        assert "<Demand>" in local.text
        assert requests.post(url, data=DEMAND, auth=("00e0c2", "wrong"), timeout=5).status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "pw-00e0c" not in first + out + err


def test_credentials_out_is_refused_with_from_db(tmp_path):
    with pytest.raises(CommandError):
        call_command("eagle_simulator", "--from-db", "--credentials-out", str(Path(tmp_path) / "x.jl"))


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::"])  # noqa: S104
def test_the_simulator_never_binds_beyond_loopback_whoever_starts_it(host):
    from loggerapp.simulator.server import bind
    from loggerapp.simulator.testing import run_simulator

    with pytest.raises(ValueError, match="loopback"):
        bind(host, 0)
    with pytest.raises(ValueError, match="loopback"), run_simulator(host=host):
        pass
    with run_simulator(host="localhost") as sim:  # a name is fine when it resolves to loopback
        assert sim.stats()["households"] == 0


# --- hostile faults, cookies and routing ----------------------------------------------------------------------


def test_hostile_faults_send_what_they_say(eagle_simulator):
    """Read with plain sockets/requests (not our client): `huge` streams its size without a Content-Length,
    `gzip_bomb` is a valid gzip of its size, `trickle` sends its answer a byte at a time, `deep_json` nests."""
    import zlib

    sim = eagle_simulator
    for cloud_id in ("00f101", "00f102", "00f103", "00f104"):
        add(sim, cloud_id)
    sim.set_fault("00f101", "huge", size=300_000)
    sim.set_fault("00f102", "gzip_bomb", size=3 * 1024 * 1024)
    sim.set_fault("00f103", "trickle", interval_ms=4)
    sim.set_fault("00f104", "deep_json", depth=500)

    huge = ask(sim, "00f101", stream=True)
    assert "Content-Length" not in huge.headers and huge.headers.get("Transfer-Encoding") == "chunked"
    assert len(huge.content) == 300_000 and huge.content.startswith(b"<InstantaneousDemand>")

    bomb = ask(sim, "00f102", stream=True)
    assert bomb.headers["Content-Encoding"] == "gzip"
    packed = bomb.raw.read(decode_content=False)
    assert int(bomb.headers["Content-Length"]) == len(packed) < 10_000
    assert zlib.decompress(packed, 16 + zlib.MAX_WBITS) == bytes(3 * 1024 * 1024)

    started = time.monotonic()
    trickled = ask(sim, "00f103")
    assert fields(trickled.text)["Demand"]  # the normal answer, whole...
    assert time.monotonic() - started > 0.004 * len(trickled.content)  # ...one byte per interval

    nested = ask(sim, "00f104").text
    assert nested.count("[") == 500 and nested.startswith('{"InstantaneousDemand": [')


@pytest.mark.parametrize(
    ("fault", "params", "message"),
    [
        ("huge", {"size": 0}, "size must be between"),
        ("huge", {"interval_ms": 5}, "takes no parameter interval_ms"),
        ("trickle", {"interval_ms": "soon"}, "interval_ms must be a number"),
        ("slow", {"depth": 3}, "takes no parameter depth"),
    ],
)
def test_fault_parameters_are_checked(eagle_simulator, fault, params, message):
    add(eagle_simulator, "00f201")
    answer = post(f"{eagle_simulator.base_url}/_sim/faults", json={"cloud_id": "00f201", "fault": fault, **params})
    assert answer.status_code == 400 and message in answer.json()["error"]


def test_a_household_that_sets_cookies_and_the_cookie_counter(eagle_simulator):
    sim = eagle_simulator
    add(sim, "00f301", set_cookie=True)
    first = ask(sim, "00f301")
    assert first.cookies.get("eagle_session")
    assert sim.cookie_requests("00f301") == 0
    ask(sim, "00f301", cookies={"eagle_session": first.cookies["eagle_session"]})
    assert sim.cookie_requests("00f301") == 1 and sim.requests("00f301") == 2
    assert sim.stats()["requests_with_cookies"] == 1


def test_basic_auth_naming_a_local_gateway_wins_over_relay_headers(eagle_simulator):
    sim = eagle_simulator
    add(sim, "00f401", protocol="eagle100")
    add(sim, "00f402")  # a cloud household
    url = f"http://{sim.address}/cgi-bin/post_manager"
    both = {"Cloud-ID": "00f402", "User": "h00f402@example.org", "Password": secret("00f402")}
    local = requests.post(url, data=DEMAND, headers=both, auth=("00f401", secret("00f401")), timeout=5)
    assert fields(local.text)["DeviceMacId"].endswith("00f401")  # answered as the local gateway
    relay = requests.post(url, data=DEMAND, headers=both, timeout=5)
    assert fields(relay.text)["DeviceMacId"].endswith("00f402")  # relay headers alone: the relay's household
    refused = requests.post(url, data=DEMAND, headers=both, auth=("00f401", "wrong"), timeout=5)
    assert refused.status_code == 401


def test_the_no_reading_quirk_sends_the_zigbee_invalid_value(eagle_simulator):
    add(eagle_simulator, "00f501", no_reading=True)
    add(eagle_simulator, "00f502", no_reading=True, wide_demand=True)
    assert fields(ask(eagle_simulator, "00f501").text)["Demand"] == "0x800000"
    assert fields(ask(eagle_simulator, "00f502").text)["Demand"] == "0xff800000"
