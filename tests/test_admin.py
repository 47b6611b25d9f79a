"""The researchers' admin, through Django's test client."""

from __future__ import annotations

import pytest

from loggerapp.models import Household, HouseholdStats, Status

pytestmark = pytest.mark.django_db

SECRET = "Sup3r-secret-EAGLE-pw"


def _form(**overrides) -> dict:
    data = {
        "cloud_id": "002506",
        "label": "Pilot house",
        "protocol": "cloud",
        "user_email": "pilot@example.org",
        "password": SECRET,
        "address": "",
        "meter_address": "",
        "active": "on",
        "notes": "",
        "stats-TOTAL_FORMS": "0",
        "stats-INITIAL_FORMS": "0",
        "stats-MIN_NUM_FORMS": "0",
        "stats-MAX_NUM_FORMS": "1",
        "hour_files-TOTAL_FORMS": "0",
        "hour_files-INITIAL_FORMS": "0",
        "hour_files-MIN_NUM_FORMS": "0",
        "hour_files-MAX_NUM_FORMS": "0",
    }
    data.update(overrides)
    return data


def test_anonymous_users_are_sent_to_the_login_page(client, make_household):
    make_household("002506")
    for url in ["/admin/", "/admin/loggerapp/household/", "/admin/loggerapp/household/add/"]:
        response = client.get(url)
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]


def test_non_staff_users_cannot_sign_in(client, django_user_model):
    django_user_model.objects.create_user(username="visitor", password="a-long-password-1")
    response = client.post("/admin/login/", {"username": "visitor", "password": "a-long-password-1"})
    assert response.status_code == 200  # the form again, with an error
    assert client.get("/admin/loggerapp/household/").status_code == 302


def test_staff_add_a_household_and_the_password_is_stored_encrypted(staff_client):
    response = staff_client.post("/admin/loggerapp/household/add/", _form())
    assert response.status_code == 302, response.content.decode()[:2000]
    household = Household.objects.get(cloud_id="002506")
    assert household.password == SECRET
    assert HouseholdStats.objects.filter(household=household, status=Status.NEVER_POLLED).exists()


def test_a_new_household_needs_a_password(staff_client):
    response = staff_client.post("/admin/loggerapp/household/add/", _form(password=""))
    assert response.status_code == 200
    assert "needs its EAGLE password" in response.content.decode()
    assert not Household.objects.exists()


@pytest.mark.parametrize("hostile", ["../x", "00 27", "0025067"])
def test_the_add_form_refuses_hostile_cloud_ids(staff_client, hostile):
    response = staff_client.post("/admin/loggerapp/household/add/", _form(cloud_id=hostile))
    assert response.status_code == 200
    assert "cloud_id" in response.context["adminform"].form.errors
    assert not Household.objects.exists()


def test_the_password_is_never_rendered(staff_client, make_household):
    household = make_household("002506", password=SECRET)
    for url in [
        "/admin/loggerapp/household/",
        f"/admin/loggerapp/household/{household.pk}/change/",
        f"/admin/loggerapp/household/{household.pk}/history/",
        "/admin/loggerapp/household/?q=002506",
    ]:
        body = staff_client.get(url).content.decode()
        assert SECRET not in body, url
        assert "gAAAAA" not in body, url  # nor its ciphertext


def test_editing_with_a_blank_password_keeps_the_stored_one(staff_client, make_household):
    household = make_household("002506", password=SECRET)
    response = staff_client.post(
        f"/admin/loggerapp/household/{household.pk}/change/", _form(password="", label="Renamed")
    )
    assert response.status_code == 302
    household.refresh_from_db()
    assert household.label == "Renamed"
    assert household.password == SECRET


def test_editing_with_a_new_password_replaces_it(staff_client, make_household):
    household = make_household("002506", password=SECRET)
    staff_client.post(f"/admin/loggerapp/household/{household.pk}/change/", _form(password="brand-new-pw"))
    household.refresh_from_db()
    assert household.password == "brand-new-pw"


@pytest.mark.parametrize(
    ("query", "expected"),
    [("002506", {"002506"}), ("pilot-b@example", {"00abcd"}), ("Garage", {"00ffff"})],
)
def test_search_by_cloud_id_email_and_label(staff_client, make_household, query, expected):
    make_household("002506", label="Kitchen")
    make_household("00abcd", user_email="pilot-b@example.org", label="Loft")
    make_household("00ffff", label="Garage flat")
    response = staff_client.get("/admin/loggerapp/household/", {"q": query})
    shown = {h.cloud_id for h in response.context["cl"].result_list}
    assert shown == expected


def test_filter_by_status_protocol_and_active(staff_client, make_household):
    ok = make_household("000001")
    HouseholdStats.objects.filter(household=ok).update(status=Status.OK, last_demand_kw=1.5)
    make_household("000002", protocol="eagle200", user_email="", address="10.0.0.2")
    make_household("000003", active=False)

    def shown(params):
        response = staff_client.get("/admin/loggerapp/household/", params)
        return {h.cloud_id for h in response.context["cl"].result_list}

    assert shown({"status": "ok"}) == {"000001"}
    assert shown({"status": "never_polled"}) == {"000002", "000003"}
    assert shown({"protocol__exact": "eagle200"}) == {"000002"}
    assert shown({"active__exact": "0"}) == {"000003"}


def test_the_list_shows_status_last_reading_and_events(staff_client, make_household):
    household = make_household("002506")
    HouseholdStats.objects.filter(household=household).update(
        status=Status.UNREACHABLE, last_demand_kw=-1.234, total_events_logged=4321
    )
    body = staff_client.get("/admin/loggerapp/household/").content.decode()
    assert "unreachable" in body
    assert "-1.234 kW" in body
    assert "4321" in body


def test_statistics_are_read_only(staff_client, make_household):
    household = make_household("002506")
    HouseholdStats.objects.filter(household=household).update(total_events_logged=10)
    form = _form(**{"stats-TOTAL_FORMS": "1", "stats-INITIAL_FORMS": "1", "stats-0-household": str(household.pk)})
    form["stats-0-total_events_logged"] = "999999"
    staff_client.post(f"/admin/loggerapp/household/{household.pk}/change/", form)
    assert HouseholdStats.objects.get(household=household).total_events_logged == 10


def test_activate_and_deactivate_actions(staff_client, make_household):
    a = make_household("000001")
    b = make_household("000002", active=False)
    staff_client.post("/admin/loggerapp/household/", {"action": "deactivate", "_selected_action": [a.pk]}, follow=True)
    staff_client.post("/admin/loggerapp/household/", {"action": "activate", "_selected_action": [b.pk]}, follow=True)
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.active, b.active) == (False, True)


def test_test_connection_now_reports_the_reading_or_the_classified_error(
    staff_client, make_household, eagle_simulator, settings
):
    settings.EAGLE_CLOUD_URL = eagle_simulator.cloud_url
    healthy = make_household("000001", password="right-pw-1")
    broken = make_household("000002", password="right-pw-2")
    wrong = make_household("000003", password="not-what-the-relay-has")
    relay_passwords = {healthy: "right-pw-1", broken: "right-pw-2", wrong: "what-the-relay-has"}
    for household, password in relay_passwords.items():
        eagle_simulator.add_household(
            household.cloud_id, protocol="cloud", user_email=household.user_email, password=password
        )
    eagle_simulator.set_fault(broken.cloud_id, "http_500")

    response = staff_client.post(
        "/admin/loggerapp/household/",
        {"action": "test_connection_now", "_selected_action": [healthy.pk, broken.pk, wrong.pk]},
        follow=True,
    )
    shown = {str(message).split(":")[0]: str(message) for message in response.context["messages"]}
    assert shown["000001"].startswith("000001: ok, ") and " kW at " in shown["000001"]
    assert shown["000002"].startswith("000002: bad response")
    assert shown["000003"].startswith("000003: bad credentials")
    body = response.content.decode()
    assert "not-what-the-relay-has" not in body and "right-pw-" not in body
