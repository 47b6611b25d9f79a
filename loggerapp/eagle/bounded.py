"""Reading an answer under a ceiling, so that one hostile or broken gateway costs little memory and CPU.

A real EAGLE answer is a few hundred bytes (legacy) to a few KB (an EAGLE-200 `device_query` with every
variable). A gateway that sends 600 MB, or 600 KB of gzip that expands to gigabytes, must not be able to take
the logger down. Both transports therefore ask for the body undecoded and feed it through `BoundedBody`:

1. `Content-Length` above the ceiling is refused before a byte of the body is read (`check_length`).
2. Every byte received counts against the ceiling (the compressed size, as it came off the wire).
3. gzip / deflate are decoded here, never asking zlib for more than the ceiling + 1 bytes, so a bomb costs at
   most one ceiling of output before it is refused (about 0.2 ms of CPU), not its whole expansion.
4. Any other content encoding is refused: a gateway has no reason to send one we did not offer.

Pure (sans-IO): the transports call `feed()` with what they read and stop reading at the first BadResponse.
"""

from __future__ import annotations

import zlib

from loggerapp.eagle.errors import BadResponse

DEFAULT_MAX_ANSWER_BYTES = 65536
ACCEPT_ENCODING = "gzip, deflate"  # the only encodings BoundedBody decodes; sent so no gateway picks another
READ_CHUNK = 16384


def too_large(limit: int, what: str = "answer") -> BadResponse:
    return BadResponse(f"the {what} is larger than {limit:,} bytes (EAGLE_MAX_ANSWER_BYTES); not read further")


def check_length(content_length: int | None, limit: int) -> None:
    """Refuse a declared body length above the ceiling before reading it."""
    if content_length is not None and content_length > limit:
        raise too_large(limit)


class BoundedBody:
    """Collects one answer's body: at most `limit` bytes received and at most `limit` bytes decoded."""

    __slots__ = ("_decoder", "_limit", "_parts", "_received", "_size")

    def __init__(self, limit: int, content_encoding: str | None = None) -> None:
        self._limit = limit
        self._received = 0
        self._size = 0
        self._parts: list[bytes] = []
        encoding = (content_encoding or "").strip().lower()
        if encoding in ("", "identity"):
            self._decoder = None
        elif encoding in ("gzip", "x-gzip", "deflate"):
            # 32 + MAX_WBITS: zlib recognises a gzip or a zlib header itself (servers label them loosely).
            self._decoder = zlib.decompressobj(32 + zlib.MAX_WBITS)
        else:
            raise BadResponse(f"the answer uses an encoding that was not asked for ({encoding[:40]!r})")

    def feed(self, chunk: bytes) -> None:
        """Add what was read; BadResponse as soon as either size passes the ceiling."""
        self._received += len(chunk)
        if self._received > self._limit:
            raise too_large(self._limit)
        if self._decoder is None:
            self._keep(chunk)
            return
        room = self._limit - self._size + 1  # one byte more than allowed tells "too large" from "exactly full"
        try:
            out = self._decoder.decompress(chunk, room)
        except zlib.error:
            raise BadResponse("the compressed answer is corrupt", self._prefix()) from None
        self._keep(out)
        if self._decoder.unconsumed_tail:  # zlib stopped at `room` with input left: the output would be larger
            raise too_large(self._limit, "decompressed answer")

    def _keep(self, data: bytes) -> None:
        if data:
            self._size += len(data)
            if self._size > self._limit:
                raise too_large(self._limit, "decompressed answer" if self._decoder else "answer")
            self._parts.append(data)

    def _prefix(self) -> bytes:
        return b"".join(self._parts)[:2000]

    def finish(self) -> bytes:
        """The whole (decoded) body. A compressed stream that stops before its end is a BadResponse."""
        if self._decoder is not None:
            try:
                self._keep(self._decoder.flush())
            except zlib.error:
                raise BadResponse("the compressed answer is corrupt", self._prefix()) from None
            if not self._decoder.eof and self._received:
                raise BadResponse("the compressed answer was cut off", self._prefix())
        return b"".join(self._parts)

    @property
    def received(self) -> int:
        return self._received
