"""The admin sign-in is rate limited (loggerapp/admin/login.py): the real /admin/login/ form through Django's test
client, counted in the tests' real Redis under a private key prefix."""

from __future__ import annotations

import socket

import pytest
from django.test import Client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("api_redis")]

RIGHT = "correct horse battery"


@pytest.fixture
def limits(settings):
    settings.ADMIN_LOGIN_FAILURES = 3
    settings.ADMIN_LOGIN_ADDRESS_FAILURES = 6
    settings.ADMIN_LOGIN_WINDOW = 60


def sign_in(password: str, username: str = "researcher", address: str = "203.0.113.7") -> Client:
    client = Client(REMOTE_ADDR=address)
    client.post("/admin/login/?next=/admin/", {"username": username, "password": password})
    return client


def signed_in(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


def test_a_right_password_signs_in(staff_user, limits):
    assert signed_in(sign_in(RIGHT))


def test_after_the_limit_even_the_right_password_is_refused(staff_user, limits):
    for _ in range(3):
        assert not signed_in(sign_in("wrong guess"))
    client = Client(REMOTE_ADDR="203.0.113.7")
    response = client.post("/admin/login/?next=/admin/", {"username": "researcher", "password": RIGHT})
    assert response.status_code == 200
    assert "Too many failed sign-ins. Try again in 1 minute(s)." in response.content.decode()
    assert not signed_in(client)


def test_the_lock_is_per_address_so_the_owner_can_still_sign_in(staff_user, limits):
    for _ in range(3):
        sign_in("wrong guess", address="203.0.113.7")
    assert signed_in(sign_in(RIGHT, address="198.51.100.20"))


def test_one_address_cannot_spray_many_user_names(staff_user, limits):
    for n in range(6):
        sign_in("wrong guess", username=f"user{n}")
    assert not signed_in(sign_in(RIGHT))  # the address is locked, whatever the name
    assert signed_in(sign_in(RIGHT, address="198.51.100.20"))


def test_a_success_clears_the_count(staff_user, limits):
    for _ in range(2):
        sign_in("wrong guess")
    assert signed_in(sign_in(RIGHT))
    for _ in range(2):
        sign_in("wrong guess")
    assert signed_in(sign_in(RIGHT))  # 2 + 2 failures, never 3 in a row


def test_user_names_differing_in_case_share_one_count(staff_user, limits):
    for name in ("researcher", "RESEARCHER", "Researcher"):
        sign_in("wrong guess", username=name)
    assert not signed_in(sign_in(RIGHT))


def test_sign_in_is_refused_when_the_limiter_is_down(staff_user, settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{closed}/15"
    client = Client(REMOTE_ADDR="203.0.113.7")
    response = client.post("/admin/login/?next=/admin/", {"username": "researcher", "password": RIGHT})
    assert "Sign-in is unavailable right now" in response.content.decode()
    assert not signed_in(client)
