"""Hour files on disk: a bounded pool of append handles, and the thread that owns them.

Decisions:
1. Every line goes out with ONE ``os.write`` on a file descriptor opened with ``O_APPEND``: the kernel appends
   the whole buffer at the end of the file, so a crash never leaves half a line, and two processes (a restarted
   pinger overlapping the old one) never interleave inside a line. A short write (disk full mid-line) is cut
   back with ``ftruncate`` so the file still holds whole lines only.
2. Handles stay open between polls in an LRU pool bounded by ``PINGER_MAX_OPEN_FILES`` (and by the process's
   own open-file limit, minus a reserve for sockets): 5,000 households cannot exhaust the limit; when more are
   needed the least recently used handle is closed and reopened later (O_APPEND makes that harmless).
3. The file of a line is chosen by the UTC hour of its poll time (``hourfiles.layout.hour_index``). A poll
   started at 10:59:59.9 that answers at 11:00:00.3 still goes to the 10 o'clock file, so an hour's handles are
   closed only ``grace`` seconds after the hour ended (by then no poll of that hour can still be in flight); the
   rotation job waits longer still.
4. Disk errors (ENOSPC, EIO, a read-only file system) never stop the pinger: the line is dropped, counted, and
   logged with the household and the cause, once when a household starts failing and once when it recovers,
   so a full disk does not also flood the service log. The cause is the errno's name (``ENOSPC``), never the
   message: a short write's text carries byte counts that change with every line. ``disk_full`` (ENOSPC, EDQUOT,
   or EFBIG, a file-size limit) and ``failing_households`` are read by the heartbeat, so /healthz, /metrics and
   the alerts report a full disk while it lasts.
5. The writer runs in its own thread and receives lines through a queue, so a slow disk never stalls the event
   loop that keeps the schedule.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import resource
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from iseif.private import make_private_dir, open_private
from loggerapp.hourfiles.layout import DEMAND, hour_index, hour_label, hour_of_index, kind_file_path

logger = logging.getLogger("loggerapp.pinger.files")

FD_RESERVE = 256  # descriptors left for sockets to the EAGLEs, the database and logs
# No space left: the file system, a quota, or a file-size limit (RLIMIT_FSIZE, which the tests use).
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


def usable_open_files(requested: int) -> int:
    """The pool size: what was asked for, within the process's open-file limit (raised to the hard limit if
    possible), leaving FD_RESERVE descriptors for everything else."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = requested + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted and (hard == resource.RLIM_INFINITY or hard > soft):
        new_soft = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
            soft = new_soft
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return max(1, requested)
    return max(1, min(requested, soft - FD_RESERVE))


@dataclass
class WriteCounters:
    lines: int = 0
    bytes: int = 0
    errors: int = 0
    opens: int = 0
    evictions: int = 0
    closed_for_hour: int = 0


class HourFileWriter:
    """Appends lines to ``<log_root>/<hour>/iseif-rainforest-<cloud_id>-<hour>.jl``; not thread-safe (one owner)."""

    def __init__(self, log_root: Path | str, max_open: int = 1024, kind: str = DEMAND) -> None:
        self.log_root = Path(log_root)
        self.kind = kind  # which kind of hour file (layout.FILE_KINDS): the demand file, or the price file
        self.max_open = max(1, max_open)
        self._handles: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._dirs: set[int] = set()
        self._failing: dict[str, str] = {}  # cloud_id -> cause (errno name), while its writes fail
        self._full: set[str] = set()  # cloud_ids failing for lack of space
        # Snapshots for other threads (the heartbeat): plain values, never the containers above.
        self.failing_households = 0
        self.disk_full = False
        self.last_error = ""
        self._closed_before = -1  # hours before this index are over: a late line's file is closed right after it
        self.counters = WriteCounters()

    @property
    def open_files(self) -> int:
        return len(self._handles)

    def path_for(self, cloud_id: str, poll_time: float) -> Path:
        return kind_file_path(self.log_root, self.kind, cloud_id, hour_of_index(hour_index(poll_time)))

    def write(self, cloud_id: str, poll_time: float, line: bytes) -> bool:
        """Append one whole line to the household's file of the poll's hour. False if the disk refused it."""
        key = (cloud_id, hour_index(poll_time))
        try:
            fd = self._handle(key)
            written = os.write(fd, line)
            if written != len(line):
                self._cut_short_write(fd, written)
                raise OSError(errno.ENOSPC, "short write (no space for the whole line)")
        except OSError as exc:
            self._failed(cloud_id, key, exc)
            return False
        if key[1] < self._closed_before:
            # A late line of an hour already closed: keep no handle on it. The rotation may take (and delete) that
            # file at any time now; a later late line must reopen the path, not write into a deleted file.
            self._close(key)
        self.counters.lines += 1
        self.counters.bytes += written
        if self._failing and cloud_id in self._failing:
            logger.warning("household %s: writing its hour file works again", cloud_id)
            del self._failing[cloud_id]
            self._full.discard(cloud_id)
            self._snapshot()
        return True

    def close_hours_before(self, hour: int) -> int:
        """Close every handle of an hour before ``hour`` (an hour index); returns how many were closed."""
        stale = [key for key in self._handles if key[1] < hour]
        for key in stale:
            self._close(key)
        self.counters.closed_for_hour += len(stale)
        self._dirs = {index for index in self._dirs if index >= hour}
        self._closed_before = max(self._closed_before, hour)
        return len(stale)

    def close_all(self) -> None:
        for key in list(self._handles):
            self._close(key)

    def _handle(self, key: tuple[str, int]) -> int:
        fd = self._handles.get(key)
        if fd is not None:
            self._handles.move_to_end(key)
            return fd
        while len(self._handles) >= self.max_open:
            oldest = next(iter(self._handles))
            self._close(oldest)
            self.counters.evictions += 1
        cloud_id, index = key
        path = kind_file_path(self.log_root, self.kind, cloud_id, hour_of_index(index))
        # Folders 0700 and files 0600 whatever the umask (iseif/private.py): the lines say when people are home.
        if index not in self._dirs:
            make_private_dir(path.parent)
            self._dirs.add(index)
        try:
            fd = open_private(path, _OPEN_FLAGS)
        except FileNotFoundError:  # the hour directory was removed under us (e.g. by hand): make it again
            make_private_dir(path.parent)
            fd = open_private(path, _OPEN_FLAGS)
        self.counters.opens += 1
        self._handles[key] = fd
        return fd

    def _cut_short_write(self, fd: int, written: int) -> None:
        """Remove the partial line a short write left, so the file holds whole lines only."""
        if written <= 0:
            return
        try:
            size = os.fstat(fd).st_size
            os.ftruncate(fd, max(0, size - written))
        except OSError:
            logger.exception("could not cut a partial line back")

    def _failed(self, cloud_id: str, key: tuple[str, int], exc: OSError) -> None:
        self.counters.errors += 1
        cause = errno.errorcode.get(exc.errno or 0, "error")
        if self._failing.get(cloud_id) != cause:
            logger.error("household %s: line not written to its hour file (%s: %s)", cloud_id, cause, exc.strerror)
            self._failing[cloud_id] = cause
            if exc.errno in DISK_FULL_ERRNOS:
                self._full.add(cloud_id)
            else:
                self._full.discard(cloud_id)
            self.last_error = cause
            self._snapshot()
        if key in self._handles:  # a broken handle (EIO) is reopened on the next line
            self._close(key)

    def _snapshot(self) -> None:
        self.failing_households = len(self._failing)
        self.disk_full = bool(self._full)

    def _close(self, key: tuple[str, int]) -> None:
        fd = self._handles.pop(key)
        try:
            os.close(fd)
        except OSError as exc:  # close can report a delayed write error (NFS, EIO)
            logger.error("household %s: closing its hour file failed (%s)", key[0], exc.strerror or exc)
            self.counters.errors += 1


@dataclass(frozen=True, slots=True)
class LineJob:
    """A line on its way to disk. ``household_id`` and ``ok`` let the writer count what it really wrote."""

    household_id: int
    cloud_id: str
    poll_time: float
    ok: bool
    line: bytes


_STOP = object()


class WriterThread(threading.Thread):
    """Owns an HourFileWriter and drains a queue of LineJobs; closes ended hours' files.

    ``on_written(job)`` is called after each successful write (the statistics count written readings only).
    """

    def __init__(
        self,
        writer: HourFileWriter,
        on_written: Callable[[LineJob], None] | None = None,
        hour_grace: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name="pinger-writer", daemon=True)
        self.writer = writer
        self.on_written = on_written
        self.hour_grace = hour_grace
        self.clock = clock
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._closed_before = hour_index(clock() - hour_grace)

    def put(self, job: LineJob) -> None:
        self.jobs.put(job)

    def put_many(self, jobs: list[LineJob]) -> None:
        """Hand over several lines at once: one queue operation (and one wake-up of this thread) for all."""
        self.jobs.put(jobs)

    def stop(self, timeout: float | None = None) -> None:
        """Write what is queued, close every file, and end the thread."""
        self.jobs.put(_STOP)
        self.join(timeout)

    def run(self) -> None:
        try:
            while True:
                try:
                    job = self.jobs.get(timeout=1.0)
                except queue.Empty:
                    job = None
                if job is _STOP:
                    break
                if job is not None:
                    self._write(job)
                    # Drain what else is queued before looking at the clock again.
                    stop = False
                    for _ in range(4096):
                        try:
                            job = self.jobs.get_nowait()
                        except queue.Empty:
                            break
                        if job is _STOP:
                            stop = True
                            break
                        self._write(job)
                    if stop:
                        break
                self._close_ended_hours()
        finally:
            self.writer.close_all()

    def _write(self, job: LineJob | list[LineJob]) -> None:
        if type(job) is list:  # put_many's batch
            for one in job:
                self._write(one)
            return
        assert isinstance(job, LineJob)
        try:
            written = self.writer.write(job.cloud_id, job.poll_time, job.line)
        except Exception:  # not a disk error (those return False): a bug must not end the thread and every line after
            self.writer.counters.errors += 1
            logger.exception("household %s: line not written", job.cloud_id)
            return
        if written and self.on_written is not None:
            try:
                self.on_written(job)
            except Exception:
                logger.exception("statistics callback failed")

    def _close_ended_hours(self) -> None:
        current = hour_index(self.clock() - self.hour_grace)
        if current > self._closed_before:
            closed = self.writer.close_hours_before(current)
            self._closed_before = current
            if closed:
                logger.info("closed %d hour files of %s", closed, hour_label(hour_of_index(current - 1)))
