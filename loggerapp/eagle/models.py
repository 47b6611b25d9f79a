"""What the client is asked (EagleTarget) and what it answers (Reading, Price, Summation)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PROTOCOLS = ("cloud", "eagle100", "eagle200")


@dataclass(frozen=True)
class EagleTarget:
    """One household's gateway and how to reach it. Frozen and hashable: the clients cache per target.

    The password (cloud password or install code) is left out of the repr so that logging a target, or an
    exception carrying one, never shows it.
    """

    cloud_id: str
    protocol: str
    user_email: str = ""
    password: str = field(default="", repr=False)
    address: str = ""
    meter_address: str = ""
    https: bool = False  # a local gateway over HTTPS (an EAGLE 3)

    @classmethod
    def from_household(cls, household: Any) -> EagleTarget:
        """Copy what the client needs off a Household (decrypting the password, so call it with DB access)."""
        return cls(
            cloud_id=household.cloud_id,
            protocol=household.protocol,
            user_email=household.user_email or "",
            password=household.password or "",
            address=(household.address or "").strip(),
            meter_address=(getattr(household, "meter_address", "") or "").strip(),
            https=bool(getattr(household, "https", False)),
        )


@dataclass(slots=True)
class Reading:
    """One instantaneous demand reading.

    `demand_kw` is signed (exported solar power is negative). `legacy` holds the old logger's integer fields
    (Demand read unsigned, as it did) for the legacy protocols, and is empty for eagle200.
    """

    cloud_id: str
    protocol: str
    demand_kw: float
    meter_time: datetime | None
    meter_timestamp: int | None
    raw: dict[str, str]
    legacy: dict[str, int | str]
    latency_s: float = 0.0


@dataclass(slots=True)
class Price:
    """The current tariff. `price` is None when the device has none (`invalid` fields or no currency)."""

    cloud_id: str
    protocol: str
    price: float | None
    currency: int | None  # ISO 4217 numeric (840 = USD)
    tier: int | None
    rate_label: str | None
    meter_time: datetime | None
    meter_timestamp: int | None
    raw: dict[str, str]
    latency_s: float = 0.0


@dataclass(slots=True)
class Summation:
    """Cumulative energy: kWh imported from (delivered) and exported to (received) the grid."""

    cloud_id: str
    protocol: str
    delivered_kwh: float | None
    received_kwh: float | None
    meter_time: datetime | None
    meter_timestamp: int | None
    raw: dict[str, str]
    latency_s: float = 0.0


@dataclass(slots=True)
class PriceAndSummation:
    """One price-and-energy poll: what the pinger writes to the price hour file. The legacy protocols need two
    requests (`get_price`, `get_current_summation`), the EAGLE-200 one `device_query` for all variables.

    One half may be missing when its answer was unusable and the other was not (a garbled price must not lose
    the energy counters): it is then None and its `*_error` says why. Both unusable is a failed poll.
    """

    price: Price | None
    summation: Summation | None
    latency_s: float = 0.0
    price_error: str = ""
    summation_error: str = ""
