"""``run_simulator``: the simulator in a background thread with its own event loop, for tests and scripts.

The handle's methods may be called from any thread. Each one is run on the server's loop (through
``call_soon_threadsafe``) and waits for it, so a fault set by a test is in force before the test's next request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from loggerapp.simulator.households import SimHousehold
from loggerapp.simulator.server import POST_MANAGER, Simulator, bind, start

T = TypeVar("T")


class SimulatorHandle:
    """A running simulator: its URLs and a thread-safe control surface (see docs/simulator.md)."""

    def __init__(self, simulator: Simulator, loop: asyncio.AbstractEventLoop, host: str, port: int) -> None:
        self._simulator = simulator
        self._loop = loop
        self.host = host
        self.port = port
        self.address = f"{host}:{port}"
        self.base_url = f"http://{self.address}"
        self.cloud_url = f"{self.base_url}{POST_MANAGER}"

    def __repr__(self) -> str:
        return f"<SimulatorHandle {self.base_url}>"

    def _call(self, function: Callable[..., T], *args: object, **kwargs: object) -> T:
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(function(*args, **kwargs))
            except BaseException as exc:
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return done.result(timeout=10)

    def add_household(
        self,
        cloud_id: str,
        protocol: str = "cloud",
        user_email: str = "",
        password: str = "",
        exports: bool = False,
        **quirks: object,
    ) -> SimHousehold:
        return self._call(
            self._simulator.add_household,
            cloud_id,
            protocol=protocol,
            user_email=user_email,
            password=password,
            exports=exports,
            **quirks,
        )

    def remove_household(self, cloud_id: str) -> bool:
        return self._call(self._simulator.remove_household, cloud_id)

    def set_fault(self, cloud_id: str, fault: str, **params: object) -> None:
        self._call(self._simulator.set_fault, cloud_id, fault, **params)

    def clear_fault(self, cloud_id: str) -> None:
        self._call(self._simulator.clear_fault, cloud_id)

    def clear_faults(self) -> None:
        self._call(self._simulator.clear_faults)

    def set_fault_rate(self, fault: str, rate: float, **params: object) -> None:
        self._call(self._simulator.set_fault_rate, fault, rate, **params)

    def set_latency(self, latency_ms: float, jitter_ms: float = 0.0) -> None:
        def apply() -> None:
            self._simulator.latency_ms, self._simulator.jitter_ms = float(latency_ms), float(jitter_ms)

        self._call(apply)

    def requests(self, cloud_id: str) -> int:
        return self._call(self._simulator.requests, cloud_id)

    def cookie_requests(self, cloud_id: str) -> int:
        return self._call(self._simulator.cookie_requests, cloud_id)

    def demand_kw(self, cloud_id: str) -> float:
        return self._call(self._simulator.demand_kw, cloud_id)

    def stats(self) -> dict[str, object]:
        return self._call(self._simulator.stats)


@contextmanager
def run_simulator(
    households: Iterable[SimHousehold] = (),
    *,
    latency_ms: float = 0.0,
    jitter_ms: float = 0.0,
    seed: int | str = 1,
    fault_rates: dict[str, float] | None = None,
    reading_interval_s: int = 10,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Iterator[SimulatorHandle]:
    """Start a simulator on ``host:port`` (0: a free port) and yield once it accepts connections.

    On exit the server stops accepting, in-flight requests get a second to finish, and the thread ends."""
    simulator = Simulator(
        households,
        seed=seed,
        latency_ms=latency_ms,
        jitter_ms=jitter_ms,
        fault_rates=fault_rates,
        reading_interval_s=reading_interval_s,
    )
    sock = bind(host, port)
    bound_port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    ready: concurrent.futures.Future[None] = concurrent.futures.Future()
    stopping = asyncio.Event()

    async def main() -> None:
        try:
            runner = await start(simulator, sock)
        except BaseException as exc:
            ready.set_exception(exc)
            raise
        ready.set_result(None)
        try:
            await stopping.wait()
        finally:
            await runner.cleanup()

    def thread_main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
        except BaseException:  # noqa: S110 -- reported through ``ready`` when it matters
            pass
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=thread_main, name=f"eagle-simulator-{bound_port}", daemon=True)
    thread.start()
    try:
        ready.result(timeout=10)
        yield SimulatorHandle(simulator, loop, host, bound_port)
    finally:
        try:
            loop.call_soon_threadsafe(stopping.set)
        except RuntimeError:  # the loop already ended (the server failed to start)
            pass
        thread.join(timeout=10)
        sock.close()
