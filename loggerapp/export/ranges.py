"""The span of an export: two UTC moments, checked. Pure.

1. ``start`` and ``end`` are ISO 8601 dates or date-times. A date alone is its midnight; a time without an
   offset is UTC; an offset is converted to UTC. The span is [start, end): a month is
   ``--start 2026-01-01 --end 2026-02-01``, a day ``--start 2026-01-05 --end 2026-01-06``.
2. ``end`` must come after ``start``, and the span may be at most ``max_days`` days (EXPORT_MAX_DAYS for the
   command, EXPORT_WEB_MAX_DAYS for the API and the admin). Anything else is a ``BadRange`` whose message says
   what to send instead; it never echoes more than a short piece of the input.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

FIRST_YEAR, LAST_YEAR = 1970, 9000  # no reading is older than Unix time; far-future hours cannot be counted


class BadRange(ValueError):
    """A span the export refuses; the message is one sentence for the user."""


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86400

    def label(self) -> str:
        """A short text for file names: 2026-01-01_2026-02-01, with hours when they are not midnight."""

        def part(moment: datetime) -> str:
            return f"{moment:%Y-%m-%d}" if moment.time() == datetime.min.time() else f"{moment:%Y-%m-%dT%H%M%S}"

        return f"{part(self.start)}_{part(self.end)}"


def parse_moment(text: str, name: str) -> datetime:
    """One end of a span (point 1 of the module docstring)."""
    value = (text or "").strip()
    shown = value[:40] + ("..." if len(value) > 40 else "")
    if not value:
        raise BadRange(f"{name} is missing: give a UTC date or date-time, e.g. 2026-01-05 or 2026-01-05T06:00.")
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day)
        else:
            moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRange(
            f"{name} {shown!r} is not a date or date-time; use e.g. 2026-01-05 or 2026-01-05T06:00 (UTC)."
        ) from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        raise BadRange(f"{name} {shown!r} is outside the years {FIRST_YEAR} to {LAST_YEAR}.")
    return moment


def parse_span(start: str, end: str, max_days: int) -> Span:
    """The span [start, end), or BadRange (point 2 of the module docstring)."""
    span = Span(parse_moment(start, "start"), parse_moment(end, "end"))
    if span.end <= span.start:
        raise BadRange(f"end ({span.end:%Y-%m-%d %H:%M:%S}) must be after start ({span.start:%Y-%m-%d %H:%M:%S}), UTC.")
    if span.end - span.start > timedelta(days=max_days):
        raise BadRange(f"the range is {span.days:.1f} days; at most {max_days} days may be exported at once.")
    return span


def day_span(first: date, last: date, max_days: int) -> Span:
    """The span of whole UTC days from ``first`` to ``last`` inclusive (the admin's form), checked the same way."""
    return parse_span(first.isoformat(), (last + timedelta(days=1)).isoformat(), max_days)
