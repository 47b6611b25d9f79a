"""What the pinger does once, after its first household load and before its first poll.

1. Statistics converge to the files (``reconcile``): counts lost by an unclean stop are recounted.
2. Each household that has a line in this hour or the one before gets a ``restart`` line (``gaps``).

Runs in a thread of its own, bounded by the caller: a database that hangs must not keep the pinger from polling.
A failure is logged and polling starts anyway (the statistics then converge at the next start).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from loggerapp.pinger.gaps import restart_lines
from loggerapp.pinger.reconcile import reconcile_totals

logger = logging.getLogger("loggerapp.pinger.startup")


def reconcile(log_root: Path, households: Mapping[str, int]) -> None:
    from django.db import DatabaseError, connection

    try:
        reconcile_totals(log_root, households)
    except DatabaseError as exc:
        logger.warning("statistics not recounted from the files at start (database: %s)", type(exc).__name__)
    except Exception:  # a bug here must not keep the pinger from polling
        logger.exception("statistics not recounted from the files at start")
    finally:
        connection.close()


def gap_lines(log_root: Path, cloud_ids: list[str], started: float) -> list[tuple[str, bytes]]:
    try:
        return restart_lines(log_root, cloud_ids, started)
    except Exception:
        logger.exception("restart lines not written")
        return []
