"""Fault experiments against real processes: does the data survive, and does the logger say so? (issue 16)

`make faults` (or `.venv/bin/python bench/faults.py`) runs, on this machine, in about five minutes:

1. kill -9 of the pinger, three times, each followed by a restart: no line torn, duplicated or filed under the
   wrong hour; every restart marked by a line per household; the statistics equal the readings on disk at the
   end.
2. A full disk (RLIMIT_FSIZE on the pinger: every file stops taking bytes at a few KB, EFBIG and short writes,
   pinger.log included): lines are refused (expected), none is torn, one ERROR line per household, no logging
   traceback, the heartbeat says disk_full.
3. A database that accepts connections and never answers (a proxy that black-holes): polling goes on, the
   blocked flush is reported, SIGTERM ends the pinger in bounded time, a pinger started during the outage polls
   from its household cache, and the statistics converge once the database is back.
4. A Redis outage under RQ's cron scheduler (`manage.py wait_for_redis rqcron loggerapp.cron`, a redis-server of
   its own): the wrapper waits instead of crash-looping and the scheduler is back after Redis.
5. Slow households: hundreds of gateways that never answer, against a small PINGER_MAX_IN_FLIGHT: the healthy
   households keep their cadence (p99 start lag, missed ticks).
6. kill -9 of `rotate_logs`, three times during an upload of a few hundred hour files to a local archive, then a
   complete run: every file archived with every line exactly once, nothing left on disk.

It prints the table "fault / expected / observed / lines lost / files lost" and exits 1 when data the table says
must not be lost is lost (or an expectation fails). Everything runs on loopback with a throwaway PostgreSQL
database (`bench_faults`, dropped afterwards) and a temporary folder. Timing figures (lags) depend on the load of
the machine; the losses do not.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import create_database, drop_database, free_port, manage, service_env

from loggerapp.hourfiles.layout import hour_file_path, hour_index, hour_label, parse_hour_file_name
from loggerapp.hourfiles.lines import count_lines, parse_record
from loggerapp.pinger import schedule
from tests.fixtures.proxy import TcpProxy

DB_NAME = "bench_faults"
OUTAGE = 65  # seconds of the Redis outage


@dataclass
class Row:
    fault: str
    expected: str
    observed: str
    lines_lost: int | str
    files_lost: int | str
    ok: bool


# --- Reading what the pinger wrote -----------------------------------------------------------------------------
@dataclass
class Scan:
    torn: int = 0  # lines that do not parse, files that end inside a line
    misfiled: int = 0  # a line in another household's or another hour's file
    duplicates: int = 0
    readings: int = 0
    events: Counter | None = None
    lines: dict[str, list[dict]] | None = None


def scan(log_root: Path) -> Scan:
    result = Scan(events=Counter(), lines=defaultdict(list))
    seen: set[tuple] = set()
    for path in sorted(log_root.glob("*/iseif-rainforest-*.jl")):
        parsed = parse_hour_file_name(path.name)
        if parsed is None:
            continue
        cloud_id, hour = parsed
        raw = path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            result.torn += 1
        for text in raw.split(b"\n"):
            if not text.strip():
                continue
            record = parse_record(text)
            if record is None or "poll_time" not in record:
                result.torn += 1
                continue
            if record.get("cloud_id") != cloud_id or hour_index(record["poll_time"]) * 3600 != hour.timestamp():
                result.misfiled += 1
            key = (cloud_id, record["poll_time"], record.get("event"))
            if key in seen:
                result.duplicates += 1
            seen.add(key)
            if record.get("ok") is True:
                result.readings += 1
            if "event" in record:
                result.events[record["event"]] += 1
            result.lines[cloud_id].append(record)
    return result


def lost_in_files(found: Scan) -> int:
    return found.torn + found.misfiled + found.duplicates


def due_and_lag(lines: list[dict], cloud_id: str, interval: float, start: float, end: float) -> tuple[int, list[float]]:
    """Ticks due in [start, end) without a poll line, and the start lags of the polls there."""
    phase = schedule.phase_of(cloud_id, interval)
    polls = [line["poll_time"] for line in lines if "event" not in line and start <= line["poll_time"] < end]
    lags, ticks = [], set()
    for poll_time in polls:
        tick = schedule.tick_at_or_before(poll_time, phase, interval)
        ticks.add(tick)
        lags.append(poll_time - schedule.due_time(phase, tick, interval))
    first = schedule.next_tick(start, phase, interval)
    due = [
        k
        for k in range(first, first + int((end - start) / interval) + 2)
        if schedule.due_time(phase, k, interval) < end - interval
    ]
    return sum(1 for k in due if k not in ticks), lags


# --- The bench's database --------------------------------------------------------------------------------------
class Database:
    def __init__(self, url: str) -> None:
        import psycopg

        self.connection = psycopg.connect(url.replace("postgres://", "postgresql://"), autocommit=True)

    def value(self, sql: str, *params) -> object:
        row = self.connection.execute(sql, params).fetchone()
        return row[0] if row else None

    def events_logged(self) -> int:
        return int(self.value("SELECT COALESCE(SUM(total_events_logged), 0) FROM loggerapp_householdstats") or 0)

    def reset_stats(self) -> None:
        self.connection.execute("UPDATE loggerapp_householdstats SET total_events_logged = 0")
        self.connection.execute("DELETE FROM loggerapp_pingerheartbeat")

    def heartbeat(self) -> dict:
        details = self.value("SELECT details FROM loggerapp_pingerheartbeat ORDER BY beat_at DESC LIMIT 1")
        return details if isinstance(details, dict) else json.loads(details or "{}")

    def set_active(self, prefix: str, active: bool) -> None:
        self.connection.execute(
            "UPDATE loggerapp_household SET active = %s WHERE cloud_id LIKE %s", (active, prefix + "%")
        )


# --- Processes -------------------------------------------------------------------------------------------------
def black_hole_listener() -> int:
    """A port that accepts connections and never answers (a gateway that hangs)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            client, _ = listener.accept()
            held.append(client)

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def limit_file_size(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


class Bench:
    def __init__(self, work: Path, households: int) -> None:
        self.work = work
        self.households = households
        self.db_url = create_database(DB_NAME)
        self.db: Database | None = None
        self.simulator: subprocess.Popen | None = None
        self.env = service_env(self.db_url, work / "unused")
        self.healthy: list[str] = []

    def setup(self, slow: int) -> None:
        subprocess.run(manage("migrate", "-v", "0"), env=self.env, check=True)
        port = free_port()
        credentials = self.work / "households.jl"
        self.simulator = subprocess.Popen(
            manage("eagle_simulator", "--host", "127.0.0.1", "--port", str(port), "--households",
                   str(self.households), "--credentials-out", str(credentials), "--seed", "1"),
            env=self.env, stdout=open(self.work / "simulator.log", "w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not credentials.exists() or not credentials.read_text().count("\n") >= self.households:
            if time.monotonic() > deadline or self.simulator.poll() is not None:
                raise RuntimeError("the simulator did not start; see simulator.log")
            time.sleep(0.2)
        self.healthy = [json.loads(line)["cloud_id"] for line in credentials.read_text().splitlines()]
        hole = black_hole_listener()
        with open(credentials, "a") as out:  # gateways that never answer, inactive until experiment 5
            for n in range(slow):
                out.write(json.dumps({"cloud_id": f"ff{n:04x}", "user_email": f"s{n}@example.org",
                                      "user_pw": "slow-Pw-1", "protocol": "eagle100",
                                      "address": f"127.0.0.1:{hole}"}) + "\n")  # fmt: skip
        subprocess.run(manage("import_households", str(credentials)), env=self.env, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        self.env["EAGLE_CLOUD_URL"] = f"http://127.0.0.1:{port}/cgi-bin/post_manager"
        self.db = Database(self.db_url)
        self.db.set_active("ff", False)

    def pinger(self, log_root: Path, *args: str, limit: int | None = None, **env: str) -> subprocess.Popen:
        environment = {**self.env, "LOG_ROOT": str(log_root), "PINGER_FLUSH_SECONDS": "1", **env}
        out = open(self.work / f"pinger-{log_root.name}.out", "ab")
        if not limit:
            return subprocess.Popen(manage("runpinger", *args), env=environment, stdout=out, stderr=subprocess.STDOUT)
        # Under a file-size limit the console goes through a pipe (as under supervisor): only the disk is full.
        process = subprocess.Popen(
            manage("runpinger", *args), env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            preexec_fn=lambda: limit_file_size(limit),
        )  # fmt: skip
        threading.Thread(target=shutil.copyfileobj, args=(process.stdout, out), daemon=True).start()
        return process

    def close(self) -> None:
        if self.simulator is not None and self.simulator.poll() is None:
            self.simulator.terminate()
            self.simulator.wait(15)
        if self.db is not None:
            self.db.connection.close()


def stop(process: subprocess.Popen, timeout: float = 40.0) -> tuple[int, float]:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
    return code, time.monotonic() - started


def log_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


# --- The experiments -------------------------------------------------------------------------------------------
def kill_pinger(bench: Bench) -> Row:
    log_root = bench.work / "kill9"
    assert bench.db is not None
    bench.db.reset_stats()
    for _ in range(3):
        process = bench.pinger(log_root, "--interval", "1")
        time.sleep(random.uniform(6, 9))
        process.kill()
        process.wait()
    process = bench.pinger(log_root, "--interval", "1")
    time.sleep(6)
    code, _ = stop(process)
    found = scan(log_root)
    drift = found.readings - bench.db.events_logged()
    restarts = found.events["restart"]
    lost = lost_in_files(found)
    ok = code == 0 and lost == 0 and drift == 0 and restarts >= 3 * len(bench.healthy) * 0.9
    observed = (
        f"{found.readings} readings; {found.torn} torn, {found.duplicates} duplicated, {found.misfiled} misfiled; "
        f"{restarts} restart lines; statistics - files = {-drift}"
    )
    return Row("kill -9 pinger x3", "no line lost; restarts marked; stats = files", observed, lost, 0, ok)


def full_disk(bench: Bench) -> Row:
    log_root = bench.work / "fulldisk"
    assert bench.db is not None
    bench.db.reset_stats()
    out = bench.work / f"pinger-{log_root.name}.out"
    process = bench.pinger(log_root, "--interval", "1", limit=4096)
    time.sleep(25)
    heartbeat = bench.db.heartbeat()
    code, _ = stop(process)
    time.sleep(0.5)  # the copy of its console output
    found = scan(log_root)
    text = log_text(out)
    errors = text.count("line not written to its hour file")
    tracebacks = text.count("Traceback") + text.count("Logging error")
    refused = heartbeat.get("write_errors", 0)
    ok = (
        code == 0 and lost_in_files(found) == 0 and tracebacks == 0 and heartbeat.get("disk_full") is True
        and errors <= len(bench.healthy) * 2
    )  # fmt: skip
    observed = (
        f"{refused} lines refused; {errors} ERROR lines for {len(bench.healthy)} households; {tracebacks} "
        f"tracebacks; heartbeat disk_full={heartbeat.get('disk_full')}; {len(text) // 1024} KB of output"
    )
    expected = "refused lines counted, none torn; one ERROR per household; no traceback; disk_full reported"
    return Row("full disk", expected, observed, f"{lost_in_files(found)} (+{refused} refused)", 0, ok)


def hung_database(bench: Bench) -> Row:
    log_root = bench.work / "hungdb"
    assert bench.db is not None
    bench.db.reset_stats()
    proxy = TcpProxy(("127.0.0.1", 5432))
    url = f"postgres://postgres@127.0.0.1:{proxy.port}/{DB_NAME}"
    env = {"DATABASE_URL": url, "DB_CONNECT_TIMEOUT": "5", "PINGER_BLOCKED_INTERVALS": "2", "PINGER_STOP_WAIT": "5"}
    out = bench.work / f"pinger-{log_root.name}.out"
    try:
        process = bench.pinger(log_root, "--interval", "1", "--refresh", "2", **env)
        time.sleep(6)
        proxy.black_hole()
        hole_started = time.time()
        time.sleep(12)
        code, stop_seconds = stop(process)
        second = bench.pinger(log_root, "--interval", "1", "--refresh", "2", **env)  # started during the outage
        time.sleep(10)
        hole_ended = time.time()
        proxy.relay_again()
        time.sleep(8)
        code2, _ = stop(second)
    finally:
        proxy.cut()
    found = scan(log_root)
    text = log_text(out)
    assert found.lines is not None
    missed = sum(
        due_and_lag(found.lines.get(c, []), c, 1.0, hole_started + 1, hole_started + 11)[0] for c in bench.healthy
    )
    from_cache = "households of the cache" in text
    blocked = "blocked for" in text
    bench_reconcile = bench.pinger(log_root, "--interval", "1")  # one more start recounts what the stop left
    time.sleep(4)
    stop(bench_reconcile)
    found = scan(log_root)
    drift = found.readings - bench.db.events_logged()
    lost = lost_in_files(found)
    ok = code == 0 and code2 == 0 and stop_seconds < 30 and from_cache and blocked and lost == 0 and drift == 0
    observed = (
        f"{missed} ticks missed while hung; blocked reported: {blocked}; SIGTERM exit in {stop_seconds:.1f} s; "
        f"start during outage polled from cache: {from_cache}; stats - files = {-drift} "
        f"({hole_ended - hole_started:.0f} s hung)"
    )
    expected = "polling goes on; blocked flush logged; exit < 30 s; cache at start; stats converge"
    return Row("hung database", expected, observed, lost, 0, ok)


def redis_outage(bench: Bench) -> Row:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        return Row("Redis outage (scheduler)", "scheduler back after Redis", "skipped: no redis-server", "-", "-", True)
    import redis

    port = free_port()
    folder = bench.work / "redis"
    folder.mkdir()

    def start_redis() -> subprocess.Popen:
        server = subprocess.Popen(
            [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)
        return server

    def schedulers() -> int:
        try:
            return int(redis.Redis(port=port, socket_connect_timeout=0.5).zcard("rq:cron_schedulers"))
        except redis.RedisError:
            return -1

    def wait(predicate, timeout: float) -> float | None:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if predicate():
                return time.monotonic() - started
            time.sleep(0.5)
        return None

    out = bench.work / "scheduler.out"
    env = {**bench.env, "REDIS_URL": f"redis://127.0.0.1:{port}/0", "LOG_ROOT": str(bench.work / "sched")}
    server = start_redis()
    wrapper = subprocess.Popen(
        manage("wait_for_redis", "--poll", "1", "rqcron", "loggerapp.cron"), env=env, stdout=open(out, "w"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        up = wait(lambda: schedulers() == 1, 60)
        server.terminate()
        server.wait(10)
        time.sleep(OUTAGE)  # past a minute boundary: rqcron touches Redis at least once a minute, and exits
        alive = wrapper.poll() is None
        server = start_redis()
        back = wait(lambda: schedulers() == 1, 120)
        stop(wrapper)
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
        server.terminate()
        server.wait(10)
    text = log_text(out)
    restarts = text.count("starting rqcron")
    waits = text.count("Redis went away")
    ok = up is not None and alive and back is not None
    back_text = f"{back:.0f} s" if back is not None else "never"
    observed = (
        f"wrapper alive through a {OUTAGE} s outage: {alive}; rqcron exited {waits}x and the wrapper waited "
        f"for Redis each time, {restarts} starts in all; scheduler registered again {back_text} after Redis"
    )
    return Row("Redis outage (scheduler)", "waits, no crash loop; scheduler back", observed, 0, 0, ok)


def cadence(bench: Bench, log_root: Path, interval: float, seconds: float, **env: str) -> tuple[int, float, int]:
    """One pinger run; (ticks missed, p99 start lag in ms, polls) of the healthy households after a warm-up."""
    process = bench.pinger(log_root, "--interval", str(interval), "--max-in-flight", "64", **env)
    started = time.time()
    time.sleep(seconds)
    stop(process)
    found = scan(log_root)
    assert found.lines is not None
    window = (started + 12, started + seconds - 2)
    missed, lags = 0, []
    for cloud_id in bench.healthy:
        m, household_lags = due_and_lag(found.lines.get(cloud_id, []), cloud_id, interval, *window)
        missed += m
        lags += household_lags
    lags.sort()
    p99 = lags[max(0, int(len(lags) * 0.99) - 1)] * 1000 if lags else float("nan")
    return missed, p99, len(lags)


def slow_households(bench: Bench, slow: int) -> Row:
    """The healthy households' cadence with `slow` gateways that never answer, against a baseline without them
    measured in the same run (the machine's load shows in both)."""
    assert bench.db is not None
    interval = 2.0
    env = {"EAGLE_READ_TIMEOUT": "3", "PINGER_MAX_SLOW_IN_FLIGHT": "16"}
    base_missed, base_p99, base_polls = cadence(bench, bench.work / "slow-baseline", interval, 32, **env)
    bench.db.set_active("ff", True)
    try:
        missed, p99, polls = cadence(bench, bench.work / "slow", interval, 32, **env)
    finally:
        bench.db.set_active("ff", False)
    # Kept cadence: no more ticks missed than without the slow ones (allowing 0.5 % of the polls for the machine's
    # load), and a p99 lag under 500 ms or within 1.5 times the baseline's.
    ok = missed <= base_missed + max(1, polls // 200) and (p99 < 500 or p99 <= 1.5 * base_p99)
    observed = (
        f"{slow} never answer, 64 in flight (16 for failing): healthy p99 lag {p99:.0f} ms, {missed} of {polls} "
        f"ticks missed; without them, same run: p99 {base_p99:.0f} ms, {base_missed} of {base_polls} missed"
    )
    expected = "healthy households keep the cadence they have without the slow ones"
    return Row("slow households", expected, observed, max(0, missed - base_missed), 0, ok)


def kill_rotation(bench: Bench, files: int, lines_each: int = 100) -> Row:
    log_root = bench.work / "rotate"
    archive = bench.work / "archive"
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    written: dict[str, int] = {}
    old = time.time() - 7200
    for n in range(files):
        cloud_id = f"ee{n:04x}"
        path = hour_file_path(log_root, cloud_id, hour)
        path.parent.mkdir(parents=True, exist_ok=True)
        base = hour.timestamp()
        body = "".join(
            json.dumps({"cloud_id": cloud_id, "poll_time": base + k * 6 + n / 1000, "ok": True, "demand_kw": 1.0})
            + "\n"
            for k in range(lines_each)
        )
        path.write_text(body)
        os.utime(path, (old, old))
        written[cloud_id] = lines_each
    env = {**bench.env, "LOG_ROOT": str(log_root), "ARCHIVE_ROOT": str(archive), "ROTATION_GRACE_SECONDS": "60"}
    env.pop("AWS_STORAGE_BUCKET_NAME", None)
    out = open(bench.work / "rotate.out", "a")
    killed_mid_run = 0
    for _ in range(3):
        process = subprocess.Popen(manage("rotate_logs"), env=env, stdout=subprocess.PIPE, stderr=out, text=True)
        time.sleep(random.uniform(1.2, 2.5))
        process.kill()
        stdout, _ = process.communicate()
        killed_mid_run += "rotated " not in stdout  # no summary: the kill landed during the run
    final = subprocess.run(manage("rotate_logs"), env=env, stdout=out, stderr=subprocess.STDOUT, timeout=300)
    archived: dict[str, int] = {}
    duplicates = 0
    for path in archive.rglob("iseif-rainforest-*.jl*"):
        parsed = parse_hour_file_name(path.name.removesuffix(".gz"))
        if parsed is None:
            continue
        content = path.read_bytes()
        polls = [parse_record(line) for line in content.splitlines() if line.strip()]
        times = [record["poll_time"] for record in polls if record]
        duplicates += len(times) - len(set(times))
        archived[parsed[0]] = count_lines(content).lines
    left = list(log_root.glob(f"{hour_label(hour)}/*.jl"))
    files_lost = sum(1 for cloud_id in written if cloud_id not in archived)
    lines_lost = sum(max(0, count - archived.get(cloud_id, 0)) for cloud_id, count in written.items())
    ok = final.returncode == 0 and files_lost == 0 and lines_lost == 0 and duplicates == 0 and not left
    observed = (
        f"{killed_mid_run} of 3 runs killed mid-upload; then {len(archived)}/{files} files archived, {duplicates} "
        f"duplicated lines, {len(left)} left on disk"
    )
    return Row("kill -9 rotate_logs x3", "every file archived once, whole", observed, lines_lost, files_lost, ok)


# --- Report ----------------------------------------------------------------------------------------------------
def print_table(rows: list[Row]) -> None:
    headers = ("fault", "expected", "observed", "lines lost", "files lost", "")
    table = [
        (r.fault, r.expected, r.observed, str(r.lines_lost), str(r.files_lost), "ok" if r.ok else "FAIL") for r in rows
    ]
    widths = [max(len(headers[i]), *(len(row[i]) for row in table)) for i in range(len(headers))]
    widths[1] = min(widths[1], 60)
    widths[2] = min(widths[2], 110)
    print(" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in table:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=100, help="simulated households (healthy)")
    parser.add_argument("--slow", type=int, default=300, help="households that never answer (experiment 5)")
    parser.add_argument("--files", type=int, default=1500, help="hour files of the rotate_logs experiment")
    parser.add_argument("--only", help="comma-separated experiments: kill9,disk,db,redis,slow,rotate")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and the database")
    args = parser.parse_args()
    chosen = set((args.only or "kill9,disk,db,redis,slow,rotate").split(","))
    work = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    bench = Bench(work, args.households)
    rows: list[Row] = []
    try:
        bench.setup(args.slow)
        experiments = [
            ("kill9", lambda: kill_pinger(bench)),
            ("disk", lambda: full_disk(bench)),
            ("db", lambda: hung_database(bench)),
            ("redis", lambda: redis_outage(bench)),
            ("slow", lambda: slow_households(bench, args.slow)),
            ("rotate", lambda: kill_rotation(bench, args.files)),
        ]
        for name, experiment in experiments:
            if name not in chosen:
                continue
            started = time.monotonic()
            print(f"{name}: running...", flush=True)
            try:
                row = experiment()
            except Exception as exc:  # one broken experiment must not hide the others' results
                row = Row(name, "runs", f"experiment failed: {type(exc).__name__}: {exc}", "?", "?", False)
            rows.append(row)
            print(f"{name}: {'ok' if row.ok else 'FAIL'} in {time.monotonic() - started:.0f} s", flush=True)
    finally:
        bench.close()
        if args.keep:
            print(f"kept {work} and database {DB_NAME}")
        else:
            drop_database(DB_NAME)
            shutil.rmtree(work, ignore_errors=True)
    print()
    print_table(rows)
    failed = [row.fault for row in rows if not row.ok]
    print(
        f"\n{len(rows) - len(failed)}/{len(rows)} experiments as expected"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iseif.settings")
    sys.exit(main())
