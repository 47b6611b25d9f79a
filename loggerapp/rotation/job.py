"""The hourly upload: every finished hour file to the archive, verified, then deleted locally.

``run_rotation`` is what both the RQ cron job (``rotation_job``) and ``manage.py rotate_logs`` call. A run:

1. Finds every file of every finished hour under LOG_ROOT (the backlog of an outage included; never the
   current hour, and not before ROTATION_GRACE_SECONDS past the hour's end).
2. Records each in the ledger (HourFile) and judges the other runs holding claims on them
   (loggerapp.rotation.claims): a dead run's claims are taken now, a live run's files are skipped, and a
   warning says which and why. Its own claims' lease is renewed by a thread for as long as it runs.
3. ARCHIVE_CONCURRENCY worker threads each take a batch of files at a time: claim the batch (one conditional
   UPDATE), read each file and store it with ``store_verified`` (create-only, verified, merged with what the
   key already holds), record the verified ones as uploaded (one transaction), and only then delete their local
   files. Any failure marks that file failed with the reason and leaves it on disk; the next run retries it. One
   bad file never stops the others.
4. When the archive as a whole keeps refusing (ROTATION_MAX_ARCHIVE_ERRORS archive-wide errors in a row), the
   files not yet tried are left for the next run instead of each waiting out its own timeouts.
5. Removes hour directories that are now empty, and returns a summary (also logged to rotate/rotate.log).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections
from django.utils import timezone

from loggerapp.hourfiles.layout import hour_label, kind_archive_key, parse_hour_label
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
from loggerapp.rotation.claims import RunIdentity, judge
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
CLAIM_BATCH = 32  # files claimed per statement and recorded per transaction by one thread
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
    skipped: list[dict[str, Any]] = field(default_factory=list)  # files left to another run, by reason
    taken_over: list[dict[str, Any]] = field(default_factory=list)  # claims of dead runs this run took
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
    identity: RunIdentity
    archive: Archive
    use_gzip: bool
    verify_with_head: bool
    prefix: str
    breaker: _Breaker
    batch_size: int
    dead_owners: frozenset[str] = frozenset()
    live_holders: dict[str, str] = field(default_factory=dict)  # owner -> why it is judged alive

    @property
    def owner(self) -> str:
        return str(self.identity)


def _key_for(local: LocalHourFile, prefix: str, use_gzip: bool) -> str:
    return kind_archive_key(local.kind, local.cloud_id, local.hour, prefix=prefix) + (".gz" if use_gzip else "")


@dataclass
class _Verified:
    """A file stored and verified, waiting for its batch to be recorded before its local copy is deleted."""

    local: LocalHourFile
    report: FileReport
    archived: ledger.Archived
    read_stat: os.stat_result
    read_size: int


def _skip_reason(row: ledger.Row, run: _Run) -> str:
    if row.state == HourFile.State.UPLOADING and row.claimed_by in run.live_holders:
        return f"held by run {row.claimed_by}: {run.live_holders[row.claimed_by]}"
    return "claimed or finished by another run after this run read the ledger"


def _upload_one(local: LocalHourFile, row: ledger.Row, run: _Run) -> FileReport | _Verified:
    """Read, store and verify one claimed file; a failure is recorded and returned as the file's report."""
    key = _key_for(local, run.prefix, run.use_gzip)
    report = FileReport(cloud_id=local.cloud_id, hour=hour_label(local.hour), key=key, outcome=FAILED)
    try:
        with open(local.path, "rb") as handle:
            content = handle.read()
            read_stat = os.fstat(handle.fileno())
    except FileNotFoundError:
        ledger.release(row, run.owner)
        report.outcome = VANISHED
        return report
    except OSError as exc:
        report.reason = f"disk read error: {exc}"
        ledger.mark_failed(row, run.owner, report.reason)
        log.warning("%s: %s", local.path, report.reason)
        return report
    try:
        result = store_verified(run.archive, key, content, use_gzip=run.use_gzip, verify_with_head=run.verify_with_head)
    except ArchiveError as exc:
        if isinstance(exc, ArchiveUnavailable):
            run.breaker.failure(str(exc))
        report.reason = str(exc) or type(exc).__name__
    except Exception as exc:  # a bug or an unforeseen error in one file must not stop the others
        log.exception("uploading %s failed unexpectedly", local.path)
        report.reason = f"{type(exc).__name__}: {exc}"
    else:
        run.breaker.success()
        line_count, ok_lines = count_lines(result.content)
        report.outcome = _OUTCOME.get(result.outcome, UPLOADED)
        report.bytes = len(content)
        archived = ledger.Archived(row=row, key=key, result=result, lines=line_count, ok_lines=ok_lines)
        return _Verified(local=local, report=report, archived=archived, read_stat=read_stat, read_size=len(content))
    ledger.mark_failed(row, run.owner, report.reason)
    log.warning("%s not archived: %s", key, report.reason)
    return report


def _delete_local(item: _Verified) -> None:
    """Delete a recorded file, unless a late writer appended to it after it was read."""
    if _changed_since_read(item.local.path, item.read_stat, item.read_size):
        # Those lines are not in the archive. Keep the file; the next run finds the hour uploaded, reads the file
        # again and merges what is new.
        log.warning("%s grew while it was archived; kept for the next run, which merges the new lines", item.local.path)
        return
    try:
        item.local.path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("%s archived but the local file could not be deleted: %s", item.local.path, exc)
    log.debug("%s %s (%d lines)", item.report.outcome, item.report.key, item.archived.lines)


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


def _ledger_failure(batch: list[tuple[LocalHourFile, ledger.Row]], run: _Run, exc: Exception) -> list[FileReport]:
    """The ledger could not be written (the database went away): these files stay on disk, failed if it can still
    be recorded (so the next run retries them at once), and the thread gets a fresh connection for the next batch."""
    log.error("%d files not archived, the ledger could not be updated: %s: %s", len(batch), type(exc).__name__, exc)
    reason = f"ledger: {type(exc).__name__}: {exc}"
    close_old_connections()  # drop a broken connection: the next query opens a new one
    reports = []
    for local, row in batch:
        try:
            ledger.mark_failed(row, run.owner, reason)
        except Exception:
            close_old_connections()
        key = _key_for(local, run.prefix, run.use_gzip)
        reports.append(FileReport(local.cloud_id, hour_label(local.hour), key, outcome=FAILED, reason=reason))
    return reports


def _record(verified: list[_Verified], run: _Run) -> set[int]:
    """Record a batch of verified uploads; on a broken connection, once more on a new one (a database restart)."""
    done = [item.archived for item in verified]
    try:
        return ledger.mark_uploaded_batch(done, run.owner)
    except DatabaseError as exc:
        log.warning("recording %d uploads failed (%s); retrying on a new connection", len(done), exc)
        close_old_connections()
        return ledger.mark_uploaded_batch(done, run.owner)


def _rotate_batch(batch: list[tuple[LocalHourFile, ledger.Row]], run: _Run) -> list[FileReport]:
    """Claim a batch in one transaction, upload each claimed file, record the verified ones in another and
    only then delete their local files. Every failure is caught and recorded; one bad file never stops the others."""

    def report(local: LocalHourFile, outcome: str, reason: str = "") -> FileReport:
        key = _key_for(local, run.prefix, run.use_gzip)
        return FileReport(local.cloud_id, hour_label(local.hour), key, outcome=outcome, reason=reason)

    if run.breaker.open:
        return [report(local, DEFERRED) for local, _ in batch]
    try:
        claimed = ledger.claim_batch([row for _, row in batch], run.owner, run.dead_owners)
    except Exception as exc:
        return _ledger_failure(batch, run, exc)
    reports = [report(local, SKIPPED, _skip_reason(row, run)) for local, row in batch if row.pk not in claimed]
    mine = [(local, row) for local, row in batch if row.pk in claimed]
    final: set[int] = set()  # rows whose outcome is settled (failed and recorded, vanished, deferred)
    verified: list[_Verified] = []
    unused: list[ledger.Row] = []
    try:
        for local, row in mine:
            if run.breaker.open:
                unused.append(row)
                reports.append(report(local, DEFERRED))
                final.add(row.pk)
                continue
            outcome = _upload_one(local, row, run)
            if isinstance(outcome, _Verified):
                verified.append(outcome)
            else:
                reports.append(outcome)
                final.add(row.pk)
        recorded = _record(verified, run)
    except Exception as exc:
        return reports + _ledger_failure([(local, row) for local, row in mine if row.pk not in final], run, exc)
    for item in verified:
        if item.archived.row.pk in recorded:
            _delete_local(item)
        else:
            # Another run took the claim over (judged this one dead); the object is verified, so it finds it present.
            log.warning("%s: claim taken over by another run; leaving the local file to it", item.report.key)
        reports.append(item.report)
    try:
        ledger.release_batch(unused, run.owner)
    except Exception as exc:  # they stay claimed by this run, which the next run judges dead once it has ended
        log.warning("could not release %d unused claims: %s", len(unused), exc)
        close_old_connections()
    return reports


def _drain(work: queue.SimpleQueue, run: _Run, reports: list[FileReport], lock: threading.Lock) -> None:
    """One worker thread: take batches until none are left, then close this thread's database connection."""
    try:
        while True:
            batch = []
            for _ in range(run.batch_size):
                try:
                    batch.append(work.get_nowait())
                except queue.Empty:
                    break
            if not batch:
                return
            done = _rotate_batch(batch, run)
            with lock:
                reports.extend(done)
    finally:
        connections.close_all()


class _LeaseRenewer(threading.Thread):
    """Renews this run's claims several times per lease, so that runs elsewhere know it is alive."""

    def __init__(self, owner: str, lease_seconds: float) -> None:
        super().__init__(name="rotate-lease", daemon=True)
        self.owner = owner
        self.every = max(0.05, lease_seconds / 4)
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.wait(self.every):
                try:
                    ledger.renew(self.owner)
                except Exception as exc:  # the next renewal may succeed; the workers report their own failures
                    log.warning("could not renew this run's claims: %s", exc)
                    close_old_connections()
        finally:
            connections.close_all()

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=30)


def _skipped_by_reason(reports: list[FileReport]) -> list[dict[str, Any]]:
    """The files skipped, grouped by why: for the summary and one warning per reason."""
    groups: dict[str, list[str]] = defaultdict(list)
    for report in reports:
        if report.outcome == SKIPPED:
            groups[report.reason].append(report.key)
    return [{"reason": reason, "files": len(keys), "first": sorted(keys)[:3]} for reason, keys in groups.items()]


def _judge_holders(rows: dict, run: _Run, lease: timedelta) -> list[dict[str, Any]]:
    """Sort the other runs holding this run's files into dead (their claims are taken now) and alive (skipped)."""
    holders: dict[str, list[ledger.Row]] = defaultdict(list)
    for row in rows.values():
        if row.state == HourFile.State.UPLOADING and row.claimed_by and row.claimed_by != run.owner:
            holders[row.claimed_by].append(row)
    now = timezone.now()
    taken_over = []
    for owner, held in holders.items():
        last = max((row.claimed_at for row in held if row.claimed_at), default=None)
        verdict = judge(owner, run.identity, last, now, lease)
        if verdict.dead:
            first = sorted(row.key for row in held)[:3]
            taken_over.append({"run": owner, "files": len(held), "why": verdict.why, "first": first})
            log.warning(
                "taking over %d files claimed by run %s, which is dead: %s (first: %s)",
                len(held), owner, verdict.why, ", ".join(first),
            )  # fmt: skip
        else:
            run.live_holders[owner] = verdict.why
    run.dead_owners = frozenset(item["run"] for item in taken_over)
    return taken_over


def _plan(files: list[LocalHourFile], prefix: str, use_gzip: bool) -> list[dict[str, Any]]:
    states = {}
    for local in files:
        states.setdefault(local.hour, {})
    for hour in states:
        states[hour] = {
            (cloud_id, kind): state
            for cloud_id, kind, state in HourFile.objects.filter(hour=hour).values_list("cloud_id", "kind", "state")
        }
    return [
        {
            "path": str(local.path),
            "key": _key_for(local, prefix, use_gzip),
            "bytes": local.size,
            "ledger": states[local.hour].get((local.cloud_id, local.kind), "new"),
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
    identity = RunIdentity.of_this_process()
    summary = RotationSummary(run_id=str(identity), dry_run=dry_run)

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

    workers = max(1, min(concurrency or settings.ARCHIVE_CONCURRENCY, len(files)))
    run = _Run(
        identity=identity,
        archive=archive or configured_archive(),
        use_gzip=use_gzip,
        verify_with_head=settings.ARCHIVE_VERIFY_WITH_HEAD,
        prefix=prefix,
        breaker=_Breaker(settings.ROTATION_MAX_ARCHIVE_ERRORS),
        # Small runs are spread over every thread; large ones claim and record CLAIM_BATCH files per statement.
        batch_size=max(1, min(CLAIM_BATCH, len(files) // (workers * 4))),
    )
    lease = timedelta(seconds=settings.ROTATION_CLAIM_LEASE_SECONDS)
    rows = ledger.ensure_rows(files, lambda local: _key_for(local, prefix, use_gzip))
    summary.taken_over = _judge_holders(rows, run, lease)
    work: queue.SimpleQueue = queue.SimpleQueue()
    for local in files:
        work.put((local, rows[(local.cloud_id, local.hour, local.kind)]))
    reports: list[FileReport] = []
    lock = threading.Lock()
    renewer = _LeaseRenewer(run.owner, lease.total_seconds())
    renewer.start()
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rotate") as pool:
            for future in [pool.submit(_drain, work, run, reports, lock) for _ in range(workers)]:
                future.result()
    finally:
        renewer.stop()

    for hour_of_files in sorted({local.hour for local in files}):
        remove_empty_hour_dir(log_root, hour_of_files)
    summary.counts = dict(Counter(report.outcome for report in reports))
    summary.bytes = sum(report.bytes for report in reports)
    summary.failures = [{"key": report.key, "reason": report.reason} for report in reports if report.outcome == FAILED][
        :20
    ]
    summary.skipped = _skipped_by_reason(reports)
    for skipped in summary.skipped:
        log.warning(
            "skipped %d files, %s (first: %s)", skipped["files"], skipped["reason"], ", ".join(skipped["first"])
        )
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
    from loggerapp.ops.scheduler import JOB_ROTATION, record_run

    close_old_connections()
    record_run(JOB_ROTATION)  # the scheduler's liveness, for /healthz and the alerts
    with rotate_log():
        summary = run_rotation(hour=parse_hour_label(hour) if hour else None)
    close_old_connections()
    return summary.to_dict()
