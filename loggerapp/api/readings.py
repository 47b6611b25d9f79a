"""A household's logged readings over a UTC range, streamed: the API's side of the export (loggerapp/export).

1. The bytes are ``export_stream``'s, so the CSV equals ``manage.py export_readings --format csv`` byte for byte
   and ``ndjson`` is its ``jsonl``.
2. The stream is primed before the response is returned: the household's archive is listed and its first hour
   read, so an archive that cannot be reached is a JSON 503 (``archive_unavailable``) rather than a 200 that
   breaks off.
3. After the first byte the status cannot change any more: a failure then is logged and ends the stream early
   (the server closes the connection without the final chunk), which HTTP clients report as an incomplete body.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import chain

from django.http import StreamingHttpResponse

from loggerapp.api import responses as r
from loggerapp.api.responses import ApiError
from loggerapp.export.formats import writer_for
from loggerapp.export.ranges import Span
from loggerapp.export.run import export_stream
from loggerapp.hourfiles.archived import ArchiveReadError

logger = logging.getLogger(__name__)

# The API's names of the formats, and the export's.
API_FORMATS = {"csv": "csv", "ndjson": "jsonl"}


def _logged(chunks: Iterator[bytes], cloud_id: str) -> Iterator[bytes]:
    try:
        yield from chunks
    except Exception:
        logger.exception("api: the readings of %s broke off mid-stream", cloud_id)
        raise


def readings_response(cloud_id: str, span: Span, api_format: str) -> StreamingHttpResponse:
    """The streamed answer (points 1-3 of the module docstring); ApiError 503 when the archive cannot be read."""
    fmt = API_FORMATS[api_format]
    chunks = export_stream([cloud_id], span, fmt)
    try:
        first = next(chunks)
    except ArchiveReadError as exc:
        logger.error("api: readings of %s refused: %s", cloud_id, exc)
        raise ApiError(503, r.ARCHIVE_UNAVAILABLE, "The archive cannot be read right now; retry later.") from None
    writer = writer_for(fmt)
    response = StreamingHttpResponse(_logged(chain([first], chunks), cloud_id), content_type=writer.media_type)
    for name, value in r.API_HEADERS.items():
        response[name] = value
    response["Content-Disposition"] = f'attachment; filename="readings-{cloud_id}-{span.label()}.{writer.extension}"'
    return response
