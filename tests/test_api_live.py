"""GET /api/event/<cloud_id>: a live read through the real EAGLE client, against the EAGLE simulator over a
socket, with every outcome mapped to its status code, the rate limits in real Redis, and no secret leaked."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest
from django.test import Client

from loggerapp.api.responses import EAGLE_ERROR_MESSAGES
from loggerapp.models import ApiToken, Household, HouseholdStats
from tests.fixtures.api import api_get, bearer, check_response

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_redis")]

EVENT, DETAIL, LATEST, LIST = (
    "/event/{cloud_id}",
    "/households/{cloud_id}",
    "/households/{cloud_id}/latest",
    "/households/",
)


@pytest.fixture
def sim(request, settings):
    simulator = request.getfixturevalue("eagle_simulator")
    settings.EAGLE_CLOUD_URL = simulator.cloud_url
    settings.EAGLE_CONNECT_TIMEOUT = 1.0
    settings.EAGLE_READ_TIMEOUT = 1.0
    settings.LIVE_READ_DEADLINE = 3.0
    return simulator


@pytest.fixture
def household(sim, make_household):
    """Factory: a household known to the simulator and to the database, with matching credentials."""

    def make(cloud_id: str, protocol: str = "cloud", exports: bool = False, address: str | None = None):
        password = f"S3cret-{cloud_id}-pw"
        email = f"h{cloud_id}@example.org"
        sim.add_household(cloud_id, protocol=protocol, user_email=email, password=password, exports=exports)
        if address is None:
            address = "" if protocol == "cloud" else sim.address
        return make_household(cloud_id, protocol=protocol, user_email=email, password=password, address=address)

    return make


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("protocol", ["cloud", "eagle100", "eagle200"])
def test_a_live_read_for_each_protocol(api_client, sim, household, protocol):
    household("00a1b2", protocol=protocol)
    status, body = api_get(api_client, "/api/event/00a1b2", EVENT)
    assert status == 200, body
    assert body["cloud_id"] == "00a1b2" and body["protocol"] == protocol
    assert body["demand_kw"] > 0
    assert body["latency_ms"] > 0 and body["poll_time"].endswith("Z")
    assert body["raw"]
    if protocol == "eagle200":
        assert body["legacy"] == {}
    else:
        assert body["meter_timestamp"] is not None and body["raw"]["Demand"].startswith("0x")
        assert set(body["legacy"]) >= {"Demand", "TimeStamp", "Multiplier", "Divisor"}
    assert sim.requests("00a1b2") >= 1  # the device was really asked


@pytest.mark.parametrize("protocol", ["cloud", "eagle100", "eagle200"])
def test_exported_power_is_negative(api_client, sim, household, protocol):
    household("00e5e5", protocol=protocol, exports=True)
    status, body = api_get(api_client, "/api/v1/event/00e5e5", EVENT)
    assert status == 200, body
    assert body["demand_kw"] < 0


def test_an_unknown_household_is_404_without_a_device_request(api_client, sim, household):
    household("002506")
    status, body = api_get(api_client, "/api/event/abcdef", EVENT)
    assert status == 404 and body["error"]["kind"] == "not_found"
    assert sim.requests("002506") == 0


def test_anonymous_and_malformed_requests_never_reach_the_device(client, api_client, sim, household):
    household("002506")
    assert api_get(client, "/api/event/002506", EVENT)[0] == 401
    assert api_get(api_client, "/api/event/0025067", EVENT)[0] == 400
    assert api_get(api_client, "/api/event/..%2F002506", None)[0] == 404
    assert sim.requests("002506") == 0


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ("bad_credentials", "bad_credentials"),
        ("meter_not_joined", "meter_not_joined"),
        ("garbage", "bad_response"),
        ("truncated", "bad_response"),
        ("empty", "bad_response"),
        ("http_500", "bad_response"),
    ],
)
@pytest.mark.parametrize("protocol", ["cloud", "eagle200"])
def test_device_errors_are_502_with_their_kind(api_client, sim, household, fault, kind, protocol):
    household("00beef", protocol=protocol)
    sim.set_fault("00beef", fault)
    status, body = api_get(api_client, "/api/event/00beef", EVENT)
    assert status == 502, body
    assert body["error"] == {"kind": kind, "message": EAGLE_ERROR_MESSAGES[kind]}  # never the gateway's own text


def test_a_healthy_household_still_answers_beside_a_faulty_one(api_client, sim, household):
    household("000bad")
    household("000009")
    sim.set_fault("000bad", "bad_credentials")
    assert api_get(api_client, "/api/event/000bad", EVENT)[0] == 502
    assert api_get(api_client, "/api/event/000009", EVENT)[0] == 200


def test_an_unreachable_device_is_504_without_its_address(api_client, household):
    port = free_port()
    household("00dead", protocol="eagle100", address=f"127.0.0.1:{port}")  # nothing listens there
    status, body = api_get(api_client, "/api/event/00dead", EVENT)
    assert status == 504 and body["error"]["kind"] == "unreachable"
    assert body["error"]["message"] == EAGLE_ERROR_MESSAGES["unreachable"]
    assert str(port) not in json.dumps(body)  # the client's message names the URL: API clients never see it


def test_a_deactivated_household_is_404_like_an_unknown_one(api_client, sim, household):
    household("00a1b2")
    Household.objects.filter(cloud_id="00a1b2").update(active=False)
    deactivated = api_get(api_client, "/api/event/00a1b2", EVENT)
    unknown = api_get(api_client, "/api/event/00a1b3", EVENT)
    assert deactivated[0] == unknown[0] == 404
    assert deactivated[1]["error"]["kind"] == unknown[1]["error"]["kind"] == "not_found"
    assert sim.requests("00a1b2") == 0  # the withdrawn participant's gateway was not asked


def test_the_last_error_is_its_kind_and_a_fixed_sentence(api_client, make_household):
    """The pinger stores the client's text, which can quote a gateway's address and whatever it wrote."""
    household = make_household("00e770")
    HouseholdStats.objects.filter(household=household).update(
        status="bad_response",
        last_error_kind="bad_response",
        last_error="answer from http://10.9.8.7:8080/cgi-bin/post_manager: <Error>Call 555-0100</Error>",
    )
    status, body = api_get(api_client, "/api/households/00e770", DETAIL)
    assert status == 200
    assert body["statistics"]["last_error_kind"] == "bad_response"
    assert body["statistics"]["last_error"] == EAGLE_ERROR_MESSAGES["bad_response"]
    listed = api_get(api_client, "/api/households/", LIST)[1]["results"][0]["statistics"]["last_error"]
    assert listed == EAGLE_ERROR_MESSAGES["bad_response"]


@pytest.mark.parametrize("fault", ["reset", "slow"])
def test_a_silent_or_slow_device_is_504(api_client, sim, household, fault):
    household("00510e")
    sim.set_fault("00510e", fault, delay_ms=3000)
    started = time.monotonic()
    status, body = api_get(api_client, "/api/event/00510e", EVENT)
    assert status == 504 and body["error"]["kind"] == "unreachable"
    assert time.monotonic() - started < 2.5  # the client's 1 s read timeout, not the device's 3 s


def test_the_deadline_bounds_a_read_whatever_the_client_timeouts(api_client, sim, household, settings):
    settings.EAGLE_READ_TIMEOUT = 10.0
    settings.LIVE_READ_DEADLINE = 0.5
    household("00510e")
    sim.set_fault("00510e", "slow", delay_ms=3000)
    started = time.monotonic()
    status, body = api_get(api_client, "/api/event/00510e", EVENT)
    assert time.monotonic() - started < 1.5
    assert status == 504 and body["error"] == {"kind": "unreachable", "message": EAGLE_ERROR_MESSAGES["unreachable"]}


def test_a_second_live_read_within_the_interval_is_429(api_client, api_token, sim, household, settings):
    settings.API_LIVE_READ_MIN_INTERVAL = 2.0
    household("002506")
    assert api_get(api_client, "/api/event/002506", EVENT)[0] == 200
    asked = sim.requests("002506")
    response = bearer(api_token, "Token").get("/api/event/002506")
    body = check_response(response, EVENT)
    assert response.status_code == 429
    assert response["Retry-After"] in ("1", "2")
    assert body["error"]["kind"] == "throttled" and body["error"]["scope"] == "household"
    assert sim.requests("002506") == asked  # the device was not asked again


def test_the_household_limit_is_shared_by_every_client(api_client, staff_client, sim, household, settings):
    settings.API_LIVE_READ_MIN_INTERVAL = 0.5
    household("002506")
    assert api_get(api_client, "/api/event/002506", EVENT)[0] == 200
    assert api_get(staff_client, "/api/event/002506", EVENT)[0] == 429
    time.sleep(0.6)
    assert api_get(staff_client, "/api/event/002506", EVENT)[0] == 200


def test_a_failed_read_also_counts(api_client, sim, household):
    """Otherwise a client could hammer a household whose relay refuses the credentials, and lock its account."""
    household("000bad")
    sim.set_fault("000bad", "bad_credentials")
    assert api_get(api_client, "/api/event/000bad", EVENT)[0] == 502
    assert api_get(api_client, "/api/event/000bad", EVENT)[0] == 429


def test_a_token_has_a_budget_of_live_reads_per_minute(api_client, api_user, sim, household, settings):
    settings.API_LIVE_READS_PER_MINUTE = 2
    for cloud_id in ("000001", "000002", "000003"):
        household(cloud_id)
    assert api_get(api_client, "/api/event/000001", EVENT)[0] == 200
    assert api_get(api_client, "/api/event/000002", EVENT)[0] == 200
    status, body = api_get(api_client, "/api/event/000003", EVENT)
    assert status == 429 and body["error"]["scope"] == "client"
    assert sim.requests("000003") == 0
    _other, raw = ApiToken.issue(api_user, "second")
    assert api_get(bearer(raw), "/api/event/000003", EVENT)[0] == 200


def test_live_reads_are_refused_when_redis_is_down(api_client, sim, household, settings):
    household("002506")
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/15"
    status, body = api_get(api_client, "/api/event/002506", EVENT)
    assert status == 503 and body["error"]["kind"] == "throttle_unavailable"
    assert sim.requests("002506") == 0


def test_no_password_or_token_in_any_response_or_log(
    api_client, api_token, staff_client, sim, household, caplog, log_root
):
    caplog.set_level(logging.DEBUG)
    households = [household("00a001"), household("00a002", protocol="eagle100"), household("00a003", "eagle200")]
    sim.set_fault("00a002", "bad_credentials")
    sim.set_fault("00a003", "garbage")
    bodies = []
    for client in (api_client, staff_client, Client()):
        for url in ["/api/households/", "/api/households/?page_size=1&page=2", "/api/schema"] + [
            f"/api/{kind}/{h.cloud_id}{tail}"
            for h in households
            for kind, tail in (("households", ""), ("households", "/latest"), ("event", ""))
        ]:
            bodies.append(client.get(url).content.decode())
    assert any('"demand_kw"' in body for body in bodies)  # the check below looks at real readings
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "bad_credentials" in logged  # ... and at real log lines about the failures
    for h in households:
        for text in [*bodies, logged]:
            assert h.password not in text
    for text in [*bodies, logged]:
        assert api_token not in text and api_token[12:] not in text
