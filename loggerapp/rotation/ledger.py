"""The upload ledger (HourFile rows): recording hour files, claiming them, and what it says about coverage.

Concurrency is done by the database: a run claims a file with one conditional UPDATE and proceeds only if
exactly one row changed. ``attempts`` and ``state`` together are the row's version, so a run that read a row
before (or while) another run claimed it loses the race even if that run has finished in between. A claim left
by a run that died is claimable again after ``ROTATION_STALE_CLAIM_MINUTES``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, OuterRef, Q, Subquery
from django.utils import timezone

from loggerapp.hourfiles.layout import HOUR, hour_start
from loggerapp.hourfiles.lines import coverage, lines_per_hour
from loggerapp.models import HourFile, Household
from loggerapp.rotation.archive import MERGED, StoreResult
from loggerapp.rotation.discover import LocalHourFile

State = HourFile.State
REASON_MAX = 1000


def ensure_rows(files: Iterable[LocalHourFile], key_for) -> dict[tuple[str, datetime], HourFile]:
    """A ledger row for every file found (created as pending when new), keyed by (cloud_id, hour).

    Queries are per hour, not per file: an hour holds thousands of files.
    """
    by_hour: dict[datetime, list[LocalHourFile]] = defaultdict(list)
    for local in files:
        by_hour[local.hour].append(local)
    rows: dict[tuple[str, datetime], HourFile] = {}
    for hour, locals_ in by_hour.items():
        cloud_ids = [local.cloud_id for local in locals_]
        households = dict(Household.objects.filter(cloud_id__in=cloud_ids).values_list("cloud_id", "pk"))
        HourFile.objects.bulk_create(
            [
                HourFile(
                    cloud_id=local.cloud_id,
                    hour=hour,
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
        for row in HourFile.objects.filter(hour=hour, cloud_id__in=cloud_ids):
            rows[(row.cloud_id, row.hour)] = row
    return rows


def claim(row: HourFile, owner: str, stale_minutes: float, now: datetime | None = None) -> bool:
    """Take a file for upload; False when another run holds it or got there first (then leave it alone)."""
    now = now or timezone.now()
    free = (
        ~Q(state=State.UPLOADING)
        | Q(claimed_at__isnull=True)
        | Q(claimed_at__lt=now - timedelta(minutes=stale_minutes))
    )
    # The row must still be exactly as this run saw it: every claim bumps attempts, and every outcome changes
    # state, so a snapshot taken during another run's claim can never claim (nor later "restore") that row.
    changed = HourFile.objects.filter(free, pk=row.pk, attempts=row.attempts, state=row.state).update(
        state=State.UPLOADING, attempts=F("attempts") + 1, claimed_by=owner, claimed_at=now, updated=now
    )
    return changed == 1


def release(row: HourFile, owner: str) -> bool:
    """Undo a claim that found nothing to do (the local file had gone): the row is as it was before."""
    return (
        HourFile.objects.filter(pk=row.pk, claimed_by=owner, state=State.UPLOADING).update(
            state=row.state, attempts=row.attempts, claimed_by="", claimed_at=None, updated=timezone.now()
        )
        == 1
    )


def mark_uploaded(row: HourFile, owner: str, key: str, result: StoreResult, lines: int, ok_lines: int) -> bool:
    """Record a verified upload. False if the claim was lost meanwhile (a stale-claim takeover)."""
    now = timezone.now()
    fields = {
        "state": State.UPLOADED,
        "key": key,
        "lines": lines,
        "ok_lines": ok_lines,
        "bytes": len(result.content),
        "stored_bytes": result.stored.size,
        "sha256": result.content_sha256,
        "reason": "",
        "claimed_by": "",
        "claimed_at": None,
        "uploaded_at": now,
        "updated": now,
    }
    if result.outcome == MERGED:
        fields["merged"] = True
    return HourFile.objects.filter(pk=row.pk, claimed_by=owner, state=State.UPLOADING).update(**fields) == 1


def mark_failed(row: HourFile, owner: str, reason: str) -> bool:
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
        for row in HourFile.objects.filter(cloud_id=cloud_id, hour__gte=start, hour__lt=end).only(
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
