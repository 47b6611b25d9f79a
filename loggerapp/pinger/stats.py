"""Per-household statistics: accumulated in memory, written to HouseholdStats in batches.

Decisions:
1. Never one query per poll. Outcomes are folded into a small delta per household; a flush thread writes all
   deltas every few seconds with one ``UPDATE ... FROM (VALUES ...)`` per 1,000 households.
2. ``total_events_logged`` counts readings actually written to an hour file (success lines), and is
   incremented in SQL (``total + delta``): the pinger never writes back a total it read earlier, so an import
   or a second pinger adding to the same row is never overwritten with a stale number.
3. ``first_timestamp`` is set only while it is null; ``last_timestamp`` is the poll time of the newest written
   reading. Both are poll times (our clock), not the meter's.
4. ``status``, ``consecutive_failures``, ``last_poll_at`` describe the latest poll; ``last_error*`` the latest
   failure (kept after recovery, as history); ``last_demand_kw``/``last_meter_time`` the latest reading.
5. A failed flush (database down) keeps the deltas: they are merged back under any newer ones and written by
   the next flush, so counts are never lost, only late. The outage is logged once, and its end once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction

from loggerapp.models import Status

FLUSH_CHUNK = 1000  # rows per statement: 13 parameters each stays far below PostgreSQL's 65,535


@dataclass(slots=True)
class HouseholdDelta:
    """What changed for one household since the last flush (None: unchanged)."""

    events: int = 0
    first_event_at: float | None = None
    last_event_at: float | None = None
    status: str | None = None
    last_poll_at: float | None = None
    consecutive_failures: int | None = None
    last_demand_kw: float | None = None
    last_meter_time: int | None = None
    last_error_kind: str | None = None
    last_error: str | None = None
    last_error_at: float | None = None

    def absorb_older(self, older: HouseholdDelta) -> None:
        """Merge a delta recorded before this one (an unflushed batch put back): counts add up, the earliest
        first time wins, and every "latest" value of this (newer) delta wins where it is set."""
        self.events += older.events
        if older.first_event_at is not None and (
            self.first_event_at is None or older.first_event_at < self.first_event_at
        ):
            self.first_event_at = older.first_event_at
        if self.last_event_at is None:
            self.last_event_at = older.last_event_at
        if self.status is None:
            self.status = older.status
            self.last_poll_at = older.last_poll_at
            self.consecutive_failures = older.consecutive_failures
        if self.last_demand_kw is None and self.last_meter_time is None:
            self.last_demand_kw = older.last_demand_kw
            self.last_meter_time = older.last_meter_time
        if self.last_error_at is None:
            self.last_error_kind = older.last_error_kind
            self.last_error = older.last_error
            self.last_error_at = older.last_error_at


class StatsAccumulator:
    """Thread-safe: the event loop records outcomes, the writer thread records written readings, the flush
    thread takes batches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deltas: dict[int, HouseholdDelta] = {}

    def __len__(self) -> int:
        return len(self._deltas)

    def _delta(self, household_id: int) -> HouseholdDelta:
        delta = self._deltas.get(household_id)
        if delta is None:
            delta = self._deltas[household_id] = HouseholdDelta()
        return delta

    def record_success(
        self, household_id: int, poll_time: float, demand_kw: float | None, meter_time: int | None
    ) -> None:
        with self._lock:
            delta = self._delta(household_id)
            delta.status = Status.OK.value
            delta.last_poll_at = poll_time
            delta.consecutive_failures = 0
            delta.last_demand_kw = demand_kw
            delta.last_meter_time = meter_time

    def record_failure(
        self, household_id: int, poll_time: float, kind: str, message: str, consecutive_failures: int
    ) -> None:
        with self._lock:
            delta = self._delta(household_id)
            delta.status = str(kind)
            delta.last_poll_at = poll_time
            delta.consecutive_failures = consecutive_failures
            delta.last_error_kind = kind
            delta.last_error = message[:2000]
            delta.last_error_at = poll_time

    def record_written(self, household_id: int, poll_time: float) -> None:
        """A reading reached its hour file."""
        with self._lock:
            delta = self._delta(household_id)
            delta.events += 1
            if delta.first_event_at is None or poll_time < delta.first_event_at:
                delta.first_event_at = poll_time
            if delta.last_event_at is None or poll_time > delta.last_event_at:
                delta.last_event_at = poll_time

    def take(self) -> dict[int, HouseholdDelta]:
        with self._lock:
            deltas, self._deltas = self._deltas, {}
        return deltas

    def put_back(self, deltas: dict[int, HouseholdDelta]) -> None:
        """Return a batch that could not be written; newer deltas recorded meanwhile keep precedence."""
        with self._lock:
            for household_id, older in deltas.items():
                current = self._deltas.get(household_id)
                if current is None:
                    self._deltas[household_id] = older
                else:
                    current.absorb_older(older)


_COLUMNS = [
    ("household_id", "bigint"),
    ("events", "bigint"),
    ("first_ts", "timestamptz"),
    ("last_ts", "timestamptz"),
    ("status", "varchar"),
    ("last_poll_at", "timestamptz"),
    ("consecutive_failures", "integer"),
    ("demand", "double precision"),
    ("meter_time", "timestamptz"),
    ("error_kind", "varchar"),
    ("error", "text"),
    ("error_at", "timestamptz"),
    ("has_reading", "integer"),
]

# Every SET keeps the stored value where the batch has nothing to say. Written so that the same text runs on
# PostgreSQL and SQLite (the embedded default): COALESCE and CASE only, a CTE for the VALUES' column names.
_SET = """
    total_events_logged = s.total_events_logged + v.events,
    first_timestamp = COALESCE(s.first_timestamp, v.first_ts),
    last_timestamp = COALESCE(v.last_ts, s.last_timestamp),
    status = COALESCE(v.status, s.status),
    last_poll_at = COALESCE(v.last_poll_at, s.last_poll_at),
    consecutive_failures = COALESCE(v.consecutive_failures, s.consecutive_failures),
    last_demand_kw = CASE WHEN v.has_reading = 1 THEN v.demand ELSE s.last_demand_kw END,
    last_meter_time = CASE WHEN v.has_reading = 1 THEN v.meter_time ELSE s.last_meter_time END,
    last_error_kind = COALESCE(v.error_kind, s.last_error_kind),
    last_error = COALESCE(v.error, s.last_error),
    last_error_at = COALESCE(v.error_at, s.last_error_at),
    updated = %s
"""


def _placeholder(sql_type: str) -> str:
    # PostgreSQL cannot infer the type of a NULL in VALUES; SQLite has no such casts (and needs none).
    return f"%s::{sql_type}" if connection.vendor == "postgresql" else "%s"


def _when(seconds: float | None) -> Any:
    if seconds is None:
        return None
    return connection.ops.adapt_datetimefield_value(datetime.fromtimestamp(seconds, UTC))


def _row(household_id: int, delta: HouseholdDelta) -> list[Any]:
    has_reading = delta.status == Status.OK or delta.last_meter_time is not None or delta.last_demand_kw is not None
    return [
        household_id,
        delta.events,
        _when(delta.first_event_at),
        _when(delta.last_event_at),
        delta.status,
        _when(delta.last_poll_at),
        delta.consecutive_failures,
        delta.last_demand_kw,
        _when(delta.last_meter_time),
        delta.last_error_kind,
        delta.last_error,
        _when(delta.last_error_at),
        1 if has_reading else 0,
    ]


def write_deltas(deltas: dict[int, HouseholdDelta], now: datetime | None = None) -> int:
    """Apply a batch to HouseholdStats in one transaction; returns the rows updated.

    Rows of households deleted meanwhile simply match nothing. Stats rows are created by the registry when it
    loads a household, so this only ever updates.
    """
    if not deltas:
        return 0
    from loggerapp.models import HouseholdStats

    table = connection.ops.quote_name(HouseholdStats._meta.db_table)
    names = ", ".join(name for name, _ in _COLUMNS)
    row_sql = "(" + ", ".join(_placeholder(sql_type) for _, sql_type in _COLUMNS) + ")"
    updated_at = connection.ops.adapt_datetimefield_value(now or datetime.now(UTC))
    items = list(deltas.items())
    updated = 0
    with transaction.atomic():
        with connection.cursor() as cursor:
            for start in range(0, len(items), FLUSH_CHUNK):
                chunk = items[start : start + FLUSH_CHUNK]
                if connection.vendor == "postgresql":
                    cursor.execute(*_array_update(table, names, chunk, updated_at))
                    updated += max(cursor.rowcount, 0)
                    continue
                params: list = []
                for household_id, delta in chunk:
                    params.extend(_row(household_id, delta))
                params.append(updated_at)
                sql = (
                    f"WITH v({names}) AS (VALUES {', '.join([row_sql] * len(chunk))}) "  # noqa: S608 (no user input)
                    f"UPDATE {table} AS s SET {_SET} FROM v WHERE s.household_id = v.household_id"
                )
                cursor.execute(sql, params)
                updated += max(cursor.rowcount, 0)
    return updated


def _array_update(table: str, names: str, items: list[tuple[int, HouseholdDelta]], updated_at: Any) -> tuple:
    """PostgreSQL: a chunk as 13 array parameters unnested into rows, in one short statement.

    Why not VALUES there too: psycopg scans a statement's text for its placeholders on every execute (a long
    text is not cached), and 13 placeholders a household made that scan the pinger's largest cost after the
    HTTP requests themselves (14 % of the process's samples at 5,000 households; docs/pinger.md)."""
    rows = (_row(household_id, delta) for household_id, delta in items)
    columns = [list(column) for column in zip(*rows, strict=True)]
    arrays = ", ".join(f"%s::{sql_type}[]" for _, sql_type in _COLUMNS)
    sql = (
        f"WITH v({names}) AS (SELECT * FROM unnest({arrays})) "  # noqa: S608 (no user input)
        f"UPDATE {table} AS s SET {_SET} FROM v WHERE s.household_id = v.household_id"
    )
    return sql, [*columns, updated_at]


def ensure_stats_rows(household_ids: Iterable[int]) -> None:
    """Create missing HouseholdStats rows (households added in the admin or by a script)."""
    from loggerapp.models import HouseholdStats

    rows = [HouseholdStats(household_id=household_id) for household_id in household_ids]
    if rows:
        HouseholdStats.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
