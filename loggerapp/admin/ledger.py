"""The admin for the upload ledger: every hour file, its state, and per household which hours are complete.

Registered with the admin site when the loggerapp.admin package is imported. ``HourFileInline`` (recent hours
on a household's page) and ``hour_coverage_strip`` (a one-line picture of the last days) are for the household
admin; ``hours_for_household`` is the same information as data. Everything here is read-only, deleting
included: the ledger is written by the upload job alone. "Merged" is a fact about an upload, not a verdict, so
it is shown as text rather than Django's green tick and red cross.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from loggerapp.models import HourFile, Household
from loggerapp.rotation.ledger import MISSING, HourCoverage, household_hours

LEDGER_FIELDS = [
    "household",
    "cloud_id",
    "hour",
    "kind",
    "state",
    "reason",
    "lines",
    "ok_lines",
    "coverage_shown",
    "bytes",
    "stored_bytes",
    "sha256",
    "key",
    "merged_shown",
    "attempts",
    "claimed_by",
    "claimed_at",
    "uploaded_at",
    "created",
    "updated",
]


class _Coverage:
    @admin.display(description="coverage")
    def coverage_shown(self, row: HourFile) -> str:
        """Readings out of the 600 expected in the hour, as a percentage (demand files only: the price file's
        polls have their own cadence)."""
        if row.kind != "demand":
            return "-"
        return f"{row.coverage:.0%}"

    @admin.display(description="merged", ordering="merged")
    def merged_shown(self, row: HourFile) -> str:
        return "yes" if row.merged else "no"


@admin.register(HourFile)
class HourFileAdmin(_Coverage, admin.ModelAdmin):
    list_display = [
        "cloud_id",
        "hour",
        "kind",
        "state",
        "lines",
        "coverage_shown",
        "bytes",
        "attempts",
        "merged_shown",
        "uploaded_at",
        "reason_short",
    ]
    list_filter = ["state", "kind", "merged", ("hour", admin.DateFieldListFilter)]
    date_hierarchy = "hour"
    search_fields = ["cloud_id", "household__label", "key"]
    list_select_related = ["household"]
    fields = LEDGER_FIELDS
    readonly_fields = LEDGER_FIELDS
    list_per_page = 200

    @admin.display(description="reason")
    def reason_short(self, row: HourFile) -> str:
        return row.reason if len(row.reason) <= 80 else row.reason[:79] + "…"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: HourFile | None = None) -> bool:
        return False  # view only: the upload job is the ledger's only writer

    def has_delete_permission(self, request: HttpRequest, obj: HourFile | None = None) -> bool:
        return False  # a deleted row would make an uploaded hour look missing (and be uploaded again)


class HourFileInline(_Coverage, admin.TabularInline):
    """The household's hour files of the last ``days`` days, newest first (for the household admin)."""

    model = HourFile
    fk_name = "household"
    days = 2
    fields = ["hour", "kind", "state", "lines", "ok_lines", "coverage_shown", "attempts", "uploaded_at", "reason"]
    readonly_fields = fields
    ordering = ["-hour"]
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = f"hour files (last {days * 24} hours)"

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).filter(hour__gte=timezone.now() - timedelta(days=self.days))

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def hours_for_household(household: Household, days: int = 7, now: datetime | None = None) -> list[HourCoverage]:
    """Every finished hour of the last ``days`` days, newest first: complete (uploaded) or not, with coverage.

    Hours without any file are included as "missing", because that is the gap researchers look for.
    """
    return household_hours(household.cloud_id, days=days, now=now)


_COLOURS = {
    HourFile.State.UPLOADED: "#2e7d32",
    HourFile.State.PENDING: "#9e9e9e",
    HourFile.State.UPLOADING: "#1565c0",
    HourFile.State.FAILED: "#c62828",
    MISSING: "#eeeeee",
}
_BOX_WIDTH, _BOX_GAP, _STRIP_HEIGHT = 6, 1, 16


def hour_coverage_strip(household: Household, days: int = 2, now: datetime | None = None) -> SafeString:
    """One small box per hour, oldest left: colour = state, height = coverage; the title says both (UTC).

    SVG rather than styled spans: presentation attributes are not inline styles, so the strip needs no
    'unsafe-inline' in the Content-Security-Policy.
    """
    hours = list(reversed(hours_for_household(household, days=days, now=now)))
    step = _BOX_WIDTH + _BOX_GAP
    boxes = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{} UTC: {}, {} of 600 readings</title></rect>',
        (
            (
                index * step,
                _STRIP_HEIGHT - (height := 4 + round(12 * h.coverage)),
                _BOX_WIDTH,
                height,
                _COLOURS.get(h.state, "#9e9e9e"),
                f"{h.hour:%Y-%m-%d %H}:00",
                h.state,
                h.ok_lines,
            )
            for index, h in enumerate(hours)
        ),
    )
    complete = sum(1 for h in hours if h.complete)
    width = max(1, len(hours) * step)
    return format_html(
        '<div><svg xmlns="http://www.w3.org/2000/svg" class="hour-strip" width="{}" height="{}" viewBox="0 0 {} {}" '
        'role="img" aria-label="hours uploaded">{}</svg></div><small>{} of {} hours complete</small>',
        width,
        _STRIP_HEIGHT,
        width,
        _STRIP_HEIGHT,
        boxes,
        complete,
        len(hours),
    )
