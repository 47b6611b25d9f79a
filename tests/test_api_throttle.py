"""The live-read limits in Redis: one read per household per interval, a per-client budget, Retry-After."""

from __future__ import annotations

import time

import pytest

from loggerapp.api.throttle import (
    Throttled,
    ThrottleUnavailable,
    acquire_live_read,
    client_key,
    household_key,
    redis_connection,
)

pytestmark = pytest.mark.usefixtures("api_redis")


def test_one_live_read_per_household_per_interval(settings):
    settings.API_LIVE_READ_MIN_INTERVAL = 0.3
    acquire_live_read("002506", "token:1")
    with pytest.raises(Throttled) as refused:
        acquire_live_read("002506", "token:2")  # another client: the device is what is protected
    assert refused.value.scope == "household"
    assert 0 < refused.value.retry_after_s <= 0.3
    assert refused.value.retry_after_header == "1"
    acquire_live_read("00ffff", "token:1")  # another household is not affected
    time.sleep(0.35)
    acquire_live_read("002506", "token:2")


def test_the_interval_is_configurable(settings):
    settings.API_LIVE_READ_MIN_INTERVAL = 5
    acquire_live_read("002506", "token:1")
    with pytest.raises(Throttled) as refused:
        acquire_live_read("002506", "token:1")
    assert 4 < refused.value.retry_after_s <= 5 and refused.value.retry_after_header == "5"


def test_a_client_budget_per_minute(settings):
    settings.API_LIVE_READS_PER_MINUTE = 3
    for cloud_id in ("000001", "000002", "000003"):
        acquire_live_read(cloud_id, "token:7")
    with pytest.raises(Throttled) as refused:
        acquire_live_read("000004", "token:7")
    assert refused.value.scope == "client" and 55 < refused.value.retry_after_s <= 60
    acquire_live_read("000004", "token:8")  # another token has its own budget


def test_a_refused_client_does_not_take_the_household_slot(settings):
    settings.API_LIVE_READS_PER_MINUTE = 1
    acquire_live_read("000001", "token:1")
    with pytest.raises(Throttled):
        acquire_live_read("000002", "token:1")
    acquire_live_read("000002", "token:2")  # 000002 was not marked busy by the refused attempt


def test_zero_turns_the_client_budget_off(settings):
    settings.API_LIVE_READS_PER_MINUTE = 0
    for n in range(20):
        acquire_live_read(f"{n:06x}", "token:1")


def test_keys_live_under_the_prefix_and_expire(settings, api_redis):
    acquire_live_read("002506", "token:1")
    assert household_key("002506").startswith(settings.API_REDIS_PREFIX)
    assert 0 < api_redis.pttl(household_key("002506")) <= 2000
    assert 0 < api_redis.pttl(client_key("token:1")) <= 60_000


def test_an_unreachable_redis_refuses_live_reads(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/15"
    with pytest.raises(ThrottleUnavailable):
        acquire_live_read("002506", "token:1")
    assert redis_connection().connection_pool.connection_kwargs["port"] == 1
