"""Fleet membership and what operations see of it, against the real PostgreSQL (its clock decides liveness).

transaction=True: PostgreSQL's now() is the transaction's start, so each write must be its own transaction, as
in a running member.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from loggerapp.fleet.membership import FleetSettings, FleetView, Member, Membership, new_member_id, write_and_read
from loggerapp.fleet.ops import fleet_summary, members, silent_members
from loggerapp.models import PingerHeartbeat, PingerMember
from loggerapp.ops.alerts import check_alerts
from loggerapp.ops.metrics import render_metrics

pytestmark = pytest.mark.django_db(transaction=True)

FLEET = FleetSettings(heartbeat=0.5, timeout=2.0, join_delay=1.0)


def test_member_ids_name_the_host_and_process_and_differ_per_start():
    first, second = new_member_id("pinger-3", 41), new_member_id("pinger-3", 41)
    assert first.startswith("pinger-3:41:") and first != second
    assert len(new_member_id("h" * 300, 1)) <= 100


def test_settings_refuse_a_timeout_a_heartbeat_could_miss():
    with pytest.raises(ValueError, match="two heartbeats"):
        FleetSettings(heartbeat=3.0, timeout=5.0)
    with pytest.raises(ValueError, match="join delay"):
        FleetSettings(heartbeat=3.0, timeout=9.0, join_delay=1.0)


def test_the_first_member_is_effective_at_once_and_a_joiner_is_announced_ahead():
    rows, db_now = write_and_read("h:1:a", "h", 1, FLEET, 0, {})
    ((member_id, _host, active_from, _seen, _n, _until),) = rows
    assert member_id == "h:1:a" and active_from <= db_now  # alone: polls at once
    rows, db_now = write_and_read("h:2:b", "h", 2, FLEET, 0, {})
    joined = {row[0]: row[2] for row in rows}
    assert set(joined) == {"h:1:a", "h:2:b"}
    assert joined["h:2:b"] == pytest.approx(db_now + FLEET.join_delay, abs=0.01)  # the others read it first
    # A heartbeat updates the row and never moves the announced join.
    rows, _ = write_and_read("h:2:b", "h", 2, FLEET, 7, {"handovers_in": 3})
    assert {row[0]: row[2] for row in rows}["h:2:b"] == joined["h:2:b"]
    assert {row[0]: row[5] for row in rows}["h:2:b"] == float("inf")  # no leave announced
    assert PingerMember.objects.get(pk="h:2:b").households == 7


def test_a_silent_member_is_left_out_and_loses_its_heartbeat_and_is_forgotten_later():
    write_and_read("h:1:a", "h", 1, FLEET, 0, {})
    write_and_read("h:2:b", "h", 2, FLEET, 0, {})
    PingerHeartbeat.objects.create(name="h:2:b", beat_at=timezone.now(), households=5)
    PingerMember.objects.filter(pk="h:2:b").update(last_seen=F("last_seen") - timedelta(seconds=5))
    rows, _ = write_and_read("h:1:a", "h", 1, FLEET, 0, {})
    assert [row[0] for row in rows] == ["h:1:a"]
    assert not PingerHeartbeat.objects.filter(name="h:2:b").exists()  # taken over: not a stale shard
    assert PingerMember.objects.filter(pk="h:2:b").exists()  # kept for the alert
    PingerMember.objects.filter(pk="h:2:b").update(last_seen=F("last_seen") - timedelta(hours=2))
    write_and_read("h:1:a", "h", 1, FLEET, 0, {})
    assert not PingerMember.objects.filter(pk="h:2:b").exists()


def test_a_view_splits_members_into_effective_and_announced_and_may_expire():
    view = FleetView(
        members=(Member("a", "h", 100.0, 150.0), Member("b", "h", 160.0, 150.0), Member("c", "h", 0.0, 150.0, 0, 180)),
        valid_until=200.0,
        read_at=150.0,
    )
    assert view.effective(150.0) == ["a", "c"] and view.changes(150.0) == [(160.0, "b", True), (180, "c", False)]
    assert view.effective(170.0) == ["a", "b", "c"] and view.changes(170.0) == [(180, "c", False)]
    assert view.effective(190.0) == ["a", "b"] and view.changes(190.0) == []
    assert view.others("a", 190.0) == 1
    assert view.effective(200.0) == [] and view.changes(200.0) == []  # expired: owns nothing


def test_membership_reads_on_this_hosts_clock_and_expires_only_when_told_to_stop_when_cut_off():
    alone = Membership(FLEET, "h:1:a")
    view = alone.beat()
    assert [member.member_id for member in view.members] == ["h:1:a"]
    assert abs(view.members[0].last_seen - time.time()) < 1.0  # converted to this host's clock
    assert view.valid_until == float("inf")  # default: a cut-off member goes on polling
    strict = Membership(FleetSettings(heartbeat=0.5, timeout=2.0, join_delay=1.0, stop_when_cut_off=True), "h:2:b")
    view = strict.beat()
    assert view.changes(time.time()) and view.valid_until < time.time() + 2.0
    strict.announce_leave()
    view = strict.beat()
    (mine,) = [member for member in view.members if member.member_id == "h:2:b"]
    assert mine.active_until == pytest.approx(time.time() + FLEET.join_delay, abs=0.5)


def test_operations_see_members_shares_and_a_silent_one(settings):
    settings.FLEET_MEMBER_TIMEOUT = 2.0
    write_and_read("h:1:a", "host-1", 1, FLEET, 12, {"handovers_in": 4, "handovers_out": 1})
    write_and_read("h:2:b", "host-2", 2, FLEET, 8, {})
    PingerMember.objects.filter(pk="h:2:b").update(last_seen=F("last_seen") - timedelta(seconds=30))
    found = {member.member_id: member for member in members()}
    assert not found["h:1:a"].silent and found["h:1:a"].households == 12
    assert found["h:2:b"].silent and found["h:2:b"].age >= 29
    summary = fleet_summary()
    assert summary["members"] == 1 and summary["silent"] == ["h:2:b"] and summary["handovers"] == 4
    assert [key for key, _ in silent_members()] == ["pinger:h:2:b"]
    report = check_alerts(send=False)
    assert any(alert.key == "pinger:h:2:b" and "host-2" in alert.message for alert in report.firing)
    metrics = render_metrics().decode()
    assert "iseif_fleet_members 1.0" in metrics
    assert 'iseif_fleet_member_households{host="host-1",member="h:1:a"} 12.0' in metrics
    assert 'iseif_fleet_handovers_total{direction="in",member="h:1:a"} 4.0' in metrics


def test_the_status_page_and_healthz_show_the_fleet(client, staff_user, settings):
    write_and_read("h:1:a", "host-1", 1, FLEET, 12, {})
    PingerHeartbeat.objects.create(name="h:1:a", beat_at=timezone.now(), households=12)
    client.force_login(staff_user)
    page = client.get("/status/").content.decode()
    assert 'id="fleet"' in page and "h:1:a" in page and "host-1" in page
    health = client.get("/healthz").json()
    fleet = health["checks"]["pinger"]["data"]["fleet"]
    assert fleet["members"] == 1 and fleet["list"][0]["host"] == "host-1"


def test_a_member_back_after_a_silence_joins_again_announced():
    write_and_read("h:1:a", "h", 1, FLEET, 0, {})
    write_and_read("h:2:b", "h", 2, FLEET, 0, {})
    PingerMember.objects.filter(pk="h:2:b").update(
        last_seen=F("last_seen") - timedelta(seconds=5), active_from=F("active_from") - timedelta(seconds=5)
    )
    write_and_read("h:1:a", "h", 1, FLEET, 0, {})  # b is silent: a owns everything
    rows, db_now = write_and_read("h:2:b", "h", 2, FLEET, 0, {})
    joined = {row[0]: row[2] for row in rows}
    assert joined["h:2:b"] == pytest.approx(db_now + FLEET.join_delay, abs=0.01)  # not effective at once
