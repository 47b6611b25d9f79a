"""The admin for API tokens: the raw value is shown once after creation, the hash never; revoking works."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from loggerapp.models import ApiToken
from loggerapp.models.tokens import hash_token

pytestmark = pytest.mark.django_db

ADD = "/admin/loggerapp/apitoken/add/"
CHANGELIST = "/admin/loggerapp/apitoken/"


def create_in_admin(staff_client, user, name="dashboard") -> tuple[ApiToken, str, str]:
    response = staff_client.post(ADD, {"user": user.pk, "name": name}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    match = re.search(r"(iseif_[A-Za-z0-9_\-]{43})", page)
    assert match, "the raw token is shown after saving"
    token = ApiToken.objects.get(name=name)
    return token, match.group(1), page


def test_creating_a_token_shows_the_raw_value_once(staff_client, staff_user, make_household):
    make_household("002506")
    token, raw, _page = create_in_admin(staff_client, staff_user)
    assert token.key_hash == hash_token(raw) and token.prefix == raw[:12]
    assert Client(headers={"Authorization": f"Bearer {raw}"}).get("/api/households/").status_code == 200
    # Shown once: no later page carries it (the message is consumed) nor the hash.
    for url in (CHANGELIST, f"/admin/loggerapp/apitoken/{token.pk}/change/", ADD):
        page = staff_client.get(url).content.decode()
        assert raw not in page and raw[12:] not in page
        assert token.key_hash not in page
    assert token.prefix in staff_client.get(CHANGELIST).content.decode()


def test_the_add_form_asks_only_for_user_and_name(staff_client):
    page = staff_client.get(ADD).content.decode()
    assert 'name="user"' in page and 'name="name"' in page
    assert "key_hash" not in page and 'name="prefix"' not in page


def test_the_revoke_action_refuses_the_token_afterwards(staff_client, staff_user):
    token, raw, _page = create_in_admin(staff_client, staff_user)
    api = Client(headers={"Authorization": f"Bearer {raw}"})
    assert api.get("/api/households/").status_code == 200
    response = staff_client.post(CHANGELIST, {"action": "revoke_tokens", "_selected_action": [token.pk]}, follow=True)
    assert "1 token(s) revoked." in response.content.decode()
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert api.get("/api/households/").status_code == 401
    page = staff_client.get(CHANGELIST + "?state=revoked").content.decode()
    assert token.prefix in page


def test_editing_a_token_keeps_its_key(staff_client, staff_user):
    token, raw, _page = create_in_admin(staff_client, staff_user)
    response = staff_client.post(f"/admin/loggerapp/apitoken/{token.pk}/change/", {"name": "renamed"}, follow=True)
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.name == "renamed" and token.key_hash == hash_token(raw)
    assert raw not in response.content.decode()


def test_anonymous_users_cannot_reach_the_token_admin(client):
    response = client.get(CHANGELIST)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_raw_token_never_travels_in_a_cookie_or_the_session(staff_client, staff_user):
    """Shown in the answer to the save itself: a message would carry it in the `messages` cookie (signed, not
    encrypted) or keep it in the session until displayed."""
    from django.contrib.messages.storage.cookie import CookieStorage
    from django.http import HttpRequest

    response = staff_client.post(ADD, {"user": staff_user.pk, "name": "no-cookie"})
    carried = []
    for jar in (response.cookies, staff_client.cookies):
        for morsel in jar.values():
            carried.append(morsel.value)
            if morsel.key == "messages" and morsel.value:
                carried += [str(message) for message in CookieStorage(HttpRequest())._decode(morsel.value) or []]
    carried += [str(value) for value in staff_client.session.values()]
    assert not [value for value in carried if re.search(r"iseif_[A-Za-z0-9_\-]{43}", value)]
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    raw = re.search(r"(iseif_[A-Za-z0-9_\-]{43})", response.content.decode()).group(1)
    assert ApiToken.objects.get(name="no-cookie").key_hash == hash_token(raw)
