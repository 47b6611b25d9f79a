"""The only exceptions the EAGLE client lets out; each one tells the operator what to do.

`kind` equals a value of `loggerapp.models.Status`, so callers store it without a translation table.
`raw` keeps what the device sent (truncated) for diagnosis; messages never contain credentials.
"""

from __future__ import annotations

RAW_LIMIT = 500  # characters of a device's answer kept on an error


def truncate_raw(raw: str | bytes | None, limit: int = RAW_LIMIT) -> str | None:
    """The first `limit` characters of an answer, as text (undecodable bytes replaced)."""
    if raw is None:
        return None
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw[: limit * 4]).decode("utf-8", errors="replace")
    return raw[:limit]


class EagleError(Exception):
    """Base class: one poll failed. Only subclasses are raised."""

    kind = "error"

    def __init__(self, message: str, raw: str | bytes | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.raw = truncate_raw(raw)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def scrub(self, *secrets: str) -> EagleError:
        """Blank out secrets a device may have echoed back (e.g. an `<Error>` quoting the password)."""
        for secret in secrets:
            if secret and len(secret) >= 3:
                if secret in self.message:
                    self.message = self.message.replace(secret, "***")
                    self.args = (self.message,)
                if self.raw and secret in self.raw:
                    self.raw = self.raw.replace(secret, "***")
        return self


class Unreachable(EagleError):
    """The gateway or the relay did not answer (refused, DNS, TLS, timeout, busy, offline): try again later."""

    kind = "unreachable"


class BadCredentials(EagleError):
    """The credentials were refused: back off and have someone fix the household record."""

    kind = "bad_credentials"


class MeterNotJoined(EagleError):
    """The gateway answered but has no live meter: the household must re-join the meter."""

    kind = "meter_not_joined"


class BadResponse(EagleError):
    """An answer that cannot be read (5xx, empty, not XML/JSON, missing or malformed fields)."""

    kind = "bad_response"
