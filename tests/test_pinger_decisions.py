"""The pinger's decisions about one household, its outcome counts and its refresh rule: pure functions and plain
objects, tested without a network, a disk or a database (the end-to-end run is tests/test_pinger_run.py)."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import generate_latest

from loggerapp.models import Status
from loggerapp.pinger import decisions, schedule
from loggerapp.pinger.decisions import HouseholdState, TickAction
from loggerapp.pinger.metrics import PingerMetrics
from loggerapp.pinger.outcomes import PollCounts
from loggerapp.pinger.registry import HouseholdEntry, apply_load

INTERVAL = 6.0
CEILING = 300.0
NOW = 1_764_386_400.0


def entry(cloud_id: str = "002506", target: str = "cloud:pw1", **fields) -> HouseholdEntry:
    return HouseholdEntry(household_id=int(cloud_id, 16), cloud_id=cloud_id, target=target, **fields)


def state(**fields) -> HouseholdState:
    return decisions.new_state(entry(**fields), NOW, INTERVAL)


# --- a new household --------------------------------------------------------------------------------------------
def test_a_new_household_starts_at_its_own_next_tick():
    household = state()
    due = schedule.due_time(household.phase, household.next_tick, INTERVAL)
    assert NOW <= due < NOW + INTERVAL
    assert household.phase == schedule.phase_of("002506", INTERVAL)
    assert (household.status, household.failures, household.bad_credentials) == (Status.NEVER_POLLED, 0, 0)


def test_a_restarted_pinger_continues_a_back_off_but_not_other_failures():
    backing_off = state(status=Status.BAD_CREDENTIALS, consecutive_failures=4)
    assert (backing_off.failures, backing_off.bad_credentials) == (4, 4)
    unreachable = state(status=Status.UNREACHABLE, consecutive_failures=4)
    assert (unreachable.failures, unreachable.bad_credentials) == (4, 0)


# --- ticks ------------------------------------------------------------------------------------------------------
def test_a_due_tick_is_polled_skipped_while_a_poll_is_in_flight_or_dropped_when_stale():
    household = state()
    tick = household.next_tick
    assert decisions.on_tick(household, tick) is TickAction.POLL
    household.polling = True
    assert decisions.on_tick(household, tick) is TickAction.SKIP
    household.polling = False
    assert decisions.on_tick(household, tick - 1) is TickAction.STALE  # moved by a back-off or a refresh
    household.removed = True
    assert decisions.on_tick(household, tick) is TickAction.STALE


# --- success ----------------------------------------------------------------------------------------------------
def test_a_success_makes_the_household_ok_and_ends_failures_and_back_off():
    household = state(status=Status.BAD_CREDENTIALS, consecutive_failures=3)
    decision = decisions.after_success(household, meter_timestamp=1000)
    assert (decision.status, decision.failures, decision.bad_credentials) == (Status.OK, 0, 0)
    assert decision.status_changed and decision.previous_status == Status.BAD_CREDENTIALS
    assert decision.next_tick == household.next_tick and not decision.moved
    assert decision.repeat is False
    decisions.apply(household, decision)
    assert (household.status, household.failures, household.bad_credentials) == (Status.OK, 0, 0)
    assert household.last_meter_timestamp == 1000


def test_a_repeat_is_the_same_meter_reading_again_and_a_reading_without_a_time_keeps_the_last_one():
    household = state()
    decisions.apply(household, decisions.after_success(household, 1000))
    again = decisions.after_success(household, 1000)
    assert again.repeat and not again.status_changed
    decisions.apply(household, again)
    timeless = decisions.after_success(household, None)
    assert not timeless.repeat and timeless.last_meter_timestamp == 1000
    assert not decisions.after_success(household, 1010).repeat


# --- failures ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", [Status.UNREACHABLE, Status.METER_NOT_JOINED, Status.BAD_RESPONSE])
def test_other_failures_keep_the_cadence_and_end_a_back_off(kind):
    household = state(status=Status.BAD_CREDENTIALS, consecutive_failures=5)
    tick = household.next_tick
    household.next_tick = tick + 1  # the scheduler queued the following tick when it launched this one
    decision = decisions.after_failure(household, kind, tick, INTERVAL, CEILING)
    assert (decision.status, decision.failures, decision.bad_credentials) == (kind, 6, 0)
    assert decision.next_tick == tick + 1 and not decision.moved and decision.backoff_s is None


def test_bad_credentials_back_off_2_4_8_intervals_up_to_the_ceiling_on_the_households_own_ticks():
    household = state()
    tick = household.next_tick
    gaps = []
    for _ in range(9):
        household.next_tick = tick + 1  # as the scheduler leaves it when it launches a tick
        decision = decisions.after_failure(household, Status.BAD_CREDENTIALS, tick, INTERVAL, CEILING)
        assert decision.moved and decision.status == Status.BAD_CREDENTIALS
        decisions.apply(household, decision)
        gaps.append(household.next_tick - tick)
        tick = household.next_tick
    assert gaps == [2, 4, 8, 16, 32, 50, 50, 50, 50]  # 300 s ceiling = 50 ticks of 6 s
    assert household.failures == household.bad_credentials == 9


def test_a_back_off_never_moves_a_tick_earlier_nor_queues_a_removed_household():
    household = state()
    tick = household.next_tick
    household.next_tick = tick + 100  # already further away (e.g. a long back-off under way)
    decision = decisions.after_failure(household, Status.BAD_CREDENTIALS, tick, INTERVAL, CEILING)
    assert decision.next_tick == tick + 100 and not decision.moved
    household.next_tick = tick + 1
    household.removed = True
    decision = decisions.after_failure(household, Status.BAD_CREDENTIALS, tick, INTERVAL, CEILING)
    assert not decision.moved and decision.next_tick == tick + 1


def test_new_credentials_end_a_back_off_at_once():
    household = state(status=Status.BAD_CREDENTIALS, consecutive_failures=6)
    household.next_tick += 50
    later = NOW + 100.0
    tick = decisions.after_new_credentials(household, later, INTERVAL)
    assert tick == schedule.next_tick(later, household.phase, INTERVAL)
    assert decisions.after_new_credentials(state(), later, INTERVAL) is None  # no back-off: keep the cadence


# --- status changes ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("previous", "status", "level"),
    [
        (Status.NEVER_POLLED, Status.OK, logging.DEBUG),  # a first start does not log 5,000 lines
        (Status.UNREACHABLE, Status.OK, logging.INFO),
        (Status.OK, Status.UNREACHABLE, logging.WARNING),
        (Status.NEVER_POLLED, Status.BAD_CREDENTIALS, logging.WARNING),
        (Status.UNREACHABLE, Status.BAD_RESPONSE, logging.WARNING),
        (Status.OK, Status.OK, None),
        ("bad_credentials", Status.BAD_CREDENTIALS, None),  # a status read from the database is plain text
    ],
)
def test_which_status_changes_are_logged_and_how_loudly(previous, status, level):
    assert decisions.status_change_level(previous, status) == level


# --- counting outcomes in one place -----------------------------------------------------------------------------
def _sample(metrics: PingerMetrics, text: str) -> float:
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith(text + " "):
            return float(line.split()[-1])
    return 0.0


def test_every_outcome_lands_in_the_run_the_window_and_prometheus_together():
    metrics = PingerMetrics()
    counts = PollCounts(metrics)
    counts.poll_finished(Status.OK, 0.2, 0.01)
    counts.poll_finished(Status.UNREACHABLE, 4.0, 0.30)
    counts.poll_finished("unreachable", 4.0, 0.02)
    counts.tick_skipped()
    for tally in (counts.total, counts.window):
        assert (tally.polls, tally.successes, dict(tally.failures), tally.skipped) == (3, 1, {"unreachable": 2}, 1)
        assert tally.worst_lag == pytest.approx(0.30)
    assert _sample(metrics, 'iseif_pinger_polls_total{outcome="ok"}') == 1
    assert _sample(metrics, 'iseif_pinger_polls_total{outcome="unreachable"}') == 2
    assert _sample(metrics, "iseif_pinger_skipped_ticks_total") == 1
    assert _sample(metrics, "iseif_pinger_schedule_lag_seconds_count") == 3

    window = counts.take_window()
    assert window.polls == 3 and counts.window.polls == 0 and counts.total.polls == 3
    counts.poll_finished(Status.OK, 0.1, 0.0)
    assert (counts.window.polls, counts.total.polls) == (1, 4)
    assert counts.total.as_dict()["failures"] == {"unreachable": 2}
    assert "failures: unreachable 2" in counts.total.describe()


def test_write_errors_are_added_to_prometheus_once_each():
    metrics = PingerMetrics()
    counts = PollCounts(metrics)
    assert counts.write_errors(3) == 3
    assert counts.write_errors(3) == 3  # the same running total again: nothing new
    assert counts.write_errors(5) == 5
    assert _sample(metrics, "iseif_pinger_write_errors_total") == 5


# --- a refresh of the household list ----------------------------------------------------------------------------
def test_a_refresh_adds_removes_and_changes_households_and_says_which_ticks_to_queue():
    polled: dict[str, HouseholdState] = {}
    changes, to_queue = apply_load(polled, {"00a001": entry("00a001"), "00a002": entry("00a002")}, NOW, INTERVAL)
    assert [e.cloud_id for e in changes.added] == ["00a001", "00a002"]
    assert to_queue == [polled["00a001"], polled["00a002"]]

    backing_off, steady = polled["00a001"], polled["00a002"]
    backing_off.bad_credentials, backing_off.next_tick = 3, backing_off.next_tick + 40
    later = NOW + 60.0
    loaded = {
        "00a001": entry("00a001", target="cloud:new-password"),
        "00a002": entry("00a002", target="cloud:changed-too"),
        "00a003": entry("00a003"),
    }
    leaving = polled["00a009"] = decisions.new_state(entry("00a009"), NOW, INTERVAL)
    changes, to_queue = apply_load(polled, loaded, later, INTERVAL)
    assert [e.cloud_id for e in changes.added] == ["00a003"] and changes.removed == ["00a009"]
    assert sorted(e.cloud_id for e in changes.changed) == ["00a001", "00a002"]
    assert leaving.removed and "00a009" not in polled
    assert backing_off.entry.target == "cloud:new-password" and backing_off.bad_credentials == 0
    assert backing_off.next_tick == schedule.next_tick(later, backing_off.phase, INTERVAL)
    assert to_queue == [polled["00a003"], backing_off]  # the steady household keeps its queued tick
    assert steady.entry.target == "cloud:changed-too"

    changes, to_queue = apply_load(polled, loaded, later, INTERVAL)
    assert not changes and to_queue == []
