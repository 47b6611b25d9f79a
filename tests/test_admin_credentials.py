"""A stored EAGLE password is only ever sent to the gateway it was saved for (issue 11: "the write-only password
can be read back"): through the real admin (Django's test client posting the change form, then "test connection
now") against the EAGLE simulator and a recording gateway standing for the attacker's host; then the model's own
rule for every other code path (save, full_clean, queryset updates, the import)."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command

from loggerapp.models import Household
from loggerapp.models.household import REBIND_MESSAGE

pytestmark = pytest.mark.django_db

STORED = "Stored-install-code-7f3a"


@pytest.fixture
def gateway(eagle_simulator, settings, make_household):
    """A local EAGLE-100 household whose stored install code the simulator accepts."""
    settings.EAGLE_CONNECT_TIMEOUT = settings.EAGLE_READ_TIMEOUT = 2.0
    eagle_simulator.add_household("00a5a5", protocol="eagle100", password=STORED)
    address = eagle_simulator.address
    return make_household("00a5a5", protocol="eagle100", user_email="", password=STORED, address=address)


def change_form(household: Household, **changes) -> dict:
    data = {
        "cloud_id": household.cloud_id,
        "label": household.label,
        "protocol": household.protocol,
        "user_email": household.user_email,
        "password": "",
        "address": household.address,
        "meter_address": household.meter_address,
        "active": "on",
        "notes": household.notes,
        "stats-TOTAL_FORMS": "0",
        "stats-INITIAL_FORMS": "0",
        "stats-MIN_NUM_FORMS": "0",
        "stats-MAX_NUM_FORMS": "1",
        "hour_files-TOTAL_FORMS": "0",
        "hour_files-INITIAL_FORMS": "0",
        "hour_files-MIN_NUM_FORMS": "0",
        "hour_files-MAX_NUM_FORMS": "0",
    }
    data.update(changes)
    return data


def test_connection(client, household: Household) -> list[str]:
    response = client.post(
        "/admin/loggerapp/household/",
        {"action": "test_connection_now", "_selected_action": [household.pk]},
        follow=True,
    )
    return [str(message) for message in response.context["messages"]]


test_connection.__test__ = False  # a helper, not a test


@pytest.mark.parametrize(
    "change",
    [
        {"address": None},  # the attacker's host
        {"protocol": "eagle200", "address": None},
        {"cloud_id": "00beef", "address": None},
        {"protocol": "cloud", "user_email": "thief@example.org"},  # to the relay, under another account's id
    ],
    ids=["address", "protocol", "cloud-id", "to-cloud"],
)
def test_a_new_connection_without_the_password_is_refused(
    staff_client, gateway, eagle_simulator, recording_gateway, settings, change
):
    settings.EAGLE_CLOUD_URL = recording_gateway.url  # a relay the attacker reads, for the "to-cloud" case
    change = {name: recording_gateway.address if value is None else value for name, value in change.items()}
    response = staff_client.post(f"/admin/loggerapp/household/{gateway.pk}/change/", change_form(gateway, **change))
    assert response.status_code == 200  # the form again, not a redirect
    assert response.context["adminform"].form.errors["password"] == [REBIND_MESSAGE]
    assert REBIND_MESSAGE in response.content.decode()
    stored = Household.objects.get(pk=gateway.pk)
    assert (stored.cloud_id, stored.protocol, stored.address) == ("00a5a5", "eagle100", eagle_simulator.address)

    messages = test_connection(staff_client, stored)
    assert messages and messages[0].startswith("00a5a5: ok, "), messages  # still read where it was saved for
    assert not recording_gateway.saw(STORED)
    assert recording_gateway.requests() == []


def test_a_new_connection_with_the_password_entered_again_is_saved(staff_client, gateway, recording_gateway):
    new = "Entered-again-for-the-new-host"
    form = change_form(gateway, address=recording_gateway.address, password=new)
    response = staff_client.post(f"/admin/loggerapp/household/{gateway.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    stored = Household.objects.get(pk=gateway.pk)
    assert (stored.address, stored.password) == (recording_gateway.address, new)

    test_connection(staff_client, stored)
    assert recording_gateway.saw(new)  # the recorder really is asked, with what was entered for it...
    assert not recording_gateway.saw(STORED)  # ...and never with the old one


def test_other_edits_keep_the_stored_password_with_a_blank_field(staff_client, gateway):
    form = change_form(gateway, label="Renamed", meter_address="0x00135001", user_email="new@example.org")
    assert staff_client.post(f"/admin/loggerapp/household/{gateway.pk}/change/", form).status_code == 302
    stored = Household.objects.get(pk=gateway.pk)
    assert (stored.label, stored.password) == ("Renamed", STORED)


def test_the_model_refuses_a_new_address_for_a_kept_password(gateway, recording_gateway):
    household = Household.objects.get(pk=gateway.pk)
    household.address = recording_gateway.address
    with pytest.raises(ValidationError) as refused:
        household.full_clean()
    assert refused.value.message_dict == {"password": [REBIND_MESSAGE]}
    with pytest.raises(ValidationError):
        household.save()
    assert Household.objects.get(pk=gateway.pk).address != recording_gateway.address


def test_the_model_accepts_a_new_address_with_the_password_given(gateway, recording_gateway):
    household = Household.objects.get(pk=gateway.pk)
    household.address = recording_gateway.address
    household.password = STORED  # given again (the same value is fine: whoever gives it knows it)
    household.full_clean()
    household.save()
    household.address = f"  {recording_gateway.address}  "  # the same gateway, as the client strips it
    household.save()
    assert Household.objects.get(pk=gateway.pk).address.strip() == recording_gateway.address


def test_deferred_loading_does_not_open_a_way_around(gateway, recording_gateway):
    only_address = Household.objects.only("address").get(pk=gateway.pk)
    only_address.address = recording_gateway.address
    with pytest.raises(ValidationError):
        only_address.save()
    only_label = Household.objects.only("label").get(pk=gateway.pk)
    assert only_label.protocol == "eagle100"  # reading a deferred field is not a change...
    only_label.address = recording_gateway.address  # ...but setting one is
    with pytest.raises(ValidationError):
        only_label.save()
    assert Household.objects.get(pk=gateway.pk).address != recording_gateway.address


def test_bulk_updates_follow_the_same_rule(gateway, recording_gateway):
    households = Household.objects.filter(pk=gateway.pk)
    with pytest.raises(ValidationError):
        households.update(address=recording_gateway.address)
    with pytest.raises(ValidationError):
        Household.objects.bulk_update([Household.objects.get(pk=gateway.pk)], ["protocol"])
    assert households.update(label="fine") == 1  # other fields need nothing
    assert households.update(address=recording_gateway.address, password="given-with-it") == 1


def test_an_import_line_carries_its_password_to_a_new_address(gateway, recording_gateway, tmp_path):
    line = {"cloud_id": "00a5a5", "user_email": "", "user_pw": STORED, "protocol": "eagle100"}
    path = tmp_path / "households.jl"
    path.write_text(json.dumps({**line, "address": recording_gateway.address}) + "\n")
    call_command("import_households", str(path), stdout=None, stderr=None)
    stored = Household.objects.get(pk=gateway.pk)
    assert (stored.address, stored.password) == (recording_gateway.address, STORED)
