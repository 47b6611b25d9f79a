"""Faults the simulator can inject, per household or as a rate over every request.

The names are documented in docs/simulator.md; each maps to one row of the reference's failure table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FAULTS = frozenset(
    {
        "bad_credentials",  # cloud: <Error> about credentials; local: HTTP 401
        "error",  # a generic <Error> root (gateway offline / busy)
        "meter_not_joined",  # cloud/eagle100: <Error> about the meter; eagle200: ConnectionStatus not Connected
        "http_500",
        "http_503",  # a busy EAGLE-100: "Timeout waiting for response"
        "garbage",  # 200 with a body that is neither XML nor JSON
        "truncated",  # the normal XML answer cut in half
        "empty",  # 200 with an empty body
        "slow",  # the normal answer after delay_ms
        "reset",  # the connection closed without an answer (after delay_ms, if given)
    }
)
DEFAULT_SLOW_MS = 5000.0


@dataclass(frozen=True)
class Fault:
    name: str
    delay_ms: float = 0.0
    params: dict[str, object] = field(default_factory=dict)

    @classmethod
    def make(cls, name: str, **params: object) -> Fault:
        """Validate a fault name and its parameters (only ``delay_ms`` has a meaning today)."""
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r} (one of {', '.join(sorted(FAULTS))})")
        delay = params.pop("delay_ms", None)
        try:
            delay_ms = float(DEFAULT_SLOW_MS if delay is None and name == "slow" else delay or 0.0)
        except (TypeError, ValueError):
            raise ValueError("delay_ms must be a number") from None
        if delay_ms < 0:
            raise ValueError("delay_ms cannot be negative")
        return cls(name, delay_ms, dict(params))

    def to_dict(self) -> dict[str, object]:
        return {"fault": self.name, "delay_ms": self.delay_ms, **self.params}


def parse_fault_rates(items: list[str] | None) -> dict[str, float]:
    """``["http_500=0.01", "reset=0.001,slow=0.01"]`` -> {"http_500": 0.01, ...}; rates add up to at most 1."""
    rates: dict[str, float] = {}
    for item in items or []:
        for part in filter(None, (p.strip() for p in item.split(","))):
            name, sep, value = part.partition("=")
            name = name.strip()
            if name not in FAULTS:
                raise ValueError(f"unknown fault {name!r} (one of {', '.join(sorted(FAULTS))})")
            try:
                rate = float(value)
            except ValueError:
                raise ValueError(f"{name}: {value!r} is not a rate between 0 and 1") from None
            if not sep or not 0 <= rate <= 1:
                raise ValueError(f"{name}: the rate must be between 0 and 1 (FAULT=RATE)")
            rates[name] = rate
    if sum(rates.values()) > 1.0 + 1e-9:
        raise ValueError("fault rates add up to more than 1")
    return rates
