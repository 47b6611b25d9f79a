"""A whole hour file's content: its stored form (plain or gzip), and merging two versions of it.

Pure functions on bytes, so that they can be tested without any service.

1. A stored object is gzip exactly when it starts with gzip's magic bytes, whatever its key says: the upload and
   every reader decide it the same way, and an object stored before ARCHIVE_GZIP was switched still reads.
2. Two versions of an hour (a rerun, another host, a late writer) merge into every line of both, duplicates
   dropped (the same JSON object however it was spaced or ordered), ordered by poll time. A line that is not
   a poll (cut short by a crash) is kept, at the end: nothing is ever lost.
"""

from __future__ import annotations

import gzip
import json
import math

from loggerapp.hourfiles.lines import finite_number, parse_record

GZIP_MAGIC = b"\x1f\x8b"


class UnreadableObject(ValueError):
    """A stored object that says it is gzip but does not decompress."""


def encode(content: bytes, use_gzip: bool) -> bytes:
    """The bytes to store. gzip's header time is fixed at 0 so that the same lines always give the same object."""
    return gzip.compress(content, compresslevel=6, mtime=0) if use_gzip else content


def is_gzip(body: bytes) -> bool:
    return body.startswith(GZIP_MAGIC)


def decode(body: bytes) -> bytes:
    """The lines of a stored object, whether it was stored plain or gzipped (point 1 of the module docstring)."""
    if not is_gzip(body):
        return body
    try:
        return gzip.decompress(body)
    except (OSError, EOFError) as exc:
        raise UnreadableObject(f"not readable gzip ({exc})") from exc


def _split(content: bytes) -> list[bytes]:
    return [line for line in content.splitlines() if line.strip()]


def _sort_key(index: int, line: bytes) -> tuple[float, int]:
    record = parse_record(line)
    poll_time = finite_number(record.get("poll_time")) if record is not None else None
    # A line that is not a reading (e.g. cut short by a crash) is kept, at the end.
    return (math.inf if poll_time is None else poll_time), index


def _identity(line: bytes) -> bytes:
    """Lines are the same reading when they hold the same JSON object, however it was spaced or ordered."""
    try:
        return json.dumps(json.loads(line), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
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
