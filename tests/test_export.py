"""manage.py export_readings against real PostgreSQL, a real SeaweedFS and real hour files: hours uploaded by the
real upload, hours still on disk and an hour in both places, exported in each format, every line once, in order."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from loggerapp.export.formats import rfc3339
from loggerapp.hourfiles.content import encode
from loggerapp.hourfiles.layout import archive_key, hour_file_path
from loggerapp.rotation.job import run_rotation
from tests.fixtures.core import manage_command, subprocess_env
from tests.fixtures.s3 import hour_content, reading_line

pytestmark = pytest.mark.django_db(transaction=True)

# Hours of a month's end: the span below covers four days of January (listed as a month) and one of February.
HOURS = [
    datetime(2026, 1, 28, 23, tzinfo=UTC),
    datetime(2026, 1, 29, tzinfo=UTC),
    datetime(2026, 1, 31, 23, tzinfo=UTC),
]
LOCAL_HOURS = [datetime(2026, 2, 1, 0, tzinfo=UTC), datetime(2026, 2, 1, 1, tzinfo=UTC)]
OVERLAP = datetime(2026, 1, 31, 23, tzinfo=UTC)
START, END = "2026-01-28T23:30:00Z", "2026-02-01T01:30"
T0, T1 = datetime(2026, 1, 28, 23, 30, tzinfo=UTC).timestamp(), datetime(2026, 2, 1, 1, 30, tzinfo=UTC).timestamp()


def parse_lines(content: bytes) -> list[dict]:
    return [json.loads(line) for line in content.splitlines() if line.strip()]


@pytest.fixture
def households(s3_archive, make_household, log_root, settings):
    """Two households of cohort A (one withdrawn) and one other, an empty bucket and an empty LOG_ROOT."""
    settings.ARCHIVE_PREFIX = "rainforest-logs"
    make_household("002506", label="Cohort A")
    make_household("00ab12", label="cohort a", active=False)  # withdrawn: still exported
    make_household("00ff00", label="other")
    return {"archive": s3_archive, "log_root": log_root, "expected": []}


@pytest.fixture
def study(households, write_hour_file, settings):
    """The households' hours uploaded by the real upload, later hours still on disk, and for one hour a file left
    on disk beside its archived object (a late writer: old and new lines)."""
    settings.ROTATION_GRACE_SECONDS = 0
    written: dict[str, list[dict]] = {"002506": [], "00ab12": [], "00ff00": []}
    for hour in HOURS + LOCAL_HOURS:
        for cloud_id, lines in (("002506", 600), ("00ab12", 300), ("00ff00", 10)):
            path = write_hour_file(cloud_id, hour, lines=lines, failed_every=10 if cloud_id == "002506" else 0)
            written[cloud_id] += parse_lines(path.read_bytes())
    summary = run_rotation(now=datetime(2026, 2, 1, 0, 30, tzinfo=UTC))
    assert summary.done == 9 and not summary.failed
    late = [reading_line("002506", OVERLAP.timestamp() + 3597 + i) for i in range(3)]
    leftover = hour_content("002506", OVERLAP, lines=600, failed_every=10).splitlines(keepends=True)[500:]
    write_hour_file("002506", OVERLAP, content=b"".join(leftover + late))
    written["002506"] += parse_lines(b"".join(late))
    expected = []
    for cloud_id in ("002506", "00ab12"):
        polls = sorted(written[cloud_id], key=lambda record: record["poll_time"])
        expected += [(cloud_id, record) for record in polls if T0 <= record["poll_time"] < T1]
    return {**households, "expected": expected}


def run_export(study, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = subprocess_env(LOG_ROOT=str(study["log_root"]), EXPORT_CONCURRENCY="8", **study["archive"].env())
    return subprocess.run(manage_command("export_readings", *args), env=env, capture_output=True, timeout=120, **kwargs)


def rows_of(data: bytes, fmt: str) -> list[dict]:
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(data.decode())))
    if fmt == "jsonl":
        return parse_lines(data)
    return pq.read_table(io.BytesIO(data)).to_pylist()


@pytest.mark.parametrize(
    ("fmt", "how"),
    [("csv", "subprocess, to a file"), ("jsonl", "in this process, to a file"), ("parquet", "subprocess, to stdout")],
)
def test_archived_and_local_hours_come_back_every_line_once_in_order(study, tmp_path, fmt, how):
    output = tmp_path / f"cohort-a.{fmt}"
    args = ["--label", "COHORT A", "--start", START, "--end", END, "--format", fmt]
    expected = study["expected"]
    if how.startswith("subprocess"):
        done = run_export(study, *args, *(["-o", str(output)] if how.endswith("file") else []))
        assert done.returncode == 0, done.stderr.decode()
        if how.endswith("stdout"):
            output.write_bytes(done.stdout)  # Parquet through a pipe: binary-safe
        else:
            assert done.stdout == b""  # the data went to the file; the summary to stderr
        assert f"exported {len(expected):,} rows of 2 household(s)" in done.stderr.decode()
    else:
        call_command("export_readings", *args, "-o", str(output), stderr=io.StringIO())
    rows = rows_of(output.read_bytes(), fmt)
    # 002506: half of 23:00, three whole hours (one with 3 late lines), half of 01:00; 00ab12 writes 30 minutes an
    # hour, so none of its first hour's polls fall in the span, and all of the last hour's do.
    assert len(rows) == len(expected) == (300 + 600 + 603 + 600 + 300) + (0 + 300 + 300 + 300 + 300)
    for row, (cloud_id, record) in zip(rows, expected, strict=True):
        poll_time = row["poll_time"] if fmt != "parquet" else rfc3339(row["poll_time"].timestamp())
        assert (row["cloud_id"], poll_time) == (cloud_id, rfc3339(record["poll_time"]))
        ok = row["ok"] if fmt != "csv" else row["ok"] == "true"
        assert ok is record["ok"]
        demand = row["demand_kw"] if fmt != "csv" else (float(row["demand_kw"]) if row["demand_kw"] else None)
        assert demand == (record["demand_kw"] if record["ok"] else None)
        assert (row["error_kind"] or None) == (None if record["ok"] else record["error_kind"])
        assert (row["price"] or None) is None and row["record"] == "demand"
    if fmt == "parquet":
        assert pq.ParquetFile(output).metadata.num_row_groups == 1  # under 50,000 rows: one group
    assert not list(tmp_path.glob(".*.part"))


def test_stdout_and_file_hold_the_same_bytes_and_a_pipe_gets_no_progress_line(study, tmp_path):
    call_command("export_readings", "002506", "--start", START, "--end", END, "-o", str(tmp_path / "x.csv"))
    to_stdout = run_export(study, "002506", "--start", START, "--end", END)
    assert to_stdout.returncode == 0
    assert to_stdout.stdout == (tmp_path / "x.csv").read_bytes()
    assert b"\r" not in to_stdout.stderr and to_stdout.stderr.count(b"\n") == 1  # the summary line only


def run_on_terminal(study, args: list[str], terminal: str, tmp_path) -> tuple[int, bytes, bytes]:
    """Run the export with stdout or stderr on a pseudo-terminal; (exit status, the other stream, what the
    terminal got). The other stream goes to a file, so that a large export never waits on a full pipe."""
    leader, follower = pty.openpty()
    env = subprocess_env(LOG_ROOT=str(study["log_root"]), COLUMNS="200", **study["archive"].env())
    other = "stdout" if terminal == "stderr" else "stderr"
    with open(tmp_path / other, "wb") as other_file:
        process = subprocess.Popen(
            manage_command("export_readings", *args), env=env, **{terminal: follower, other: other_file}
        )
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        process.wait(timeout=120)
    os.close(leader)
    return process.returncode, (tmp_path / other).read_bytes(), seen


def test_a_terminal_gets_a_progress_line_on_stderr(study, tmp_path):
    status, data, terminal = run_on_terminal(study, ["--all", "--start", START, "--end", END], "stderr", tmp_path)
    assert status == 0
    assert b"\r[" in terminal and b"household 3/3 00ff00" in terminal and b"rows" in terminal
    last = terminal.rstrip(b"\r\n").rsplit(b"\r", 1)[-1]  # the progress line is cleared, then the summary
    assert last.startswith(b"exported 3,643 rows of 3 household(s), 15 hours") and b"\x1b[" not in last
    assert data.startswith(b"cloud_id,poll_time,") and b"\r" not in data


def test_parquet_is_not_written_to_a_terminal(households, tmp_path):
    args = ["002506", "--start", START, "--end", END, "--format", "parquet"]
    status, err, terminal = run_on_terminal(households, args, "stdout", tmp_path)
    assert status == 1 and terminal == b""
    assert err.decode().strip().splitlines() == [
        "CommandError: Parquet is binary: not written to a terminal; use --output FILE or redirect stdout"
    ]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--start", START, "--end", END], "choose the households one way"),
        (["002506", "--all", "--start", START, "--end", END], "choose the households one way"),
        (["002506", "bad-id", "--start", START, "--end", END], "no household with cloud id bad-id"),
        (["--label", "nobody", "--start", START, "--end", END], "no household has the label 'nobody'"),
        (["002506", "--start", "2026-02-01", "--end", "2026-01-01"], "must be after start"),
        (["002506", "--start", "2026-01-01", "--end", "someday"], "'someday' is not a date"),
        (["002506", "--start", "2025-01-01", "--end", "2026-01-02T00:00:01"], "at most 366 days"),
    ],
)
@pytest.mark.django_db  # in this process: no need to commit
def test_bad_requests_are_one_clear_error(make_household, args, says, tmp_path):
    make_household("002506", label="Cohort A")
    output = tmp_path / "never.csv"
    with pytest.raises(CommandError, match=says):
        call_command("export_readings", *args, "--output", str(output), stdout=io.BytesIO())
    assert not output.exists()


def test_a_bad_request_exits_1_with_one_line_and_writes_nothing(households, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    done = run_export(households, "002506", "--start", "2026-01-01", "--end", "2026-01-01", "-o", str(folder / "x"))
    assert done.returncode == 1 and done.stdout == b""
    assert done.stderr.decode().strip().splitlines() == [
        "CommandError: end (2026-01-01 00:00:00) must be after start (2026-01-01 00:00:00), UTC."
    ]
    assert list(folder.iterdir()) == []


def test_an_unreachable_archive_leaves_no_output_file(households, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    output = folder / "x.csv"
    env = subprocess_env(
        LOG_ROOT=str(households["log_root"]), **households["archive"].env(AWS_SECRET_ACCESS_KEY="not-the-secret")
    )
    done = subprocess.run(
        manage_command("export_readings", "002506", "--start", START, "--end", END, "-o", str(output)),
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 1
    message = done.stderr.decode().strip().splitlines()
    assert len(message) == 1 and "cannot list" in message[0] and "no file written" in message[0]
    assert "not-the-secret" not in done.stderr.decode()
    assert list(folder.iterdir()) == []


def test_an_unreadable_object_is_named_and_everything_else_exported(study, tmp_path, settings):
    broken = archive_key("002506", HOURS[0]) + ".gz"
    study["archive"].client.put_object(
        Bucket=study["archive"].bucket, Key=broken, Body=encode(b'{"poll_time": 1}\n' * 50, True)[:30]
    )
    output = tmp_path / "x.jsonl"
    with pytest.raises(CommandError, match=f"1 hour files could not be read and are left out: {broken}"):
        call_command(
            "export_readings", "002506", "--start", START, "--end", END, "--format", "jsonl", "-o", str(output)
        )
    expected = [record for cloud_id, record in study["expected"] if cloud_id == "002506"]
    assert len(parse_lines(output.read_bytes())) == len(expected)  # the plain object of that hour is still read


def test_the_local_file_of_the_current_hour_is_read_as_it_is_written(study, tmp_path):
    path = hour_file_path(study["log_root"], "002506", LOCAL_HOURS[1])
    with open(path, "ab") as handle:
        handle.write(b'{"cloud_id":"002506","poll_time":')  # a poll being written right now
    output, summary = tmp_path / "x.csv", io.StringIO()
    call_command(
        "export_readings",
        "002506",
        "--start",
        "2026-02-01T01:00",
        "--end",
        "2026-02-01T02",
        "-o",
        str(output),
        stderr=summary,
    )
    assert "1 lines that are not polls left out" in summary.getvalue()
    assert len(output.read_bytes().splitlines()) == 1 + 600


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_price_lines_archived_and_local_come_back_as_price_rows_in_time_order(
    households, write_hour_file, write_price_file, settings, tmp_path, fmt
):
    """Issue 14: the price file beside the demand file, one hour uploaded and one still local, exported with
    the demand rows in time order, price and summation filled in."""
    settings.ROTATION_GRACE_SECONDS = 0
    archived, local = HOURS[2], LOCAL_HOURS[0]
    for hour, start_kwh in ((archived, 1000.0), (local, 1001.2)):
        write_hour_file("002506", hour, lines=20, every=180.0)
        write_price_file("002506", hour, lines=60, start_kwh=start_kwh, failed_every=20)
    assert run_rotation(now=datetime(2026, 2, 1, 0, 30, tzinfo=UTC)).done == 2  # the 23:00 demand and price files
    output = tmp_path / f"out.{fmt}"
    args = ["002506", "--start", "2026-01-31T23:00Z", "--end", "2026-02-01T01:00Z", "--format", fmt]
    call_command("export_readings", *args, "-o", str(output), stderr=io.StringIO())
    rows = rows_of(output.read_bytes(), fmt)

    assert len(rows) == 2 * (20 + 60)
    times = [str(row["poll_time"]) for row in rows]
    assert times == sorted(times)
    prices = [row for row in rows if row["record"] == "price"]
    assert len(prices) == 120
    ok = [row for row in prices if str(row["ok"]).lower() == "true"]
    assert len(ok) == 114
    for row in ok:
        assert float(row["price"]) == pytest.approx(0.1176) and row["price_currency"] == "USD"
        assert float(row["summation_received_kwh"]) == 0.0
        assert row["demand_kw"] in (None, "")
    delivered = [float(row["summation_delivered_kwh"]) for row in ok]
    assert delivered == sorted(delivered) and delivered[0] == pytest.approx(1000.0 + 1.2 / 60)
    assert all(row["price"] in (None, "") for row in rows if row["record"] == "demand")
