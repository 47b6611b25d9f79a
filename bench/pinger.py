"""Benchmark of `manage.py runpinger` next to a bare aiohttp client sending the same requests at the same rate.

    .venv/bin/python bench/pinger.py --households 5000 --interval 6 --latency-ms 200 --duration 75
    .venv/bin/python bench/pinger.py --households 12000 --processes 2      # two pingers, --shard 1/2 and 2/2
    .venv/bin/python bench/pinger.py --households 5000 --profile pinger.prof   # + the top of a cProfile

What it does, in one run:
1. Creates a throwaway PostgreSQL database (``--db-name``, dropped and recreated), migrates it.
2. Starts the relay the households are polled through: by default the fast stand-in of bench/simulator.py
   (``--relay-server``: the published sample answer after ``--latency-ms``, nothing checked, uvloop), so that
   the relay is never the limit; ``--relay simulator`` uses ``manage.py eagle_simulator`` instead. Writes N cloud
   households and imports them with ``manage.py import_households``.
3. Runs the real ``manage.py runpinger --duration D`` (``--processes P``: P of them at once, ``--shard k/P``)
   and reaps each with ``os.wait4`` for its CPU time and peak RSS; then reads every hour file written.
4. Runs the bare client for the same time, in its own process: one aiohttp session (the pinger's connector
   settings), every household's request (same URL, headers and body) due at the same ticks (same phases), the
   answer read, nothing else. Same event loop as the pinger (``--event-loop``).
5. Optionally (``--old-baseline-duration``) the old logger's way: one household after another, synchronously.
6. Prints, for each: polls/s, the fraction of due polls that ran, p50/p99/max start lag against the schedule,
   CPU ms per poll (whole process, from wait4; and steady state, after the warm-up), peak RSS; then the ratio
   of CPU per poll pinger/bare, the figure that stays meaningful on a loaded machine.

Definitions (measurement window: from launch + ``--warmup`` to exit - 2 s):
- a due poll is a tick ``phase + k * interval`` of a household inside the window; it ran if a line (the pinger)
  or a request (the bare client) with that tick exists;
- start lag = poll start - due time of its tick;
- CPU per poll: the process's user + system CPU divided by the polls it made; "steady" subtracts the CPU spent
  before the window opened (Django, loading the households) and counts only the polls after it;
- the old baseline has no ticks: poll k of a household is due at ``start + k * interval``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import string
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from harness import REPO, clean_up, create_database, free_port, manage, service_env, stop_process, wait_for_simulator

from loggerapp.pinger import schedule

SIMULATOR_BENCH = REPO / "bench" / "simulator.py"
DEMAND_BODY = b"<Command>\n  <Name>get_instantaneous_demand</Name>\n</Command>\n"  # what the cloud dialect sends


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_measured(cmd: list[str], env: dict[str, str], log: Path, warmup: float) -> dict:
    """Start a process; its CPU time is sampled once ``warmup`` seconds in (the steady state starts there)."""
    record: dict = {"started": time.time(), "cpu_at_warmup": None}
    process = record["process"] = subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)

    def sample() -> None:
        try:
            record["cpu_at_warmup"] = cpu_seconds(process.pid)
        except (OSError, IndexError):
            pass

    timer = threading.Timer(warmup, sample)
    timer.daemon = True
    timer.start()
    record["timer"] = timer
    return record


def reap(record: dict) -> dict:
    """Wait for a process started by start_measured: wall time, CPU seconds and peak RSS from wait4."""
    process = record.pop("process")
    _, status, usage = os.wait4(process.pid, 0)
    record.pop("timer").cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    record.update(
        ended=time.time(),
        returncode=process.returncode,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,
    )
    return record


def run_measured(cmd: list[str], env: dict[str, str], log: Path, warmup: float) -> dict:
    return reap(start_measured(cmd, env, log, warmup))


def write_households(path: Path, count: int) -> None:
    """``count`` cloud households with distinct ids and throwaway credentials (the fast relay checks none)."""
    rng = random.Random(1)
    alphabet = string.ascii_letters + string.digits
    with open(path, "w") as out:
        for number in sorted(rng.sample(range(0x1000000), count)):
            cloud_id = f"{number:06x}"
            password = "".join(rng.choice(alphabet) for _ in range(16))
            record = {"cloud_id": cloud_id, "user_email": f"h-{cloud_id}@bench.example.org", "user_pw": password}
            out.write(json.dumps(record) + "\n")


# --- reading the results -----------------------------------------------------------------------------------


def analyse_pinger(log_root: Path, cloud_ids: list[str], interval: float, window: tuple[float, float]) -> dict:
    """Due ticks, ran ticks and start lags from the hour files (every household is due, lines or not)."""
    times: dict[str, list[float]] = {cloud_id: [] for cloud_id in cloud_ids}
    total_lines = ok_lines = after_warmup = 0
    for path in log_root.glob("*/iseif-rainforest-*.jl"):
        if path.name.startswith("iseif-rainforest-price-"):
            continue  # demand lines only
        for text in path.read_bytes().splitlines():
            line = json.loads(text)
            total_lines += 1
            ok_lines += bool(line["ok"])
            after_warmup += line["poll_time"] >= window[0]
            times.setdefault(line["cloud_id"], []).append(line["poll_time"])
    figures = ticks(times, interval, *window)
    figures.update(total_lines=total_lines, ok_lines=ok_lines, polls_after_warmup=after_warmup)
    return figures


def ticks(times: dict[str, list[float]], interval: float, start: float, end: float) -> dict:
    due = ran = 0
    lags: list[float] = []
    for cloud_id, moments in times.items():
        phase = schedule.phase_of(cloud_id, interval)
        first, last = schedule.next_tick(start, phase, interval), schedule.next_tick(end, phase, interval)
        due += last - first
        seen = set()
        for moment in moments:
            tick = schedule.tick_at_or_before(moment, phase, interval)
            if first <= tick < last and tick not in seen:
                seen.add(tick)
                lags.append(max(0.0, moment - schedule.due_time(phase, tick, interval)))
        ran += len(seen)
    return {"due": due, "ran": ran, "lags": lags, "window_s": end - start}


def summarise(name: str, figures: dict, processes: list[dict]) -> dict:
    lags = figures["lags"]
    polls_total = max(1, figures["total_lines"])
    cpu = sum(process["cpu_s"] for process in processes)
    summary = {
        "name": name,
        "processes": len(processes),
        "polls_per_s": figures["ran"] / figures["window_s"],
        "due_fraction": figures["ran"] / figures["due"] if figures["due"] else float("nan"),
        "due": figures["due"],
        "ran": figures["ran"],
        "lag_p50_ms": percentile(lags, 0.50) * 1000,
        "lag_p99_ms": percentile(lags, 0.99) * 1000,
        "lag_max_ms": max(lags) * 1000 if lags else float("nan"),
        "cpu_ms_per_poll": cpu / polls_total * 1000,
        "cpu_s": cpu,
        "peak_rss_mb": max(process["peak_rss_mb"] for process in processes),
        "lines": figures["total_lines"],
        "returncode": max(abs(process["returncode"]) for process in processes),
    }
    warm = [process["cpu_at_warmup"] for process in processes]
    if "polls_after_warmup" in figures and None not in warm and figures["polls_after_warmup"]:
        summary["steady_cpu_ms_per_poll"] = (cpu - sum(warm)) / figures["polls_after_warmup"] * 1000
    else:
        summary["steady_cpu_ms_per_poll"] = float("nan")
    if "ok_lines" in figures:
        summary["ok_lines"] = figures["ok_lines"]
    return summary


def print_table(rows: list[dict]) -> None:
    columns = [
        ("polls/s", "polls_per_s", "{:.1f}"),
        ("due run", "due_fraction", "{:.3%}"),
        ("lag p50 ms", "lag_p50_ms", "{:.1f}"),
        ("lag p99 ms", "lag_p99_ms", "{:.1f}"),
        ("lag max ms", "lag_max_ms", "{:.1f}"),
        ("CPU ms/poll", "cpu_ms_per_poll", "{:.3f}"),
        ("steady ms/poll", "steady_cpu_ms_per_poll", "{:.3f}"),
        ("peak RSS MB", "peak_rss_mb", "{:.1f}"),
    ]
    print(f"{'':10}" + "".join(f"{title:>16}" for title, _, _ in columns))
    for row in rows:
        print(f"{row['name']:10}" + "".join(f"{fmt.format(row[key]):>16}" for _, key, fmt in columns))


# --- the bare client (its own process, no Django) ----------------------------------------------------------


def new_loop_factory(name: str):
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


async def bare_client(job: dict) -> dict:
    """Every household's request at its ticks, the answer read, nothing else; returns the poll times."""
    import aiohttp

    interval, url, body = job["interval"], job["url"], DEMAND_BODY
    stop = time.time() + job["duration"]
    times: dict[str, list[float]] = {}
    total = 0
    connector = aiohttp.TCPConnector(limit=job["max_in_flight"], limit_per_host=0, keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=job["timeout"])
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
    ) as session:

        async def household(cloud_id: str, headers: dict[str, str]) -> None:
            nonlocal total
            moments = times[cloud_id] = []
            phase = schedule.phase_of(cloud_id, interval)
            tick = schedule.next_tick(time.time(), phase, interval)
            while True:
                due = schedule.due_time(phase, tick, interval)
                if due >= stop:
                    return
                while (wait := due - time.time()) > 0:  # uvloop's timers may fire a millisecond early
                    await asyncio.sleep(wait)
                started = time.time()
                try:
                    async with session.post(url, data=body, headers=headers) as response:
                        await response.read()
                except (aiohttp.ClientError, TimeoutError):
                    pass
                moments.append(started)
                total += 1
                tick = max(tick + 1, schedule.next_tick(time.time(), phase, interval))

        await asyncio.gather(*(household(cloud_id, headers) for cloud_id, headers in job["households"]))
    return {"times": times, "total": total}


def bare_worker(job_path: Path, out: Path) -> None:
    job = json.loads(job_path.read_text())
    with asyncio.Runner(loop_factory=new_loop_factory(job["event_loop"])) as runner:
        result = runner.run(bare_client(job))
    out.write_text(json.dumps(result))


def run_bare(args, credentials: Path, url: str, work: Path, env: dict[str, str], duration: float) -> dict:
    households = []
    for text in credentials.read_text().splitlines():
        record = json.loads(text)
        headers = {"Content-Type": "text/xml", "Cloud-ID": record["cloud_id"], "User": record["user_email"]}
        headers["Password"] = record["user_pw"]
        households.append((record["cloud_id"], headers))
    job = {
        "interval": args.interval,
        "url": url,
        "duration": duration,
        "max_in_flight": args.max_in_flight or 1024,
        "timeout": 10.0,
        "event_loop": args.event_loop,
        "households": households,
    }
    job_path, out = work / "bare-job.json", work / "bare.json"
    job_path.write_text(json.dumps(job))
    cmd = [sys.executable, __file__, "--bare-worker", str(job_path), str(out)]
    print(f"bare client: {len(households)} households for {duration:g} s")
    process = run_measured(cmd, env, work / "bare.out", args.warmup)
    result = json.loads(out.read_text())
    window = (process["started"] + args.warmup, process["ended"] - 2.0)
    figures = ticks(result["times"], args.interval, *window)
    figures["total_lines"] = result["total"]
    figures["polls_after_warmup"] = sum(t >= window[0] for moments in result["times"].values() for t in moments)
    return summarise("bare", figures, [process])


# --- the old logger's way (its own process) ----------------------------------------------------------------


def old_worker(credentials: Path, cloud_url: str, duration: float, interval: float, out: Path) -> None:
    """One household after another, one synchronous request each, for ``duration`` s."""
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


def analyse_old(result: dict, interval: float, window: tuple[float, float], households: int) -> dict:
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


# --- the driver --------------------------------------------------------------------------------------------


def start_relay(args, work: Path, env: dict[str, str], credentials: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(work / "relay.log", "w")
    if args.relay == "fast":
        write_households(credentials, args.households)
        cmd = [sys.executable, str(SIMULATOR_BENCH), "--relay-server", str(port), "--latency-ms", str(args.latency_ms)]
    else:
        cmd = manage("eagle_simulator", "--host", "127.0.0.1", "--port", str(port), "--households")
        cmd += [str(args.households), "--latency-ms", str(args.latency_ms), "--credentials-out", str(credentials)]
        cmd += ["--seed", "1"]
    relay = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    wait_for_simulator(base_url, relay, name="relay")
    return relay, f"{base_url}/cgi-bin/post_manager"


def run_pingers(args, env: dict[str, str], work: Path) -> list[dict]:
    records = []
    for number in range(1, args.processes + 1):
        cmd = manage("runpinger", "--interval", str(args.interval), "--duration", str(args.duration))
        cmd += ["--shard", f"{number}/{args.processes}"]
        if args.max_in_flight:
            cmd += ["--max-in-flight", str(args.max_in_flight)]
        if args.profile:
            suffix = "" if args.processes == 1 else f".{number}"
            cmd += ["--profile", str(args.profile.resolve()) + suffix]
        records.append(start_measured(cmd, env, work / f"pinger-{number}.out", args.warmup))
    return [reap(record) for record in records]


def print_profile(path: Path, top: int) -> None:
    import pstats

    print(f"\nprofile of the pinger's event-loop thread ({path}), top {top} by own time:")
    pstats.Stats(str(path)).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=6.0)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--duration", type=float, default=75.0, help="seconds the pinger runs")
    parser.add_argument("--processes", type=int, default=1, help="pingers at once, --shard k/N each")
    parser.add_argument("--relay", choices=("fast", "simulator"), default="fast")
    parser.add_argument("--event-loop", choices=("uvloop", "asyncio"), default="uvloop", help="both sides use it")
    parser.add_argument("--bare-duration", type=float, default=None, help="default: --duration; 0 skips it")
    parser.add_argument("--old-baseline-duration", type=float, default=0.0, help="the old one-at-a-time loop")
    parser.add_argument("--warmup", type=float, default=12.0, help="seconds ignored after launch")
    parser.add_argument("--max-in-flight", type=int, default=None)
    parser.add_argument("--profile", type=Path, help="cProfile the pinger into this file and print its top")
    parser.add_argument("--profile-top", type=int, default=30)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="a setting of the pinger")
    parser.add_argument("--db-name", default="bench_pinger")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and database")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--bare-worker", nargs=2, metavar=("JOB", "OUT"))
    parser.add_argument("--old-worker", nargs=4, metavar=("CREDENTIALS", "URL", "DURATION", "OUT"))
    args = parser.parse_args()

    if args.bare_worker:
        bare_worker(Path(args.bare_worker[0]), Path(args.bare_worker[1]))
        return
    if args.old_worker:
        credentials, url, duration, out = args.old_worker
        old_worker(Path(credentials), url, float(duration), args.interval, Path(out))
        return

    work = Path(tempfile.mkdtemp(prefix="bench-pinger-"))
    log_root = work / "logs"
    db_url = create_database(args.db_name)
    # Demand polls only, as the bare client sends: price polls (PINGER_PRICE_INTERVAL) have their own benchmark,
    # bench/price_polls.py; `--env PINGER_PRICE_INTERVAL=60` puts them back.
    env = service_env(db_url, log_root, PINGER_EVENT_LOOP=args.event_loop, PINGER_PRICE_INTERVAL="0")
    env.update(setting.split("=", 1) for setting in args.env)
    relay = None
    try:
        subprocess.run(manage("migrate", "-v", "0"), env=env, check=True)
        credentials = work / "households.jl"
        relay, cloud_url = start_relay(args, work, env, credentials)
        subprocess.run(manage("import_households", str(credentials)), env=env, check=True, stdout=subprocess.DEVNULL)
        env["EAGLE_CLOUD_URL"] = cloud_url
        cloud_ids = [json.loads(text)["cloud_id"] for text in credentials.read_text().splitlines()]

        print(
            f"pinger: {args.households} households, {args.processes} process(es), {args.interval:g} s, "
            f"{args.latency_ms} ms ({args.relay} relay), {args.duration:g} s, event loop {args.event_loop}"
        )
        pingers = run_pingers(args, env, work)
        window = (max(p["started"] for p in pingers) + args.warmup, min(p["ended"] for p in pingers) - 2.0)
        rows = [summarise("pinger", analyse_pinger(log_root, cloud_ids, args.interval, window), pingers)]

        bare_duration = args.duration if args.bare_duration is None else args.bare_duration
        if bare_duration > 0:
            rows.append(run_bare(args, credentials, cloud_url, work, env, bare_duration))
        if args.old_baseline_duration > 0:
            out = work / "old.json"
            cmd = [sys.executable, __file__, "--interval", str(args.interval), "--old-worker"]
            cmd += [str(credentials), cloud_url, str(args.old_baseline_duration), str(out)]
            print(f"old baseline: one household at a time for {args.old_baseline_duration:g} s")
            process = run_measured(cmd, env, work / "old.out", args.warmup)
            result = json.loads(out.read_text())
            window = (result["started"] + 1.0, result["started"] + args.old_baseline_duration)
            rows.append(summarise("old", analyse_old(result, args.interval, window, args.households), [process]))
        print_table(rows)
        pinger, others = rows[0], {row["name"]: row for row in rows[1:]}
        if "bare" in others:
            bare = others["bare"]
            print(
                f"CPU per poll, pinger/bare: {pinger['cpu_ms_per_poll'] / bare['cpu_ms_per_poll']:.2f}x (whole "
                f"processes), {pinger['steady_cpu_ms_per_poll'] / bare['steady_cpu_ms_per_poll']:.2f}x (steady state)"
            )
        if "old" in others and others["old"]["polls_per_s"] > 0:
            print(f"throughput ratio pinger/old loop: {pinger['polls_per_s'] / others['old']['polls_per_s']:.0f}x")
        targets = pinger["due_fraction"] >= 0.999 and pinger["lag_p99_ms"] < 500 and pinger["peak_rss_mb"] < 300
        print(f"targets (>= 99.9% due polls, p99 lag < 500 ms, peak RSS < 300 MB): {'met' if targets else 'MISSED'}")
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
        if args.json:
            args.json.write_text(json.dumps({"households": args.households, "rows": rows, "targets_met": targets}))
        if pinger["returncode"] != 0:
            print(f"runpinger exited with {pinger['returncode']}; see {work}/pinger-*.out")
        if args.profile:
            print_profile(args.profile if args.processes == 1 else Path(f"{args.profile}.1"), args.profile_top)
    finally:
        stop_process(relay)
        clean_up(args.db_name, work, args.keep)


if __name__ == "__main__":
    main()
