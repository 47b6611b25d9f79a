"""Which asyncio event loop the pinger runs on (PINGER_EVENT_LOOP), and an optional profile of its run.

uvloop is the default because the pinger is mostly event-loop work (sockets, timers, task switches) and uvloop
does that work in C: bench/pinger.py measures what it saves against the standard loop in the same run. When
uvloop is not importable (another platform, a trimmed install) the pinger falls back to asyncio's own loop and
says so once, rather than refusing to start: the choice changes the cost of a poll, never what is written.
"""

from __future__ import annotations

import asyncio
import cProfile
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

logger = logging.getLogger("loggerapp.pinger")

EVENT_LOOPS = ("uvloop", "asyncio")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(name: str) -> tuple[str, LoopFactory | None]:
    """(the loop actually used, its factory for ``asyncio.Runner``; None is asyncio's default).

    A name other than those of EVENT_LOOPS is a ValueError, so a typo in the setting is a clear error at start."""
    name = (name or "").strip().lower()
    if name not in EVENT_LOOPS:
        raise ValueError(f"PINGER_EVENT_LOOP must be one of {', '.join(EVENT_LOOPS)}, not {name!r}")
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            logger.warning("PINGER_EVENT_LOOP=uvloop but uvloop is not installed: using asyncio's own loop")
            return "asyncio", None
        return "uvloop", uvloop.new_event_loop
    return "asyncio", None


def run[T](main: Coroutine[Any, Any, T], event_loop: str = "uvloop", profile: Path | None = None) -> T:
    """Run ``main`` to its end on the chosen loop; with ``profile``, under cProfile, whose statistics are written
    there at the end (since Python 3.12 cProfile sees every thread: the writer and flush threads are in it)."""
    try:
        name, factory = loop_factory(event_loop)
    except ValueError:
        main.close()  # never started: no "coroutine was never awaited" warning on top of the error
        raise
    logger.info("event loop: %s", name)
    profiler = cProfile.Profile() if profile is not None else None
    with asyncio.Runner(loop_factory=factory) as runner:
        if profiler is None:
            return runner.run(main)
        profiler.enable()
        try:
            return runner.run(main)
        finally:
            profiler.disable()
            profiler.dump_stats(str(profile))
