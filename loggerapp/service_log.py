"""Service log files under LOG_ROOT: server/server.log, pinger/pinger.log, rotate/rotate.log.

Files are opened with WatchedFileHandler, which notices when logrotate moves a file away and reopens the path,
so operations can rotate them externally without signalling the process.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from django.conf import settings

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class MakingWatchedFileHandler(logging.handlers.WatchedFileHandler):
    """A WatchedFileHandler that creates its directory first (LOG_ROOT may be empty on a new machine)."""

    def __init__(self, filename: str, *args, **kwargs) -> None:
        Path(filename).parent.mkdir(parents=True, exist_ok=True)
        super().__init__(filename, *args, **kwargs)


def service_log_path(service: str) -> Path:
    return Path(settings.LOG_ROOT) / service / f"{service}.log"


def configure_service_log(service: str, level: str | None = None) -> logging.Handler:
    """Send the root logger to LOG_ROOT/<service>/<service>.log as well as the console; idempotent.

    ``level`` (e.g. from a command's --log-level) overrides LOG_LEVEL for this process.
    """
    path = service_log_path(service)
    root = logging.getLogger()
    if level:
        root.setLevel(level.upper())
    for handler in root.handlers:
        if isinstance(handler, logging.handlers.WatchedFileHandler) and Path(handler.baseFilename) == path:
            return handler
    handler = MakingWatchedFileHandler(str(path), encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    return handler
