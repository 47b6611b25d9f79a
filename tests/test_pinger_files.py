"""Hour files: routing by the UTC hour of the poll time, whole lines, a bounded pool, closing ended hours,
and surviving a disk that refuses writes."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime

import pytest

from loggerapp.hourfiles.layout import hour_index
from loggerapp.hourfiles.lines import failure_line
from loggerapp.pinger.files import HourFileWriter, LineJob, WriterThread


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_hour_boundary_splits_files(tmp_path):
    writer = HourFileWriter(tmp_path)
    before, after = ts("2015-03-10T10:59:59.999"), ts("2015-03-10T11:00:00")
    assert writer.write("002506", before, failure_line("002506", before, "unreachable", "x", 0.0))
    assert writer.write("002506", after, failure_line("002506", after, "unreachable", "y", 0.0))
    writer.close_all()
    ten = tmp_path / "2015-03-10-10" / "iseif-rainforest-002506-2015-03-10-10.jl"
    eleven = tmp_path / "2015-03-10-11" / "iseif-rainforest-002506-2015-03-10-11.jl"
    assert [json.loads(line)["error"] for line in ten.read_text().splitlines()] == ["x"]
    assert [json.loads(line)["error"] for line in eleven.read_text().splitlines()] == ["y"]
    assert writer.path_for("002506", before) == ten


def test_hour_is_utc_regardless_of_local_time_zone(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        writer = HourFileWriter(tmp_path)
        assert writer.path_for("002506", ts("2015-03-10T23:30:00")).parent.name == "2015-03-10-23"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_pool_is_bounded_and_lines_survive_eviction(tmp_path):
    writer = HourFileWriter(tmp_path, max_open=16)
    fds_before = open_fds()
    moment = ts("2020-01-01T00:00:00")
    cloud_ids = [f"{n:06x}" for n in range(200)]
    for round_ in range(3):
        for cloud_id in cloud_ids:
            assert writer.write(cloud_id, moment + round_, f'{{"n":{round_}}}\n'.encode())
        assert writer.open_files <= 16
        assert open_fds() - fds_before <= 16
    assert writer.counters.evictions > 0
    writer.close_all()
    assert open_fds() == fds_before
    for cloud_id in cloud_ids:
        lines = (tmp_path / "2020-01-01-00" / f"iseif-rainforest-{cloud_id}-2020-01-01-00.jl").read_text()
        assert [json.loads(line)["n"] for line in lines.splitlines()] == [0, 1, 2]


def test_closing_ended_hours_keeps_current_ones(tmp_path):
    writer = HourFileWriter(tmp_path)
    ten, eleven = ts("2015-03-10T10:30:00"), ts("2015-03-10T11:00:01")
    writer.write("002506", ten, b"{}\n")
    writer.write("00abcd", ten, b"{}\n")
    writer.write("002506", eleven, b"{}\n")
    assert writer.open_files == 3
    assert writer.close_hours_before(hour_index(eleven)) == 2
    assert writer.open_files == 1
    # A late line of the old hour still lands in the old hour's file (reopened in append mode).
    writer.write("002506", ten + 1, b'{"late":true}\n')
    writer.close_all()
    ten_file = tmp_path / "2015-03-10-10" / "iseif-rainforest-002506-2015-03-10-10.jl"
    assert ten_file.read_text().splitlines() == ["{}", '{"late":true}']


def test_writer_thread_closes_the_old_hour_once_it_has_ended(tmp_path):
    """The thread's clock passes 11:00 + grace: the 10 o'clock handles are closed, the writer keeps going."""
    now = [ts("2015-03-10T10:59:59")]
    written: list[LineJob] = []
    thread = WriterThread(HourFileWriter(tmp_path), on_written=written.append, hour_grace=5.0, clock=lambda: now[0])
    thread.start()
    try:
        thread.put(LineJob(1, "002506", ts("2015-03-10T10:59:59"), True, b'{"a":1}\n'))
        thread.put(LineJob(1, "002506", ts("2015-03-10T11:00:00"), True, b'{"a":2}\n'))
        deadline = time.monotonic() + 5
        while len(written) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert thread.writer.open_files == 2
        now[0] = ts("2015-03-10T11:00:06")  # past the grace period
        deadline = time.monotonic() + 5
        while thread.writer.open_files != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert thread.writer.open_files == 1
        assert thread.writer.counters.closed_for_hour == 1
    finally:
        thread.stop(timeout=5)
    assert not thread.is_alive()
    assert thread.writer.open_files == 0
    assert (tmp_path / "2015-03-10-10" / "iseif-rainforest-002506-2015-03-10-10.jl").read_bytes() == b'{"a":1}\n'
    assert (tmp_path / "2015-03-10-11" / "iseif-rainforest-002506-2015-03-10-11.jl").read_bytes() == b'{"a":2}\n'


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_disk_full_is_counted_logged_and_survived(tmp_path, caplog):
    """/dev/full refuses every write with ENOSPC: the writer reports the household and the cause and goes on."""
    moment = ts("2015-03-10T10:00:00")
    writer = HourFileWriter(tmp_path)
    target = writer.path_for("00dead", moment)
    target.parent.mkdir(parents=True)
    target.symlink_to("/dev/full")
    caplog.set_level("ERROR", logger="loggerapp.pinger.files")
    for _ in range(5):
        assert writer.write("00dead", moment, b'{"x":1}\n') is False
    assert writer.write("002506", moment, b'{"x":1}\n') is True  # another household is unaffected
    assert writer.counters.errors == 5
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1  # logged once per streak, not once per line
    assert "00dead" in messages[0]
    assert "ENOSPC" in messages[0]
    writer.close_all()


def test_a_late_line_of_a_closed_hour_keeps_no_handle(tmp_path):
    """Once an hour's files are closed the rotation may take and delete them. A late line of that hour is written
    and its file closed at once, so a second late line reopens the path instead of vanishing into a deleted file."""
    writer = HourFileWriter(tmp_path)
    ten, eleven = ts("2015-03-10T10:59:58"), ts("2015-03-10T11:00:40")
    writer.write("002506", ten, b'{"n":1}\n')
    writer.close_hours_before(hour_index(eleven))
    assert writer.write("002506", ten + 1, b'{"n":2}\n')
    assert writer.open_files == 0
    path = writer.path_for("002506", ten)
    assert path.read_bytes() == b'{"n":1}\n{"n":2}\n'
    path.unlink()  # the rotation archived and deleted it
    assert writer.write("002506", ten + 1.5, b'{"n":3}\n')
    assert path.read_bytes() == b'{"n":3}\n'  # on disk, for the next rotation run to merge
    writer.close_all()


def test_a_line_that_cannot_be_routed_never_stops_the_writer_thread(tmp_path):
    written: list[LineJob] = []
    thread = WriterThread(HourFileWriter(tmp_path), on_written=written.append)
    thread.start()
    try:
        moment = time.time()
        thread.put(LineJob(1, "../x", moment, True, b'{"bad":1}\n'))  # not a cloud id: no file name for it
        thread.put(LineJob(2, "002506", moment, True, b'{"good":1}\n'))
        deadline = time.monotonic() + 5
        while not written and time.monotonic() < deadline:
            time.sleep(0.01)
        assert thread.is_alive()
        assert [job.cloud_id for job in written] == ["002506"]
        assert thread.writer.counters.errors == 1
    finally:
        thread.stop(timeout=5)
    assert thread.writer.path_for("002506", moment).read_bytes() == b'{"good":1}\n'
