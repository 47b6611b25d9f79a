"""Statistics: deltas accumulated in memory and written in one batched UPDATE, against real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from loggerapp.models import HouseholdStats
from loggerapp.pinger.stats import StatsAccumulator, write_deltas

pytestmark = pytest.mark.django_db

T0 = 1_700_000_000.0


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_batch_increments_totals_and_sets_first_only_once(make_household):
    household = make_household("002506")
    HouseholdStats.objects.filter(household=household).update(total_events_logged=1000)  # e.g. imported
    acc = StatsAccumulator()
    for n in range(3):
        acc.record_success(household.pk, T0 + 6 * n, -1.5 + n, 1_600_000_000 + n)
        acc.record_written(household.pk, T0 + 6 * n)
    write_deltas(acc.take())
    stats = HouseholdStats.objects.get(household=household)
    assert stats.total_events_logged == 1003
    assert stats.first_timestamp == at(T0)
    assert stats.last_timestamp == at(T0 + 12)
    assert stats.last_demand_kw == 0.5
    assert stats.last_meter_time == at(1_600_000_002)
    assert stats.status == "ok"
    assert stats.consecutive_failures == 0

    # Someone (an import, another pinger) adds to the row meanwhile: the next batch adds, never overwrites.
    HouseholdStats.objects.filter(household=household).update(total_events_logged=2000)
    acc.record_success(household.pk, T0 + 18, 2.0, 1_600_000_010)
    acc.record_written(household.pk, T0 + 18)
    write_deltas(acc.take())
    stats.refresh_from_db()
    assert stats.total_events_logged == 2001
    assert stats.first_timestamp == at(T0)  # unchanged
    assert stats.last_timestamp == at(T0 + 18)


def test_failure_keeps_the_last_reading_and_records_the_error(make_household):
    household = make_household("002506")
    acc = StatsAccumulator()
    acc.record_success(household.pk, T0, 1.25, 1_600_000_000)
    acc.record_written(household.pk, T0)
    write_deltas(acc.take())
    acc.record_failure(household.pk, T0 + 6, "unreachable", "connection refused", 1)
    acc.record_failure(household.pk, T0 + 12, "unreachable", "timed out", 2)
    write_deltas(acc.take())
    stats = HouseholdStats.objects.get(household=household)
    assert stats.status == "unreachable"
    assert stats.consecutive_failures == 2
    assert stats.last_error_kind == "unreachable"
    assert stats.last_error == "timed out"
    assert stats.last_error_at == at(T0 + 12)
    assert stats.last_poll_at == at(T0 + 12)
    assert stats.last_demand_kw == 1.25
    assert stats.total_events_logged == 1
    assert stats.last_timestamp == at(T0)


def test_one_statement_per_thousand_households(make_household):
    households = [make_household(f"{n:06x}") for n in range(1, 1202)]
    acc = StatsAccumulator()
    for household in households:
        acc.record_success(household.pk, T0, 1.0, None)
        acc.record_written(household.pk, T0)
    with CaptureQueriesContext(connection) as queries:
        assert write_deltas(acc.take()) == len(households)
    updates = [query for query in queries.captured_queries if "UPDATE" in query["sql"]]
    assert len(updates) == 2
    assert set(HouseholdStats.objects.values_list("total_events_logged", flat=True)) == {1}


def test_a_batch_put_back_merges_under_newer_values():
    acc = StatsAccumulator()
    acc.record_success(7, T0, 1.0, 100)
    acc.record_written(7, T0)
    batch = acc.take()  # the flush fails with this batch...
    acc.record_failure(7, T0 + 6, "bad_response", "garbage", 1)  # ...while a newer poll is recorded
    acc.record_success(8, T0 + 6, 3.0, 200)
    acc.put_back(batch)
    merged = acc.take()
    assert merged[7].events == 1
    assert merged[7].first_event_at == T0
    assert merged[7].status == "bad_response"  # the newer state wins
    assert merged[7].last_demand_kw == 1.0  # the older reading is still the latest reading
    assert merged[8].status == "ok"


def test_deleted_household_is_ignored(make_household):
    household = make_household("002506")
    acc = StatsAccumulator()
    acc.record_success(household.pk + 999, T0, 1.0, None)
    acc.record_success(household.pk, T0, 1.0, None)
    assert write_deltas(acc.take()) == 1


@pytest.mark.django_db(transaction=True)
def test_a_refused_heartbeat_never_counts_a_saved_batch_twice(make_household):
    """The batch is committed, then the heartbeat fails (here: a name too long for its column, a real DataError
    from PostgreSQL): the batch must not be put back, or the next flush would add the same readings again."""
    from loggerapp.pinger.flusher import StatsFlusher

    household = make_household("002506")
    acc = StatsAccumulator()
    flusher = StatsFlusher(acc, every=1.0, heartbeat_name="h" * 101, interval=6.0, heartbeat=lambda: (1, {}))
    for n in range(3):
        acc.record_success(household.pk, T0 + 6 * n, 1.0, None)
        acc.record_written(household.pk, T0 + 6 * n)
    assert flusher.flush() is False
    assert HouseholdStats.objects.get(household=household).total_events_logged == 3
    flusher.heartbeat_name = "host:1/1"
    assert flusher.flush() is True
    assert HouseholdStats.objects.get(household=household).total_events_logged == 3


@pytest.mark.parametrize(
    "message",
    ["NULL", 'quote " comma , brace { } backslash \\ end', "ünïcode and a tab\there", "", "x" * 2000],
)
def test_any_error_text_survives_the_batch_exactly(make_household, message):
    """The batch travels as arrays on PostgreSQL: an error text that looks like NULL or holds an array literal's
    special characters must arrive as it was, and NULLs as NULLs."""
    failing, fine = make_household("00aa01"), make_household("00aa02")
    acc = StatsAccumulator()
    acc.record_failure(failing.pk, T0, "bad_response", message, 3)
    acc.record_success(fine.pk, T0, None, None)
    assert write_deltas(acc.take()) == 2
    failed = HouseholdStats.objects.get(household=failing)
    assert (failed.last_error, failed.last_error_kind, failed.consecutive_failures) == (message, "bad_response", 3)
    assert failed.last_error_at == at(T0)
    assert failed.last_demand_kw is None and failed.last_timestamp is None
    ok = HouseholdStats.objects.get(household=fine)
    assert ok.status == "ok" and not ok.last_error and ok.last_demand_kw is None and ok.last_meter_time is None
