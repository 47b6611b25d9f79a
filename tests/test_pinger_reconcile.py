"""Statistics recounted from the files (loggerapp/pinger/reconcile.py), on real files and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from loggerapp.hourfiles.layout import hour_file_path
from loggerapp.hourfiles.lines import failure_line, skipped_line
from loggerapp.models import HourFile, HouseholdStats
from loggerapp.pinger.reconcile import counted_readings, reconcile_totals

pytestmark = pytest.mark.django_db

H = datetime(2026, 3, 1, 10, tzinfo=UTC)


def reading(cloud_id: str, t: float) -> bytes:
    return f'{{"cloud_id":"{cloud_id}","poll_time":{t},"demand_kw":1.0,"ok":true}}\n'.encode()


def write(log_root, cloud_id: str, hour: datetime, readings: int, failures: int = 0) -> None:
    path = hour_file_path(log_root, cloud_id, hour)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = hour.timestamp()
    body = b"".join(reading(cloud_id, base + 6 * k) for k in range(readings))
    body += b"".join(failure_line(cloud_id, base + 1 + k, "unreachable", "x", 0.1) for k in range(failures))
    body += skipped_line(cloud_id, base + 2)
    path.write_bytes(body)


def test_readings_are_counted_once_from_the_archive_and_the_disk(log_root):
    HourFile.objects.create(cloud_id="002506", hour=H - timedelta(hours=2), state="uploaded", lines=600, ok_lines=590)
    HourFile.objects.create(cloud_id="002506", hour=H - timedelta(hours=1), state="uploaded", lines=600, ok_lines=500)
    HourFile.objects.create(cloud_id="002506", hour=H - timedelta(hours=3), state="failed", lines=9, ok_lines=9)
    # Uploaded, then late lines appended: the local file holds the archive's 500 and 20 more.
    write(log_root, "002506", H - timedelta(hours=1), readings=520, failures=3)
    write(log_root, "002506", H, readings=40, failures=5)  # the current hour, on disk only
    write(log_root, "002507", H, readings=7)
    assert counted_readings(log_root, {"002506", "002507"}) == {"002506": 590 + 520 + 40, "002507": 7}
    assert counted_readings(log_root, {"002507"}) == {"002507": 7}  # another shard's households are not read


def test_totals_are_raised_to_the_files_and_never_lowered(log_root, make_household):
    short = make_household("002506")
    imported = make_household("002507")
    HouseholdStats.objects.filter(household=short).update(total_events_logged=30)
    HouseholdStats.objects.filter(household=imported).update(total_events_logged=90_000)  # the old logger's count
    write(log_root, "002506", H, readings=41)
    write(log_root, "002507", H, readings=12)
    assert reconcile_totals(log_root, {"002506": short.pk, "002507": imported.pk}) == 1
    assert HouseholdStats.objects.get(household=short).total_events_logged == 41
    assert HouseholdStats.objects.get(household=imported).total_events_logged == 90_000
    assert reconcile_totals(log_root, {"002506": short.pk, "002507": imported.pk}) == 0  # converged


def test_a_running_pingers_own_lines_are_left_out_of_the_recount(log_root):
    """The recount runs while the new pinger already appends: only readings polled before its start count."""
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    write(log_root, "002506", hour, readings=1)
    path = hour_file_path(log_root, "002506", hour)
    started = now.timestamp()
    with open(path, "ab") as handle:
        handle.write(reading("002506", started - 1) + reading("002506", started) + reading("002506", started + 5))
    assert counted_readings(log_root, {"002506"}, before=started) == {"002506": 2}
    assert counted_readings(log_root, {"002506"}) == {"002506": 4}
