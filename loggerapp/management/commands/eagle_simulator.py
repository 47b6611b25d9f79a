"""manage.py eagle_simulator: a local EAGLE simulator (cloud relay, EAGLE-100, EAGLE-200) for tests and demos."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from loggerapp.service_log import add_log_level_argument, set_log_level
from loggerapp.simulator.command import SimulatorConfigError, SimulatorOptions, run
from loggerapp.simulator.faults import parse_fault_rates
from loggerapp.simulator.households import parse_protocol_mix


class Command(BaseCommand):
    help = (
        "Serve simulated EAGLE gateways on POST /cgi-bin/post_manager (all three protocols), with households from "
        "the database (--from-db) or generated (--households N), fault injection and /_sim control endpoints. "
        "Loopback only. SIGTERM/SIGINT stop it."
    )
    # Generated households need no database and no checks: the benchmark runs it without either.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8650, help="TCP port (default 8650; 0 picks a free one)")
        source = parser.add_mutually_exclusive_group()
        source.add_argument("--from-db", action="store_true", help="simulate the active households of the database")
        source.add_argument("--households", type=int, default=None, help="generate N households")
        parser.add_argument(
            "--protocols",
            default="cloud=1",
            help="protocol mix of generated households, e.g. cloud=0.8,eagle100=0.1,eagle200=0.1",
        )
        parser.add_argument(
            "--credentials-out", default=None, help="write generated credentials here (import_households format)"
        )
        parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
        parser.add_argument("--jitter-ms", type=float, default=0.0, help="latency varies uniformly by ± this")
        parser.add_argument(
            "--fault-rate",
            action="append",
            default=[],
            metavar="FAULT=RATE",
            help="each request gets FAULT with probability RATE (repeatable, or comma-separated)",
        )
        parser.add_argument("--seed", default=None, help="makes households and curves reproducible (default: random)")
        parser.add_argument("--reading-interval", type=int, default=10, help="seconds between meter readings")
        parser.add_argument("--refresh", type=float, default=30.0, help="--from-db: seconds between reloads")
        parser.add_argument("--quirk-rate", type=float, default=0.1, help="share of generated households with quirks")
        add_log_level_argument(parser)

    def handle(self, *args, **options) -> str:
        set_log_level(options["log_level"])
        if options["households"] is not None and options["households"] < 0:
            raise CommandError("--households must not be negative")
        if options["credentials_out"] and options["from_db"]:
            raise CommandError("--credentials-out is for generated households; the database already has them")
        try:
            config = SimulatorOptions(
                host=options["host"],
                port=options["port"],
                from_db=options["from_db"],
                households=options["households"],
                protocols=parse_protocol_mix(options["protocols"]),
                credentials_out=Path(options["credentials_out"]) if options["credentials_out"] else None,
                latency_ms=options["latency_ms"],
                jitter_ms=options["jitter_ms"],
                fault_rates=parse_fault_rates(options["fault_rate"]),
                seed=options["seed"] if options["seed"] is not None else secrets.randbelow(10**6),
                reading_interval_s=options["reading_interval"],
                refresh_s=options["refresh"],
                quirk_rate=options["quirk_rate"],
            )
            return run(config, say=lambda text: self.stdout.write(text))
        except (SimulatorConfigError, ValueError) as exc:
            raise CommandError(str(exc)) from None
