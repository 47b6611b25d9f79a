"""What the pinger does once, after its first household load and before its first poll.

1. Statistics converge to the files (``reconcile``): counts lost by an unclean stop are recounted.
2. Each household that has a line in this hour or the one before gets a ``restart`` line (``gaps``).

The restart lines are written before the first poll (reading a tail per household is quick); the recount runs in
a daemon thread while the pinger polls, with the flush thread holding this run's counts back until it is done or
has failed (a database that hangs must not keep the pinger from polling; the statistics then converge at the
next start).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from loggerapp.pinger.gaps import restart_lines
from loggerapp.pinger.reconcile import reconcile_totals

logger = logging.getLogger("loggerapp.pinger.startup")


def reconcile(log_root: Path, households: Mapping[str, int], started: float, done: Callable[[], None]) -> None:
    """Recount the readings written before ``started``; ``done()`` (release the flush thread) whatever happens."""
    from django.db import DatabaseError, connection

    try:
        reconcile_totals(log_root, households, before=started)
    except DatabaseError as exc:
        logger.warning("statistics not recounted from the files at start (database: %s)", type(exc).__name__)
    except Exception:  # a bug here must not keep the pinger from polling
        logger.exception("statistics not recounted from the files at start")
    finally:
        done()
        connection.close()


def gap_lines(log_root: Path, cloud_ids: list[str], started: float) -> list[tuple[str, bytes]]:
    try:
        return restart_lines(log_root, cloud_ids, started)
    except Exception:
        logger.exception("restart lines not written")
        return []
