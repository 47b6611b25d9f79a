"""The researchers' admin: households, their statistics, and the actions staff need.

Replaces the old plaintext-password user API. The password is write-only: the form never renders it, and a
blank field on edit keeps the stored one.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince

from loggerapp import admin_tokens  # noqa: F401  (registers the API token admin)
from loggerapp.admin_ledger import HourFileInline, hour_coverage_strip  # also registers the ledger admin
from loggerapp.models import Household, HouseholdStats, Status
from loggerapp.services.connection_test import test_connection


class HouseholdForm(forms.ModelForm):
    password = forms.CharField(
        label="Password or install code",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: it is encrypted when saved and never shown again. Leave blank to keep the stored one.",
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
        is_new = self.instance.pk is None
        if is_new and not cleaned.get("password"):
            self.add_error("password", "A new household needs its EAGLE password or install code.")
        return cleaned

    def save(self, commit: bool = True) -> Household:
        new_password = self.cleaned_data.get("password")
        household = super().save(commit=False)
        if not new_password and household.pk is not None:
            # Blank means "keep": restore the stored value instead of overwriting it with "".
            household.password = Household.objects.only("password").get(pk=household.pk).password
        if commit:
            household.save()
        return household


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


_STATUS_COLOURS = {
    Status.OK: "#1a7f37",
    Status.NEVER_POLLED: "#6e7781",
    Status.UNREACHABLE: "#cf222e",
    Status.BAD_CREDENTIALS: "#bc4c00",
    Status.METER_NOT_JOINED: "#9a6700",
    Status.BAD_RESPONSE: "#8250df",
}


def _stats(household: Household) -> HouseholdStats | None:
    try:
        return household.stats
    except HouseholdStats.DoesNotExist:
        return None


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
    readonly_fields = ["created", "updated", "demand_chart", "hours_complete"]
    actions = ["activate", "deactivate", "test_connection_now"]
    list_per_page = 100

    def get_fieldsets(self, request, obj=None):
        return [
            (None, {"fields": ["cloud_id", "label", "active", "notes"]}),
            ("Connection", {"fields": ["protocol", "user_email", "password", "address", "meter_address"]}),
            ("Record", {"fields": ["created", "updated"]}),
            *([("Demand and uploads, last hours", {"fields": ["demand_chart", "hours_complete"]})] if obj else []),
        ]

    @admin.display(description="demand (UTC)")
    def demand_chart(self, household: Household) -> str:
        from loggerapp.ops.charts import admin_chart_for

        return mark_safe(admin_chart_for(household.cloud_id))  # noqa: S308 (charts.py escapes every text)

    @admin.display(description="hours uploaded (last 2 days)")
    def hours_complete(self, household: Household) -> str:
        return hour_coverage_strip(household, days=2)

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        HouseholdStats.objects.get_or_create(household=obj)

    @admin.display(description="status", ordering="stats__status")
    def status_badge(self, household: Household) -> str:
        stats = _stats(household)
        status = Status(stats.status) if stats else Status.NEVER_POLLED
        return format_html('<span style="color:{};font-weight:600">{}</span>', _STATUS_COLOURS[status], status.label)

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

    @admin.action(description="Activate selected households")
    def activate(self, request: HttpRequest, queryset: QuerySet[Household]) -> None:
        count = queryset.update(active=True, updated=timezone.now())
        self.message_user(request, f"{count} household(s) activated.", messages.SUCCESS)

    @admin.action(description="Deactivate selected households")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Household]) -> None:
        count = queryset.update(active=False, updated=timezone.now())
        self.message_user(request, f"{count} household(s) deactivated.", messages.SUCCESS)

    @admin.action(description="Test connection now")
    def test_connection_now(self, request: HttpRequest, queryset: QuerySet[Household]) -> None:
        for household in queryset[:20]:  # a live read each: keep a mis-click on "select all" bounded
            outcome = test_connection(household)
            self.message_user(request, outcome.message, messages.SUCCESS if outcome.ok else messages.ERROR)
        if queryset.count() > 20:
            self.message_user(request, "Only the first 20 selected households were tested.", messages.WARNING)
