"""The upload ledger (HourFile rows): recording hour files, claiming them, and what it says about coverage.

Concurrency is done by the database: a run claims a batch of files with one conditional UPDATE and proceeds
with the rows that now name it. ``attempts``, ``state`` and ``claimed_at`` together are a row's version, so a
run that read a row before (or while) another run claimed it loses the race even if that run has finished in
between. A claim held by a run judged dead (loggerapp.rotation.claims: its process is gone, or its lease ran out)
is taken over; a live run's claims are left alone. Verified uploads are recorded a batch per transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from loggerapp.hourfiles.layout import DEMAND, HOUR, hour_start
from loggerapp.hourfiles.lines import coverage, lines_per_hour
from loggerapp.models import HourFile, Household
from loggerapp.rotation.archive import MERGED, StoreResult
from loggerapp.rotation.discover import LocalHourFile

State = HourFile.State
REASON_MAX = 1000


@dataclass(frozen=True)
class LedgerRow:
    """A ledger row as a run read it: what claiming, judging and recording need (a model instance per file cost
    more CPU than this, measured in bench/rotation.py). The functions below take an HourFile just as well."""

    pk: int
    cloud_id: str
    hour: datetime
    state: str
    attempts: int
    claimed_by: str
    claimed_at: datetime | None
    key: str
    kind: str = DEMAND


_SNAPSHOT = ["pk", "cloud_id", "hour", "state", "attempts", "claimed_by", "claimed_at", "key", "kind"]
RowKey = tuple[str, datetime, str]  # cloud_id, hour, kind
Row = LedgerRow | HourFile


def ensure_rows(files: Iterable[LocalHourFile], key_for) -> dict[RowKey, LedgerRow]:
    """A ledger row for every file found (created as pending when new), keyed by (cloud_id, hour, kind).

    Queries are per hour, not per file: an hour holds thousands of files.
    """
    by_hour: dict[datetime, list[LocalHourFile]] = defaultdict(list)
    for local in files:
        by_hour[local.hour].append(local)
    rows: dict[RowKey, LedgerRow] = {}
    for hour, locals_ in by_hour.items():
        cloud_ids = [local.cloud_id for local in locals_]
        households = dict(Household.objects.filter(cloud_id__in=cloud_ids).values_list("cloud_id", "pk"))
        HourFile.objects.bulk_create(
            [
                HourFile(
                    cloud_id=local.cloud_id,
                    hour=hour,
                    kind=local.kind,
                    household_id=households.get(local.cloud_id),
                    key=key_for(local),
                    state=State.PENDING,
                )
                for local in locals_
            ],
            ignore_conflicts=True,  # rows of earlier runs (failed, uploaded, claimed) are kept as they are
            batch_size=1000,
        )
        # A row recorded before its household was (re)added gets linked now.
        HourFile.objects.filter(hour=hour, cloud_id__in=cloud_ids, household__isnull=True).update(
            household=Subquery(Household.objects.filter(cloud_id=OuterRef("cloud_id")).values("pk")[:1])
        )
        for values in HourFile.objects.filter(hour=hour, cloud_id__in=cloud_ids).values_list(*_SNAPSHOT):
            row = LedgerRow(*values)
            rows[(row.cloud_id, row.hour, row.kind)] = row
    return rows


def _columns() -> dict[str, str]:
    """The ledger's quoted column names, by field name, for the plain SQL of the per-file statements."""
    return {f.name: connection.ops.quote_name(f.column) for f in HourFile._meta.concrete_fields}


def _claim_statement(dead_owners: int, claimed_at_known: bool) -> str:
    """One row's claim (plain SQL, run for a batch with executemany: the ORM's OR of one Q per row cost a tenth of a
    run's CPU). The row must still be exactly as this run read it: every claim bumps attempts, every outcome changes
    state and every lease renewal moves claimed_at, so a snapshot taken during another run's claim can never claim
    (nor later "restore") that row, and a run that renewed its lease since it was judged dead keeps its file."""
    c = _columns()
    table = connection.ops.quote_name(HourFile._meta.db_table)
    free = f"{c['state']} <> %s OR {c['claimed_at']} IS NULL"
    if dead_owners:
        free += f" OR {c['claimed_by']} IN ({', '.join(['%s'] * dead_owners)})"
    as_read = f"{c['id']} = %s AND {c['attempts']} = %s AND {c['state']} = %s AND " + (
        f"{c['claimed_at']} = %s" if claimed_at_known else f"{c['claimed_at']} IS NULL"
    )
    taken = f"{c['state']} = %s, {c['attempts']} = {c['attempts']} + 1, {c['claimed_by']} = %s, {c['claimed_at']} = %s"
    return f"UPDATE {table} SET {taken}, {c['updated']} = %s WHERE {as_read} AND ({free})"  # noqa: S608 (no input)


def claim_batch(
    rows: Sequence[Row], owner: str, dead_owners: Collection[str] = (), now: datetime | None = None
) -> set[int]:
    """Take files for upload, in one transaction: the primary keys of those this run now holds.

    A row is taken only if it is still exactly as read (see ``_claim_statement``) and not held by another run,
    unless that run is in ``dead_owners`` (judged by loggerapp.rotation.claims). The rest are left alone.
    """
    if not rows:
        return set()
    adapt = connection.ops.adapt_datetimefield_value
    stamp = adapt(now or timezone.now())
    dead = list(dead_owners)
    taken = (State.UPLOADING.value, owner, stamp, stamp)
    free = (State.UPLOADING.value, *dead)
    with transaction.atomic():  # the first statement writes: SQLite takes its one write lock at once
        with connection.cursor() as cursor:
            for known in (True, False):
                params = [
                    (*taken, row.pk, row.attempts, row.state, *([adapt(row.claimed_at)] if known else []), *free)
                    for row in rows
                    if (row.claimed_at is not None) == known
                ]
                if params:
                    cursor.executemany(_claim_statement(len(dead), known), params)
        held = HourFile.objects.filter(pk__in=[row.pk for row in rows], claimed_by=owner, state=State.UPLOADING)
        return set(held.values_list("pk", flat=True))


def claim(row: Row, owner: str, dead_owners: Collection[str] = (), now: datetime | None = None) -> bool:
    """Take one file for upload; False when another run holds it or got there first (then leave it alone)."""
    return row.pk in claim_batch([row], owner, dead_owners, now)


def renew(owner: str, now: datetime | None = None) -> int:
    """Renew the lease of every claim this run holds (so that runs on other hosts know it is alive)."""
    now = now or timezone.now()
    return HourFile.objects.filter(state=State.UPLOADING, claimed_by=owner).update(claimed_at=now)


def release(row: Row, owner: str) -> bool:
    """Undo a claim that found nothing to do (the local file had gone): the row is as it was before."""
    return release_batch([row], owner) == 1


def release_batch(rows: Iterable[Row], owner: str) -> int:
    """Undo claims this run did not use (the archive became unavailable first): each row as it was before."""
    released = 0
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for row in rows:
        groups[(row.state, row.attempts)].append(row.pk)
    now = timezone.now()
    for (state, attempts), pks in groups.items():
        released += HourFile.objects.filter(pk__in=pks, claimed_by=owner, state=State.UPLOADING).update(
            state=state, attempts=attempts, claimed_by="", claimed_at=None, updated=now
        )
    return released


@dataclass(frozen=True)
class Archived:
    """One verified upload, to be recorded: the row as claimed, its key, what the archive holds and its counts."""

    row: Row
    key: str
    result: StoreResult
    lines: int
    ok_lines: int


def _record_statement() -> str:
    """One row's record, guarded so that only this run's claim is recorded (plain SQL: the ORM's bulk_update builds
    a CASE expression per field and cost more CPU than the uploads themselves, measured in bench/rotation.py)."""
    c = _columns()
    table = connection.ops.quote_name(HourFile._meta.db_table)
    assigned = ", ".join(f"{c[name]} = %s" for name in _RECORDED)
    cleared = f"{c['reason']} = '', {c['claimed_at']} = NULL"  # claimed_by keeps the run that recorded it
    merged = f"{c['merged']} = ({c['merged']} OR %s)"
    guard = f"{c['id']} = %s AND {c['claimed_by']} = %s AND {c['state']} = %s"
    return f"UPDATE {table} SET {assigned}, {merged}, {cleared} WHERE {guard}"  # noqa: S608 (model names, no input)


_RECORDED = ["key", "lines", "ok_lines", "bytes", "stored_bytes", "sha256", "uploaded_at", "updated", "state"]


def mark_uploaded_batch(done: Sequence[Archived], owner: str) -> set[int]:
    """Record verified uploads in one transaction; the primary keys recorded. A row missing from the answer was
    taken over meanwhile (its claim was judged dead): the caller leaves its local file to the other run.

    The rows keep ``claimed_by``: it names the run that recorded the upload, which tells this run's records apart.
    The write comes first in the transaction, so SQLite takes its write lock at once instead of failing to
    upgrade a read lock while another thread writes.
    """
    if not done:
        return set()
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    records = [
        (
            *(item.key, item.lines, item.ok_lines, len(item.result.content), item.result.stored.size),
            *(item.result.content_sha256, now, now, State.UPLOADED.value),  # the rest of _RECORDED
            item.result.outcome == MERGED,
            *(item.row.pk, owner, State.UPLOADING.value),  # the guard
        )
        for item in done
    ]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.executemany(_record_statement(), records)
        recorded = HourFile.objects.filter(
            pk__in=[item.row.pk for item in done], claimed_by=owner, state=State.UPLOADED
        )
        return set(recorded.values_list("pk", flat=True))


def mark_uploaded(row: Row, owner: str, key: str, result: StoreResult, lines: int, ok_lines: int) -> bool:
    """Record one verified upload. False if the claim was lost meanwhile (a takeover)."""
    return row.pk in mark_uploaded_batch([Archived(row, key, result, lines, ok_lines)], owner)


def mark_failed(row: Row, owner: str, reason: str) -> bool:
    """Record why a file did not reach the archive; it stays on disk and the next run tries again."""
    return (
        HourFile.objects.filter(pk=row.pk, claimed_by=owner, state=State.UPLOADING).update(
            state=State.FAILED, reason=reason[:REASON_MAX], claimed_by="", claimed_at=None, updated=timezone.now()
        )
        == 1
    )


# --- Coverage ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HourCoverage:
    """One finished hour of one household, as the ledger knows it. ``state`` is "missing" without a row."""

    hour: datetime
    state: str
    lines: int
    ok_lines: int

    @property
    def complete(self) -> bool:
        """The hour's file is in the archive, verified."""
        return self.state == State.UPLOADED

    @property
    def coverage(self) -> float:
        """Readings logged out of those expected in an hour (hourfiles.lines.lines_per_hour), capped at 1."""
        return coverage(self.ok_lines, lines_per_hour())


MISSING = "missing"


def household_hours(cloud_id: str, days: int = 7, now: datetime | None = None) -> list[HourCoverage]:
    """Every finished hour of the last ``days`` days for one household, newest first, gaps included."""
    now = now or timezone.now()
    end = hour_start(now)  # the current hour is not finished
    start = end - timedelta(days=days)
    rows = {
        row.hour: row
        for row in HourFile.objects.filter(cloud_id=cloud_id, hour__gte=start, hour__lt=end, kind=DEMAND).only(
            "hour", "state", "lines", "ok_lines"
        )
    }
    hours = []
    hour = end - HOUR
    while hour >= start:
        row = rows.get(hour)
        if row is None:
            hours.append(HourCoverage(hour=hour, state=MISSING, lines=0, ok_lines=0))
        else:
            hours.append(HourCoverage(hour=hour, state=row.state, lines=row.lines, ok_lines=row.ok_lines))
        hour -= HOUR
    return hours
