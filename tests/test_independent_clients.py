"""Independent public EAGLE clients against the simulator, over real sockets, as their users point them.

A simulator that only our own client understands proves nothing: each library below was written by someone
else against real devices. They are used as their documentation says (host or address, cloud id, install
code), never patched:

- `aioeagle` (Home Assistant's EAGLE-200 library, aiohttp): device list, then a device query.
- `eagle100` (the Legacy EAGLE client Home Assistant uses): JSON commands with Basic auth in the URL, its
  workaround for the firmware's braceless history and schedule lists, its model check on get_network_info.
- `eagle200-reader` (the older EAGLE-200 reader): requests + ElementTree, all variables.
- Rainforest's own HTTP API client in local mode sends the relay headers *and* Basic auth to a local
  EAGLE-100; it is Python 2 code, so its request is reproduced here exactly with `requests`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aioeagle
import aiohttp
import pytest
import requests
from defusedxml import ElementTree
from eagle100 import Eagle as Eagle100
from eagle200_reader.eagle200_reader import EagleReader

from loggerapp.simulator.testing import run_simulator

# Readings change every hour here, not every 10 s, so a value read twice a second apart is the same value.
READING_INTERVAL = 3600


@pytest.fixture
def sim():
    with run_simulator(seed=7, reading_interval_s=READING_INTERVAL) as simulator:
        yield simulator


def install_code(cloud_id: str) -> str:
    return f"{int(cloud_id, 16) * 7919:016x}"[-16:]  # 16 hex digits, like the code printed on a device


def add(sim, cloud_id: str, protocol: str, **options: Any) -> str:
    sim.add_household(cloud_id, protocol=protocol, password=install_code(cloud_id), **options)
    return cloud_id


def one_of(sim, cloud_id: str, read) -> Any:
    """What `read()` returned, checked by the caller against the simulator's value before or after it."""
    before = sim.demand_kw(cloud_id)
    value = read()
    return value, {round(before, 6), round(sim.demand_kw(cloud_id), 6)}


# --- aioeagle (EAGLE-200) ------------------------------------------------------------------------------------


async def _aioeagle_read(sim, cloud_id: str, code: str) -> tuple[list[Any], dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        hub = aioeagle.EagleHub(session, cloud_id, code, host=sim.address)
        meters = await hub.get_device_list()
        query = await meters[0].get_device_query() if meters else {}
        return meters, query


@pytest.mark.parametrize("quirks", [{}, {"exports": True}], ids=["import", "export"])
def test_aioeagle_reads_an_eagle200(sim, quirks):
    cloud_id = add(sim, "00e201", "eagle200", **quirks)
    (meters, query), expected = one_of(
        sim, cloud_id, lambda: asyncio.run(_aioeagle_read(sim, cloud_id, install_code(cloud_id)))
    )
    assert len(meters) == 1 and meters[0].is_connected and meters[0].model_id == "electric_meter"
    demand = query["zigbee:InstantaneousDemand"]
    assert round(float(demand["Value"]), 6) in expected
    assert demand["Units"] == "kW"
    assert float(query["zigbee:CurrentSummationDelivered"]["Value"]) > 1000
    # Home Assistant shows a price sensor in "<PriceCurrency>/kWh" when zigbee:Price is not "invalid".
    assert 0.05 < float(query["zigbee:Price"]["Value"]) < 0.5 and query["zigbee:PriceCurrency"]["Value"] == "USD"
    assert int(meters[0].last_contact, 16) == pytest.approx(time.time(), abs=READING_INTERVAL + 60)
    if quirks.get("exports"):
        assert float(demand["Value"]) < 0


def test_aioeagle_asks_for_named_variables(sim):
    cloud_id = add(sim, "00e202", "eagle200")

    async def read() -> dict[str, Any]:
        async with aiohttp.ClientSession() as session:
            hub = aioeagle.EagleHub(session, cloud_id, install_code(cloud_id), host=sim.address)
            (meter,) = await hub.get_device_list()
            return await meter.get_device_query(meter.ENERGY_AND_POWER_VARIABLES)

    query, expected = one_of(sim, cloud_id, lambda: asyncio.run(read()))
    assert set(query) == set(aioeagle.ElectricMeter.ENERGY_AND_POWER_VARIABLES)
    assert round(float(query["zigbee:InstantaneousDemand"]["Value"]), 6) in expected


def test_aioeagle_sees_wrong_credentials_as_bad_auth(sim):
    cloud_id = add(sim, "00e203", "eagle200")
    with pytest.raises(aioeagle.BadAuth):
        asyncio.run(_aioeagle_read(sim, cloud_id, "0000000000000000"))


# --- eagle100 (EAGLE-100) ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "quirks",
    [{"solar": False}, {"exports": True, "wide_demand": True}],
    ids=["import", "export-int32"],  # eagle100 reads Demand as int32, so an export needs the 8-digit form
)
def test_eagle100_reads_demand_summation_and_price(sim, quirks):
    cloud_id = add(sim, "00e101", "eagle100", **quirks)
    eagle = Eagle100(cloud_id, install_code(cloud_id), address=sim.address)
    answer, expected = one_of(sim, cloud_id, eagle.get_instantaneous_demand)
    demand = answer["InstantaneousDemand"]
    assert round(demand["Demand"], 6) in {round(value, 3) for value in expected}
    assert abs(time.mktime(demand["TimeStamp"]) - time.time()) < READING_INTERVAL + 60  # ZigBee epoch understood
    summation = eagle.get_current_summation()["CurrentSummation"]
    assert summation["SummationDelivered"] > 1000
    price = eagle.get_price()["PriceCluster"]
    assert 0.05 < price["Price"] < 0.5 and price["Currency"] == 840


def test_eagle100_reads_the_braceless_history_and_schedule_lists(sim):
    """Its workaround wraps only bodies that start with "HistoryData" or "ScheduleList"; had the simulator
    stripped the braces of every answer, its demand read would fail here."""
    cloud_id = add(sim, "00e102", "eagle100", braceless_json=True)
    eagle = Eagle100(cloud_id, install_code(cloud_id), address=sim.address)
    assert eagle.get_instantaneous_demand()["InstantaneousDemand"]["Demand"] is not None
    history = eagle.get_history_data(time.time() - 3 * 3600, frequency=3600)["HistoryData"]["CurrentSummation"]
    assert 3 <= len(history) <= 4
    delivered = [entry["SummationDelivered"] for entry in history]
    assert delivered == sorted(delivered) and delivered[0] > 1000
    schedule = eagle.get_schedule("demand")["ScheduleList"]["ScheduleInfo"]
    assert [entry["Event"] for entry in schedule] == ["demand"]
    assert len(eagle.get_schedule()["ScheduleList"]["ScheduleInfo"]) > 1


def test_home_assistants_model_detection_finds_each_gateway(sim):
    """Home Assistant asks aioeagle for a device list (an EAGLE-100 does not know the command), then calls
    the EAGLE-100 by get_network_info and checks ModelId == "Z109-EAGLE"."""
    legacy = add(sim, "00e103", "eagle100")
    modern = add(sim, "00e204", "eagle200")
    with pytest.raises(KeyError):  # no DeviceList in the EAGLE-100's answer: "this can happen if it's an eagle-100"
        asyncio.run(_aioeagle_read(sim, legacy, install_code(legacy)))
    info = Eagle100(legacy, install_code(legacy), address=sim.address).get_network_info()
    assert info["NetworkInfo"]["ModelId"] == "Z109-EAGLE"
    assert info["NetworkInfo"]["Manufacturer"] == "Rainforest Automation, Inc."
    status = Eagle100(legacy, install_code(legacy), address=sim.address).get_network_status()
    assert status["NetworkInfo"]["Status"] == "Connected"
    meters, _ = asyncio.run(_aioeagle_read(sim, modern, install_code(modern)))
    assert meters and meters[0].hardware_address.startswith("0x")


def test_eagle100_is_refused_with_a_wrong_install_code(sim):
    cloud_id = add(sim, "00e104", "eagle100")
    with pytest.raises(requests.HTTPError) as raised:
        Eagle100(cloud_id, "0000000000000000", address=sim.address).get_instantaneous_demand()
    assert raised.value.response.status_code == 401


# --- eagle200-reader ---------------------------------------------------------------------------------------


def test_eagle200_reader_reads_demand_and_summations(sim):
    cloud_id = add(sim, "00e205", "eagle200", solar=False)
    reader, expected = one_of(sim, cloud_id, lambda: EagleReader(sim.address, cloud_id, install_code(cloud_id)))
    assert round(reader.instantanous_demand(), 6) in expected
    assert reader.summation_delivered() > 1000
    assert reader.summation_total() == pytest.approx(reader.summation_delivered() - reader.summation_received())


# --- Rainforest's own client, local mode -----------------------------------------------------------------------


def test_rainforests_local_mode_sends_relay_headers_and_basic_auth_and_is_answered(sim):
    """Its local mode keeps the relay headers (a literal "cloud_id" in its example) and adds Basic auth in the
    URL; the device answers on Basic auth. Relay headers alone still do not reach a local gateway."""
    cloud_id = add(sim, "00e105", "eagle100")
    code = install_code(cloud_id)
    headers = {"Cloud-ID": "cloud_id", "User": cloud_id, "Password": code}
    body = "<Command>\n  <Name>get_instantaneous_demand</Name>\n</Command>\n"
    url = f"http://{cloud_id}:{code}@{sim.address}/cgi-bin/post_manager"
    answer = requests.post(url, data=body, headers=headers, timeout=5)
    assert answer.status_code == 200
    root = ElementTree.fromstring(answer.text)
    assert root.tag == "InstantaneousDemand" and root.findtext("Demand", "").startswith("0x")
    headers["Cloud-ID"] = cloud_id  # the same request with the right Cloud-ID is answered the same way
    assert ElementTree.fromstring(requests.post(url, data=body, headers=headers, timeout=5).text).tag == (
        "InstantaneousDemand"
    )
    relay_only = requests.post(sim.cloud_url, data=body, headers=headers, timeout=5)
    assert ElementTree.fromstring(relay_only.text).tag == "Error"  # a local gateway is not known to the relay
    wrong = requests.post(
        f"http://{cloud_id}:nope@{sim.address}/cgi-bin/post_manager", data=body, headers=headers, timeout=5
    )
    assert wrong.status_code == 401
