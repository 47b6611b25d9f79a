"""The hourly upload: every finished hour file to the archive, verified, then deleted locally.

``run_rotation`` is what both the RQ cron job (``rotation_job``) and ``manage.py rotate_logs`` call. A run:

1. Finds every file of every finished hour under LOG_ROOT (the backlog of an outage included; never the
   current hour, and not before ROTATION_GRACE_SECONDS past the hour's end).
2. Records each in the ledger (HourFile), then hands the files to ARCHIVE_CONCURRENCY worker threads.
3. A worker claims a file (conditional UPDATE; a file another run holds is skipped), reads it, stores it with
   ``store_verified`` (create-only, verified, merged with what the key already holds), marks it uploaded and
   only then deletes the local file. Any failure marks that file failed with the reason and leaves it on disk;
   the next run retries it. One bad file never stops the others.
4. When the archive as a whole keeps refusing (ROTATION_MAX_ARCHIVE_ERRORS archive-wide errors in a row), the
   files not yet tried are left for the next run instead of each waiting out its own timeouts.
5. Removes hour directories that are now empty, and returns a summary (also logged to rotate/rotate.log).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connections
from django.utils import timezone

from loggerapp.hourfiles.layout import archive_key, hour_label, parse_hour_label
from loggerapp.hourfiles.lines import count_lines
from loggerapp.models import HourFile
from loggerapp.rotation import ledger
from loggerapp.rotation.archive import (
    MERGED,
    PRESENT,
    Archive,
    ArchiveError,
    ArchiveUnavailable,
    configured_archive,
    store_verified,
)
from loggerapp.rotation.discover import LocalHourFile, finished_hour_files, remove_empty_hour_dir
from loggerapp.service_log import service_log

log = logging.getLogger(__name__)

# Outcomes of one file in a run.
UPLOADED = "uploaded"  # stored as a new object
IDENTICAL = "present"  # the archive already held every line (a rerun, or a crash before the local delete)
MERGED_OUTCOME = "merged"  # the archive held other lines too: both are now stored
FAILED = "failed"
SKIPPED = "skipped"  # another run holds (or just finished) this file
DEFERRED = "deferred"  # not tried: the archive was unavailable; the next run takes it
VANISHED = "vanished"  # the local file disappeared before it could be read (another run deleted it)
_OUTCOME = {MERGED: MERGED_OUTCOME, PRESENT: IDENTICAL}


@dataclass
class FileReport:
    cloud_id: str
    hour: str
    key: str
    outcome: str
    bytes: int = 0
    reason: str = ""


@dataclass
class RotationSummary:
    """What one run did; ``line()`` is the one-line version for logs and the command's output."""

    run_id: str
    dry_run: bool = False
    hours: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0  # local bytes read and archived this run
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)  # the first few, with reasons
    planned: list[dict[str, Any]] = field(default_factory=list)  # dry run: what would be done

    def count(self, outcome: str) -> int:
        return self.counts.get(outcome, 0)

    @property
    def failed(self) -> int:
        return self.count(FAILED)

    @property
    def done(self) -> int:
        """Files whose lines are now verified in the archive and gone from local disk."""
        return self.count(UPLOADED) + self.count(IDENTICAL) + self.count(MERGED_OUTCOME)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        verb = "would upload" if self.dry_run else "rotated"
        parts = [f"{verb} {self.files} files of {len(self.hours)} hours in {self.seconds:.1f}s"]
        parts += [f"{name}={n}" for name, n in sorted(self.counts.items())]
        if self.seconds and not self.dry_run:
            parts.append(f"{self.bytes / 1e6 / self.seconds:.1f} MB/s")
        return ", ".join(parts)


class _Breaker:
    """Counts archive-wide failures in a row; open once there were too many (any success closes it)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.in_a_row = 0
        self.last_reason = ""
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        return self.in_a_row >= self.limit

    def failure(self, reason: str) -> None:
        with self._lock:
            self.in_a_row += 1
            self.last_reason = reason

    def success(self) -> None:
        with self._lock:
            self.in_a_row = 0


@dataclass
class _Run:
    owner: str
    archive: Archive
    use_gzip: bool
    verify_with_head: bool
    prefix: str
    stale_minutes: float
    breaker: _Breaker


def _key_for(local: LocalHourFile, prefix: str, use_gzip: bool) -> str:
    return archive_key(local.cloud_id, local.hour, prefix=prefix) + (".gz" if use_gzip else "")


def _rotate_one(local: LocalHourFile, row: HourFile, run: _Run) -> FileReport:
    """Claim, read, store and verify, record, delete: one file, every failure caught and recorded."""
    key = _key_for(local, run.prefix, run.use_gzip)
    report = FileReport(cloud_id=local.cloud_id, hour=hour_label(local.hour), key=key, outcome=DEFERRED)
    if run.breaker.open:
        return report
    if not ledger.claim(row, run.owner, run.stale_minutes):
        report.outcome = SKIPPED
        return report
    try:
        with open(local.path, "rb") as handle:
            content = handle.read()
            read_stat = os.fstat(handle.fileno())
    except FileNotFoundError:
        ledger.release(row, run.owner)
        report.outcome = VANISHED
        return report
    except OSError as exc:
        report.outcome, report.reason = FAILED, f"disk read error: {exc}"
        ledger.mark_failed(row, run.owner, report.reason)
        log.warning("%s: %s", local.path, report.reason)
        return report
    try:
        result = store_verified(run.archive, key, content, use_gzip=run.use_gzip, verify_with_head=run.verify_with_head)
    except ArchiveError as exc:
        if isinstance(exc, ArchiveUnavailable):
            run.breaker.failure(str(exc))
        report.outcome, report.reason = FAILED, str(exc) or type(exc).__name__
    except Exception as exc:  # a bug or an unforeseen error in one file must not stop the others
        log.exception("uploading %s failed unexpectedly", local.path)
        report.outcome, report.reason = FAILED, f"{type(exc).__name__}: {exc}"
    if report.outcome == FAILED:
        ledger.mark_failed(row, run.owner, report.reason)
        log.warning("%s not archived: %s", key, report.reason)
        return report
    run.breaker.success()
    line_count, ok_lines = count_lines(result.content)
    report.outcome = _OUTCOME.get(result.outcome, UPLOADED)
    report.bytes = len(content)
    if not ledger.mark_uploaded(row, run.owner, key, result, line_count, ok_lines):
        # Another run took the claim over as stale; the object is verified, so it will find it present.
        log.warning("%s: claim taken over by another run; leaving the local file to it", key)
        return report
    if _changed_since_read(local.path, read_stat, len(content)):
        # A late writer appended after the read: those lines are not in the archive. Keep the file; the next run
        # finds the hour uploaded, reads the file again and merges what is new.
        log.warning("%s grew while it was archived; kept for the next run, which merges the new lines", local.path)
        return report
    try:
        local.path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("%s archived but the local file could not be deleted: %s", local.path, exc)
    log.debug("%s %s (%d lines, %d bytes)", report.outcome, key, line_count, len(content))
    return report


def _changed_since_read(path: Path, read_stat: os.stat_result, read_size: int) -> bool:
    """Whether the file at ``path`` is no longer exactly the bytes that were read (grown, or another file)."""
    try:
        current = os.stat(path)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: keep it
    same_file = (current.st_dev, current.st_ino) == (read_stat.st_dev, read_stat.st_ino)
    return not same_file or current.st_size != read_size


def _rotate_one_guarded(local: LocalHourFile, row: HourFile, run: _Run) -> FileReport:
    """``_rotate_one``, surviving what it cannot record itself: the ledger's database going away mid-file fails
    this file only (it stays on disk), and the thread gets a fresh connection for the next one."""
    try:
        return _rotate_one(local, row, run)
    except Exception as exc:
        log.exception("%s: not archived, the ledger could not be updated", local.path)
        reason = f"{type(exc).__name__}: {exc}"
        close_old_connections()  # drop a broken connection: the next query opens a new one
        try:
            ledger.mark_failed(row, run.owner, reason)  # so the next run retries it without waiting for staleness
        except Exception:
            close_old_connections()
        key = _key_for(local, run.prefix, run.use_gzip)
        return FileReport(cloud_id=local.cloud_id, hour=hour_label(local.hour), key=key, outcome=FAILED, reason=reason)


def _drain(work: queue.SimpleQueue, run: _Run, reports: list[FileReport], lock: threading.Lock) -> None:
    """One worker thread: take files until none are left, then close this thread's database connection."""
    try:
        while True:
            try:
                local, row = work.get_nowait()
            except queue.Empty:
                return
            report = _rotate_one_guarded(local, row, run)
            with lock:
                reports.append(report)
    finally:
        connections.close_all()


def _plan(files: list[LocalHourFile], prefix: str, use_gzip: bool) -> list[dict[str, Any]]:
    states = {}
    for local in files:
        states.setdefault(local.hour, {})
    for hour in states:
        states[hour] = dict(HourFile.objects.filter(hour=hour).values_list("cloud_id", "state"))
    return [
        {
            "path": str(local.path),
            "key": _key_for(local, prefix, use_gzip),
            "bytes": local.size,
            "ledger": states[local.hour].get(local.cloud_id, "new"),
        }
        for local in files
    ]


def run_rotation(
    hour: datetime | None = None,
    dry_run: bool = False,
    *,
    now: datetime | None = None,
    log_root: Path | None = None,
    archive: Archive | None = None,
    concurrency: int | None = None,
) -> RotationSummary:
    """Upload every finished hour file (or only those of ``hour``); see the module docstring for the steps."""
    started = time.monotonic()
    now = now or timezone.now()
    log_root = Path(log_root or settings.LOG_ROOT)
    prefix = settings.ARCHIVE_PREFIX
    use_gzip = settings.ARCHIVE_GZIP
    summary = RotationSummary(run_id=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}", dry_run=dry_run)

    files = finished_hour_files(log_root, now, settings.ROTATION_GRACE_SECONDS, only_hour=hour)
    summary.files = len(files)
    summary.hours = sorted({hour_label(local.hour) for local in files})
    if dry_run:
        summary.planned = _plan(files, prefix, use_gzip)
        summary.counts = {"planned": len(files)} if files else {}
        summary.seconds = time.monotonic() - started
        log.info("dry run: %s", summary.line())
        return summary
    if not files:
        summary.seconds = time.monotonic() - started
        log.info("nothing to upload under %s", log_root)
        return summary

    run = _Run(
        owner=summary.run_id,
        archive=archive or configured_archive(),
        use_gzip=use_gzip,
        verify_with_head=settings.ARCHIVE_VERIFY_WITH_HEAD,
        prefix=prefix,
        stale_minutes=settings.ROTATION_STALE_CLAIM_MINUTES,
        breaker=_Breaker(settings.ROTATION_MAX_ARCHIVE_ERRORS),
    )
    rows = ledger.ensure_rows(files, lambda local: _key_for(local, prefix, use_gzip))
    work: queue.SimpleQueue = queue.SimpleQueue()
    for local in files:
        work.put((local, rows[(local.cloud_id, local.hour)]))
    reports: list[FileReport] = []
    lock = threading.Lock()
    workers = max(1, min(concurrency or settings.ARCHIVE_CONCURRENCY, len(files)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rotate") as pool:
        for future in [pool.submit(_drain, work, run, reports, lock) for _ in range(workers)]:
            future.result()

    for hour_of_files in sorted({local.hour for local in files}):
        remove_empty_hour_dir(log_root, hour_of_files)
    summary.counts = dict(Counter(report.outcome for report in reports))
    summary.bytes = sum(report.bytes for report in reports)
    summary.failures = [{"key": report.key, "reason": report.reason} for report in reports if report.outcome == FAILED][
        :20
    ]
    summary.seconds = time.monotonic() - started
    if run.breaker.open:
        log.error(
            "archive unavailable, %d files left for the next run: %s", summary.count(DEFERRED), run.breaker.last_reason
        )
    (log.warning if summary.failed else log.info)("%s", summary.line())
    return summary


# --- Entry points ------------------------------------------------------------------------------------------


@contextmanager
def rotate_log() -> Iterator[None]:
    """Log this package to LOG_ROOT/rotate/rotate.log for the duration, unless the process already does.

    ``manage.py rotate_logs`` sends the whole process there (configure_service_log); an RQ worker runs other
    jobs too, so only the rotation's own loggers go to the file while the job runs.
    """
    with service_log("rotate", "loggerapp.rotation"):
        yield


def rotation_job(hour: str | None = None) -> dict[str, Any]:
    """The RQ job (scheduled by loggerapp.rotation.cron): one run, its summary as the job's result."""
    close_old_connections()
    with rotate_log():
        summary = run_rotation(hour=parse_hour_label(hour) if hour else None)
    close_old_connections()
    return summary.to_dict()
