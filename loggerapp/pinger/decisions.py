"""What the loop decides about one household: pure functions over its state, no clock, network, disk or database.

The runner does the I/O (polls, lines, statistics, logs); each choice it makes about a household is one of
these functions, so every rule is tested directly (tests/test_pinger_decisions.py):

- ``on_tick``: a due tick is polled, skipped (its previous poll is still in flight: counted, never queued) or
  dropped (a stale queue entry: the household was removed, or its tick was moved by a back-off or a refresh, or
  it comes after ``last_tick``, where a fleet hand-over gives the household to another member);
- ``after_success`` / ``after_failure``: the household's next status, failure counts and next tick. Bad
  credentials push the next poll back 2, 4, 8... intervals (at most ``max_backoff``), always onto one of the
  household's own ticks; every other failure keeps the normal cadence;
- ``after_new_credentials``: changed credentials end a back-off at once;
- ``status_change_level``: whether a change of status is logged, and how loudly.

A decision is a value; ``apply`` writes it into the state. Statuses are ``loggerapp.models.Status`` values
(the EAGLE client's error kinds are the same strings).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from loggerapp.hourfiles.lines import is_repeat
from loggerapp.models import Status
from loggerapp.pinger import schedule

if TYPE_CHECKING:
    from loggerapp.pinger.registry import HouseholdEntry


class HouseholdState:
    """What the loop knows about one household between polls."""

    __slots__ = (
        "bad_credentials",
        "entry",
        "failures",
        "last_meter_timestamp",
        "last_tick",
        "next_tick",
        "phase",
        "polling",
        "removed",
        "status",
    )

    def __init__(self, entry: HouseholdEntry, phase: float, next_tick: int) -> None:
        self.entry = entry
        self.phase = phase
        self.next_tick = next_tick
        self.polling = False
        self.removed = False
        self.last_tick: int | None = None  # fleet hand-over: ticks after it belong to another member
        self.last_meter_timestamp: int | None = None
        self.status: str = entry.status
        self.failures: int = entry.consecutive_failures
        # A restart continues a back-off that was under way.
        self.bad_credentials: int = entry.consecutive_failures if entry.status == Status.BAD_CREDENTIALS else 0


def new_state(entry: HouseholdEntry, now: float, interval: float) -> HouseholdState:
    """A household the loop starts polling: its own phase, and its first tick at or after ``now``."""
    phase = schedule.phase_of(entry.cloud_id, interval)
    return HouseholdState(entry, phase, schedule.next_tick(now, phase, interval))


# --- Ticks ---------------------------------------------------------------------------------------------------
class TickAction(Enum):
    POLL = "poll"
    SKIP = "skip"
    STALE = "stale"


def on_tick(state: HouseholdState, tick: int) -> TickAction:
    """What to do with tick number ``tick`` of a household when it comes due."""
    if state.removed or state.next_tick != tick or (state.last_tick is not None and tick > state.last_tick):
        return TickAction.STALE
    if state.polling:
        return TickAction.SKIP
    return TickAction.POLL


def after_new_credentials(state: HouseholdState, now: float, interval: float) -> int | None:
    """The tick to poll next when a refresh brings new credentials: the next one at or after ``now`` when a
    bad-credentials back-off was under way (new credentials deserve an answer now), else None (keep the cadence).
    """
    if not state.bad_credentials:
        return None
    return schedule.next_tick(now, state.phase, interval)


# --- Outcomes of a poll --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PollDecision:
    """A household's state after one poll, and what the runner must do about it."""

    previous_status: str
    status: str
    failures: int  # consecutive failed polls
    bad_credentials: int  # consecutive bad-credentials answers
    next_tick: int
    moved: bool = False  # next_tick was pushed back: queue it (its old entry becomes stale)
    backoff_s: float | None = None  # the back-off chosen after bad credentials
    repeat: bool = False  # a success that repeats the previous meter reading
    last_meter_timestamp: int | None = None

    @property
    def status_changed(self) -> bool:
        return self.status != self.previous_status


def after_success(state: HouseholdState, meter_timestamp: int | None) -> PollDecision:
    """A reading arrived: the household is ok, its failure counts and any back-off end."""
    return PollDecision(
        previous_status=state.status,
        status=Status.OK,
        failures=0,
        bad_credentials=0,
        next_tick=state.next_tick,
        repeat=is_repeat(state.last_meter_timestamp, meter_timestamp),
        last_meter_timestamp=meter_timestamp if meter_timestamp is not None else state.last_meter_timestamp,
    )


def after_failure(state: HouseholdState, kind: str, tick: int, interval: float, max_backoff: float) -> PollDecision:
    """Poll number ``tick`` failed with error kind ``kind`` (a Status value).

    Bad credentials back off from the failed tick; any other failure keeps the cadence and ends a back-off.
    A removed household is never queued again.
    """
    failures = state.failures + 1
    next_tick = state.next_tick
    if kind != Status.BAD_CREDENTIALS:
        return PollDecision(
            previous_status=state.status,
            status=kind,
            failures=failures,
            bad_credentials=0,
            next_tick=next_tick,
            last_meter_timestamp=state.last_meter_timestamp,
        )
    bad_credentials = state.bad_credentials + 1
    wait = schedule.backoff_seconds(bad_credentials, interval, max_backoff)
    later = tick + schedule.ticks_to_skip(wait, interval)
    moved = later > next_tick and not state.removed
    return PollDecision(
        previous_status=state.status,
        status=kind,
        failures=failures,
        bad_credentials=bad_credentials,
        next_tick=later if moved else next_tick,
        moved=moved,
        backoff_s=wait,
        last_meter_timestamp=state.last_meter_timestamp,
    )


def apply(state: HouseholdState, decision: PollDecision) -> None:
    """Write a poll's decision into the household's state."""
    state.status = decision.status
    state.failures = decision.failures
    state.bad_credentials = decision.bad_credentials
    state.next_tick = decision.next_tick
    state.last_meter_timestamp = decision.last_meter_timestamp


def status_change_level(previous: str, status: str) -> int | None:
    """The log level of a change of status, None when there is no change. A household's very first ``ok`` is
    DEBUG, so that starting a pinger for 5,000 households does not log 5,000 lines; a recovery is INFO; every
    new failure kind is a WARNING."""
    if status == previous:
        return None
    if status == Status.OK:
        return logging.DEBUG if previous == Status.NEVER_POLLED else logging.INFO
    return logging.WARNING
