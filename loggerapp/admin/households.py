"""The household admin: add, edit, search, filter; status first; activate, deactivate, test connection now,
download readings (loggerapp/admin/downloads.py); a demand chart of the last hours or of any chosen day.

The password is write-only: the form never renders it, and a blank field on edit keeps the stored one, except
when the protocol, address, HTTPS or cloud id change: the model then refuses the edit until the password is
entered again, so a stored password is never sent to a gateway it was not saved for (loggerapp/models/household.py).
Staff see a failed poll's own text here (the API shows only its kind).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.timesince import timesince

from loggerapp.admin.downloads import DownloadReadingsForm, readings_download
from loggerapp.admin.ledger import HourFileInline, hour_coverage_strip
from loggerapp.admin.prices import household_price_and_energy
from loggerapp.hourfiles.archived import ArchiveReadError
from loggerapp.live import MAX_CONCURRENT, LiveRead, deadline_in, live_reads
from loggerapp.models import Household, HouseholdStats, Status


def utc_text(moment: datetime | None) -> str:
    """A time as staff read it everywhere in the admin: UTC, 24-hour, with the zone said."""
    if moment is None:
        return "—"
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


class HouseholdForm(forms.ModelForm):
    password = forms.CharField(
        label="Password or install code",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: it is encrypted when saved and never shown again. Leave blank to keep the stored "
        "one; after a change of protocol, address, HTTPS or cloud id it must be entered again.",
    )

    class Meta:
        model = Household
        fields = [
            "cloud_id",
            "label",
            "protocol",
            "user_email",
            "password",
            "address",
            "https",
            "meter_address",
            "active",
            "notes",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.initial.pop("password", None)  # never send the stored password to the browser

    def clean_cloud_id(self) -> str:
        return self.cleaned_data["cloud_id"].strip().lower()

    def clean(self) -> dict:
        cleaned = super().clean()
        if not cleaned.get("password"):
            # Blank means "keep": the instance's password is then never assigned, so the model can tell a kept
            # password from a re-entered one when the connection changes (Household.clean).
            cleaned.pop("password", None)
            if self.instance.pk is None:
                self.add_error("password", "A new household needs its EAGLE password or install code.")
        return cleaned


class StatsInline(admin.StackedInline):
    model = HouseholdStats
    can_delete = False
    extra = 0
    max_num = 1
    verbose_name = verbose_name_plural = "logging statistics (written by the pinger)"
    readonly_fields = [
        "status",
        "total_events_logged",
        "first_timestamp",
        "last_timestamp",
        "last_demand_kw",
        "last_meter_time",
        "last_poll_at",
        "consecutive_failures",
        "last_error_kind",
        "last_error",
        "last_error_at",
    ]
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return Status.choices

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if value == Status.NEVER_POLLED:
            # A household without a stats row has never been polled either.
            return queryset.filter(stats__status=value) | queryset.filter(stats__isnull=True)
        return queryset.filter(stats__status=value)


def _stats(household: Household) -> HouseholdStats | None:
    try:
        return household.stats
    except HouseholdStats.DoesNotExist:
        return None


def _status(household: Household) -> Status:
    stats = _stats(household)
    return Status(stats.status) if stats else Status.NEVER_POLLED


def status_badge_html(status: Status) -> SafeString:
    """The status in its colour (loggerapp/static/loggerapp/admin.css), as a class: no inline style (CSP)."""
    return format_html('<span class="status-badge status-{}">{}</span>', status.value, status.label)


def describe(read: LiveRead) -> str:
    """One message per household read by "test connection now"; staff see the client's own error text."""
    if read.ok:
        reading = read.reading
        meter_time = utc_text(reading.meter_time) if reading.meter_time else "an unknown meter time"
        return f"{read.cloud_id}: ok, {reading.demand_kw:.3f} kW at {meter_time} ({reading.latency_s * 1000:.0f} ms)"
    kind = Status(read.error_kind).label if read.error_kind in Status.values else read.error_kind.replace("_", " ")
    return f"{read.cloud_id}: {kind}: {read.error_message}"


@admin.register(Household)
class HouseholdAdmin(admin.ModelAdmin):
    form = HouseholdForm
    inlines = [StatsInline, HourFileInline]
    list_display = [
        "cloud_id",
        "label",
        "protocol",
        "active",
        "status_badge",
        "last_reading",
        "reading_age",
        "events_logged",
    ]
    list_filter = [StatusFilter, "protocol", "active"]
    search_fields = ["cloud_id", "user_email", "label"]
    list_select_related = ["stats"]
    readonly_fields = ["status_summary", "price_and_energy", "created", "updated", "hours_complete"]
    actions = ["activate", "deactivate", "test_connection_now", "download_readings"]
    list_per_page = 100

    def get_fieldsets(self, request, obj=None):
        # The status comes first on an existing household's page: it is what staff open the page to see.
        return [
            *([("Status", {"fields": ["status_summary", "price_and_energy"]})] if obj else []),
            (None, {"fields": ["cloud_id", "label", "active", "notes"]}),
            ("Connection", {"fields": ["protocol", "user_email", "password", "address", "https", "meter_address"]}),
            ("Record", {"fields": ["created", "updated"]}),
            *([("Uploads, last 2 days", {"fields": ["hours_complete"]})] if obj else []),
        ]  # the demand chart follows the fieldsets (templates/admin/loggerapp/household/change_form.html)

    @admin.display(description="status")
    def status_summary(self, household: Household) -> SafeString:
        """Status, last reading and its age, and the last failure (with its own text: staff only)."""
        stats = _stats(household)
        parts = [status_badge_html(_status(household))]
        if stats is not None and stats.last_timestamp is not None:
            demand = f"{stats.last_demand_kw:.3f} kW" if stats.last_demand_kw is not None else "no demand"
            parts.append(
                format_html(
                    "last reading {} at {} ({} ago)",
                    demand,
                    utc_text(stats.last_timestamp),
                    timesince(stats.last_timestamp, timezone.now()),
                )
            )
        if stats is not None and stats.last_error_kind:
            parts.append(
                format_html(
                    "last failure at {}: {}, {} failure(s) in a row<br><small>{}</small>",
                    utc_text(stats.last_error_at),
                    stats.last_error_kind.replace("_", " "),
                    stats.consecutive_failures,
                    stats.last_error,
                )
            )
        return format_html('<div class="household-status">{}</div>', mark_safe(" · ".join(parts)))  # noqa: S308

    @admin.display(description="price and energy")
    def price_and_energy(self, household: Household) -> SafeString:
        """The latest price and the last 24 hours' energy, from the price hour files (loggerapp/admin/prices.py)."""
        return household_price_and_energy(household.cloud_id)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        """The page, with the demand chart of the last hours or of the day chosen with ?day=YYYY-MM-DD."""
        extra = dict(extra_context or {})
        household = self.get_object(request, object_id) if request.method == "GET" else None
        if household is not None:
            extra.update(demand_chart_context(household, request.GET.get("day", "")))
        return super().change_view(request, object_id, form_url, extra)

    @admin.display(description="hours uploaded (last 2 days)")
    def hours_complete(self, household: Household) -> str:
        return hour_coverage_strip(household, days=2)

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        HouseholdStats.objects.get_or_create(household=obj)

    @admin.display(description="status", ordering="stats__status")
    def status_badge(self, household: Household) -> str:
        return status_badge_html(_status(household))

    @admin.display(description="last reading", ordering="stats__last_demand_kw")
    def last_reading(self, household: Household) -> str:
        stats = _stats(household)
        if stats is None or stats.last_demand_kw is None:
            return "—"
        return f"{stats.last_demand_kw:.3f} kW"

    @admin.display(description="age", ordering="stats__last_timestamp")
    def reading_age(self, household: Household) -> str:
        stats = _stats(household)
        if stats is None or stats.last_timestamp is None:
            return "—"
        return timesince(stats.last_timestamp, timezone.now()) + " ago"

    @admin.display(description="events logged", ordering="stats__total_events_logged")
    def events_logged(self, household: Household) -> int:
        stats = _stats(household)
        return stats.total_events_logged if stats else 0

    @admin.action(description="Activate selected households", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Household]) -> None:
        count = queryset.update(active=True, updated=timezone.now())
        self.message_user(request, f"{count} household(s) activated.", messages.SUCCESS)

    @admin.action(description="Deactivate selected households", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Household]) -> None:
        count = queryset.update(active=False, updated=timezone.now())
        self.message_user(request, f"{count} household(s) deactivated.", messages.SUCCESS)

    @admin.action(description="Test connection now")
    def test_connection_now(self, request: HttpRequest, queryset: QuerySet[Household]) -> None:
        """Read the selected households side by side, all within one LIVE_READ_DEADLINE (loggerapp/live.py).

        At most MAX_CONCURRENT of them: a mis-click on "select all" must not become thousands of live reads.
        """
        selected = list(queryset.order_by("cloud_id")[: MAX_CONCURRENT + 1])
        for read in live_reads(selected[:MAX_CONCURRENT], deadline_in()):
            self.message_user(request, describe(read), messages.SUCCESS if read.ok else messages.ERROR)
        if len(selected) > MAX_CONCURRENT:
            self.message_user(
                request, f"Only the first {MAX_CONCURRENT} selected households were tested.", messages.WARNING
            )

    @admin.action(description="Download readings", permissions=["view"])
    def download_readings(self, request: HttpRequest, queryset: QuerySet[Household]) -> HttpResponse | None:
        """A form for the days and the format, then the file (loggerapp/admin/downloads.py)."""
        limit = settings.EXPORT_WEB_MAX_HOUSEHOLDS
        households = list(queryset.order_by("cloud_id")[: limit + 1])
        if len(households) > limit:
            self.message_user(
                request,
                f"At most {limit} households can be downloaded at once; for more use manage.py export_readings.",
                messages.ERROR,
            )
            return None
        today = datetime.now(UTC).date()
        form = DownloadReadingsForm(
            request.POST if "download" in request.POST else None,
            initial={"first_day": today - timedelta(days=6), "last_day": today, "format": "csv"},
        )
        if form.is_valid():
            cloud_ids = [household.cloud_id for household in households]
            span, fmt = form.cleaned_data["span"], form.cleaned_data["format"]
            try:
                return readings_download(cloud_ids, span, fmt, request.user)
            except ArchiveReadError as exc:
                self.message_user(request, f"The archive cannot be read right now: {exc}", messages.ERROR)
                return None
        return TemplateResponse(
            request,
            "admin/loggerapp/household/download_readings.html",
            {
                **self.admin_site.each_context(request),
                "title": "Download readings",
                "opts": self.model._meta,
                "households": households,
                "form": form,
                "max_days": settings.EXPORT_WEB_MAX_DAYS,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )


def demand_chart_context(household: Household, day_text: str) -> dict:
    """What the household page's chart section shows: the chosen UTC day, or the last ADMIN_CHART_HOURS hours."""
    from loggerapp.ops.charts import admin_chart_for, day_chart_for

    today = datetime.now(UTC).date()
    context: dict = {"demand_today": today.isoformat(), "demand_hours": settings.ADMIN_CHART_HOURS}
    day: date | None = None
    if day_text:
        try:
            day = date.fromisoformat(day_text.strip()[:10])
        except ValueError:
            context["demand_day_error"] = "That is not a date (YYYY-MM-DD); showing the last hours."
    if day is not None:
        context.update(
            demand_chart=mark_safe(day_chart_for(household.cloud_id, day)),  # noqa: S308 (charts.py escapes)
            demand_day=day.isoformat(),
            demand_previous=(day - timedelta(days=1)).isoformat(),
            demand_next=(day + timedelta(days=1)).isoformat() if day < today else None,
        )
    else:
        context.update(
            demand_chart=mark_safe(admin_chart_for(household.cloud_id)),  # noqa: S308 (charts.py escapes)
            demand_previous=today.isoformat(),
        )
    return context
