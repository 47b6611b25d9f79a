"""Issue 11, SSRF: a household's address cannot make the logger talk to this machine, the cloud metadata service or
anything else a gateway is not, through the model, the admin, the import, either transport, the pinger or the API.

The suite's own gateways listen on 127.0.0.1, which tests/settings.py allows (EAGLE_ALLOWED_NETWORKS); every test
here that checks a refusal first puts the production default back (``default_policy``). The simulator counts the
requests it got, so "refused" means "never asked", not just "failed".
"""

from __future__ import annotations

import asyncio
import json

import pytest
from django.core.exceptions import ValidationError

from loggerapp.api.responses import EAGLE_ERROR_MESSAGES
from loggerapp.eagle import AsyncEagleClient, EagleTarget, SyncEagleClient, Unreachable
from loggerapp.households_import import import_households
from loggerapp.models import Household, HouseholdStats
from tests.fixtures.api import api_get
from tests.fixtures.pinger import read_hour_files
from tests.fixtures.recording import RecordingGateway
from tests.test_admin import _form, _test_connection

# Addresses the rule refuses whatever the policy (spellings) or by default (what they point at).
REFUSED_ADDRESSES = [
    "127.0.0.1:8000",
    "[::1]:6379",
    "169.254.169.254",
    "[::ffff:169.254.169.254]",
    "0.0.0.0:5432",
    "localhost:6379",
    "127.1",
    "2130706433",
    "0x7f.0.0.1",
    "http://192.168.1.20",
    "192.168.1.20/admin",
    "192.168.1.20#x",
    "192.168.1.20?x",
    "evil.example\\@192.168.1.20",
    "admin@192.168.1.20",
]


@pytest.fixture
def default_policy(settings):
    """The production default: nothing allowed back, so loopback and link-local are refused."""
    settings.EAGLE_ALLOWED_NETWORKS = ()
    settings.EAGLE_REFUSED_NETWORKS = ()


def _target(sim, protocol: str, cloud_id: str, address: str | None = None) -> EagleTarget:
    password = f"pw-{cloud_id}-secret"
    sim.add_household(cloud_id, protocol=protocol, user_email=f"h{cloud_id}@example.org", password=password)
    return EagleTarget(
        cloud_id,
        protocol,
        user_email=f"h{cloud_id}@example.org",
        password=password,
        address=sim.address if address is None else address,
    )


# --- one rule for the model, the admin form and the import -------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("address", REFUSED_ADDRESSES)
def test_the_model_refuses_the_address(default_policy, address):
    household = Household(cloud_id="00aaaa", protocol="eagle100", password="install-code", address=address)
    with pytest.raises(ValidationError) as refused:
        household.full_clean()
    assert "address" in refused.value.message_dict
    with pytest.raises(ValidationError):  # save() too, for code that skips full_clean()
        household.save()
    assert not Household.objects.exists()


@pytest.mark.django_db
def test_the_admin_form_refuses_a_bad_address_and_accepts_a_gateway(staff_client, default_policy):
    for address in ("169.254.169.254", "127.1", "https://eagle.lan"):
        form = _form(protocol="eagle200", user_email="", address=address)
        response = staff_client.post("/admin/loggerapp/household/add/", form)
        assert response.status_code == 200
        assert "Not a gateway address" in str(response.context["adminform"].form.errors["address"])
    assert not Household.objects.exists()
    form = _form(protocol="eagle200", user_email="", address="192.168.1.20:8080", https="on")
    assert staff_client.post("/admin/loggerapp/household/add/", form).status_code == 302
    household = Household.objects.get()
    assert (household.address, household.https) == ("192.168.1.20:8080", True)


@pytest.mark.django_db
def test_the_import_refuses_bad_addresses_line_by_line(default_policy):
    def line(cloud_id: str, address: str, **extra) -> str:
        record = {"cloud_id": cloud_id, "user_pw": "install", "protocol": "eagle100", "address": address, **extra}
        return json.dumps(record)

    lines = [
        line("00b001", "169.254.169.254"),
        line("00b002", "192.168.1.20"),
        line("00b003", "http://10.0.0.5"),
        line("00b004", "10.0.0.5", https=True),
        line("00b005", "[::1]:80"),
        line("00b006", "10.0.0.6", https="yes"),
    ]
    report = import_households(lines)
    assert [number for number, _ in report.errors] == [1, 3, 5, 6]
    assert all("install" not in message for _, message in report.errors)  # never the line's password
    assert "Not a gateway address" in dict(report.errors)[1]
    assert sorted(Household.objects.values_list("cloud_id", "address", "https")) == [
        ("00b002", "192.168.1.20", False),
        ("00b004", "10.0.0.5", True),
    ]


# --- the transports: after resolution, at connect time ------------------------------------------------------


@pytest.mark.parametrize("protocol", ["eagle100", "eagle200"])
def test_both_transports_refuse_loopback_after_resolution_and_never_connect(eagle_simulator, default_policy, protocol):
    port = eagle_simulator.port
    targets = [
        _target(eagle_simulator, protocol, "0c0001"),  # 127.0.0.1:port, a literal
        _target(eagle_simulator, protocol, "0c0002", f"localhost:{port}"),  # a name that resolves to it
        _target(eagle_simulator, protocol, "0c0003", f"[::ffff:127.0.0.1]:{port}"),  # the same, IPv4-mapped
    ]
    cloud = _target(eagle_simulator, "cloud", "0c0004", "")  # the relay on 127.0.0.1 is a trusted setting
    with SyncEagleClient(cloud_url=eagle_simulator.cloud_url, connect_timeout=1, read_timeout=2) as client:
        for target in targets:
            with pytest.raises(Unreachable, match="refused to connect") as refused:
                client.instantaneous_demand(target)
            assert "loopback" in refused.value.message
        assert client.instantaneous_demand(cloud).cloud_id == "0c0004"

    async def main() -> list:
        async with AsyncEagleClient(cloud_url=eagle_simulator.cloud_url, connect_timeout=1, read_timeout=2) as client:
            return await asyncio.gather(
                *(client.instantaneous_demand(target) for target in [*targets, cloud]), return_exceptions=True
            )

    *refusals, reading = asyncio.run(main())
    assert all(isinstance(error, Unreachable) and "refused to connect" in error.message for error in refusals)
    assert reading.cloud_id == "0c0004"
    assert [eagle_simulator.requests(target.cloud_id) for target in targets] == [0, 0, 0]
    assert eagle_simulator.requests("0c0004") == 2


def test_the_address_connected_to_is_the_one_judged(eagle_simulator, settings):
    """localhost resolves to 127.0.0.1 here: allowing exactly that address lets it through, allowing only
    ::1 does not, so what is judged is the address the socket is opened to, not the name."""
    import ipaddress

    target = _target(eagle_simulator, "eagle100", "0c0101", f"localhost:{eagle_simulator.port}")
    settings.EAGLE_ALLOWED_NETWORKS = (ipaddress.ip_network("127.0.0.1/32"),)
    with SyncEagleClient(connect_timeout=1, read_timeout=2) as client:
        assert client.instantaneous_demand(target).cloud_id == "0c0101"
    settings.EAGLE_ALLOWED_NETWORKS = (ipaddress.ip_network("::1/128"),)
    with SyncEagleClient(connect_timeout=1, read_timeout=2) as client, pytest.raises(Unreachable):
        client.instantaneous_demand(target)
    assert eagle_simulator.requests("0c0101") == 1


# --- the real pinger, the admin and the API -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_pinger_refuses_a_loopback_gateway_and_still_polls_the_others(
    eagle_simulator, make_household, start_pinger, log_root
):
    sim = eagle_simulator
    for cloud_id, protocol in (("0d0001", "eagle200"), ("0d0002", "cloud")):
        sim.add_household(cloud_id, protocol=protocol, user_email=f"h{cloud_id}@example.org", password="pw-secret")
        address = sim.address if protocol != "cloud" else ""
        make_household(cloud_id, protocol=protocol, password="pw-secret", address=address)
    # Saved while the tests allow loopback; the pinger runs with the production default.
    pinger = start_pinger("--once", env={"EAGLE_CLOUD_URL": sim.cloud_url, "EAGLE_ALLOWED_NETWORKS": ""})
    assert pinger.wait(30) == 0, pinger.stderr[-2000:]
    lines = read_hour_files(log_root)
    refused = lines["0d0001"][0]
    assert refused["ok"] is False and refused["error_kind"] == "unreachable"
    assert "refused to connect" in refused["error"] and "loopback" in refused["error"]
    assert lines["0d0002"][0]["ok"] is True  # the relay (a setting) and the other households go on
    assert sim.requests("0d0001") == 0
    stats = HouseholdStats.objects.get(household__cloud_id="0d0001")
    assert stats.status == "unreachable" and "refused to connect" in stats.last_error


@pytest.mark.django_db
def test_the_api_and_the_admin_report_a_refusal_and_nothing_reaches_the_address(
    staff_client, make_household, api_client, api_redis, settings, recording_gateway
):
    settings.LIVE_READ_DEADLINE = 3.0
    household = make_household("0e0001", protocol="eagle100", user_email="", address=recording_gateway.address)
    settings.EAGLE_ALLOWED_NETWORKS = ()  # the production default from here on
    status, body = api_get(api_client, "/api/event/0e0001", "/event/{cloud_id}")
    assert status == 504 and body["error"]["message"] == EAGLE_ERROR_MESSAGES["unreachable"]
    shown, _page, _elapsed = _test_connection(staff_client, [household])
    assert "refused to connect" in shown["0e0001"] and "loopback" in shown["0e0001"]
    assert recording_gateway.requests() == []


@pytest.mark.django_db
@pytest.mark.parametrize("status", [404, 500])
def test_a_failed_answers_body_is_not_echoed_to_the_admin_or_the_api(
    staff_client, make_household, api_client, api_redis, settings, status
):
    """An allowed address that is not an EAGLE (a web server on the network): staff and API clients learn that it
    failed and how (the HTTP status), not what it said."""
    settings.LIVE_READ_DEADLINE = 3.0
    page = b"<html>INTERNAL-ONLY: db password is hunter2</html>"
    gateway = RecordingGateway(status=status, body=page).start()
    try:
        household = make_household("0e0002", protocol="eagle100", user_email="", address=gateway.address)
        api_status, body = api_get(api_client, "/api/event/0e0002", "/event/{cloud_id}")
        shown, admin_page, _elapsed = _test_connection(staff_client, [household])
    finally:
        gateway.stop()
    assert api_status == 502 and "INTERNAL-ONLY" not in json.dumps(body)
    assert f"HTTP {status}" in shown["0e0002"]
    assert "INTERNAL-ONLY" not in shown["0e0002"] and "INTERNAL-ONLY" not in admin_page
    assert len(gateway.requests()) == 2  # it was asked: the point is what came back


def test_the_network_settings_are_configuration_that_reaches_every_service():
    """scripts/iseif passes on only the variables the service reads (iseif/service_env.py)."""
    from iseif.service_env import configuration_names

    assert {"EAGLE_ALLOWED_NETWORKS", "EAGLE_REFUSED_NETWORKS"} <= configuration_names()


def test_a_malformed_network_stops_start_up(tmp_path):
    import subprocess

    from tests.fixtures.core import manage_command, subprocess_env

    env = subprocess_env(EAGLE_REFUSED_NETWORKS="10.0.0.0/8, not-a-network")
    result = subprocess.run(manage_command("check"), env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "EAGLE_REFUSED_NETWORKS" in result.stderr and "'not-a-network' is not one" in result.stderr


@pytest.mark.django_db
def test_turning_https_off_needs_the_password_again(make_household):
    """HTTPS is a connection field: without it the install code would cross the network in clear."""
    from loggerapp.models.household import REBIND_MESSAGE

    make_household("0e0003", protocol="eagle200", user_email="", address="192.168.1.20", https=True)
    household = Household.objects.get(cloud_id="0e0003")
    household.https = False
    with pytest.raises(ValidationError) as refused:
        household.full_clean()
    assert refused.value.message_dict == {"password": [REBIND_MESSAGE]}
    household.password = "pw-0e0003-secret"
    household.full_clean()
    household.save()
    assert Household.objects.get(cloud_id="0e0003").https is False


@pytest.mark.django_db
def test_a_row_saved_before_the_rule_can_still_save_other_fields(default_policy):
    Household.objects.bulk_create([Household(cloud_id="0e0004", protocol="eagle100", address="127.0.0.1:80")])
    household = Household.objects.get(cloud_id="0e0004")
    household.label = "kept"
    household.save(update_fields=["label"])
    with pytest.raises(ValidationError):
        household.save()  # a whole save writes the address too: refused
    assert Household.objects.get(cloud_id="0e0004").label == "kept"
