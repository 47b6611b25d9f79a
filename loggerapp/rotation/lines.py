"""What an hour file holds: counting its lines, merging two versions of it, and its optional gzip encoding.

Pure functions on bytes, so that they can be tested without any service.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import re
from dataclasses import dataclass

GZIP_MAGIC = b"\x1f\x8b"
# A successful poll's line carries "ok": true. Counting the pattern instead of parsing every line keeps the
# hourly job cheap (thousands of files of 600 lines); json.dumps writes it with or without the space.
_OK_TRUE = re.compile(rb'"ok":\s*true\b')


@dataclass(frozen=True)
class Digest:
    """Size and checksums of a byte string: what verification compares."""

    size: int
    md5: str
    sha256: str

    @classmethod
    def of(cls, data: bytes) -> Digest:
        return cls(size=len(data), md5=hashlib.md5(data).hexdigest(), sha256=hashlib.sha256(data).hexdigest())  # noqa: S324 (S3's ETag is an MD5)


def count_lines(content: bytes) -> tuple[int, int]:
    """(lines, lines with a reading) of an hour file; a last line without its newline still counts."""
    lines = content.count(b"\n")
    if content and not content.endswith(b"\n"):
        lines += 1
    return lines, len(_OK_TRUE.findall(content))


def encode(content: bytes, use_gzip: bool) -> bytes:
    """The bytes to store. gzip's header time is fixed at 0 so that the same lines always give the same object."""
    return gzip.compress(content, compresslevel=6, mtime=0) if use_gzip else content


def decode(body: bytes) -> bytes:
    """The lines of a stored object, whether it was stored plain or gzipped (recognised by gzip's magic)."""
    return gzip.decompress(body) if body.startswith(GZIP_MAGIC) else body


def _split(content: bytes) -> list[bytes]:
    return [line for line in content.splitlines() if line.strip()]


def _sort_key(index: int, line: bytes) -> tuple[float, int]:
    try:
        poll_time = float(json.loads(line)["poll_time"])
    except (ValueError, KeyError, TypeError, OverflowError):
        poll_time = math.inf  # a line that is not a reading (e.g. cut short by a crash) is kept, at the end
    if math.isnan(poll_time):
        poll_time = math.inf
    return poll_time, index


def _identity(line: bytes) -> bytes:
    """Lines are the same reading when they hold the same JSON object, however it was spaced or ordered."""
    try:
        return json.dumps(json.loads(line), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        return line.strip()


def merge(existing: bytes, ours: bytes) -> bytes:
    """Both sets of lines, duplicates dropped, ordered by poll time (ties keep the stored object's order first).

    Every line of either side survives unless the same reading is already present, so nothing is lost.
    """
    seen: set[bytes] = set()
    kept: list[tuple[tuple[float, int], bytes]] = []
    for index, line in enumerate(_split(existing) + _split(ours)):
        identity = _identity(line)
        if identity in seen:
            continue
        seen.add(identity)
        kept.append((_sort_key(index, line), line))
    kept.sort(key=lambda item: item[0])
    return b"".join(line + b"\n" for _, line in kept)


def holds_all(existing: bytes, ours: bytes) -> bool:
    """Whether the stored lines already include every one of ours (then there is nothing to merge)."""
    if existing == ours:
        return True
    stored = {_identity(line) for line in _split(existing)}
    return all(_identity(line) in stored for line in _split(ours))
