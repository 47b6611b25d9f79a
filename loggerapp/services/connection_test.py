"""One live read of a household's EAGLE, for the admin's "test connection now" action."""

from __future__ import annotations

from dataclasses import dataclass

from loggerapp.models import Household


@dataclass(frozen=True)
class ConnectionOutcome:
    ok: bool
    message: str


def test_connection(household: Household) -> ConnectionOutcome:
    """Ask the EAGLE once and describe the answer; every failure is classified, none escapes."""
    from loggerapp.eagle import EagleError, client_for  # imported late: the admin must load without it

    try:
        reading = client_for(household).instantaneous_demand()
    except EagleError as exc:
        return ConnectionOutcome(False, f"{household.cloud_id}: {exc.kind.replace('_', ' ')}: {exc.message}")
    when = reading.meter_time.isoformat() if reading.meter_time else "unknown meter time"
    return ConnectionOutcome(
        True,
        f"{household.cloud_id}: ok, {reading.demand_kw:.3f} kW at {when} ({reading.latency_s * 1000:.0f} ms)",
    )


test_connection.__test__ = False  # not a pytest test, despite the name
