"""Benchmark: do the price-and-energy polls (issue 14) delay the demand polls? The same pinger three times.

    .venv/bin/python bench/price_polls.py --households 2000 --interval 6 --latency-ms 200 --duration 45

One simulator (N households, 80% cloud, 10% EAGLE-100, 10% EAGLE-200, L ms of added latency) and one database;
``manage.py runpinger --duration D`` is run three times in a row against them:
1. ``PINGER_PRICE_INTERVAL=0``: demand polls only, the baseline measured in the same run;
2. ``PINGER_PRICE_INTERVAL=60``: the default cadence;
3. ``PINGER_PRICE_INTERVAL=<interval>``: a price poll as often as a demand poll (two requests each on the
   legacy protocols), a stress the default never reaches.
For each: the demand polls' due fraction and start lag against their schedule (bench/pinger.py's definitions,
from the demand files only, in the window from --warmup to --duration), the price lines written, the CPU
seconds (from wait4: CPU time, not wall time, because the machine is shared) and the ratio of CPU to the mean
of the runs without price polls. ``--rounds`` repeats the three, alternating their order.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from harness import clean_up, create_database, free_port, manage, service_env, stop_process, wait_for_simulator
from pinger import analyse_pinger, percentile, run_measured


def price_lines(log_root: Path) -> int:
    return sum(path.read_bytes().count(b"\n") for path in log_root.glob("*/iseif-rainforest-price-*.jl"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=6.0)
    parser.add_argument("--latency-ms", type=int, default=200)
    parser.add_argument("--duration", type=float, default=45.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1, help="each configuration this many times")
    parser.add_argument("--db-name", default="bench_price_polls")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-price-"))
    db_url = create_database(args.db_name)
    env = service_env(db_url, work / "unused")
    simulator = None
    try:
        subprocess.run(manage("migrate", "-v", "0"), env=env, check=True)
        port, credentials = free_port(), work / "households.jl"
        simulator = subprocess.Popen(
            manage(
                "eagle_simulator", "--host", "127.0.0.1", "--port", str(port), "--households", str(args.households),
                "--latency-ms", str(args.latency_ms), "--credentials-out", str(credentials), "--seed", "1",
            ),
            env=env, stdout=open(work / "simulator.log", "w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for_simulator(f"http://127.0.0.1:{port}", simulator)
        subprocess.run(manage("import_households", str(credentials)), env=env, check=True, stdout=subprocess.DEVNULL)
        cloud_ids = [json.loads(text)["cloud_id"] for text in credentials.read_text().splitlines() if text.strip()]
        rows = []
        runs = [("no prices", 0.0), ("price 60 s", 60.0), (f"price {args.interval:g} s", args.interval)]
        # Rounds alternate the order, so that a change of the machine's load does not favour one configuration.
        order = [run for round_ in range(args.rounds) for run in (runs if round_ % 2 == 0 else runs[::-1])]
        for name, price_interval in order:
            log_root = work / f"logs-{len(rows)}"
            run_env = service_env(
                db_url, log_root, EAGLE_CLOUD_URL=f"http://127.0.0.1:{port}/cgi-bin/post_manager",
                PINGER_PRICE_INTERVAL=str(price_interval),
            )  # fmt: skip
            cmd = manage("runpinger", "--interval", str(args.interval), "--duration", str(args.duration))
            process = run_measured(cmd, run_env, work / f"pinger-{len(rows)}.out", args.warmup)
            # Demand polls stop at --duration; the process may take longer to drain its polls and exit.
            window = (process["started"] + args.warmup, min(process["ended"], process["started"] + args.duration) - 2.0)
            demand = analyse_pinger(log_root, cloud_ids, args.interval, window)
            for text in (work / f"pinger-{len(rows)}.out").read_text().splitlines():
                if "pinger stopped" in text or "price polls:" in text:
                    print(f"{name}: {text.split(': ', 1)[-1]}")
            rows.append(
                {
                    "name": name,
                    "due": demand["ran"] / demand["due"] if demand["due"] else float("nan"),
                    "p50": percentile(demand["lags"], 0.5) * 1000,
                    "p99": percentile(demand["lags"], 0.99) * 1000,
                    "demand_lines": demand["total_lines"],
                    "price_lines": price_lines(log_root),
                    "cpu_s": process["cpu_s"],
                    "rss": process["peak_rss_mb"],
                }
            )
        print(
            f"{args.households} households, demand every {args.interval:g} s, "
            f"{args.latency_ms} ms, {args.duration:g} s each"
        )
        print(f"{'':14}{'due run':>10}{'lag p50 ms':>12}{'lag p99 ms':>12}{'demand lines':>14}{'price lines':>13}"
              f"{'CPU s':>8}{'CPU ratio':>11}{'RSS MB':>8}")  # fmt: skip
        baseline = [row["cpu_s"] for row in rows if row["name"] == "no prices"]
        base = {"cpu_s": sum(baseline) / len(baseline)}
        for row in rows:
            print(
                f"{row['name']:14}{row['due']:>10.4%}{row['p50']:>12.1f}{row['p99']:>12.1f}{row['demand_lines']:>14}"
                f"{row['price_lines']:>13}{row['cpu_s']:>8.1f}{row['cpu_s'] / base['cpu_s']:>10.2f}x{row['rss']:>8.1f}"
            )
    finally:
        stop_process(simulator)
        clean_up(args.db_name, work)


if __name__ == "__main__":
    main()
