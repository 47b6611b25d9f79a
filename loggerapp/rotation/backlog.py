"""What has not reached the archive yet: the one count behind the uploads alert and the status page's header.

A finished hour's file is not uploaded while its ledger row is pending, uploading or failed, or while it sits
on local disk with no ledger row at all (the upload job has not run since, or is not running). Both kinds are
counted for the hours before a given moment: the alert asks about hours overdue for an hour, the status page
about every finished hour, so the page's numbers always include the alert's.

Bounded queries, both served by hourfile_state_hour_idx: the ledger rows not uploaded (few), and the ledger rows
of the hours that still have files on disk (normally only the last hour, until the upload job has run).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db.models import Count, Min

from loggerapp.hourfiles.layout import stored_files_on_disk
from loggerapp.models import HourFile

State = HourFile.State
NOT_UPLOADED = (State.PENDING, State.UPLOADING, State.FAILED)


@dataclass(frozen=True)
class UploadBacklog:
    """Hour files of the hours before ``before`` that are not in the archive."""

    before: datetime
    by_state: dict[str, int] = field(default_factory=dict)  # ledger rows, by state (pending, uploading, failed)
    oldest_by_state: dict[str, datetime] = field(default_factory=dict)
    unrecorded: int = 0  # files on local disk without a ledger row
    oldest_unrecorded: datetime | None = None

    @property
    def total(self) -> int:
        return sum(self.by_state.values()) + self.unrecorded

    @property
    def failed(self) -> int:
        return self.by_state.get(State.FAILED, 0)

    @property
    def waiting(self) -> int:
        """Files the next upload run will try for the first time, or is uploading now."""
        return self.by_state.get(State.PENDING, 0) + self.by_state.get(State.UPLOADING, 0) + self.unrecorded

    @property
    def oldest(self) -> datetime | None:
        hours = list(self.oldest_by_state.values())
        if self.oldest_unrecorded is not None:
            hours.append(self.oldest_unrecorded)
        return min(hours, default=None)

    def parts(self) -> list[str]:
        """The backlog in words, one part per kind: "2 failed", "1 pending", "3 on local disk with no ledger row"."""
        parts = [f"{n} {state}" for state, n in sorted(self.by_state.items())]
        if self.unrecorded:
            parts.append(f"{self.unrecorded} on local disk with no ledger row (is the upload job running?)")
        return parts


def upload_backlog(before: datetime, log_root: Path | None = None) -> UploadBacklog:
    """Count the hour files of hours before ``before`` that are not uploaded (see the module docstring)."""
    rows = list(
        HourFile.objects.filter(state__in=NOT_UPLOADED, hour__lt=before)
        .order_by()
        .values("state")
        .annotate(n=Count("pk"), oldest=Min("hour"))
    )
    by_state = {row["state"]: row["n"] for row in rows}
    oldest_by_state = {row["state"]: row["oldest"] for row in rows}
    on_disk = stored_files_on_disk(Path(log_root or settings.LOG_ROOT), before)  # every kind: (kind, cloud_id, hour)
    if on_disk:
        # Naming every state lets PostgreSQL walk hourfile_state_hour_idx for just these hours; a filter on the hour
        # alone, or on thousands of cloud ids, reads through an index of the whole ledger (measured: 2-3 ms against
        # 70-90 ms for 5,000 files and 600,000 ledger rows).
        hours = sorted({hour for _, _, hour in on_disk})
        known = set(
            HourFile.objects.filter(state__in=State.values, hour__in=hours).values_list("kind", "cloud_id", "hour")
        )
        on_disk = [item for item in on_disk if item not in known]  # rows already counted above (or uploaded)
    return UploadBacklog(
        before=before,
        by_state=by_state,
        oldest_by_state=oldest_by_state,
        unrecorded=len(on_disk),
        oldest_unrecorded=min((hour for _, _, hour in on_disk), default=None),
    )
