"""The one logging setup of the services: the line format, the service log files, and ``--log-level``.

Every process logs to the console (Django's LOGGING in iseif/settings.py). A long-running service also writes
its own file under LOG_ROOT, opened here and nowhere else:

- ``manage.py runpinger`` -> pinger/pinger.log and ``manage.py rotate_logs`` -> rotate/rotate.log, for the whole
  process (``configure_service_log``);
- the upload job inside an RQ worker -> rotate/rotate.log for the rotation's own loggers, while it runs
  (``service_log`` as a context manager): the worker runs other jobs too;
- the web process -> server/server.log: gunicorn's ``post_worker_init`` hook in deploy/gunicorn.conf.py calls
  ``configure_service_log("server")`` once Django has configured logging; the same file's gunicorn loggers
  (boots, worker timeouts, access lines) use ``formatter`` and ``MakingWatchedFileHandler`` from here.

A service log on a full disk (or one that cannot be written for any other reason) drops its records quietly
instead of printing a logging traceback for each (``MakingWatchedFileHandler.handleError``): it says so once on
stderr, and once it can write again, writes how many records it dropped.

Files are opened with WatchedFileHandler, which notices when logrotate moves a file away and reopens the path, so
operations can rotate them without signalling the process. They are created 0600 in 0700 folders whatever the
umask (iseif/private.py): a service log names households and gateways. Opening is idempotent: a file already
attached (to the root logger or the logger asked for) is never attached twice, so no line is written twice.

``add_log_level_argument`` gives every long-running command the same ``--log-level``: case-insensitive, checked
by argparse, so a bad value is a one-line usage error, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import logging
import logging.handlers
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings

from iseif.private import make_private_dir, open_private

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def formatter() -> logging.Formatter:
    """The format of every service log line (also a factory for dictConfig: ``{"()": "...formatter"}``)."""
    return logging.Formatter(LOG_FORMAT)


class MakingWatchedFileHandler(logging.handlers.WatchedFileHandler):
    """A WatchedFileHandler that creates its directory first (LOG_ROOT may be empty on a new machine), and the
    folder and the file private (also when it reopens the path after logrotate moved the file away)."""

    def __init__(self, filename: str, *args: Any, **kwargs: Any) -> None:
        make_private_dir(Path(filename).parent)
        super().__init__(filename, *args, **kwargs)

    dropped = 0  # records lost since the file stopped taking them
    _cause = ""
    _failed_now = False

    def emit(self, record: logging.LogRecord) -> None:
        if self.dropped:  # the file refused records before: say how many first, if it takes lines again
            count, self.dropped = self.dropped, 0
            self._emit_guarded(self._dropped_note(record, count))
            if self._failed_now:  # still refused: the note is not a record of its own
                self.dropped = count
            else:
                self._cause = ""  # recovered: the next outage is announced again
        self._emit_guarded(record)

    def _emit_guarded(self, record: logging.LogRecord) -> None:
        self._failed_now = False
        try:
            super().emit(record)  # reopening after logrotate happens here, outside StreamHandler's own guard
        except OSError:
            self.handleError(record)

    def _dropped_note(self, record: logging.LogRecord, count: int) -> logging.LogRecord:
        message = "service log %s: %d records dropped while it could not be written (%s)"
        return logging.LogRecord(
            record.name, logging.WARNING, __file__, 0, message, (self.baseFilename, count, self._cause), None
        )

    def handleError(self, record: logging.LogRecord) -> None:
        """Drop a record the file refused (a full disk): one line on stderr when that starts, no traceback."""
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handleError(record)
            return
        self._failed_now = True
        self.dropped += 1
        if not self._cause:
            self._cause = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
            sys.stderr.write(
                f"service log {self.baseFilename} cannot be written ({self._cause}); dropping its records until it "
                "can\n"
            )
        if self.stream is not None:  # a buffered text stream keeps what it failed to write: start clean
            try:
                self.stream.close()
            except OSError:
                pass
            self.stream = None  # type: ignore[assignment]

    def _open(self):  # type: ignore[no-untyped-def]
        fd = open_private(self.baseFilename, os.O_WRONLY | os.O_APPEND | getattr(os, "O_CLOEXEC", 0))
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def service_log_path(service: str) -> Path:
    return Path(settings.LOG_ROOT) / service / f"{service}.log"


def _attached(logger: logging.Logger, path: Path) -> logging.Handler | None:
    for handler in logger.handlers:
        if isinstance(handler, logging.handlers.WatchedFileHandler) and Path(handler.baseFilename) == path:
            return handler
    return None


def open_service_log(service: str, logger: logging.Logger | None = None) -> tuple[logging.Handler, bool]:
    """Attach LOG_ROOT/<service>/<service>.log to ``logger`` (default: the root logger).

    Returns the handler and whether this call attached it: False when the file was already attached to that
    logger or to the root logger (then its lines reach the file already, and the caller must not detach it).
    """
    path = service_log_path(service)
    root = logging.getLogger()
    target = logger or root
    existing = _attached(root, path) or _attached(target, path)
    if existing is not None:
        return existing, False
    handler = MakingWatchedFileHandler(str(path), encoding="utf-8")
    handler.setFormatter(formatter())
    target.addHandler(handler)
    return handler, True


def set_log_level(level: str | None) -> None:
    """Apply a command's --log-level (already checked by argparse) to the whole process; None keeps LOG_LEVEL."""
    if level:
        logging.getLogger().setLevel(level.upper())


def configure_service_log(service: str, level: str | None = None) -> logging.Handler:
    """Send the whole process's logs to the service's file as well as the console; idempotent.

    ``level`` (a command's --log-level) overrides LOG_LEVEL for this process.
    """
    set_log_level(level)
    handler, _ = open_service_log(service)
    return handler


@contextmanager
def service_log(service: str, logger_name: str) -> Iterator[None]:
    """Send one package's loggers to the service's file for the duration, unless the process already does."""
    logger = logging.getLogger(logger_name)
    handler, attached = open_service_log(service, logger)
    try:
        yield
    finally:
        if attached:
            logger.removeHandler(handler)
            handler.close()


def log_level(value: str) -> str:
    """argparse type of --log-level: a level name in any case, upper-cased."""
    return value.strip().upper()


def add_log_level_argument(parser: argparse.ArgumentParser) -> None:
    """The same --log-level for every long-running command."""
    parser.add_argument(
        "--log-level",
        type=log_level,
        choices=LOG_LEVELS,
        default=None,
        metavar="LEVEL",
        help=f"one of {', '.join(LOG_LEVELS)} (any case); overrides LOG_LEVEL for this process",
    )
