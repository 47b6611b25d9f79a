"""What a simulated meter reads: a daily demand curve per household, readings every ~10 s, cumulative kWh.

Everything here is pure arithmetic on (profile, time), so the value the server sends and the value a test
asks for with ``demand_kw()`` are the same number. Decisions:
1. A household's curve (base load, morning and evening peaks, time zone, solar panels) is derived from a hash of
   the seed and the cloud id, never from Python's ``hash()``: the same seed gives the same curves in every
   process, so a benchmark or a failing test can be replayed.
2. The meter reads only every ``reading_interval`` seconds (10 s like a real gateway) at a per-household phase;
   between two readings every poll gets the same TimeStamp and Demand, which is what the logger's ``repeat``
   flag is for.
3. Noise comes from an integer hash of (household, reading number) instead of a random generator, so it needs
   no state and costs a few multiplications per request.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

ZIGBEE_EPOCH = 946684800  # 2000-01-01T00:00:00Z in Unix seconds
_MASK64 = (1 << 64) - 1


def _mix(value: int) -> int:
    """splitmix64's finaliser: a cheap, well-spread 64-bit hash."""
    value = (value + 0x9E3779B97F4A7C15) & _MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & _MASK64
    return value ^ (value >> 31)


def _unit(key: int, counter: int) -> float:
    """A deterministic number in [0, 1) for (key, counter)."""
    return _mix(key ^ ((counter * 0xD6E8FEB86659FD93) & _MASK64)) / 2**64


@dataclass(frozen=True)
class Profile:
    """The shape of one household's day, fixed by the seed and its cloud id."""

    key: int
    utc_offset_h: float  # local time = UTC + offset (the study's households are in the US Midwest, mostly)
    base_kw: float
    morning_kw: float
    morning_hour: float
    evening_kw: float
    evening_hour: float
    solar_kw: float  # peak output of rooftop solar; 0 for most households
    noise_kw: float
    export_kw: float  # > 0: a household that always exports (``exports=True``)
    phase_s: int  # offset of this meter's reading clock within the reading interval
    delivered_kwh: float  # meter totals when the simulator starts
    received_kwh: float
    price_per_kwh: float


def derive_profile(
    seed: int | str, cloud_id: str, *, exports: bool, solar: bool | None = None, reading_interval: int = 10
) -> Profile:
    """The household's profile. ``solar=None`` lets the hash decide (about one in five households has panels,
    which makes their demand negative around noon); ``exports=True`` means it exports at every hour."""
    digest = hashlib.blake2b(f"{seed}:{cloud_id}".encode(), digest_size=32).digest()
    numbers = [int.from_bytes(digest[i : i + 2], "big") / 65536 for i in range(0, 32, 2)]
    key = int.from_bytes(digest[:8], "big")
    has_solar = numbers[0] < 0.2 if solar is None else solar
    return Profile(
        key=key,
        utc_offset_h=(-6.0, -6.0, -5.0, -7.0, -8.0, -6.0)[int(numbers[1] * 6)],
        base_kw=0.15 + 0.45 * numbers[2],
        morning_kw=0.3 + 1.2 * numbers[3],
        morning_hour=6.0 + 2.5 * numbers[4],
        evening_kw=0.8 + 2.2 * numbers[5],
        evening_hour=17.5 + 3.0 * numbers[6],
        solar_kw=(3.0 + 4.0 * numbers[7]) if has_solar or exports else 0.0,
        noise_kw=0.05 + 0.2 * numbers[8],
        export_kw=(0.6 + 2.4 * numbers[9]) if exports else 0.0,
        phase_s=int(numbers[10] * max(1, reading_interval)),
        delivered_kwh=5000 + 35000 * numbers[11],
        received_kwh=(100 + 2900 * numbers[12]) if has_solar or exports else 0.0,
        price_per_kwh=0.08 + 0.10 * numbers[13],
    )


def _bump(hour: float, centre: float, width: float) -> float:
    """A Gaussian bump on the 24-hour circle."""
    distance = abs(hour - centre) % 24.0
    distance = min(distance, 24.0 - distance)
    return math.exp(-0.5 * (distance / width) ** 2)


def daylight(hour: float) -> float:
    """Solar output shape, 0 at night and 1 at 13:00 local time."""
    if hour <= 6.0 or hour >= 20.0:
        return 0.0
    return math.sin(math.pi * (hour - 6.0) / 14.0) ** 1.5


def local_hour(profile: Profile, unix_time: float) -> float:
    return ((unix_time / 3600.0) + profile.utc_offset_h) % 24.0


def demand_at(profile: Profile, unix_time: float, reading: int) -> float:
    """Demand in kW (negative when exporting) of the reading taken at ``unix_time``."""
    hour = local_hour(profile, unix_time)
    noise = (_unit(profile.key, reading) + _unit(profile.key, reading + 7919) - 1.0) * 2.0 * profile.noise_kw
    if profile.export_kw:
        # Always exporting: panels (and a battery after dark) push out more than the house uses.
        return -(profile.export_kw * (0.4 + 0.6 * daylight(hour)) + abs(noise) + 0.05)
    load = (
        profile.base_kw
        + profile.morning_kw * _bump(hour, profile.morning_hour, 1.2)
        + profile.evening_kw * _bump(hour, profile.evening_hour, 2.0)
    )
    return max(load + noise, 0.05) - profile.solar_kw * daylight(hour)


@dataclass(frozen=True)
class MeterReading:
    reading: int  # number of the reading since the Unix epoch (its clock)
    unix_time: int  # when the meter took it
    demand_kw: float

    @property
    def zigbee_time(self) -> int:
        return self.unix_time - ZIGBEE_EPOCH


def reading_at(profile: Profile, now: float, interval: int) -> MeterReading:
    """The latest reading the gateway holds at ``now``."""
    number = int((now - profile.phase_s) // interval)
    taken = profile.phase_s + number * interval
    return MeterReading(number, taken, demand_at(profile, taken, number))


class Totals:
    """Cumulative kWh delivered and received, grown lazily from the demand curve when asked.

    Long gaps between questions are integrated in coarse steps (at most 720 per call) so that a household
    first asked after a day costs no more than one asked every minute."""

    __slots__ = ("delivered_kwh", "received_kwh", "until")

    def __init__(self, profile: Profile, start: float) -> None:
        self.delivered_kwh = profile.delivered_kwh
        self.received_kwh = profile.received_kwh
        self.until = start

    def advance(self, profile: Profile, now: float, interval: int) -> tuple[float, float]:
        if now > self.until:
            gap = now - self.until
            step = max(float(interval), gap / 720.0)
            moment = self.until
            while moment < now:
                span = min(step, now - moment)
                kw = demand_at(profile, moment, int(moment // interval))
                if kw >= 0:
                    self.delivered_kwh += kw * span / 3600.0
                else:
                    self.received_kwh -= kw * span / 3600.0
                moment += span
            self.until = now
        return self.delivered_kwh, self.received_kwh
