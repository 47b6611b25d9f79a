"""What operations see of the fleet: the members, their shares, heartbeats and hand-overs, for the status page,
/healthz, /metrics and the alert on a silent member.

Decisions:
1. Ages are computed by the database (``now() - last_seen``), the clock the members use for liveness, so the web
   server's clock cannot make a member look alive or dead.
2. A member silent past FLEET_MEMBER_TIMEOUT is not a /healthz failure: its households have been taken over
   (the other members deleted its pinger heartbeat). It is an alert (kind ``pinger``), mailed once, until its row
   is forgotten (an hour after its last heartbeat).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models.functions import Now
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


@dataclass(frozen=True)
class MemberStatus:
    member_id: str
    host: str
    households: int
    age: float  # seconds since its last heartbeat (database clock)
    effective: bool  # owns households now (its announced join has passed)
    silent: bool
    handovers_in: int
    handovers_out: int


def members() -> list[MemberStatus]:
    """Every member row (live first, then silent), read with the database's clock."""
    from loggerapp.models import PingerMember

    rows = PingerMember.objects.annotate(db_now=Now()).order_by("member_id")
    result = []
    for row in rows:
        age = max(0.0, (row.db_now - row.last_seen).total_seconds())
        details = row.details or {}
        result.append(
            MemberStatus(
                member_id=row.member_id,
                host=row.host,
                households=row.households,
                age=round(age, 1),
                effective=row.active_from <= row.db_now,
                silent=age > settings.FLEET_MEMBER_TIMEOUT,
                handovers_in=int(details.get("handovers_in", 0)),
                handovers_out=int(details.get("handovers_out", 0)),
            )
        )
    result.sort(key=lambda member: (member.silent, member.member_id))
    return result


def fleet_summary() -> dict[str, Any]:
    """For /healthz's details and the status page (empty when no pinger runs in fleet mode)."""
    found = members()
    if not found:
        return {}
    live = [member for member in found if not member.silent]
    return {
        "members": len(live),
        "silent": [member.member_id for member in found if member.silent],
        "households": sum(member.households for member in live),
        "handovers": sum(member.handovers_in for member in found),
        "list": [member.__dict__ for member in found],
    }


def silent_members() -> list[tuple[str, str]]:
    """(alert key, message) for each member silent past the timeout."""
    return [
        (
            f"pinger:{member.member_id}",
            f"fleet member {member.member_id} on {member.host} silent for {member.age:.0f} s; its households "
            "were taken over by the live members",
        )
        for member in members()
        if member.silent
    ]


def fleet_metrics() -> Iterator[Metric]:
    """Prometheus families of the fleet (read on every scrape)."""
    found = members()
    count = GaugeMetricFamily("iseif_fleet_members", "Live fleet members (pingers sharing the households).")
    count.add_metric([], sum(1 for member in found if not member.silent))
    households = GaugeMetricFamily(
        "iseif_fleet_member_households", "Households the member polls.", labels=["member", "host"]
    )
    age = GaugeMetricFamily(
        "iseif_fleet_member_heartbeat_age_seconds", "Seconds since the member's heartbeat.", labels=["member", "host"]
    )
    handovers = CounterMetricFamily(
        "iseif_fleet_handovers", "Households the member took or handed over.", labels=["member", "direction"]
    )
    for member in found:
        households.add_metric([member.member_id, member.host], member.households)
        age.add_metric([member.member_id, member.host], member.age)
        handovers.add_metric([member.member_id, "in"], member.handovers_in)
        handovers.add_metric([member.member_id, "out"], member.handovers_out)
    yield from (count, households, age, handovers)
