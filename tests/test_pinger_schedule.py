"""The schedule is pure arithmetic: phases, due times, shards and back-off, tested exactly."""

from __future__ import annotations

import itertools
import statistics

import pytest

from loggerapp.pinger import schedule
from loggerapp.pinger.schedule import Shard

CLOUD_IDS = [f"{n:06x}" for n in range(0, 5000 * 37, 37)]


def test_phase_is_stable_and_inside_the_interval():
    for cloud_id in CLOUD_IDS[:200]:
        phase = schedule.phase_of(cloud_id, 6.0)
        assert 0.0 <= phase < 6.0
        assert phase == schedule.phase_of(cloud_id, 6.0)


def test_phases_spread_over_the_interval():
    """5,000 households over a 6 s interval: every tenth of a second holds a similar share, none is empty."""
    slots = [0] * 60
    for cloud_id in CLOUD_IDS:
        slots[int(schedule.phase_of(cloud_id, 6.0) * 10)] += 1
    assert min(slots) > 40  # about 83 expected per slot
    assert max(slots) < 130
    assert statistics.pstdev(slots) < 15


def test_due_times_never_drift():
    phase = schedule.phase_of("002506", 6.0)
    first = schedule.next_tick(1_700_000_000.0, phase, 6.0)
    due = [schedule.due_time(phase, first + k, 6.0) for k in range(100_000)]
    assert due[0] >= 1_700_000_000.0
    assert due[0] - 1_700_000_000.0 < 6.0
    # Poll k is exactly k intervals after poll 0: no accumulated error, however many polls.
    assert due[-1] - due[0] == pytest.approx(6.0 * 99_999, abs=1e-6)
    assert all(b - a == pytest.approx(6.0) for a, b in itertools.pairwise(due[:1001]))


def test_next_tick_and_tick_at_or_before_agree():
    phase = 2.5
    for now in (0.0, 2.5, 2.6, 8.49, 8.5, 1e9 + 0.1):
        tick = schedule.next_tick(now, phase, 6.0)
        assert schedule.due_time(phase, tick, 6.0) >= now
        assert schedule.due_time(phase, tick - 1, 6.0) < now
        start = schedule.due_time(phase, tick, 6.0) + 0.3  # started 300 ms late
        assert schedule.tick_at_or_before(start, phase, 6.0) == tick


def test_shards_partition_the_households_evenly():
    for count in (1, 2, 3, 5):
        shards = [Shard(index, count) for index in range(1, count + 1)]
        owners = [[shard.holds(cloud_id) for shard in shards].count(True) for cloud_id in CLOUD_IDS]
        assert set(owners) == {1}  # every household in exactly one shard
        sizes = [sum(shard.holds(cloud_id) for cloud_id in CLOUD_IDS) for shard in shards]
        assert max(sizes) - min(sizes) < 0.1 * len(CLOUD_IDS) / count + 10


def test_shard_is_one_based_and_validated():
    assert Shard.parse("2/4") == Shard(2, 4)
    assert str(Shard.parse("1/1")) == "1/1"
    for bad in ("0/4", "5/4", "1/0", "2", "a/b", "1/2/3", "-1/2"):
        with pytest.raises(ValueError):
            Shard.parse(bad)
    assert schedule.shard_of("002506", 1) == 1
    assert {schedule.shard_of(cloud_id, 4) for cloud_id in CLOUD_IDS} == {1, 2, 3, 4}


def test_backoff_doubles_up_to_the_ceiling_and_lands_on_ticks():
    waits = [schedule.backoff_seconds(n, 6.0) for n in range(0, 10)]
    assert waits == [6.0, 12.0, 24.0, 48.0, 96.0, 192.0, 300.0, 300.0, 300.0, 300.0]
    assert schedule.backoff_seconds(1000, 6.0) == 300.0
    assert schedule.backoff_seconds(3, 6.0, ceiling=2.0) == 6.0  # never faster than the normal cadence
    assert [schedule.ticks_to_skip(wait, 6.0) for wait in waits[:7]] == [1, 2, 4, 8, 16, 32, 50]
    assert schedule.ticks_to_skip(0.0, 6.0) == 1
    assert schedule.ticks_to_skip(7.0, 6.0) == 2


def test_the_tick_queue_gives_due_items_earliest_first_and_ties_in_order():
    queue: schedule.TickQueue[str] = schedule.TickQueue()
    assert queue.next_due() is None and list(queue.pop_due(10**10)) == []
    for due, item in [(5.0, "e"), (1.0, "a"), (3.0, "c1"), (3.0, "c2"), (9.0, "later")]:
        queue.push(due, item)
    assert len(queue) == 5 and queue.next_due() == 1.0
    assert list(queue.pop_due(5.0)) == [(1.0, "a"), (3.0, "c1"), (3.0, "c2"), (5.0, "e")]
    assert queue.next_due() == 9.0 and len(queue) == 1


def test_the_tick_queue_takes_what_is_pushed_while_it_is_read_if_it_is_due():
    queue: schedule.TickQueue[int] = schedule.TickQueue()
    queue.push(1.0, 1)
    taken = []
    for due, tick in queue.pop_due(3.0):
        taken.append(tick)
        queue.push(due + 1.0, tick + 1)  # as the scheduler queues a household's next tick
    assert taken == [1, 2, 3] and queue.next_due() == 4.0
