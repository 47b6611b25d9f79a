"""The admin sign-in, rate limited in Redis (the server the API's live-read limits already use).

1. Failed sign-ins are counted in a window of ADMIN_LOGIN_WINDOW seconds that starts with the first failure:
   per (user name, client address) and per client address. At ADMIN_LOGIN_FAILURES for the pair, or
   ADMIN_LOGIN_ADDRESS_FAILURES for the address, every further attempt in the window is refused before the
   password is checked, so a guess made while locked tells nothing, not even a right one.
2. Per pair rather than per user name alone, so that nobody can lock the real administrator out by failing on
   purpose from elsewhere; the per-address limit stops one address from trying many user names.
3. A successful sign-in clears its pair's count (a typo or two never adds up over days).
4. If Redis cannot be asked, sign-in is refused with a message saying so: without the counter nothing would
   stop guessing (the same choice as live reads; /healthz reports Redis).
5. The client address is REMOTE_ADDR. Behind a reverse proxy that is the proxy's address for everyone: the
   address limit then counts all clients together, and the pair limit acts per user name.

Hooked in through AdminSite.login_form (Django's own extension point), so the admin's sign-in page, its
template and its redirects stay Django's; the refusal is an ordinary form error on that page.
"""

from __future__ import annotations

import hashlib
import logging
import math

import redis
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from loggerapp.api.throttle import redis_connection

logger = logging.getLogger(__name__)


class LoginLocked(Exception):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s


def _digest(text: str) -> str:
    """Keys hold a hash, never a user name as typed (it may be a mistyped password)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _keys(username: str, address: str) -> tuple[str, str]:
    prefix = f"{settings.API_REDIS_PREFIX}login:"
    return f"{prefix}pair:{_digest(username.casefold() + '|' + address)}", f"{prefix}address:{_digest(address)}"


def check_not_locked(username: str, address: str) -> None:
    """Raise LoginLocked while either limit is reached; redis.RedisError when Redis cannot be asked."""
    pair, by_address = _keys(username, address)
    connection = redis_connection()
    with connection.pipeline(transaction=False) as pipe:
        pipe.get(pair).pttl(pair).get(by_address).pttl(by_address)
        pair_count, pair_ttl, address_count, address_ttl = pipe.execute()
    waits = []
    if int(pair_count or 0) >= settings.ADMIN_LOGIN_FAILURES:
        waits.append(pair_ttl)
    if int(address_count or 0) >= settings.ADMIN_LOGIN_ADDRESS_FAILURES:
        waits.append(address_ttl)
    if waits:
        raise LoginLocked(max(1, max(waits)) / 1000)


def record_failure(username: str, address: str) -> None:
    window_ms = max(1, round(settings.ADMIN_LOGIN_WINDOW * 1000))
    connection = redis_connection()
    with connection.pipeline(transaction=True) as pipe:
        for key in _keys(username, address):
            pipe.incr(key).pexpire(key, window_ms, nx=True)
        pipe.execute()


def clear_failures(username: str, address: str) -> None:
    redis_connection().delete(_keys(username, address)[0])


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin's sign-in form, refusing (as a form error) while the caller is locked out."""

    def clean(self) -> dict:
        username = self.cleaned_data.get("username") or ""
        address = self.request.META.get("REMOTE_ADDR", "") if self.request else ""
        try:
            check_not_locked(username, address)
        except LoginLocked as exc:
            logger.warning("admin: sign-in refused for a locked user name/address pair (%s)", address)
            minutes = max(1, math.ceil(exc.retry_after_s / 60))
            raise ValidationError(
                "Too many failed sign-ins. Try again in %(minutes)s minute(s).",
                code="throttled",
                params={"minutes": minutes},
            ) from None
        except redis.RedisError as exc:
            logger.error("admin: sign-in refused, the rate limiter is unavailable (%s)", type(exc).__name__)
            raise ValidationError(
                "Sign-in is unavailable right now (its rate limiter cannot be reached). Try again later.",
                code="throttle_unavailable",
            ) from None
        try:
            cleaned = super().clean()
        except ValidationError:
            self._count(record_failure, username, address)
            raise
        self._count(clear_failures, username, address)
        return cleaned

    @staticmethod
    def _count(action, username: str, address: str) -> None:
        try:
            action(username, address)
        except redis.RedisError as exc:  # checked a moment ago; a failure now only loses one count
            logger.error("admin: cannot update the sign-in counter (%s)", type(exc).__name__)


admin.site.login_form = ThrottledAdminAuthenticationForm
