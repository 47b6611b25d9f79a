"""A text field encrypted at rest with Fernet, keyed by FIELD_ENCRYPTION_KEY.

Why our own field: the packaged alternatives either no longer import on Django 6 or, with a wrong key, hand
back the ciphertext as if it were the password (which would then be sent to Rainforest). This one keeps ""
as "", refuses to decrypt with a wrong key (``DecryptionError``), and rotates keys through MultiFernet: the
first key encrypts, every key decrypts.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


class DecryptionError(Exception):
    """The stored value cannot be decrypted with any configured key."""


@lru_cache(maxsize=4)
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY is not set; EAGLE passwords cannot be encrypted.")
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(f"FIELD_ENCRYPTION_KEY holds a malformed Fernet key: {exc}") from None


def fernet() -> MultiFernet:
    return _fernet_for(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    if plaintext == "":
        return ""
    return fernet().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(token: str) -> str:
    if token == "":
        return ""
    try:
        return fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError) as exc:
        raise DecryptionError(
            "a stored EAGLE password cannot be decrypted with FIELD_ENCRYPTION_KEY (wrong or missing key?)"
        ) from exc


class EncryptedTextField(models.TextField):
    """Plaintext in Python, Fernet ciphertext in the database."""

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None:
            return None
        return encrypt(str(value))

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return decrypt(value)

    def to_python(self, value):
        return value
