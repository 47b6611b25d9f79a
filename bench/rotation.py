"""Benchmark of the hourly upload (`manage.py rotate_logs`) next to `rclone copy` of the same files.

    .venv/bin/python bench/rotation.py --households 5000 --lines 480 --concurrency 16

What it does, in one run:
1. Creates a throwaway PostgreSQL database (``--db-name``, dropped and recreated), migrates it, and imports
   the households with ``manage.py import_households`` (so ledger rows link to them, as in production).
2. Starts SeaweedFS (``weed mini`` on loopback, free ports) with two buckets.
3. Writes one finished hour of hour files under a temporary LOG_ROOT: one file per household, ``--lines``
   polls in the pinger's format (about 180 KB for 600 lines).
4. ``rclone copy`` of that hour directory to the first bucket (``--transfers``/``--checkers`` = concurrency,
   configured through RCLONE_CONFIG_* environment variables: provider Other, path style), timed.
5. ``manage.py rotate_logs --json`` to the second bucket with ARCHIVE_CONCURRENCY = concurrency, timed; it
   also records the ledger, verifies every object (HEAD: size, ETag, SHA-256) and deletes the local files,
   which rclone does not do.
6. Checks both buckets hold every file, prints files/s and MB/s for both and the ratio, and cleans up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import REPO, create_database, drop_database, manage, service_env

from tests.fixtures.s3 import ACCESS_KEY, REGION, SECRET_KEY, SeaweedFS

LINE = (
    '{"cloud_id": "%(cid)s", "poll_time": %(t).3f, "ok": true, "latency_ms": %(lat).1f, "protocol": "cloud", '
    '"DeviceMacId": 15624574502131577396, "MeterMacId": 5435283416564273716, "TimeStamp": %(ts)d, '
    '"Demand": %(dem)d, "Multiplier": 1, "Divisor": 1000, "DigitsRight": 3, "DigitsLeft": 15, '
    '"SuppressLeadingZero": "Y", "meter_time": %(mt)d, "demand_kw": %(kw).3f, "repeat": false}\n'
)
FAILED_LINE = (
    '{"cloud_id": "%(cid)s", "poll_time": %(t).3f, "ok": false, "latency_ms": %(lat).1f, '
    '"error_kind": "unreachable", "error": "connection to the EAGLE timed out after 4.0 s"}\n'
)


def hour_file(cloud_id: str, hour: datetime, lines: int, seed: int) -> bytes:
    start = hour.timestamp()
    out = []
    for i in range(lines):
        t = start + i * 6 + (seed % 600) / 100
        values = {
            "cid": cloud_id,
            "t": t,
            "lat": 60 + (i * 7 + seed) % 140,
            "ts": int(t) - 946684800,
            "mt": int(t),
            "dem": 300 + (i * 13 + seed) % 4000,
            "kw": (300 + (i * 13 + seed) % 4000) / 1000,
        }
        out.append((FAILED_LINE if (i + seed) % 97 == 0 else LINE) % values)
    return "".join(out).encode()


def env_for(db_url: str, log_root: Path, server: SeaweedFS, bucket: str, concurrency: int) -> dict[str, str]:
    return service_env(
        db_url,
        log_root,
        AWS_STORAGE_BUCKET_NAME=bucket,
        AWS_S3_ENDPOINT_URL=server.endpoint,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_S3_REGION_NAME=REGION,
        ARCHIVE_CONCURRENCY=str(concurrency),
        ROTATION_GRACE_SECONDS="0",
    )


def count_objects(server: SeaweedFS, bucket: str) -> tuple[int, int]:
    client = server.client()
    count = size = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            count += 1
            size += item["Size"]
    return count, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=5000)
    parser.add_argument(
        "--lines", type=int, default=480, help="lines per hour file (480 of the pinger's lines are about 180 KB)"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--db-name", default="bench_rotation")
    parser.add_argument("--profile", help="run rotate_logs under cProfile, writing the stats to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (SeaweedFS data, logs)")
    args = parser.parse_args()
    if not shutil.which("rclone"):
        sys.exit("rclone is not installed (Debian: apt-get install -y rclone)")

    work = Path(tempfile.mkdtemp(prefix="bench-rotation-"))
    log_root = work / "logs"
    server = SeaweedFS(data_dir=work / "seaweedfs")
    try:
        db_url = create_database(args.db_name)
        server.start()
        rclone_bucket, rotation_bucket = server.create_bucket(), server.create_bucket()
        env = env_for(db_url, log_root, server, rotation_bucket, args.concurrency)
        subprocess.run(manage("migrate", "-v", "0"), env=env, check=True)

        cloud_ids = [f"{i:06x}" for i in range(1, args.households + 1)]
        roster = work / "households.jl"
        with roster.open("w") as out:
            for cloud_id in cloud_ids:
                record = {"cloud_id": cloud_id, "user_email": f"h{cloud_id}@example.org", "user_pw": f"pw{cloud_id}"}
                out.write(json.dumps(record) + "\n")
        subprocess.run(manage("import_households", str(roster)), env=env, check=True, stdout=subprocess.DEVNULL)

        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        hour_dir = log_root / hour.strftime("%Y-%m-%d-%H")
        hour_dir.mkdir(parents=True)
        started = time.monotonic()
        total = 0
        for seed, cloud_id in enumerate(cloud_ids):
            body = hour_file(cloud_id, hour, args.lines, seed)
            (hour_dir / f"iseif-rainforest-{cloud_id}-{hour:%Y-%m-%d-%H}.jl").write_bytes(body)
            total += len(body)
        os.sync()
        print(
            f"wrote {len(cloud_ids)} hour files, {total / 1e6:.0f} MB ({total / len(cloud_ids) / 1e3:.0f} KB each) "
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
        n = str(args.concurrency)
        started = time.monotonic()
        subprocess.run(
            ["rclone", "copy", str(hour_dir), f"bench:{rclone_bucket}/{hour:%Y-%m-%d-%H}", "--transfers", n,
             "--checkers", n, "--s3-no-check-bucket", "--config", "/dev/null"],
            env=rclone_env,
            check=True,
        )  # fmt: skip
        rclone_seconds = time.monotonic() - started

        started = time.monotonic()
        profile = [sys.executable, "-m", "cProfile", "-o", args.profile] if args.profile else [sys.executable]
        command = [*profile, str(REPO / "manage.py"), "rotate_logs", "--json"]
        result = subprocess.run(command, env=env, capture_output=True, text=True)
        rotation_wall = time.monotonic() - started
        if result.returncode != 0:
            print(result.stdout[-2000:], result.stderr[-4000:])
            sys.exit("rotate_logs failed")
        summary = json.loads(result.stdout.strip().splitlines()[-1])

        rclone_objects, rclone_bytes = count_objects(server, rclone_bucket)
        rotation_objects, rotation_bytes = count_objects(server, rotation_bucket)
        left = sum(1 for _ in log_root.rglob("*.jl"))
        files = len(cloud_ids)
        assert rclone_objects == files and rclone_bytes == total, (rclone_objects, rclone_bytes)
        assert rotation_objects == files and rotation_bytes == total, (rotation_objects, rotation_bytes)
        assert summary["counts"] == {"uploaded": files} and left == 0, (summary["counts"], left)

        mb = total / 1e6
        rows = [
            ("rclone copy", rclone_seconds, rclone_seconds),
            ("rotate_logs (wall, incl. start-up)", rotation_wall, rotation_wall),
            ("rotate_logs (the run itself)", summary["seconds"], summary["seconds"]),
        ]
        print(
            f"\n{files} files, {mb:.0f} MB, concurrency {args.concurrency}, loopback SeaweedFS, {os.cpu_count()} CPUs"
        )
        print(f"{'':38} {'seconds':>8} {'files/s':>8} {'MB/s':>7}")
        for name, seconds, _ in rows:
            print(f"{name:38} {seconds:8.1f} {files / seconds:8.0f} {mb / seconds:7.1f}")
        print(f"ratio rotate_logs run / rclone (throughput): {rclone_seconds / summary['seconds']:.2f}")
        print(f"ratio rotate_logs wall / rclone (throughput): {rclone_seconds / rotation_wall:.2f}")
    finally:
        server.stop()
        drop_database(args.db_name)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
