"""The bound on polls in flight: never more than its size, first come first served, nothing lost to a
cancellation, and a release that does not slow down with the queue."""

from __future__ import annotations

import asyncio
import time

import pytest

from loggerapp.pinger.limiter import InFlightLimit


def test_never_more_than_its_size_and_first_come_first_served():
    async def main() -> tuple[int, list[int]]:
        limit = InFlightLimit(3)
        inside = peak = 0
        order: list[int] = []

        async def poll(number: int) -> None:
            nonlocal inside, peak
            async with limit:
                order.append(number)
                inside += 1
                peak = max(peak, inside)
                await asyncio.sleep(0.001)
                inside -= 1

        await asyncio.gather(*(poll(number) for number in range(50)))
        return peak, order

    peak, order = asyncio.run(main())
    assert peak == 3
    assert order == list(range(50))


def test_a_cancelled_waiter_gives_its_place_or_its_slot_on():
    async def main() -> list[str]:
        limit = InFlightLimit(1)
        got: list[str] = []

        async def poll(name: str) -> None:
            async with limit:
                got.append(name)

        await limit.acquire()  # the one slot, held here
        waiting = asyncio.create_task(poll("cancelled while waiting"))
        handed = asyncio.create_task(poll("cancelled as its slot came"))
        last = asyncio.create_task(poll("last"))
        await asyncio.sleep(0)
        assert limit.waiting == 3
        waiting.cancel()
        limit.release()  # skips the cancelled waiter: the slot goes to "handed"...
        handed.cancel()  # ...which is cancelled before it runs: the slot must move on to "last"
        await asyncio.gather(waiting, handed, return_exceptions=True)
        await asyncio.wait_for(last, 1)
        assert limit.waiting == 0
        await asyncio.wait_for(limit.acquire(), 1)  # the slot came back
        return got

    assert asyncio.run(main()) == ["last"]


def test_a_release_costs_the_same_with_thousands_waiting():
    async def releases_per_second(waiters: int) -> float:
        limit = InFlightLimit(1)
        await limit.acquire()
        tasks = [asyncio.create_task(limit.acquire()) for _ in range(waiters)]
        await asyncio.sleep(0)
        started = time.perf_counter()
        for _ in range(waiters):
            limit.release()  # each wakes one waiter; none has run yet (the worst case for asyncio.Semaphore)
        elapsed = time.perf_counter() - started
        await asyncio.gather(*tasks)
        return waiters / elapsed

    def best(waiters: int) -> float:  # best of three: the machine may be busy with other work
        return max(asyncio.run(releases_per_second(waiters)) for _ in range(3))

    few, many = best(2000), best(40000)
    assert many > few / 4  # the same cost per release; a queue walked on every release is ~20x slower here


def test_the_size_must_be_positive():
    with pytest.raises(ValueError):
        InFlightLimit(0)
