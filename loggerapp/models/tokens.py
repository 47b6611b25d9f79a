"""API tokens: created in the admin, shown once, stored as a SHA-256 hash, revocable.

Why a plain SHA-256 and not a slow password hash: the raw value is 32 random bytes (256 bits), so it cannot be
guessed or brute-forced from its hash, and a fast hash lets the API find a token with one indexed lookup
instead of checking every row.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

TOKEN_PREFIX = "iseif_"  # noqa: S105 (a public marker, not a secret)
PREFIX_LENGTH = 12  # TOKEN_PREFIX plus 6 random characters: enough to recognise a token, useless to guess it
LAST_USED_RESOLUTION = timedelta(minutes=1)


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def new_raw_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. 'dashboard'.")
    prefix = models.CharField(max_length=16, editable=False, help_text="First characters, to recognise it.")
    # The API's lookup: ApiToken.objects.get(key_hash=...) (unique, so indexed).
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def __repr__(self) -> str:  # the hash stays out of reprs too
        return f"<ApiToken {self.pk} {self.prefix}…>"

    @classmethod
    def issue(cls, user, name: str) -> tuple[ApiToken, str]:
        """Create a token and return it with the raw value, which is never stored nor shown again."""
        token = cls(user=user, name=name)
        raw = token.assign_new_key()
        token.save()
        return token, raw

    def assign_new_key(self) -> str:
        """Give an unsaved token a fresh key and return the raw value (the admin's add form uses this)."""
        raw = new_raw_token()
        self.prefix = raw[:PREFIX_LENGTH]
        self.key_hash = hash_token(raw)
        return raw

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.user.is_active

    def revoke(self) -> None:
        self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at"])

    def touch(self, now: datetime | None = None) -> bool:
        """Record a use, at most once per LAST_USED_RESOLUTION.

        A conditional UPDATE instead of a save: a busy dashboard must not write a row per request, and two
        workers racing on the same token write it once. Returns whether this call wrote.
        """
        now = now or timezone.now()
        stale = Q(last_used__isnull=True) | Q(last_used__lt=now - LAST_USED_RESOLUTION)
        written = ApiToken.objects.filter(stale, pk=self.pk).update(last_used=now) == 1
        if written:
            self.last_used = now
        return written
