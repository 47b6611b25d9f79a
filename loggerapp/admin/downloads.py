"""The admin's "download readings": a form for the days and the format, then the file, streamed.

1. Whole UTC days, both included (what staff think in), at most EXPORT_WEB_MAX_DAYS of them, for at most
   EXPORT_WEB_MAX_HOUSEHOLDS households at once; the rows are ``loggerapp.export``'s, so the file equals
   ``manage.py export_readings`` for the same households and span.
2. The archive is listed before the response starts, so an archive that cannot be read is a message on the
   page, not a broken download. Who downloaded what is logged (the data is personal).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import chain
from typing import Any

from django import forms
from django.conf import settings
from django.http import StreamingHttpResponse

from loggerapp.export.formats import writer_for
from loggerapp.export.ranges import BadRange, Span, day_span
from loggerapp.export.run import export_stream

logger = logging.getLogger(__name__)

FORMAT_CHOICES = [("csv", "CSV"), ("jsonl", "JSON lines"), ("parquet", "Parquet")]


class DownloadReadingsForm(forms.Form):
    first_day = forms.DateField(
        label="From (UTC day)", widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})
    )
    last_day = forms.DateField(
        label="To (UTC day, included)", widget=forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})
    )
    format = forms.ChoiceField(choices=FORMAT_CHOICES, initial="csv")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("first_day") and cleaned.get("last_day"):
            try:
                cleaned["span"] = day_span(cleaned["first_day"], cleaned["last_day"], settings.EXPORT_WEB_MAX_DAYS)
            except BadRange as exc:
                message = str(exc)
                if cleaned["last_day"] < cleaned["first_day"]:
                    message = "The last day must not be before the first day."
                raise forms.ValidationError(message[:1].upper() + message[1:]) from None
        return cleaned


def readings_download(cloud_ids: Sequence[str], span: Span, fmt: str, user: Any) -> StreamingHttpResponse:
    """The file as an attachment (point 1); ArchiveReadError before any byte when the archive cannot be read."""
    chunks = export_stream(cloud_ids, span, fmt)
    first = next(chunks)  # lists the first household's archive (point 2)
    writer = writer_for(fmt)
    who = cloud_ids[0] if len(cloud_ids) == 1 else f"{len(cloud_ids)}-households"
    response = StreamingHttpResponse(chain([first], chunks), content_type=writer.media_type)
    response["Content-Disposition"] = f'attachment; filename="readings-{who}-{span.label()}.{writer.extension}"'
    response["Cache-Control"] = "no-store"
    logger.info(
        "admin: %s downloaded the readings of %s (%s) as %s", user, ", ".join(cloud_ids[:20]), span.label(), fmt
    )
    return response
