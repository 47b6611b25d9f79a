"""The staff status page: one row per household, problems first, with a coverage strip and a sparkline.

Staying fast with 5,000 households:
1. Ranking (problem / fine / inactive) is computed by the database (a CASE annotation) so that sorting and
   paging never load every household into Python.
2. Only one page of rows (STATUS_PAGE_SIZE, default 100) is drawn. Problems sort first, so page 1 always holds
   the households that need attention; `?problems=1` lists only those.
3. A sparkline reads only the current hour's file and the tail of the previous one (hourfiles.reading); the
   coverage strip takes uploaded hours from one ledger query and counts lines of local files once per file
   version. Both drawings are cached per household for STATUS_CHART_CACHE_SECONDS, shorter than the page's
   auto-refresh, so a page left open on a wall screen costs one drawing per household per refresh at most.
4. The header's "files waiting" and "uploads failed" come from the same count as the uploads alert
   (rotation.backlog), taken at the end of the last finished hour instead of the alert's deadline: the page can
   never say fewer files wait than the alert says are overdue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.paginator import Page, Paginator
from django.db.models import Case, Count, IntegerField, Q, QuerySet, Value, When
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince

from loggerapp.fleet.ops import members as fleet_members
from loggerapp.hourfiles.layout import DEMAND, HOUR, hour_file_path, hour_start
from loggerapp.hourfiles.lines import expected_lines
from loggerapp.hourfiles.reading import count_file_lines
from loggerapp.models import AlertState, HourFile, Household, Status
from loggerapp.ops import charts
from loggerapp.ops.charts import CoverageCell
from loggerapp.ops.health import HealthReport, run_health_checks
from loggerapp.rotation.backlog import upload_backlog

RANK_PROBLEM, RANK_FINE, RANK_INACTIVE = 0, 1, 2
ERROR_STATUSES = [Status.UNREACHABLE, Status.BAD_CREDENTIALS, Status.METER_NOT_JOINED, Status.BAD_RESPONSE]
CACHE_PREFIX = "iseif:ops:status-charts:"


def silent_q(now: datetime) -> Q:
    """Households without a successful reading for ALERT_SILENCE_MINUTES. The one definition used by the status
    page, the alerts and /metrics. A household never polled yet gets that long from its creation to be read for
    the first time, whatever last_timestamp an import brought along from the old logger (years old, it would
    otherwise alert at once); after its first poll, its last successful reading counts."""
    cutoff = now - timedelta(minutes=settings.ALERT_SILENCE_MINUTES)
    polled = Q(stats__status__in=[status for status in Status.values if status != Status.NEVER_POLLED])
    not_read_since = Q(stats__last_timestamp__lt=cutoff) | Q(stats__last_timestamp__isnull=True, created__lt=cutoff)
    return (polled & not_read_since) | (~polled & Q(created__lt=cutoff))


def problem_q(now: datetime) -> Q:
    """Active households that need attention: an error status, or silent (see silent_q)."""
    return Q(active=True) & (Q(stats__status__in=ERROR_STATUSES) | silent_q(now))


def ranked_households(now: datetime) -> QuerySet[Household]:
    return (
        Household.objects.select_related("stats")
        .annotate(
            rank=Case(
                When(problem_q(now), then=Value(RANK_PROBLEM)),
                When(active=True, then=Value(RANK_FINE)),
                default=Value(RANK_INACTIVE),
                output_field=IntegerField(),
            )
        )
        .order_by("rank", "cloud_id")
    )


@dataclass
class StatusRow:
    cloud_id: str
    label: str
    active: bool
    status: str
    status_label: str
    problem: str  # why it needs attention; "" when it does not
    age_seconds: float | None
    age_text: str
    events: int
    last_demand_kw: float | None
    last_error_kind: str
    admin_url: str
    coverage_svg: str = ""
    sparkline_svg: str = ""


@dataclass
class StatusPage:
    rows: list[StatusRow]
    page: Page
    generated_at: datetime
    health: HealthReport
    summary: dict[str, Any] = field(default_factory=dict)
    problems_only: bool = False
    query: str = ""
    refresh_seconds: int = 30


def _row(household: Household, now: datetime) -> StatusRow:
    stats = getattr(household, "stats", None)
    status = Status(stats.status) if stats else Status.NEVER_POLLED
    last = stats.last_timestamp if stats else None
    age = (now - last).total_seconds() if last else None
    problem = ""
    if household.rank == RANK_PROBLEM:
        # The badge already says the status; the reason says how long or how often.
        if last is None:
            problem = "never read"
        elif age is not None and age > settings.ALERT_SILENCE_MINUTES * 60:
            problem = f"no reading for {timesince(last, now)}"
        else:
            failures = stats.consecutive_failures if stats else 0
            problem = f"last poll failed ({failures} in a row)" if failures > 1 else "last poll failed"
    return StatusRow(
        cloud_id=household.cloud_id,
        label=household.label,
        active=household.active,
        status=status.value,
        status_label=status.label,
        problem=problem,
        age_seconds=age,
        age_text=(timesince(last, now) + " ago") if last else "never",
        events=stats.total_events_logged if stats else 0,
        last_demand_kw=stats.last_demand_kw if stats else None,
        last_error_kind=stats.last_error_kind if stats else "",
        admin_url=reverse("admin:loggerapp_household_change", args=[household.pk]),
    )


def coverage_cells(
    cloud_ids: Sequence[str], now: datetime, hours: int = 24, log_root: Path | None = None
) -> dict[str, list[CoverageCell]]:
    """Per household, one cell per hour of the last `hours` (oldest first), the current hour last.

    Uploaded hours come from the ledger (one query for all the households, served by the unique index on
    cloud_id + hour); the other hours are counted on disk (cached per file version, see count_file_lines).
    """
    log_root = Path(log_root or settings.LOG_ROOT)
    current = hour_start(now)
    wanted = [current - h * HOUR for h in range(hours - 1, -1, -1)]
    ledger: dict[tuple[str, datetime], HourFile] = {}
    if cloud_ids:
        for row in HourFile.objects.filter(cloud_id__in=list(cloud_ids), hour__gte=wanted[0], kind=DEMAND).only(
            "cloud_id", "hour", "lines", "ok_lines", "state"
        ):
            ledger[(row.cloud_id, row.hour)] = row
    result: dict[str, list[CoverageCell]] = {}
    for cloud_id in cloud_ids:
        cells = []
        for hour in wanted:
            expected = expected_lines(hour, now)
            row = ledger.get((cloud_id, hour))
            if row is not None and row.state == HourFile.State.UPLOADED:
                cells.append(CoverageCell(hour, row.lines, row.ok_lines, expected, "ledger"))
                continue
            counted = count_file_lines(hour_file_path(log_root, cloud_id, hour))
            if counted is not None:
                cells.append(CoverageCell(hour, counted.lines, counted.readings, expected, "disk"))
            elif row is not None and row.lines:
                cells.append(CoverageCell(hour, row.lines, row.ok_lines, expected, "ledger"))
            else:
                cells.append(CoverageCell(hour, None, None, expected, "none"))
        result[cloud_id] = cells
    return result


def attach_charts(rows: list[StatusRow], now: datetime) -> None:
    """Fill in the coverage strip and sparkline of each row, from the cache where possible."""
    keys = {row.cloud_id: f"{CACHE_PREFIX}{row.cloud_id}" for row in rows}
    cached = cache.get_many(list(keys.values()))
    missing = [row.cloud_id for row in rows if keys[row.cloud_id] not in cached]
    fresh: dict[str, dict[str, str]] = {}
    if missing:
        strips = coverage_cells(missing, now)
        for cloud_id in missing:
            fresh[keys[cloud_id]] = {
                "coverage": charts.coverage_strip_svg(strips[cloud_id]),
                "sparkline": charts.sparkline_for(cloud_id, now),
            }
        cache.set_many(fresh, timeout=settings.STATUS_CHART_CACHE_SECONDS)
    for row in rows:
        drawn = cached.get(keys[row.cloud_id]) or fresh[keys[row.cloud_id]]
        row.coverage_svg = mark_safe(drawn["coverage"])  # noqa: S308 (built by charts.py, every text escaped)
        row.sparkline_svg = mark_safe(drawn["sparkline"])  # noqa: S308


def summary(now: datetime) -> dict[str, Any]:
    """Counts for the page's header: households by status, problems, uploads waiting, alerts firing."""
    by_status = {status.value: 0 for status in Status}
    for row in Household.objects.filter(active=True).order_by().values("stats__status").annotate(n=Count("pk")):
        by_status[row["stats__status"] or Status.NEVER_POLLED] += row["n"]
    backlog = upload_backlog(before=hour_start(now))  # every finished hour (point 4 of the module docstring)
    return {
        "active": sum(by_status.values()),
        "inactive": Household.objects.filter(active=False).count(),
        "by_status": [(Status(value).label, value, n) for value, n in by_status.items()],
        "problems": Household.objects.filter(problem_q(now)).count(),
        "pending_files": backlog.waiting,
        "failed_files": backlog.failed,
        "alerts": list(AlertState.objects.filter(firing=True).order_by("since").values("key", "since", "message")),
        "fleet": fleet_members(),
    }


def build_status_page(
    page_number: int | str = 1,
    per_page: int | None = None,
    problems_only: bool = False,
    query: str = "",
    now: datetime | None = None,
) -> StatusPage:
    now = now or timezone.now()
    households = ranked_households(now)
    if problems_only:
        households = households.filter(rank=RANK_PROBLEM)
    query = query.strip()
    if query:
        households = households.filter(Q(cloud_id__icontains=query) | Q(label__icontains=query))
    paginator = Paginator(households, per_page or settings.STATUS_PAGE_SIZE)
    page = paginator.get_page(page_number)
    rows = [_row(household, now) for household in page.object_list]
    attach_charts(rows, now)
    return StatusPage(
        rows=rows,
        page=page,
        generated_at=now,
        health=run_health_checks(now),
        summary=summary(now),
        problems_only=problems_only,
        query=query,
        refresh_seconds=settings.STATUS_REFRESH_SECONDS,
    )
