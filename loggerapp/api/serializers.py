"""to_dict functions: the API's JSON shapes, one per schema component in openapi.json.

Deliberately left out of every shape: the EAGLE password or install code (never readable again once saved),
the account e-mail (half of the cloud login, and personal data), the free-text notes, and the text of a failed
poll: ``last_error`` is the fixed sentence of its kind (responses.EAGLE_ERROR_MESSAGES), because the client's
text can carry gateway addresses and whatever a gateway wrote. Staff read the text in the admin.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from loggerapp.api.latest import LatestReading
from loggerapp.api.responses import eagle_error_message
from loggerapp.live import LiveRead
from loggerapp.models import Household, HouseholdStats, Status


def iso(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z, or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def stats_to_dict(stats: HouseholdStats | None) -> dict[str, Any]:
    if stats is None:  # a household the pinger has never written statistics for
        stats = HouseholdStats()
    return {
        "total_events_logged": stats.total_events_logged,
        "first_timestamp": iso(stats.first_timestamp),
        "last_timestamp": iso(stats.last_timestamp),
        "last_demand_kw": stats.last_demand_kw,
        "last_meter_time": iso(stats.last_meter_time),
        "last_poll_at": iso(stats.last_poll_at),
        "last_error_kind": stats.last_error_kind or None,
        "last_error": eagle_error_message(stats.last_error_kind) if stats.last_error_kind else None,
        "last_error_at": iso(stats.last_error_at),
        "consecutive_failures": stats.consecutive_failures,
    }


def household_to_dict(household: Household) -> dict[str, Any]:
    try:
        stats = household.stats
    except HouseholdStats.DoesNotExist:
        stats = None
    return {
        "cloud_id": household.cloud_id,
        "label": household.label,
        "protocol": household.protocol,
        "active": household.active,
        "status": stats.status if stats is not None else Status.NEVER_POLLED.value,
        "created": iso(household.created),
        "updated": iso(household.updated),
        "statistics": stats_to_dict(stats),
    }


def live_read_to_dict(live: LiveRead) -> dict[str, Any]:
    reading = live.reading
    return {
        "cloud_id": live.cloud_id,
        "protocol": reading.protocol,
        "poll_time": iso(live.poll_time),
        "meter_time": iso(reading.meter_time),
        "meter_timestamp": reading.meter_timestamp,
        "demand_kw": reading.demand_kw,
        "latency_ms": round(reading.latency_s * 1000, 3),
        "raw": {str(key): str(value) for key, value in reading.raw.items()},
        "legacy": dict(reading.legacy),
    }


def latest_to_dict(latest: LatestReading) -> dict[str, Any]:
    last_poll = None
    if latest.last_poll is not None:
        last_poll = {**latest.last_poll, "poll_time": iso(latest.last_poll["poll_time"])}
    return {
        "cloud_id": latest.cloud_id,
        "source": latest.source,
        "demand_kw": latest.demand_kw,
        "meter_time": iso(latest.meter_time),
        "meter_timestamp": latest.meter_timestamp,
        "poll_time": iso(latest.poll_time),
        "protocol": latest.protocol,
        "repeat": latest.repeat,
        "latency_ms": latest.latency_ms,
        "hour_file": latest.hour_file,
        "last_poll": last_poll,
    }
