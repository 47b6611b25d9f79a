"""Who is asking: an API token (``Authorization: Bearer <token>`` or ``Token <token>``) or a staff session.

1. An Authorization header with the Bearer or Token scheme decides alone: a bad token is refused even when the
   browser also carries a staff session, so a client never silently acts as someone else. Other schemes
   (e.g. Basic from a reverse proxy) are ignored.
2. The raw token is hashed (SHA-256) and looked up by its hash through the unique index; the raw value is never
   stored, compared or logged. The lookup leaks nothing useful through timing (an attacker who could time an
   index probe learns about a hash, not about a preimage), and the final comparison is hmac.compare_digest;
   a miss runs the same comparison against a dummy so that hits and misses cost the same.
3. Revoked tokens and tokens of inactive users are refused. Tokens are never accepted in the query string,
   because URLs end up in access logs.
4. Without a header, a signed-in, active staff user (the admin's session cookie) is accepted if they may view
   households (``VIEW_HOUSEHOLDS``, a Django permission; superusers have every permission): staff status alone
   only opens the admin, where each model has its own permissions. A signed-in user without it is refused
   with 403. API endpoints only answer GET/HEAD, so the session needs no CSRF check.
5. A token stands for the user it was issued to by someone allowed to add tokens in the admin: issuing it is
   the grant, so token users need no further permission.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from loggerapp.models import ApiToken
from loggerapp.models.tokens import TOKEN_PREFIX, hash_token

logger = logging.getLogger(__name__)

SCHEMES = ("bearer", "token")
VIEW_HOUSEHOLDS = "loggerapp.view_household"
MAX_TOKEN_LENGTH = 128  # ours are 49 characters; anything far longer is not worth hashing
_DUMMY_HASH = hash_token("not-a-token")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a token (and its user) or a staff session's user."""

    user: Any
    token: ApiToken | None = None

    @property
    def throttle_key(self) -> str:
        """Rate limits count per token, or per user for a session."""
        return f"token:{self.token.pk}" if self.token is not None else f"user:{self.user.pk}"


class AuthenticationFailed(Exception):
    """Refused; `invalid_token` says whether a token was offered (RFC 6750's error="invalid_token"), `forbidden`
    that the caller is known but lacks the permission (403 rather than 401)."""

    def __init__(self, message: str, invalid_token: bool = False, forbidden: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.invalid_token = invalid_token
        self.forbidden = forbidden

    @property
    def www_authenticate(self) -> str:
        challenge = 'Bearer realm="iseif-api"'
        if self.invalid_token:
            challenge += ', error="invalid_token"'
        return challenge


def token_from_header(header: str) -> str | None:
    """The raw token of a Bearer/Token Authorization header; None when the header uses another scheme."""
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() not in SCHEMES:
        return None
    return credentials.strip()


def authenticate_token(raw: str) -> Principal:
    """The principal a raw token stands for; AuthenticationFailed for anything else."""
    if not raw or len(raw) > MAX_TOKEN_LENGTH or not raw.isascii() or not raw.startswith(TOKEN_PREFIX):
        raise AuthenticationFailed("The token is not valid.", invalid_token=True)
    digest = hash_token(raw)
    token = ApiToken.objects.select_related("user").filter(key_hash=digest).first()
    if token is None:
        hmac.compare_digest(_DUMMY_HASH, digest)
        raise AuthenticationFailed("The token is not valid.", invalid_token=True)
    if not hmac.compare_digest(token.key_hash, digest):  # pragma: no cover (the index matched it exactly)
        raise AuthenticationFailed("The token is not valid.", invalid_token=True)
    if token.revoked_at is not None:
        logger.info("api: refused revoked token %s (id %s)", token.prefix, token.pk)
        raise AuthenticationFailed("The token has been revoked.", invalid_token=True)
    if not token.user.is_active:
        logger.info("api: refused token %s (id %s) of inactive user %s", token.prefix, token.pk, token.user_id)
        raise AuthenticationFailed("The token's user is inactive.", invalid_token=True)
    token.touch()
    return Principal(user=token.user, token=token)


def authenticate(request: HttpRequest) -> Principal:
    """Who is asking, or AuthenticationFailed (the view answers 401 with a WWW-Authenticate challenge)."""
    header = request.headers.get("Authorization", "")
    raw = token_from_header(header) if header else None
    if raw is not None:
        return authenticate_token(raw)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and user.is_active and user.is_staff:
        if user.has_perm(VIEW_HOUSEHOLDS):
            return Principal(user=user)
        raise AuthenticationFailed("This account may not view households.", forbidden=True)
    raise AuthenticationFailed("Authentication required: send 'Authorization: Bearer <token>'.")
