"""Turning an answer body into a tree or a dict, safely, and classifying `<Error>` answers.

XML goes through defusedxml (the body comes from the network: entity expansion and external entities are
refused). JSON is accepted too, including the EAGLE-100 firmware's JSON without its outer braces.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from loggerapp.eagle.errors import SECRET_MARGIN, BadCredentials, BadResponse, EagleError, MeterNotJoined, Unreachable

ERROR_TEXT_LIMIT = 300  # characters of an `<Error>` text shown in a message
# Real JSON answers nest three levels deep (HistoryData -> CurrentSummation list -> fields). A gateway sending
# thousands of levels would make json.loads (and any later str()) raise RecursionError, which used to reach the
# client's "internal error" path and log a traceback on every poll.
MAX_JSON_DEPTH = 16

# An `&` that does not start an entity or character reference. Some EAGLE-200 firmware writes
# `<Description>Demand & Usage</Description>`; escaping the stray `&` keeps the rest of the answer readable.
_STRAY_AMPERSAND = re.compile(rb"&(?!(?:[A-Za-z_][A-Za-z0-9_.-]*|#[0-9]+|#[xX][0-9A-Fa-f]+);)")


def escape_stray_ampersands(body: bytes) -> bytes:
    """`a & b` -> `a &amp; b`; `&amp;`, `&lt;`, `&#38;` stay as they are."""
    if b"&" not in body:
        return body
    return _STRAY_AMPERSAND.sub(b"&amp;", body)


def parse_xml(body: bytes) -> Element:
    """The root element of an XML answer, or BadResponse (malformed, truncated, DTD entities, ...).

    Always defusedxml, even though plain expat would be about 9 us faster per answer (under 1% of a core at
    830 answers a second): a "no DTD in sight" shortcut has to reason about `<!`, XML declarations naming
    other encodings and UTF-16, which is not worth that saving.
    """
    try:
        return SafeET.fromstring(escape_stray_ampersands(body))
    except DefusedXmlException as exc:
        raise BadResponse(f"refused unsafe XML ({type(exc).__name__})", body) from None
    except (ParseError, ValueError) as exc:
        raise BadResponse(f"malformed XML ({exc})"[:200], body) from None


def parse_json(text: str, body: bytes) -> Any:
    """A JSON answer; a body lacking its outer braces (`"InstantaneousDemand": {...}`) is wrapped and retried.

    Nesting deeper than MAX_JSON_DEPTH is a BadResponse, whether the decoder noticed it (RecursionError) or not.
    """
    for candidate in (text, "{" + text + "}"):
        try:
            document = json.loads(candidate)
        except RecursionError:
            raise _too_deep(body) from None
        except ValueError:
            continue
        if _depth_exceeds(document, MAX_JSON_DEPTH):
            raise _too_deep(body)
        return document
    raise BadResponse("the answer is neither XML nor JSON", body)


def _too_deep(body: bytes) -> BadResponse:
    return BadResponse(f"the JSON answer is nested deeper than {MAX_JSON_DEPTH} levels", body)


def _depth_exceeds(document: Any, limit: int) -> bool:
    """Whether lists/objects nest deeper than `limit`; iterative, so it cannot itself run out of stack."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


# The shape of nearly every real answer: one root holding simple elements, each with plain ASCII text, nothing
# else (no declaration, DTD, comment, attribute, entity, CDATA, carriage return, nesting or self-closing tag).
# Such a document holds nothing that defusedxml guards against, and its fields can be read without building a
# tree: `simple_fields` does so in about a tenth of the time (bench/pinger.py's profile: XML parsing was the
# largest cost of a poll in our own code). Anything else goes through parse_body, exactly as before.
_NAME = rb"[A-Za-z_][A-Za-z0-9_.-]*"
_TEXT = rb"[\t\n\x20-\x25\x27-\x3b\x3d-\x7e]*"  # printable ASCII, tab, newline; no "<" or "&"
_BLANK = rb"[ \t\n]*"
_SIMPLE_DOCUMENT = re.compile(
    _BLANK
    + rb"<("
    + _NAME
    + rb")>((?:"
    + _BLANK
    + rb"<("
    + _NAME
    + rb")>"
    + _TEXT
    + rb"</\3>)*)"
    + _BLANK
    + rb"</\1>"
    + _BLANK
)
_SIMPLE_CHILD = re.compile(rb"<(" + _NAME + rb")>(" + _TEXT + rb")</")


def simple_fields(body: bytes, root_name: str) -> dict[str, str] | None:
    """{child: stripped text} of a simple document (see above) whose root is ``root_name`` (any case), as
    parsing it would give; None for anything else, which the caller parses in full."""
    if b"]]>" in body:  # not allowed in XML text: let the parser say so
        return None
    match = _SIMPLE_DOCUMENT.fullmatch(body)
    if match is None:
        return None
    root = match.group(1).decode("ascii")
    if root.lower() == "error" or (root != root_name and root.lower() != root_name.lower()):
        return None
    return {name.decode("ascii"): text.decode("ascii").strip() for name, text in _SIMPLE_CHILD.findall(match.group(2))}


def parse_body(body: bytes) -> Element | Any:
    """An `Element` for XML, a decoded JSON value otherwise. Empty or unreadable bodies are BadResponse."""
    stripped = body.strip()
    if stripped.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark
        stripped = stripped[3:].lstrip()
    if not stripped:
        raise BadResponse("empty answer", body)
    if stripped[:1] == b"<":
        return parse_xml(stripped)
    try:
        text = stripped.decode("utf-8")
    except UnicodeDecodeError:
        raise BadResponse("the answer is neither XML nor JSON", body) from None
    if text[:1] not in '{["':
        raise BadResponse("the answer is neither XML nor JSON", body)
    return parse_json(text, body)


# --- <Error> answers ------------------------------------------------------------------------------------
# The relay and the gateways explain a refusal in prose. The wording varies by firmware, so it is matched by
# keywords, checked in this order (first match wins):
#   1. credentials (password, user, authorization, login, access denied...), and an unknown or unregistered
#      cloud id: the Cloud-ID header is one of the three credentials of the relay, and no retry fixes a
#      household record naming a gateway the relay does not know           -> BadCredentials
#   2. the meter (any mention of "meter")                                    -> MeterNotJoined
#   3. the gateway being away or busy (offline, not connected, unreachable, timeout, no response, busy /
#      try again): the reference's "gateway offline" is a transient outage   -> Unreachable
#   4. anything else (unknown command, an unexplained error)                 -> BadResponse
_CREDENTIALS_WORDS = re.compile(
    r"credential|password|passwd|install ?code|unauthori[sz]ed|not authori[sz]ed|authenticat|log ?in|"
    r"access denied|forbidden|permission|invalid user|unknown user|user ?name|\buser\b|e-?mail|"
    r"unknown cloud|cloud[- ]?id not found|invalid cloud[- ]?id|unregistered|not registered",
    re.IGNORECASE,
)
_METER_WORDS = re.compile(r"meter", re.IGNORECASE)
_GATEWAY_WORDS = re.compile(
    r"offline|off-line|not online|unknown (?:gateway|eagle)|(?:gateway|eagle) not found|no such gateway|"
    r"not connected|disconnected|unreachable|timed? ?out|no response|not respond|unavailable|busy|try again",
    re.IGNORECASE,
)


def classify_error_text(text: str, raw: bytes | str | None = None) -> EagleError:
    """The exception an `<Error>` text stands for (see the order above)."""
    # Kept longer than shown (ERROR_TEXT_LIMIT) until the client has scrubbed an echoed secret out of it.
    text = " ".join(text.split())[: ERROR_TEXT_LIMIT + SECRET_MARGIN] or "(no explanation)"
    prefix = "the gateway answered an error: "
    message, limit = prefix + text, len(prefix) + ERROR_TEXT_LIMIT
    shown = text[:ERROR_TEXT_LIMIT]
    if _CREDENTIALS_WORDS.search(shown):
        return BadCredentials(message, raw, message_limit=limit)
    if _METER_WORDS.search(shown):
        return MeterNotJoined(message, raw, message_limit=limit)
    if _GATEWAY_WORDS.search(shown):
        return Unreachable(message, raw, message_limit=limit)
    return BadResponse(message, raw, message_limit=limit)


def error_from_document(document: Element | Any, raw: bytes) -> EagleError | None:
    """If the document is an `<Error>` (XML root, or a JSON object with an "Error" key), its exception."""
    if isinstance(document, Element):
        if document.tag.lower() == "error":
            return classify_error_text(" ".join(document.itertext()), raw)
        return None
    if isinstance(document, dict) and len(document) == 1:
        ((key, value),) = document.items()
        if isinstance(key, str) and key.lower() == "error":
            if isinstance(value, dict):
                value = " ".join(str(v) for v in value.values())
            return classify_error_text(str(value), raw)
    return None
