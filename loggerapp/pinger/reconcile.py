"""Statistics that converge to the files: ``total_events_logged`` recounted from the archive and the disk.

The pinger counts written readings in memory and adds them to HouseholdStats every few seconds; a ``kill -9``
loses what was counted since the last flush (about half a reading per household), and without this the total
would stay short of the files for ever. At every start the pinger recounts, in a thread of its own while it
already polls, the readings written *before* this run (poll time before its start):

- per household and hour, the readings the archive holds (the upload ledger's ``ok_lines`` of uploaded hours)
  and the readings of a local file still on disk, the larger of the two (a local file beside its uploaded hour
  is either the same lines, not deleted yet, or those plus late lines). Files of the current and the previous
  hour, which this run appends to, are parsed line by line and only lines older than the start count; older
  files are counted by ``hourfiles.lines.count_lines``;
- summed per household, and stored as ``total_events_logged = max(stored, counted)``, while the flush thread
  holds this run's counts back (the runner releases it when the recount is done or has failed): the stored total
  is then exactly the one before this run, and this run's readings are added on top afterwards.

A total above the files is kept: an import brings the old logger's count, whose files our ledger never saw.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from django.db import connection, transaction
from django.db.models import Sum

from loggerapp.hourfiles.layout import hour_file_path, hour_files_on_disk, hour_index
from loggerapp.hourfiles.lines import finite_number, parse_record
from loggerapp.hourfiles.reading import count_file_lines

logger = logging.getLogger("loggerapp.pinger.reconcile")

CHUNK = 1000


def readings_before(path: Path, before: float) -> int:
    """Readings of a file that this run may be appending to, written before ``before`` (by their poll time)."""
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return 0
    count = 0
    for line in content.split(b"\n"):
        if b'"ok"' not in line:
            continue
        record = parse_record(line)
        if record is not None and record.get("ok") is True:
            poll_time = finite_number(record.get("poll_time"))
            count += poll_time is not None and poll_time < before
    return count


def local_readings(log_root: Path, cloud_ids: set[str], before: float | None = None) -> dict[tuple[str, datetime], int]:
    """Readings of every local hour file of these households, by (cloud_id, hour); with ``before``, only those
    polled before it (in the hours a running pinger may still append to)."""
    found: dict[tuple[str, datetime], int] = {}
    recent = hour_index(before) - 1 if before is not None else None
    for cloud_id, hour in hour_files_on_disk(log_root, before=datetime.max.replace(tzinfo=UTC)):
        if cloud_id not in cloud_ids:
            continue
        path = hour_file_path(log_root, cloud_id, hour)
        if before is not None and recent is not None and hour_index(hour.timestamp()) >= recent:
            found[(cloud_id, hour)] = readings_before(path, before)
            continue
        count = count_file_lines(path)
        if count is not None:
            found[(cloud_id, hour)] = count.readings
    return found


def counted_readings(log_root: Path, cloud_ids: set[str], before: float | None = None) -> dict[str, int]:
    """Readings per household in the archive and on disk together (module docstring)."""
    from loggerapp.models import HourFile

    ids = sorted(cloud_ids)
    archived: dict[str, int] = defaultdict(int)
    uploaded = HourFile.objects.filter(state=HourFile.State.UPLOADED)
    for start in range(0, len(ids), CHUNK):
        rows = uploaded.filter(cloud_id__in=ids[start : start + CHUNK]).order_by().values("cloud_id")
        for row in rows.annotate(readings=Sum("ok_lines")):
            archived[row["cloud_id"]] += row["readings"] or 0
    local = local_readings(log_root, cloud_ids, before)
    totals = dict(archived)
    if local:
        oldest = min(hour for _, hour in local)
        archived_hours = {
            (cloud_id, hour): ok_lines
            for cloud_id, hour, ok_lines in uploaded.filter(hour__gte=oldest, cloud_id__in=ids)
            .order_by()
            .values_list("cloud_id", "hour", "ok_lines")
        }
        for (cloud_id, hour), readings in local.items():
            in_archive = archived_hours.get((cloud_id, hour), 0)
            totals[cloud_id] = totals.get(cloud_id, 0) + max(0, readings - in_archive)
    return totals


def reconcile_totals(log_root: Path, households: Mapping[str, int], before: float | None = None) -> int:
    """Raise each household's ``total_events_logged`` to what the files hold; returns the rows raised.

    ``households``: household id by cloud id (the pinger's own, so shards never recount each other's);
    ``before``: the start of the running pinger, whose own lines are left out (module docstring).
    """
    from loggerapp.models import HouseholdStats

    totals = counted_readings(log_root, set(households), before)
    rows = [(households[cloud_id], total) for cloud_id, total in totals.items() if total > 0]
    if not rows:
        return 0
    table = connection.ops.quote_name(HouseholdStats._meta.db_table)
    cast = "::bigint" if connection.vendor == "postgresql" else ""
    raised = 0
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            values = ", ".join([f"(%s{cast}, %s{cast})"] * len(chunk))
            cursor.execute(
                f"WITH v(household_id, counted) AS (VALUES {values}) "  # noqa: S608 (no user input)
                f"UPDATE {table} AS s SET total_events_logged = v.counted FROM v "
                "WHERE s.household_id = v.household_id AND s.total_events_logged < v.counted",
                [value for row in chunk for value in row],
            )
            raised += max(cursor.rowcount, 0)
    if raised:
        logger.warning(
            "statistics: total_events_logged of %d households raised to the readings their files hold "
            "(counts lost by an unclean stop)",
            raised,
        )
    return raised
