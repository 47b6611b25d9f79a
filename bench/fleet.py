"""Benchmark of a pinger fleet: three `manage.py runpinger` members sharing the households, one killed with
SIGKILL and restarted, next to fixed shards (`--shard K/3`) living through the same story, in the same run.

    .venv/bin/python bench/fleet.py --households 6000 --interval 6 --latency-ms 200 --duration 300

What it does:
1. Creates a throwaway PostgreSQL database (``--db-name``), migrates it, starts ``manage.py eagle_simulator``
   with N households and imports them.
2. Fleet: starts three members (fleet mode, the default of runpinger), each writing under its own LOG_ROOT as if
   on its own host; kills member 2 with SIGKILL at ``--kill-at`` (default 40 % of the duration) and starts a new
   member at ``--restart-at`` (60 %). Every member stops at the end of ``--duration``.
3. Baseline: the same with ``--shard 1/3``, ``--shard 2/3``, ``--shard 3/3`` (the shard of the killed process
   is polled by nobody until it is restarted). ``--no-baseline`` skips it.
4. Reads every hour file and prints, for both: the share of due polls that ran (whole window, and outside the
   hand-overs), polls made twice (in steady state and during the hand-overs), each household's longest gap
   (p50, p99, max), the time until the killed member's households were polled again (p50, max), and the CPU
   seconds of all members together.

Definitions (window: launch + ``--warmup`` to launch + ``--duration`` - 1 s): a due poll is a tick
``phase + k * interval`` of a household inside the window; it ran if some member wrote a line with that tick; it
was doubled if more than one member did. The hand-overs are the ``--handover-window`` seconds after the kill and
after the restart; the rest is steady state. A household's gap is the time between two of its polls that ran (its
longest, over the window).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from harness import clean_up, create_database, free_port, manage, service_env, stop_process, wait_for_simulator


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class Member:
    """A runpinger process, reaped by a thread with wait4 (CPU seconds)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.cpu_s = 0.0
        self.returncode: int | None = None
        self._out = open(log, "w")
        self.process = subprocess.Popen(cmd, env=env, stdout=self._out, stderr=subprocess.STDOUT)
        self._reaper = threading.Thread(target=self._reap, daemon=True)
        self._reaper.start()

    def _reap(self) -> None:
        _, status, usage = os.wait4(self.process.pid, 0)
        self.returncode = os.waitstatus_to_exitcode(status)
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self._out.close()

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)

    def wait(self, timeout: float) -> None:
        self._reaper.join(timeout)


def run_story(mode: str, args, env: dict[str, str], work: Path) -> dict:
    """Three members, one killed and restarted; returns the times and where each member wrote."""
    base = manage("runpinger", "--interval", str(args.interval), "--refresh", "60")
    shard = {"m1": "1/3", "m2": "2/3", "m3": "3/3", "m2b": "2/3"}
    roots: dict[str, Path] = {}
    members: dict[str, Member] = {}
    started = time.time()

    def start(name: str, duration: float) -> None:
        root = work / mode / name
        root.mkdir(parents=True)
        roots[name] = root
        cmd = [*base, "--duration", f"{duration:.1f}"]
        if mode == "shards":
            cmd += ["--shard", shard[name]]
        members[name] = Member(name, cmd, {**env, "LOG_ROOT": str(root)}, work / mode / f"{name}.out")

    for name in ("m1", "m2", "m3"):
        start(name, args.duration)
    time.sleep(max(0.0, started + args.kill_at - time.time()))
    killed = time.time()
    members["m2"].kill()
    print(f"  {mode}: killed m2 at {killed - started:.0f} s")
    time.sleep(max(0.0, started + args.restart_at - time.time()))
    restarted = time.time()
    start("m2b", args.duration - (restarted - started))
    print(f"  {mode}: started m2b at {restarted - started:.0f} s")
    for member in members.values():
        member.wait(args.duration + 60)
    ended = time.time()
    return {
        "started": started,
        "killed": killed,
        "restarted": restarted,
        "ended": ended,
        "roots": roots,
        "cpu_s": sum(member.cpu_s for member in members.values()),
        "returncodes": {name: member.returncode for name, member in members.items()},
    }


def analyse(story: dict, args) -> dict:
    from loggerapp.hourfiles.layout import PRICE_FILE_PREFIX
    from loggerapp.pinger import schedule

    interval = args.interval
    polls: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    first_after_kill: dict[str, float] = {}
    owned_by_victim: set[str] = set()
    for name, root in story["roots"].items():
        for path in root.glob("*/iseif-rainforest-*.jl"):
            if path.name.startswith(PRICE_FILE_PREFIX):
                continue  # demand polls only: the price polls have their own cadence (PINGER_PRICE_INTERVAL)
            for text in path.read_bytes().splitlines():
                line = json.loads(text)
                if "event" in line:
                    continue  # a restart or skipped-tick line marks a gap, it is no poll
                cloud_id, moment = line["cloud_id"], line["poll_time"]
                phase = schedule.phase_of(cloud_id, interval)
                polls[cloud_id][schedule.tick_at_or_before(moment, phase, interval)].append(name)
                if name == "m2" and story["killed"] - 2 * interval <= moment < story["killed"]:
                    owned_by_victim.add(cloud_id)
                if name != "m2" and moment >= story["killed"]:
                    first_after_kill[cloud_id] = min(first_after_kill.get(cloud_id, moment), moment)
    # Every member stops polling about ``duration`` after its launch plus its start-up: end the window before.
    start, end = story["started"] + args.warmup, story["started"] + args.duration - 1.0
    handovers = [(story["killed"], story["killed"] + args.handover_window)]
    handovers.append((story["restarted"], story["restarted"] + args.handover_window))

    def in_handover(moment: float) -> bool:
        return any(low <= moment < high for low, high in handovers)

    due = ran = steady_due = steady_ran = steady_doubles = handover_doubles = 0
    longest_gaps: list[float] = []
    for cloud_id in sorted(set(polls) | owned_by_victim):
        phase = schedule.phase_of(cloud_id, interval)
        ticks = polls[cloud_id]
        previous: float | None = None
        longest = 0.0
        for tick in range(schedule.next_tick(start, phase, interval), schedule.next_tick(end, phase, interval)):
            moment = schedule.due_time(phase, tick, interval)
            pollers = ticks.get(tick, [])
            due += 1
            ran += bool(pollers)
            steady = not in_handover(moment)
            if steady:
                steady_due += 1
                steady_ran += bool(pollers)
            if len(pollers) > 1:
                if steady:
                    steady_doubles += len(pollers) - 1
                else:
                    handover_doubles += len(pollers) - 1
            if pollers:
                if previous is not None:
                    longest = max(longest, moment - previous)
                previous = moment
        longest_gaps.append(longest)
    repoll = [first_after_kill[c] - story["killed"] for c in owned_by_victim if c in first_after_kill]
    never = len(owned_by_victim) - len(repoll)
    return {
        "households": len(polls),
        "due": due,
        "due_fraction": ran / due if due else float("nan"),
        "steady_due_fraction": steady_ran / steady_due if steady_due else float("nan"),
        "steady_doubles": steady_doubles,
        "handover_doubles": handover_doubles,
        "gap_p50_s": percentile(longest_gaps, 0.5),
        "gap_p99_s": percentile(longest_gaps, 0.99),
        "gap_max_s": max(longest_gaps) if longest_gaps else float("nan"),
        "orphans": len(owned_by_victim),
        "repoll_p50_s": percentile(repoll, 0.5),
        "repoll_max_s": max(repoll) if repoll else float("nan"),
        "orphans_never_repolled": never,
        "cpu_s": story["cpu_s"],
        "returncodes": story["returncodes"],
    }


def print_table(rows: dict[str, dict]) -> None:
    fields = [
        ("households polled", "households", "{:d}"),
        ("due polls run", "due_fraction", "{:.4%}"),
        ("due polls run, steady state", "steady_due_fraction", "{:.4%}"),
        ("doubled polls, steady state", "steady_doubles", "{:d}"),
        ("doubled polls, hand-overs", "handover_doubles", "{:d}"),
        ("longest gap p50 (s)", "gap_p50_s", "{:.1f}"),
        ("longest gap p99 (s)", "gap_p99_s", "{:.1f}"),
        ("longest gap max (s)", "gap_max_s", "{:.1f}"),
        ("killed member's households", "orphans", "{:d}"),
        ("polled again after, p50 (s)", "repoll_p50_s", "{:.1f}"),
        ("polled again after, max (s)", "repoll_max_s", "{:.1f}"),
        ("CPU s, all members", "cpu_s", "{:.1f}"),
    ]
    names = list(rows)
    print(f"{'':32}" + "".join(f"{name:>16}" for name in names))
    for title, key, fmt in fields:
        print(f"{title:32}" + "".join(f"{fmt.format(rows[name][key]):>16}" for name in names))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=6000)
    parser.add_argument("--interval", type=float, default=6.0)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds the story lasts")
    parser.add_argument("--kill-at", type=float, default=None, help="default: 40 %% of the duration")
    parser.add_argument("--restart-at", type=float, default=None, help="default: 60 %% of the duration")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds ignored after launch (joins)")
    parser.add_argument("--handover-window", type=float, default=30.0)
    parser.add_argument("--no-baseline", action="store_true", help="skip the fixed shards")
    parser.add_argument("--db-name", default="bench_fleet")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and database")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    args.kill_at = args.duration * 0.4 if args.kill_at is None else args.kill_at
    args.restart_at = args.duration * 0.6 if args.restart_at is None else args.restart_at

    work = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    db_url = create_database(args.db_name)
    env = service_env(db_url, work / "logs", LOG_LEVEL="INFO", PINGER_SUMMARY_SECONDS="60")
    simulator = None
    try:
        subprocess.run(manage("migrate", "-v", "0"), env=env, check=True)
        port = free_port()
        credentials = work / "households.jl"
        simulator = subprocess.Popen(
            manage(
                "eagle_simulator",
                *("--host", "127.0.0.1", "--port", str(port), "--households", str(args.households)),
                *("--latency-ms", str(args.latency_ms), "--credentials-out", str(credentials), "--seed", "1"),
            ),
            env=env,
            stdout=open(work / "simulator.log", "w"),
            stderr=subprocess.STDOUT,
        )
        base_url = f"http://127.0.0.1:{port}"
        wait_for_simulator(base_url, simulator)
        subprocess.run(manage("import_households", str(credentials)), env=env, check=True, stdout=subprocess.DEVNULL)
        env["EAGLE_CLOUD_URL"] = f"{base_url}/cgi-bin/post_manager"
        print(
            f"{args.households} households, {args.interval:g} s, {args.latency_ms} ms, {args.duration:g} s; "
            f"kill at {args.kill_at:g} s, restart at {args.restart_at:g} s"
        )
        rows = {"fleet": analyse(run_story("fleet", args, env, work), args)}
        if not args.no_baseline:
            rows["fixed shards"] = analyse(run_story("shards", args, env, work), args)
        print_table(rows)
        if "fixed shards" in rows and rows["fleet"]["repoll_max_s"] > 0:
            ratio = rows["fixed shards"]["repoll_max_s"] / rows["fleet"]["repoll_max_s"]
            print(f"orphans polled again: fixed shards / fleet = {ratio:.1f}x sooner with the fleet")
        if args.json:
            args.json.write_text(json.dumps({"args": vars(args), "rows": rows}, default=str))
    finally:
        stop_process(simulator)
        clean_up(args.db_name, work, args.keep)


if __name__ == "__main__":
    main()
