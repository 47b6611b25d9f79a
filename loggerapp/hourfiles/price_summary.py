"""A household's latest price and its energy over the last hours, from its price files (issue 14).

Read through ``span`` (the archive and the local files together, every line once), so the admin page shows the
same numbers an export of those hours would give. An archive that cannot be read leaves the local files: the
page shows what is known rather than failing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from loggerapp.hourfiles.archived import ArchiveReadError
from loggerapp.hourfiles.layout import PRICE
from loggerapp.hourfiles.price_lines import Energy, PriceRecord, energy_between, price_record

logger = logging.getLogger(__name__)

ENERGY_HOURS = 24


@dataclass(frozen=True)
class PriceSummary:
    latest: PriceRecord | None  # the newest successful price poll (its price may be None: no tariff set)
    energy: Energy | None  # energy over the span, from the summation counters
    hours: int
    archive_unreadable: bool = False


def _records(cloud_id: str, start: datetime, end: datetime, log_root: Path) -> list[PriceRecord]:
    from loggerapp.hourfiles.span import household_hours

    return [
        found
        for hour in household_hours([cloud_id], start, end, log_root=log_root, kinds=(PRICE,))
        for kind, record in hour.records
        if kind == PRICE and (found := price_record(record)) is not None
    ]


def _local_records(cloud_id: str, start: datetime, end: datetime, log_root: Path) -> list[PriceRecord]:
    """The same from the local price files alone (the archive unreadable)."""
    from loggerapp.hourfiles.layout import hours_between, kind_file_path
    from loggerapp.hourfiles.lines import parse_record

    found: list[PriceRecord] = []
    for hour in hours_between(start, end):
        try:
            content = kind_file_path(log_root, PRICE, cloud_id, hour).read_bytes()
        except OSError:
            continue
        for line in content.splitlines():
            parsed = parse_record(line)
            record = price_record(parsed) if parsed is not None else None
            if record is not None and start.timestamp() <= record.t < end.timestamp():
                found.append(record)
    return found


def price_summary(
    cloud_id: str, log_root: Path, now: datetime | None = None, hours: int = ENERGY_HOURS
) -> PriceSummary:
    """The latest price poll and the energy of the last ``hours`` hours (rises of the counters, meter resets
    left out; see ``price_lines.energy_between``)."""
    now = now or datetime.now(UTC)
    start = now - timedelta(hours=hours)
    unreadable = False
    try:
        records = _records(cloud_id, start, now, log_root)
    except ArchiveReadError as exc:
        logger.warning("%s; the price summary of %s uses the local files only", exc, cloud_id)
        records, unreadable = _local_records(cloud_id, start, now, log_root), True
    latest = max(records, key=lambda record: record.t, default=None)
    return PriceSummary(latest, energy_between(records), hours, unreadable)
