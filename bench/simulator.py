"""Throughput of the EAGLE simulator (`manage.py eagle_simulator`), next to a minimal aiohttp server.

Usage:  DEBUG=1 .venv/bin/python bench/simulator.py [--households 5000] [--duration 10] [--connections 64]
                                                   [--protocols cloud=0.8,eagle100=0.1,eagle200=0.1] [--no-wrk]

What it does, in order:
1. Starts ``manage.py eagle_simulator --households N --credentials-out F`` in a subprocess. Generated
   households need no database: the command runs with the embedded SQLite default untouched (DATABASE_URL is
   removed from its environment) and DEBUG=1 unless SECRET_KEY and FIELD_ENCRYPTION_KEY are set.
2. Runs a Python load generator in another process: one aiohttp session, C concurrent connections, each
   sending ``get_instantaneous_demand`` (or ``device_query`` for EAGLE-200) for the next household of the
   credentials file, with its credentials, for a fixed duration. It records every latency and status.
3. Reads the server process's CPU time from /proc before and after the load.
4. Does the same against a minimal aiohttp server that answers a constant body (the baseline: what aiohttp
   itself costs on this machine), and prints the ratio.
5. If ``wrk`` is installed, measures both servers with it too (one household, one request body), because the
   Python load generator may itself be the limit on a 2-core machine.

``--relay-server PORT [--latency-ms L]`` only serves the fast relay that bench/pinger.py polls through: the
published sample answer (meter time now, Demand changing) after L ms for every POST, nothing checked.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import REPO, free_port

DEMAND = b"<Command><Name>get_instantaneous_demand</Name></Command>"
QUERY = (
    b"<Command><Name>device_query</Name><Components><Component><Name>Main</Name><Variables>"
    b"<Variable><Name>zigbee:InstantaneousDemand</Name></Variable></Variables></Component></Components></Command>"
)
CONSTANT = (
    b"<InstantaneousDemand>\n  <DeviceMacId>0xd8d5b90000002506</DeviceMacId>\n  <MeterMacId>0x0007810000"
    b"1234ab</MeterMacId>\n  <TimeStamp>0x1c91ec39</TimeStamp>\n  <Demand>0x0004d2</Demand>\n  <Multiplier>"
    b"0x00000001</Multiplier>\n  <Divisor>0x000003e8</Divisor>\n  <DigitsRight>0x03</DigitsRight>\n  <DigitsLeft>"
    b"0x06</DigitsLeft>\n  <SuppressLeadingZero>Y</SuppressLeadingZero>\n</InstantaneousDemand>\n"
)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 -- our own loopback server
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


# --- the load generator (runs in its own process) ----------------------------------------------------------


def request_for(record: dict, url: str) -> tuple[str, dict[str, str], bytes]:
    if record["protocol"] == "cloud":
        headers = {"Cloud-ID": record["cloud_id"], "User": record["user_email"], "Password": record["user_pw"]}
        return url, headers, DEMAND
    token = base64.b64encode(f"{record['cloud_id']}:{record['user_pw']}".encode()).decode()
    return url, {"Authorization": f"Basic {token}"}, QUERY if record["protocol"] == "eagle200" else DEMAND


async def load(url: str, records: list[dict], duration: float, connections: int) -> dict:
    import aiohttp

    requests = [request_for(record, url) for record in records] or [(url, {}, DEMAND)]
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0
    next_index = 0
    connector = aiohttp.TCPConnector(limit=connections, limit_per_host=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = time.monotonic() + duration

        async def worker() -> None:
            nonlocal next_index, errors
            while time.monotonic() < deadline:
                target, headers, body = requests[next_index % len(requests)]
                next_index += 1
                started = time.perf_counter()
                try:
                    async with session.post(target, data=body, headers=headers) as response:
                        await response.read()
                        statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - started
    latencies.sort()

    def pick(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")

    return {
        "requests": len(latencies),
        "errors": errors,
        "elapsed": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": pick(0.50),
        "p99_ms": pick(0.99),
        "statuses": statuses,
    }


def load_worker(url: str, credentials: str, duration: float, connections: int, out: str) -> None:
    records = [json.loads(line) for line in Path(credentials).read_text().splitlines()] if credentials else []
    result = asyncio.run(load(url, records, duration, connections))
    Path(out).write_text(json.dumps(result))


# --- the baseline server (runs in its own process) ---------------------------------------------------------


def baseline_server(port: int) -> None:
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=CONSTANT, content_type="text/xml")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/cgi-bin/post_manager", answer)
    app.router.add_get("/_sim/stats", stats)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def relay_body(now: float, counter: int) -> bytes:
    """The published sample answer with the meter's clock at ``now`` (ZigBee seconds) and a changing Demand, so
    that a pinger's lines are not all repeats."""
    zigbee = int(now) - 946684800
    body = CONSTANT.replace(b"0x1c91ec39", f"0x{zigbee:08x}".encode())
    return body.replace(b"0x0004d2", f"0x{counter % 5000:06x}".encode())


def relay_server(port: int, latency_ms: float) -> None:
    """A fast, independent stand-in for the cloud relay (bench/pinger.py): every POST, whoever it names, gets the
    sample answer after ``latency_ms``. Nothing is checked or parsed, so that the pinger, not the relay, is what a
    benchmark measures; uvloop when installed."""
    from aiohttp import web

    delay = latency_ms / 1000.0
    count = 0

    async def answer(request: web.Request) -> web.Response:
        nonlocal count
        await request.read()
        if delay:
            await asyncio.sleep(delay)
        count += 1
        return web.Response(body=relay_body(time.time(), count), content_type="text/xml")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"requests": count})

    app = web.Application()
    app.router.add_post("/cgi-bin/post_manager", answer)
    app.router.add_get("/_sim/stats", stats)
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    runner = asyncio.Runner(loop_factory=loop_factory)
    runner.run(_serve(app, port))


async def _serve(app, port: int) -> None:
    from aiohttp import web

    site_runner = web.AppRunner(app, access_log=None, handle_signals=True)
    await site_runner.setup()
    await web.TCPSite(site_runner, "127.0.0.1", port, backlog=4096).start()
    try:
        await asyncio.Event().wait()
    finally:
        await site_runner.cleanup()


# --- the driver --------------------------------------------------------------------------------------------


def measure(name: str, server: subprocess.Popen, url: str, credentials: str, args, work: Path) -> dict:
    out = work / f"{name}.json"
    before, started = cpu_seconds(server.pid), time.monotonic()
    subprocess.run(
        [sys.executable, __file__, "--load-worker", url, credentials, str(args.duration), str(args.connections), out],
        check=True,
    )
    cpu, wall = cpu_seconds(server.pid) - before, time.monotonic() - started
    result = json.loads(out.read_text())
    result.update(name=name, server_cpu_s=cpu, server_cpu_share=cpu / wall)
    result["cpu_ms_per_request"] = cpu * 1000 / max(1, result["requests"])
    return result


def wrk_rps(url: str, record: dict | None, args, work: Path) -> float | None:
    """Requests/s that wrk measures (one connection per 'connections', one thread per core)."""
    if not shutil.which("wrk") or args.no_wrk:
        return None
    _, headers, body = request_for(record, url) if record else (url, {}, DEMAND)
    script = work / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body.decode())}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    output = subprocess.run(
        ["wrk", "-t1", f"-c{args.connections}", f"-d{int(args.duration)}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in output.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--households", type=int, default=5000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--protocols", default="cloud=1")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--no-wrk", action="store_true")
    parser.add_argument("--load-worker", nargs=5, metavar=("URL", "CREDENTIALS", "DURATION", "CONNECTIONS", "OUT"))
    parser.add_argument("--baseline-server", type=int, metavar="PORT")
    parser.add_argument("--relay-server", type=int, metavar="PORT", help="serve the fast relay (bench/pinger.py)")
    args = parser.parse_args()
    if args.relay_server:
        relay_server(args.relay_server, args.latency_ms)
        return
    if args.load_worker:
        url, credentials, duration, connections, out = args.load_worker
        load_worker(url, credentials, float(duration), int(connections), out)
        return
    if args.baseline_server:
        baseline_server(args.baseline_server)
        return

    work = Path(tempfile.mkdtemp(prefix="bench-simulator-"))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("DATABASE_URL", None)  # generated households: no database needed
    if not (env.get("SECRET_KEY") and env.get("FIELD_ENCRYPTION_KEY")):
        env["DEBUG"] = "1"
    env["DATA_DIR"] = str(work / "data")
    credentials = work / "households.jl"
    rows, processes = [], []
    try:
        port = free_port()
        command = [sys.executable, str(REPO / "manage.py"), "eagle_simulator", "--port", str(port)]
        command += ["--households", str(args.households), "--protocols", args.protocols, "--seed", "1"]
        command += ["--latency-ms", str(args.latency_ms), "--credentials-out", str(credentials)]
        log = open(work / "simulator.log", "w")
        simulator = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        processes.append(simulator)
        base = f"http://127.0.0.1:{port}"
        wait_until_up(f"{base}/_sim/stats", simulator)
        url = f"{base}/cgi-bin/post_manager"
        print(
            f"simulator: {args.households} households ({args.protocols}), {args.connections} connections, "
            f"{args.duration:g} s per run, latency {args.latency_ms:g} ms"
        )
        rows.append(measure("simulator", simulator, url, str(credentials), args, work))
        records = [json.loads(line) for line in credentials.read_text().splitlines()]
        wrk_simulator = wrk_rps(url, next((r for r in records if r["protocol"] == "cloud"), records[0]), args, work)

        port = free_port()
        baseline = subprocess.Popen([sys.executable, __file__, "--baseline-server", str(port)], env=env)
        processes.append(baseline)
        wait_until_up(f"http://127.0.0.1:{port}/_sim/stats", baseline)
        url = f"http://127.0.0.1:{port}/cgi-bin/post_manager"
        rows.append(measure("baseline", baseline, url, "", args, work))
        wrk_baseline = wrk_rps(url, None, args, work)
        stats = json.loads(subprocess.run(["curl", "-s", f"{base}/_sim/stats"], capture_output=True).stdout or "{}")
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    print(f"{'server':<10} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'CPU %':>6} {'CPU ms/req':>10}")
    for row in rows:
        print(
            f"{row['name']:<10} {row['rps']:>8.0f} {row['p50_ms']:>7.2f} {row['p99_ms']:>7.2f} {row['errors']:>6} "
            f"{100 * row['server_cpu_share']:>6.0f} {row['cpu_ms_per_request']:>10.3f}   statuses {row['statuses']}"
        )
    print(f"simulator/baseline (Python load generator): {rows[0]['rps'] / rows[1]['rps']:.2f}")
    if wrk_simulator and wrk_baseline:
        print(
            f"wrk: simulator {wrk_simulator:.0f} req/s, baseline {wrk_baseline:.0f} req/s, "
            f"ratio {wrk_simulator / wrk_baseline:.2f}"
        )
    if stats:
        print(f"simulator stats: {stats.get('requests')} requests, statuses {stats.get('statuses')}")
    ok = rows[0]["rps"] >= 2000 or (wrk_simulator or 0) >= 2000
    print(f"target (>= 2,000 requests/s): {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
