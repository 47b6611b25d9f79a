"""Faults the simulator can inject, per household or as a rate over every request.

The names are documented in docs/simulator.md; each maps to one row of the reference's failure table, or (the
last four) to a hostile or badly broken gateway that the client must survive with bounded memory and time.
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
        "huge",  # a 200 answer of `size` bytes (default 256 MB), streamed without a Content-Length
        "gzip_bomb",  # `Content-Encoding: gzip` whose body expands to `size` bytes (default 256 MB of zeros)
        "trickle",  # the normal answer, one byte every `interval_ms` (default 2000)
        "deep_json",  # 200 with JSON nested `depth` levels deep (default 20,000)
    }
)
DEFAULT_SLOW_MS = 5000.0
DEFAULT_SIZE = 256 * 1024 * 1024
DEFAULT_TRICKLE_MS = 2000.0
DEFAULT_DEPTH = 20_000
MAX_SIZE = 8 * 1024**3  # a fault is a test tool: 8 GiB of answer is enough to prove any ceiling
# Parameters each fault understands, with their defaults; anything else is refused.
PARAMETERS: dict[str, dict[str, float]] = {
    "huge": {"size": DEFAULT_SIZE},
    "gzip_bomb": {"size": DEFAULT_SIZE},
    "trickle": {"interval_ms": DEFAULT_TRICKLE_MS},
    "deep_json": {"depth": DEFAULT_DEPTH},
}
LIMITS = {"size": (1, MAX_SIZE), "interval_ms": (1, 600_000), "depth": (1, 10_000_000)}


@dataclass(frozen=True)
class Fault:
    name: str
    delay_ms: float = 0.0
    params: dict[str, object] = field(default_factory=dict)

    @classmethod
    def make(cls, name: str, **params: object) -> Fault:
        """Validate a fault name and its parameters: ``delay_ms`` for every fault, plus PARAMETERS[name]."""
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r} (one of {', '.join(sorted(FAULTS))})")
        delay = params.pop("delay_ms", None)
        try:
            delay_ms = float(DEFAULT_SLOW_MS if delay is None and name == "slow" else delay or 0.0)
        except (TypeError, ValueError):
            raise ValueError("delay_ms must be a number") from None
        if delay_ms < 0:
            raise ValueError("delay_ms cannot be negative")
        known = PARAMETERS.get(name, {})
        unknown = set(params) - set(known)
        if unknown:
            raise ValueError(f"fault {name!r} takes no parameter {', '.join(sorted(unknown))}")
        values: dict[str, object] = {}
        for key, default in known.items():
            raw = params.get(key, default)
            try:
                number = float(raw)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ValueError(f"{key} must be a number") from None
            low, high = LIMITS[key]
            if not low <= number <= high:
                raise ValueError(f"{key} must be between {low:g} and {high:g}")
            values[key] = number if key == "interval_ms" else int(number)
        return cls(name, delay_ms, values)

    def param(self, key: str) -> float:
        return self.params[key]  # type: ignore[return-value]

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
