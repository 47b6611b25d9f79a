"""Server-rendered SVG charts of demand and coverage: no JavaScript, no CDN, no build step.

Only drawing lives here: pure functions from numbers to SVG text. Every piece of text is escaped; the output is
safe to mark_safe() into a template. The polls and counts they draw come from ``loggerapp.hourfiles.reading``
(the status page's coverage from ``loggerapp.ops.status``); ``sparkline_for``, ``admin_chart_for`` and
``day_chart_for`` only fetch a household's polls there and draw them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.utils.html import escape

from loggerapp.hourfiles.layout import HOUR, hour_start
from loggerapp.hourfiles.lines import Poll, coverage
from loggerapp.hourfiles.reading import household_polls, local_polls

SVG_NS = "http://www.w3.org/2000/svg"
OK_COLOUR = "#1a7f37"
WARN_COLOUR = "#d4a72c"
BAD_COLOUR = "#cf222e"
NONE_COLOUR = "#d0d7de"
LINE_COLOUR = "#0969da"
_UTC_LABEL_CLEARANCE = 42  # px left of the chart's right end kept free of hour labels ("UTC" + half a label)
_HOUR_LABEL_SPACING = 34  # px at least between two hour labels


@dataclass(frozen=True)
class CoverageCell:
    """One hour of a coverage strip."""

    hour: datetime
    lines: int | None  # None: nothing known about this hour
    ok_lines: int | None
    expected: int  # lines_per_hour() for a finished hour, fewer for the hour in progress
    source: str  # "ledger", "disk" or "none"

    @property
    def fraction(self) -> float | None:
        if self.ok_lines is None or self.expected <= 0:
            return None
        return coverage(self.ok_lines, self.expected)


# --- Drawing ------------------------------------------------------------------------------------------------
def bucket_means(polls: Iterable[Poll], start: float, end: float, buckets: int) -> list[float | None]:
    """Mean demand of the successful polls in each of `buckets` equal slices of [start, end); None if empty."""
    sums = [0.0] * buckets
    counts = [0] * buckets
    width = (end - start) / buckets
    for poll in polls:
        if poll.demand_kw is None or not start <= poll.t < end:
            continue
        index = min(buckets - 1, int((poll.t - start) / width))
        sums[index] += poll.demand_kw
        counts[index] += 1
    return [sums[i] / counts[i] if counts[i] else None for i in range(buckets)]


def _fmt(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def _path(points: Sequence[tuple[float, float] | None]) -> str:
    """An SVG path through the points, lifting the pen at each None (a gap in the data stays a gap)."""
    parts: list[str] = []
    pen_down = False
    for point in points:
        if point is None:
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{_fmt(point[0])} {_fmt(point[1])}")
        pen_down = True
    return " ".join(parts)


def _value_range(values: Iterable[float]) -> tuple[float, float]:
    values = list(values)
    low = min([0.0, *values])
    high = max([0.0, *values])
    if high - low < 0.1:
        high = low + 0.1
    return low, high


def sparkline_svg(values: Sequence[float | None], width: int = 120, height: int = 28, title: str = "") -> str:
    """A small line of demand over equal time slices; gaps where a slice had no reading."""
    known = [v for v in values if v is not None]
    label = escape(title or "demand")
    head = (
        f'<svg xmlns="{SVG_NS}" class="sparkline" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{label}"><title>{label}</title>'
    )
    if not known:
        mid = height / 2
        return (
            f'{head}<line x1="0" y1="{mid}" x2="{width}" y2="{mid}" stroke="{NONE_COLOUR}" stroke-dasharray="3 3"/>'
            "</svg>"
        )
    low, high = _value_range(known)
    pad = 2
    step = (width - 2 * pad) / max(1, len(values) - 1)

    def y(value: float) -> float:
        return pad + (high - value) / (high - low) * (height - 2 * pad)

    points = [None if v is None else (pad + i * step, y(v)) for i, v in enumerate(values)]
    zero = ""
    if low < 0:
        zero = f'<line x1="0" y1="{_fmt(y(0))}" x2="{width}" y2="{_fmt(y(0))}" stroke="{NONE_COLOUR}"/>'
    last = next((p for p in reversed(points) if p is not None), None)
    dot = f'<circle cx="{_fmt(last[0])}" cy="{_fmt(last[1])}" r="2" fill="{LINE_COLOUR}"/>' if last else ""
    return (
        f'{head}{zero}<path d="{_path(points)}" fill="none" stroke="{LINE_COLOUR}" stroke-width="1.25" '
        f'stroke-linejoin="round"/>{dot}</svg>'
    )


def coverage_colour(fraction: float | None) -> str:
    if fraction is None:
        return NONE_COLOUR
    if fraction >= 0.95:
        return OK_COLOUR
    if fraction >= 0.5:
        return WARN_COLOUR
    return BAD_COLOUR


def coverage_strip_svg(cells: Sequence[CoverageCell], cell_width: int = 6, height: int = 14) -> str:
    """One coloured cell per hour: green >= 95 % of the expected readings, amber >= 50 %, red below, grey none."""
    width = len(cells) * cell_width
    rects = []
    for i, cell in enumerate(cells):
        if cell.ok_lines is None:
            text = f"{cell.hour:%Y-%m-%d %H}:00 UTC: no data"
        else:
            text = (
                f"{cell.hour:%Y-%m-%d %H}:00 UTC: {cell.ok_lines} readings of {cell.expected} expected "
                f"({cell.lines} lines, from {cell.source})"
            )
        rects.append(
            f'<rect x="{i * cell_width}" y="0" width="{cell_width - 1}" height="{height}" '
            f'fill="{coverage_colour(cell.fraction)}"><title>{escape(text)}</title></rect>'
        )
    covered = [c.fraction for c in cells if c.fraction is not None]
    summary = f"coverage of the last {len(cells)} hours" + (
        f": {100 * sum(covered) / len(cells):.0f} % on average" if covered else ": no data"
    )
    return (
        f'<svg xmlns="{SVG_NS}" class="coverage" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(summary)}"><title>{escape(summary)}</title>{"".join(rects)}</svg>'
    )


def _nice_step(span: float, ticks: int = 4) -> float:
    raw = span / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def demand_chart_svg(
    polls: Sequence[Poll], start: datetime, end: datetime, width: int = 760, height: int = 240, title: str = ""
) -> str:
    """The household admin's chart: demand over a few hours with axes, hour ticks in UTC, gaps where no reading
    arrived, and a red tick under every failed poll."""
    left, right, top, bottom = 52, 12, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    t0, t1 = start.timestamp(), end.timestamp()
    buckets = max(1, plot_w // 2)
    values = bucket_means(polls, t0, t1, buckets)
    known = [v for v in values if v is not None]
    low, high = _value_range(known)
    step = _nice_step(high - low)
    low, high = math.floor(low / step) * step, math.ceil(high / step) * step

    def x(t: float) -> float:
        return left + (t - t0) / (t1 - t0) * plot_w

    def y(value: float) -> float:
        return top + (high - value) / (high - low) * plot_h

    label = escape(title or f"demand from {start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC")
    parts = [
        f'<svg xmlns="{SVG_NS}" class="demand-chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{label}" font-family="sans-serif" font-size="11">',
        f"<title>{label}</title>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#f6f8fa"/>',
    ]
    tick = low
    while tick <= high + step / 2:
        ty = _fmt(y(tick))
        parts.append(f'<line x1="{left}" y1="{ty}" x2="{left + plot_w}" y2="{ty}" stroke="#d8dee4"/>')
        parts.append(f'<text x="{left - 6}" y="{ty}" text-anchor="end" dominant-baseline="middle">{tick:g}</text>')
        tick += step
    if low < 0 < high:
        parts.append(f'<line x1="{left}" y1="{_fmt(y(0))}" x2="{left + plot_w}" y2="{_fmt(y(0))}" stroke="#57606a"/>')
    parts.append(
        f'<text x="12" y="{top + plot_h / 2}" transform="rotate(-90 12 {top + plot_h / 2})" '
        'text-anchor="middle">kW</text>'
    )
    hour = hour_start(start)
    if hour < start:
        hour += HOUR
    # An hour label is about 30 px wide: over a long span (a whole day) only every second or third hour is named.
    label_every = max(1, math.ceil((t1 - t0) / 3600 * _HOUR_LABEL_SPACING / plot_w))
    while hour <= end:
        hx = _fmt(x(hour.timestamp()))
        parts.append(f'<line x1="{hx}" y1="{top}" x2="{hx}" y2="{top + plot_h}" stroke="#d8dee4"/>')
        named = hour.hour % label_every == 0
        if named and x(hour.timestamp()) < left + plot_w - _UTC_LABEL_CLEARANCE:  # never print over "UTC"
            parts.append(f'<text x="{hx}" y="{height - 8}" text-anchor="middle">{hour:%H}:00</text>')
        hour += HOUR
    points = [None if v is None else (left + (i + 0.5) * plot_w / buckets, y(v)) for i, v in enumerate(values)]
    parts.append(f'<path d="{_path(points)}" fill="none" stroke="{LINE_COLOUR}" stroke-width="1.5"/>')
    failed = sorted({round(x(p.t)) for p in polls if not p.ok and t0 <= p.t < t1})
    if failed:
        marks = " ".join(f"M{fx} {top + plot_h - 5}v5" for fx in failed)
        parts.append(f'<path class="failed-polls" d="{marks}" stroke="{BAD_COLOUR}"><title>failed polls</title></path>')
    if not known:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" fill="#57606a">'
            "no readings in this period</text>"
        )
    parts.append(f'<text x="{left + plot_w}" y="{height - 8}" text-anchor="end" fill="#57606a">UTC</text></svg>')
    return "".join(parts)


def sparkline_for(cloud_id: str, now: datetime, log_root: Path | None = None, minutes: int = 60) -> str:
    """The last `minutes` of demand for the status page, in one-minute slices, from local files only."""
    start = now - timedelta(minutes=minutes)
    polls = local_polls(Path(log_root or settings.LOG_ROOT), cloud_id, start, now)
    values = bucket_means(polls, start.timestamp(), now.timestamp(), minutes)
    known = [v for v in values if v is not None]
    title = f"demand, last {minutes} min" + (
        f": {min(known):.2f} to {max(known):.2f} kW, now {known[-1]:.2f} kW" if known else ": no readings on disk"
    )
    return sparkline_svg(values, title=title)


def day_chart_for(cloud_id: str, day: date) -> str:
    """The household admin page's chart of one whole UTC day, from the archive and the local files together."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    polls = household_polls(Path(settings.LOG_ROOT), cloud_id, start, end)
    return demand_chart_svg(polls, start, end, title=f"demand of {cloud_id} on {day:%Y-%m-%d} (UTC)")


def admin_chart_for(cloud_id: str, now: datetime | None = None, hours: int | None = None) -> str:
    """The household admin page's chart of the last ADMIN_CHART_HOURS hours (local files, then the archive)."""
    now = now or datetime.now(UTC)
    hours = hours or settings.ADMIN_CHART_HOURS
    start = now - timedelta(hours=hours)
    polls = household_polls(Path(settings.LOG_ROOT), cloud_id, start, now)
    return demand_chart_svg(polls, start, now, title=f"demand of {cloud_id}, last {hours} hours (UTC)")
