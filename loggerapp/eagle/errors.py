"""The only exceptions the EAGLE client lets out; each one tells the operator what to do.

`kind` equals a value of `loggerapp.models.Status`, so callers store it without a translation table.
`raw` keeps what the device sent (truncated) for diagnosis; messages never contain credentials.

A device may echo a credential back (an `<Error>` quoting the password it refused). `scrub()` blanks it, in
every form the echo can take: as sent, XML-escaped (`&amp;`, `&lt;`, `&quot;`...), JSON-escaped, with its
white space collapsed (as `<Error>` texts are), and as the Base64 of an HTTP Basic header. The text is kept
longer than shown until it has been scrubbed, so a secret straddling the cut is blanked whole, not half shown.
"""

from __future__ import annotations

import json
from typing import overload
from xml.sax.saxutils import escape as _xml_escape

RAW_LIMIT = 500  # characters of a device's answer kept on an error
SECRET_MARGIN = 1024  # characters kept beyond a cut until scrubbed (longer than any password we accept)
MIN_SECRET = 3  # shorter values cannot be blanked without blanking ordinary text
SCRUBBED = "***"


def truncate_raw(raw: str | bytes | None, limit: int = RAW_LIMIT) -> str | None:
    """The first `limit` characters of an answer, as text (undecodable bytes replaced)."""
    if raw is None:
        return None
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw[: limit * 4]).decode("utf-8", errors="replace")
    return raw[:limit]


def secret_forms(secret: str) -> list[str]:
    """The forms in which a device could echo `secret`, longest first (so a longer form is blanked whole)."""
    if not secret:
        return []
    forms = {
        secret,
        _xml_escape(secret),
        _xml_escape(secret, {'"': "&quot;", "'": "&apos;"}),
        _xml_escape(secret, {'"': "&#34;", "'": "&#39;"}),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        " ".join(secret.split()),
    }
    return sorted((form for form in forms if len(form) >= MIN_SECRET), key=len, reverse=True)


@overload
def _cut(text: str, limit: int | None, forms: list[str]) -> str: ...
@overload
def _cut(text: None, limit: int | None, forms: list[str]) -> None: ...
@overload
def _cut(text: str | None, limit: int | None, forms: list[str]) -> str | None: ...
def _cut(text: str | None, limit: int | None, forms: list[str]) -> str | None:
    """`text` cut at `limit`; a cut landing inside an echoed secret blanks the part that would still show."""
    if text is None or limit is None or len(text) <= limit:
        return text
    shown = text[:limit]
    for form in forms:
        for length in range(min(len(form) - 1, len(shown)), 1, -1):
            if shown.endswith(form[:length]):
                return shown[:-length] + SCRUBBED
    return shown


class EagleError(Exception):
    """Base class: one poll failed. Only subclasses are raised.

    `message_limit` (for messages quoting a device's text) cuts the message there, after scrubbing.
    """

    kind = "error"

    def __init__(self, message: str, raw: str | bytes | None = None, *, message_limit: int | None = None) -> None:
        super().__init__(message)
        self._message_limit = message_limit
        self._message_source = message if message_limit is None else message[: message_limit + SECRET_MARGIN]
        self._raw_source = truncate_raw(raw, RAW_LIMIT + SECRET_MARGIN)
        self._show([])

    def _show(self, forms: list[str]) -> None:
        self.message = _cut(self._message_source, self._message_limit, forms)
        self.raw = _cut(self._raw_source, RAW_LIMIT, forms)
        self.args = (self.message,)

    def reclassified(self, kind: type[EagleError]) -> EagleError:
        """The same message and answer as another kind of error (keeping what scrub() needs)."""
        return kind(self._message_source, self._raw_source, message_limit=self._message_limit)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def scrub(self, *secrets: str) -> EagleError:
        """Blank out secrets a device may have echoed back (e.g. an `<Error>` quoting the password)."""
        forms = sorted({form for secret in secrets for form in secret_forms(secret)}, key=len, reverse=True)
        for form in forms:
            self._message_source = self._message_source.replace(form, SCRUBBED)
            if self._raw_source:
                self._raw_source = self._raw_source.replace(form, SCRUBBED)
        self._show(forms)
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
