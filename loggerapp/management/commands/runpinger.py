"""manage.py runpinger: poll every active household every few seconds and write every reading to disk."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from loggerapp.fleet.membership import FleetSettings
from loggerapp.pinger.registry import RegistryUnavailable
from loggerapp.pinger.runner import PingerConfig, run_pinger
from loggerapp.pinger.schedule import Shard
from loggerapp.service_log import add_log_level_argument, configure_service_log


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _or(value, default):
    return default if value is None else value


class Command(BaseCommand):
    help = (
        "Poll every active household on a fixed schedule and append one JSON line per poll to "
        "LOG_ROOT/<hour>/iseif-rainforest-<cloud_id>-<hour>.jl. SIGTERM/SIGINT stop it cleanly."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--interval", type=float, default=None, help="seconds between polls of a household")
        parser.add_argument("--refresh", type=float, default=None, help="seconds between household list reloads")
        parser.add_argument("--once", action="store_true", help="poll every household once, write, and exit")
        parser.add_argument(
            "--shard",
            default=None,
            help="K/N: poll only the fixed shard K (1..N) of N; without it the pinger joins the fleet (docs/fleet.md)",
        )
        parser.add_argument(
            "--fleet-heartbeat", type=float, default=None, help="seconds between member heartbeats (fleet mode)"
        )
        parser.add_argument(
            "--fleet-timeout", type=float, default=None, help="seconds of silence after which a member is taken over"
        )
        parser.add_argument("--max-in-flight", type=int, default=None, help="bound on concurrent polls")
        parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
        parser.add_argument("--metrics-port", type=int, default=None, help="serve Prometheus metrics on 127.0.0.1")
        parser.add_argument(
            "--profile", default=None, help="write a cProfile of the event-loop thread to this file at the end"
        )
        add_log_level_argument(parser)

    def handle(self, *args, **options) -> str:
        configure_service_log("pinger", options["log_level"])
        try:
            fleet = None
            if options["shard"] is None and not options["once"]:
                heartbeat = _or(options["fleet_heartbeat"], settings.FLEET_HEARTBEAT_SECONDS)
                fleet = FleetSettings(
                    heartbeat=heartbeat,
                    timeout=_or(options["fleet_timeout"], settings.FLEET_MEMBER_TIMEOUT),
                    join_delay=settings.FLEET_JOIN_DELAY if options["fleet_heartbeat"] is None else 2 * heartbeat,
                    stop_when_cut_off=settings.FLEET_STOP_WHEN_CUT_OFF,
                )
            config = PingerConfig(
                log_root=settings.LOG_ROOT,
                interval=_or(options["interval"], settings.PINGER_INTERVAL),
                refresh=_or(options["refresh"], settings.PINGER_REFRESH),
                max_in_flight=_or(options["max_in_flight"], settings.PINGER_MAX_IN_FLIGHT),
                max_slow_in_flight=settings.PINGER_MAX_SLOW_IN_FLIGHT,
                max_open_files=settings.PINGER_MAX_OPEN_FILES,
                shard=_shard(options["shard"] or "1/1"),
                fleet=fleet,
                once=options["once"],
                duration=options["duration"],
                log_each_poll=options["verbosity"] >= 2,
                metrics_port=options["metrics_port"],
                max_backoff=settings.PINGER_MAX_BACKOFF,
                flush_every=settings.PINGER_FLUSH_SECONDS,
                summary_every=settings.PINGER_SUMMARY_SECONDS,
                poll_deadline=settings.EAGLE_CONNECT_TIMEOUT + settings.EAGLE_READ_TIMEOUT + 1.0,
                stop_wait=settings.PINGER_STOP_WAIT,
                blocked_intervals=settings.PINGER_BLOCKED_INTERVALS,
                price_interval=settings.PINGER_PRICE_INTERVAL,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        try:
            profile = Path(options["profile"]) if options["profile"] else None
            total = run_pinger(config, settings.PINGER_EVENT_LOOP, profile)
        except RegistryUnavailable as exc:
            raise CommandError(f"cannot read the households: {exc}") from None
        except ValueError as exc:  # PINGER_EVENT_LOOP names no known loop
            raise CommandError(str(exc)) from None
        return f"pinger done: {total.describe()}"
