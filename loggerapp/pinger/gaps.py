"""Lines for the gaps that no poll explains: a restart of the pinger, and (built in the runner) skipped ticks.

The study reads gaps from the hour files. A ``kill -9``, a crash or a stop leaves no line of its own, so at start
the pinger writes one ``restart`` line per household (``hourfiles.lines.restart_line``) carrying the poll time of
the household's last line before it, read from the tail of its current or previous hour's file. A household with
no line in either hour gets none: it was never polled here, or its gap already spans whole missing hour files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from loggerapp.hourfiles.layout import hour_file_path, hour_index, hour_of_index
from loggerapp.hourfiles.lines import finite_number, parse_record, restart_line
from loggerapp.hourfiles.reading import lines_backwards

logger = logging.getLogger("loggerapp.pinger.gaps")

TAIL_LINES = 20  # lines read back from the end of a file to find the newest poll time


def last_line_time(log_root: Path, cloud_id: str, now: float) -> float | None:
    """Poll time of the newest line in the household's file of this hour, or else of the hour before."""
    current = hour_index(now)
    for index in (current, current - 1):
        path = hour_file_path(log_root, cloud_id, hour_of_index(index))
        try:
            newest: float | None = None
            for count, raw in enumerate(lines_backwards(path)):
                record = parse_record(raw)
                poll_time = finite_number(record.get("poll_time")) if record else None
                if poll_time is not None and (newest is None or poll_time > newest):
                    newest = poll_time
                if count + 1 >= TAIL_LINES:
                    break
        except FileNotFoundError:
            continue
        except OSError as exc:
            logger.warning("household %s: cannot read the tail of %s (%s)", cloud_id, path.name, exc.strerror or exc)
            continue
        if newest is not None:
            return newest
    return None


def restart_lines(log_root: Path, cloud_ids: Iterable[str], started: float) -> list[tuple[str, bytes]]:
    """(cloud_id, line) for every household that has a line earlier in this hour or the one before."""
    lines = []
    for cloud_id in cloud_ids:
        last = last_line_time(log_root, cloud_id, started)
        if last is not None:
            lines.append((cloud_id, restart_line(cloud_id, started, last)))
    return lines
