"""Households: what a valid record is, and how the password is kept."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import connection

from loggerapp import fields
from loggerapp.models import Household, Protocol
from loggerapp.validators import validate_cloud_id

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("cloud_id", ["002506", "00a1b2", "ffffff", "000000"])
def test_six_hex_digits_are_a_cloud_id(cloud_id):
    validate_cloud_id(cloud_id)


@pytest.mark.parametrize(
    "hostile",
    [
        "../x",
        "00 27",
        "0025067",
        "00250",
        "",
        "0025g6",
        "../../etc",
        "0025\n6",
        "\uff10\uff10\uff12\uff15\uff10\uff16",
        "2506",
        "00/250",
    ],
)
def test_anything_else_is_refused(hostile):
    with pytest.raises(ValidationError):
        validate_cloud_id(hostile)


@pytest.mark.parametrize("hostile", ["../x", "00 27", "0025067", "a/b/c/"])
def test_a_hostile_cloud_id_never_reaches_the_database(hostile):
    with pytest.raises(ValidationError):
        Household(cloud_id=hostile, user_email="a@example.org", password="pw").full_clean()
    with pytest.raises(ValidationError):  # save() checks too, for code that skips full_clean()
        Household(cloud_id=hostile, user_email="a@example.org", password="pw").save()
    assert not Household.objects.exists()


def test_cloud_id_keeps_its_leading_zeros_and_is_lower_cased(make_household):
    make_household("0A25F6")
    assert Household.objects.get().cloud_id == "0a25f6"


def test_cloud_protocol_needs_the_account_email():
    household = Household(cloud_id="002506", protocol=Protocol.CLOUD, user_email="", password="pw")
    with pytest.raises(ValidationError) as caught:
        household.full_clean()
    assert "user_email" in caught.value.message_dict


def test_local_protocols_do_not_need_an_email():
    Household(cloud_id="002506", protocol=Protocol.EAGLE200, user_email="", password="code").full_clean()


def test_password_is_encrypted_at_rest(make_household):
    make_household("002506", password="s3cret-Passw0rd")
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM loggerapp_household WHERE cloud_id = %s", ["002506"])
        (stored,) = cursor.fetchone()
    assert "s3cret" not in stored
    assert stored.startswith("gAAAAA")  # a Fernet token
    assert Household.objects.get(cloud_id="002506").password == "s3cret-Passw0rd"


def test_an_empty_password_stays_empty(make_household):
    household = Household.objects.create(cloud_id="00abcd", protocol=Protocol.EAGLE100, password="")
    assert Household.objects.get(pk=household.pk).password == ""


def test_the_repr_never_shows_the_password(make_household):
    household = make_household("002506", password="hunter2-very-secret")
    assert "hunter2" not in repr(household)
    assert "hunter2" not in str(household)


def test_a_wrong_key_refuses_to_decrypt_instead_of_returning_ciphertext(make_household, settings):
    make_household("002506", password="s3cret")
    settings.FIELD_ENCRYPTION_KEYS = ["ZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleTEyMzQ="]
    with pytest.raises(fields.DecryptionError):
        Household.objects.get(cloud_id="002506")


def test_keys_rotate_newest_first_and_old_ones_still_decrypt(make_household, settings):
    from cryptography.fernet import Fernet

    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    make_household("002506", password="s3cret")
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    assert Household.objects.get(cloud_id="002506").password == "s3cret"

    from django.core.management import call_command

    call_command("reencrypt_passwords", stdout=open("/dev/null", "w"))
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert Household.objects.get(cloud_id="002506").password == "s3cret"


def test_a_malformed_key_is_a_configuration_error(settings):
    settings.FIELD_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    with pytest.raises(ImproperlyConfigured):
        fields.encrypt("x")
