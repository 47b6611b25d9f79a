"""What ``manage.py eagle_simulator`` runs: pick the households, bind, write credentials, serve until a signal.

Procedure:
1. Households come from the database (``--from-db``, refreshed every ``--refresh`` seconds in a worker thread),
   are generated (``--households N``), or start empty (add them over ``POST /_sim/households``).
2. The socket is bound before anything is served, so the credentials file can name the real port of the local
   households, and it is written (mode 0600) before the first request can be answered: a script that waits for
   ``/_sim/stats`` may import it straight away.
3. Only loopback addresses are accepted: the control endpoints let anyone who reaches them change answers.
4. SIGTERM and SIGINT stop accepting, give in-flight requests a second, and print a one-line summary.
   Passwords go only to the credentials file, never to the console.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loggerapp.simulator.households import (
    SimHousehold,
    generate_households,
    households_from_db,
    write_credentials,
)
from loggerapp.simulator.server import Simulator, bind, is_loopback_host, start

logger = logging.getLogger(__name__)


class SimulatorConfigError(ValueError):
    """A command-line choice that cannot work; the message is meant for the operator."""


@dataclass
class SimulatorOptions:
    host: str = "127.0.0.1"
    port: int = 8650
    from_db: bool = False
    households: int | None = None
    protocols: dict[str, float] | None = None
    credentials_out: Path | None = None
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    fault_rates: dict[str, float] = field(default_factory=dict)
    seed: int | str = 1
    reading_interval_s: int = 10
    refresh_s: float = 30.0
    quirk_rate: float = 0.1


def _describe(households: list[SimHousehold]) -> str:
    protocols = Counter(household.protocol for household in households)
    parts = ", ".join(f"{name} {count}" for name, count in sorted(protocols.items())) or "none"
    exporting = sum(household.exports for household in households)
    return f"{len(households)} household(s) ({parts}; {exporting} exporting all day)"


def run(options: SimulatorOptions, say: Callable[[str], None]) -> str:
    """Serve until SIGTERM/SIGINT; returns the closing summary. ``say`` prints progress (never a password)."""
    if not is_loopback_host(options.host):
        raise SimulatorConfigError(
            f"refusing to bind {options.host}: the simulator (and its /_sim control endpoints) must listen on "
            "loopback only, e.g. 127.0.0.1"
        )
    if options.latency_ms < 0 or options.jitter_ms < 0:
        raise SimulatorConfigError("latency and jitter cannot be negative")
    if options.from_db:
        households = households_from_db()
    elif options.households:
        households = generate_households(
            options.households, seed=options.seed, mix=options.protocols, quirk_rate=options.quirk_rate
        )
    else:
        households = []
    simulator = Simulator(
        households,
        seed=options.seed,
        latency_ms=options.latency_ms,
        jitter_ms=options.jitter_ms,
        fault_rates=options.fault_rates,
        reading_interval_s=options.reading_interval_s,
    )
    try:
        sock = bind(options.host, options.port)
    except OSError as exc:
        raise SimulatorConfigError(f"cannot listen on {options.host}:{options.port}: {exc.strerror}") from None
    address = f"{options.host}:{sock.getsockname()[1]}"
    if options.credentials_out:
        written = write_credentials(options.credentials_out, households, address)
        say(f"credentials of {written} household(s) written to {options.credentials_out} (mode 0600)")
    source = "the database" if options.from_db else "generated" if options.households else "none yet"
    say(f"EAGLE simulator on http://{address}: {_describe(households)}, from {source}, seed {options.seed}")
    say(f"  cloud relay URL (EAGLE_CLOUD_URL): http://{address}/cgi-bin/post_manager")
    say(f"  local households answer at address {address}; control: http://{address}/_sim/stats")
    if options.latency_ms or options.jitter_ms:
        say(f"  latency {options.latency_ms:g} ms ± {options.jitter_ms:g} ms")
    if options.fault_rates:
        say("  fault rates: " + ", ".join(f"{name}={rate:g}" for name, rate in sorted(options.fault_rates.items())))
    return asyncio.run(_serve(simulator, sock, options, say))


async def _serve(simulator: Simulator, sock, options: SimulatorOptions, say: Callable[[str], None]) -> str:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = await start(simulator, sock)
    refresher = asyncio.create_task(_refresh(simulator, options.refresh_s, say)) if options.from_db else None
    try:
        await stop.wait()
    finally:
        if refresher is not None:
            refresher.cancel()
        await runner.cleanup()
        sock.close()
    stats = simulator.stats()
    return (
        f"EAGLE simulator stopped after {stats['uptime_s']:.0f} s: {stats['requests']} request(s) "
        f"for {stats['households']} household(s), {sum(simulator.injected.values())} fault(s) injected"
    )


def _households_from_db_in_thread() -> list[SimHousehold]:
    """households_from_db() for a worker thread, which closes its own connection when done."""
    from django.db import connection

    try:
        return households_from_db()
    finally:
        connection.close()


async def _refresh(simulator: Simulator, every: float, say: Callable[[str], None]) -> None:
    """Follow the database: added, removed, deactivated households and changed credentials."""
    loop = asyncio.get_running_loop()
    while every > 0:
        await asyncio.sleep(every)
        try:
            households = await loop.run_in_executor(None, _households_from_db_in_thread)
        except Exception:
            logger.warning("reading households from the database failed; keeping the current ones", exc_info=True)
            continue
        added, removed = simulator.sync(households, origin="db")
        if added or removed:
            say(f"households from the database: {added} added, {removed} removed, {len(households)} active")
