"""Benchmark of `manage.py runpinger` against the EAGLE simulator, next to the old one-at-a-time poller.

    .venv/bin/python bench/pinger.py --households 5000 --interval 6 --latency-ms 200 --duration 75

What it does, in one run:
1. Creates a throwaway PostgreSQL database (``--db-name``, dropped and recreated), migrates it.
2. Starts ``manage.py eagle_simulator --households N --latency-ms L --credentials-out F`` and imports F with
   ``manage.py import_households``.
3. Runs the real ``manage.py runpinger --duration D`` and reaps it with ``os.wait4`` for its CPU time and peak
   RSS; then reads every hour file it wrote.
4. Runs the baseline for the same time: one household after another with the synchronous client (a pooled
   ``requests`` session), as the old logger did, also in its own process.
5. Prints, for both: polls/s sustained, the fraction of due polls that ran, p50/p99/max start lag against the
   schedule, CPU seconds per 1,000 polls, peak RSS; then the ratio.

Definitions (measurement window: from launch + ``--warmup`` to exit - 2 s):
- a due poll is a tick ``phase + k * interval`` of a household inside the window; it ran if a line with that
  tick exists (the pinger writes a line for every poll, failed or not);
- start lag = poll start - due time of its tick;
- the baseline has no ticks: every household is due at its start and every interval after, so poll k of a
  household is due at ``start + k * interval`` and its lag is how far behind that it started.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from harness import create_database, drop_database, free_port, manage, service_env


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_measured(cmd: list[str], env: dict[str, str], log: Path) -> dict:
    """Run a process to its end; its wall time, CPU seconds and peak RSS from the kernel (wait4)."""
    with open(log, "w") as out:
        started = time.time()
        process = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        ended = time.time()
    return {
        "started": started,
        "ended": ended,
        "returncode": process.returncode,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }


def wait_for_simulator(base_url: str, process: subprocess.Popen, timeout: float = 120) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the simulator exited with {process.returncode}")
        try:
            if requests.get(f"{base_url}/_sim/stats", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit("the simulator did not start")


def analyse_pinger(log_root: Path, interval: float, window: tuple[float, float]) -> dict:
    """Due ticks, ran ticks and start lags from the hour files."""
    from loggerapp.pinger import schedule

    start, end = window
    lines_by_household: dict[str, list[float]] = defaultdict(list)
    total_lines = ok_lines = 0
    for path in log_root.glob("*/iseif-rainforest-*.jl"):
        if path.name.startswith("iseif-rainforest-price-"):
            continue  # demand lines only
        for text in path.read_bytes().splitlines():
            line = json.loads(text)
            total_lines += 1
            ok_lines += bool(line["ok"])
            lines_by_household[line["cloud_id"]].append(line["poll_time"])
    return {
        "total_lines": total_lines,
        "ok_lines": ok_lines,
        **_ticks(lines_by_household, interval, start, end, schedule),
    }


def _ticks(lines_by_household, interval, start, end, schedule) -> dict:
    due = ran = 0
    lags: list[float] = []
    for cloud_id, times in lines_by_household.items():
        phase = schedule.phase_of(cloud_id, interval)
        first, last = schedule.next_tick(start, phase, interval), schedule.next_tick(end, phase, interval)
        due += last - first
        seen = set()
        for moment in times:
            tick = schedule.tick_at_or_before(moment, phase, interval)
            if first <= tick < last and tick not in seen:
                seen.add(tick)
                lags.append(max(0.0, moment - schedule.due_time(phase, tick, interval)))
        ran += len(seen)
    return {"due": due, "ran": ran, "lags": lags, "window_s": end - start, "polls_in_window": ran}


def baseline_worker(credentials: Path, cloud_url: str, duration: float, interval: float, out: Path) -> None:
    """The old logger's way: one household after another, one synchronous request each, for ``duration`` s."""
    import django

    django.setup()
    from loggerapp.eagle import EagleError, EagleTarget, SyncEagleClient

    targets = []
    for text in credentials.read_text().splitlines():
        record = json.loads(text)
        targets.append(
            EagleTarget(
                cloud_id=record["cloud_id"],
                protocol=record.get("protocol", "cloud"),
                user_email=record.get("user_email", ""),
                password=record["user_pw"],
                address=record.get("address", ""),
            )
        )
    client = SyncEagleClient(cloud_url=cloud_url)
    started = time.time()
    polls: list[tuple[str, float, bool]] = []
    stop = started + duration
    while time.time() < stop:
        for target in targets:
            if time.time() >= stop:
                break
            moment = time.time()
            try:
                client.instantaneous_demand(target)
                ok = True
            except EagleError:
                ok = False
            polls.append((target.cloud_id, moment, ok))
    out.write_text(json.dumps({"started": started, "polls": polls}))


def analyse_baseline(result: dict, interval: float, window: tuple[float, float], households: int) -> dict:
    start, end = window
    count: dict[str, int] = defaultdict(int)
    lags: list[float] = []
    ran = 0
    for cloud_id, moment, _ok in result["polls"]:
        k = count[cloud_id]
        count[cloud_id] += 1
        if start <= moment < end:
            ran += 1
            lags.append(moment - (result["started"] + k * interval))
    due = int(households * (end - start) / interval)
    return {"due": due, "ran": ran, "lags": lags, "window_s": end - start, "total_lines": len(result["polls"])}


def summarise(name: str, figures: dict, process: dict) -> dict:
    lags = figures["lags"]
    polls_total = max(1, figures["total_lines"])
    summary = {
        "name": name,
        "polls_per_s": figures["ran"] / figures["window_s"],
        "due_fraction": figures["ran"] / figures["due"] if figures["due"] else float("nan"),
        "due": figures["due"],
        "ran": figures["ran"],
        "lag_p50_ms": percentile(lags, 0.50) * 1000,
        "lag_p99_ms": percentile(lags, 0.99) * 1000,
        "lag_max_ms": max(lags) * 1000 if lags else float("nan"),
        "cpu_s_per_1000_polls": process["cpu_s"] / polls_total * 1000,
        "cpu_s": process["cpu_s"],
        "peak_rss_mb": process["peak_rss_mb"],
        "lines": figures["total_lines"],
        "returncode": process["returncode"],
    }
    if "ok_lines" in figures:
        summary["ok_lines"] = figures["ok_lines"]
    return summary


def print_table(rows: list[dict]) -> None:
    columns = [
        ("polls/s", "polls_per_s", "{:.1f}"),
        ("due run", "due_fraction", "{:.4%}"),
        ("lag p50 ms", "lag_p50_ms", "{:.1f}"),
        ("lag p99 ms", "lag_p99_ms", "{:.1f}"),
        ("lag max ms", "lag_max_ms", "{:.1f}"),
        ("CPU s/1000 polls", "cpu_s_per_1000_polls", "{:.3f}"),
        ("peak RSS MB", "peak_rss_mb", "{:.1f}"),
    ]
    print(f"{'':10}" + "".join(f"{title:>18}" for title, _, _ in columns))
    for row in rows:
        print(f"{row['name']:10}" + "".join(f"{fmt.format(row[key]):>18}" for _, key, fmt in columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=6.0)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--duration", type=float, default=75.0, help="seconds the pinger runs")
    parser.add_argument("--baseline-duration", type=float, default=None, help="default: --duration; 0 skips it")
    parser.add_argument("--warmup", type=float, default=12.0, help="seconds ignored after launch")
    parser.add_argument("--max-in-flight", type=int, default=None)
    parser.add_argument("--db-name", default="bench_pinger")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and database")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--baseline-worker", nargs=4, metavar=("CREDENTIALS", "URL", "DURATION", "OUT"))
    args = parser.parse_args()

    if args.baseline_worker:
        credentials, url, duration, out = args.baseline_worker
        baseline_worker(Path(credentials), url, float(duration), args.interval, Path(out))
        return

    work = Path(tempfile.mkdtemp(prefix="bench-pinger-"))
    log_root = work / "logs"
    db_url = create_database(args.db_name)
    env = service_env(db_url, log_root)
    simulator = None
    try:
        subprocess.run(manage("migrate", "-v", "0"), env=env, check=True)
        port = free_port()
        credentials = work / "households.jl"
        simulator = subprocess.Popen(
            manage(
                "eagle_simulator",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--households",
                str(args.households),
                "--latency-ms",
                str(args.latency_ms),
                "--credentials-out",
                str(credentials),
                "--seed",
                "1",
            ),
            env=env,
            stdout=open(work / "simulator.log", "w"),
            stderr=subprocess.STDOUT,
        )
        base_url = f"http://127.0.0.1:{port}"
        wait_for_simulator(base_url, simulator)
        subprocess.run(manage("import_households", str(credentials)), env=env, check=True, stdout=subprocess.DEVNULL)
        cloud_url = f"{base_url}/cgi-bin/post_manager"
        env["EAGLE_CLOUD_URL"] = cloud_url

        cmd = manage("runpinger", "--interval", str(args.interval), "--duration", str(args.duration))
        if args.max_in_flight:
            cmd += ["--max-in-flight", str(args.max_in_flight)]
        print(f"pinger: {args.households} households, {args.interval:g} s, {args.latency_ms} ms, {args.duration:g} s")
        pinger = run_measured(cmd, env, work / "pinger.out")
        window = (pinger["started"] + args.warmup, pinger["ended"] - 2.0)
        rows = [summarise("pinger", analyse_pinger(log_root, args.interval, window), pinger)]

        baseline_duration = args.duration if args.baseline_duration is None else args.baseline_duration
        if baseline_duration > 0:
            out = work / "baseline.json"
            cmd = [sys.executable, __file__, "--interval", str(args.interval), "--baseline-worker"]
            cmd += [str(credentials), cloud_url, str(baseline_duration), str(out)]
            print(f"baseline: one household at a time for {baseline_duration:g} s")
            process = run_measured(cmd, env, work / "baseline.out")
            result = json.loads(out.read_text())
            window = (result["started"] + 1.0, result["started"] + baseline_duration)
            figures = analyse_baseline(result, args.interval, window, args.households)
            rows.append(summarise("baseline", figures, process))
        print_table(rows)
        if len(rows) == 2 and rows[1]["polls_per_s"] > 0:
            print(f"throughput ratio pinger/baseline: {rows[0]['polls_per_s'] / rows[1]['polls_per_s']:.0f}x")
        targets = rows[0]["due_fraction"] >= 0.999 and rows[0]["lag_p99_ms"] < 500 and rows[0]["peak_rss_mb"] < 300
        print(f"targets (>= 99.9% due polls, p99 lag < 500 ms, peak RSS < 300 MB): {'met' if targets else 'MISSED'}")
        if args.json:
            args.json.write_text(json.dumps({"households": args.households, "rows": rows, "targets_met": targets}))
        if rows[0]["returncode"] != 0:
            print(f"runpinger exited with {rows[0]['returncode']}; see {work / 'pinger.out'}")
    finally:
        if simulator is not None and simulator.poll() is None:
            simulator.send_signal(signal.SIGTERM)
            try:
                simulator.wait(15)
            except subprocess.TimeoutExpired:
                simulator.kill()
        if not args.keep:
            drop_database(args.db_name)
            subprocess.run(["rm", "-rf", str(work)], check=False)
        else:
            print(f"kept {work} and database {args.db_name}")


if __name__ == "__main__":
    main()
