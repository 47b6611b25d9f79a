"""The simulator's households: what each one answers to, and where they come from.

Three sources: given in code (tests), generated (``--households N``, written to a credentials file in the
``import_households`` format), or read from the database (``--from-db``). Passwords never leave this module
except through the credentials file (mode 0600) and the comparison in the server.
"""

from __future__ import annotations

import json
import logging
import os
import random
import string
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

from loggerapp.validators import is_cloud_id, normalize_cloud_id

logger = logging.getLogger(__name__)

PROTOCOLS = ("cloud", "eagle100", "eagle200")


@dataclass
class SimHousehold:
    """One simulated EAGLE. The quirk fields reproduce firmware behaviour from the field reports in
    docs/eagle-protocol.md; all are off by default."""

    cloud_id: str
    protocol: str = "cloud"
    user_email: str = ""
    password: str = field(default="", repr=False)
    exports: bool = False  # exports at every hour (negative demand); False still allows midday solar
    solar: bool | None = None  # rooftop solar (negative around noon); None: decided by the seed
    # Legacy protocols (cloud, eagle100)
    wide_demand: bool = False  # Demand as 8 hex digits (int32) instead of 6 (int24)
    multiplier: int = 1
    divisor: int = 1000
    invalid_price: bool = False  # no tariff: Price "invalid", no Currency, TimeStamp 0xffffffff
    old_summation_root: bool = False  # get_current_summation answers under <CurrentSummationDelivered>
    braceless_json: bool = False  # eagle100 firmware: JSON history and schedule lists without their outer braces
    no_reading: bool = False  # Demand is the ZigBee invalid value (0x800000, or 0xff800000 when wide): no value
    # EAGLE-200
    inline_units: bool = False  # <Value>21.499 kW</Value> instead of a separate <Units>
    unsigned_wrap: bool = False  # exported power as an unsigned 32-bit wrap (4294963.584000)
    stale_meter: bool = False  # a not-Connected meter is listed before the live one
    missing: str = ""  # "device" or "components": answers that lack that part (EAGLE 3)
    bare_ampersand: bool = False  # an unescaped & in <Description>
    omit_delivered: bool = False  # asked by name, device_query leaves zigbee:CurrentSummationDelivered out
    # Any protocol
    set_cookie: bool = False  # every answer sets a session cookie (a client must never send it for another)
    origin: str = field(default="code", compare=False)  # code, generated, db, http

    def __post_init__(self) -> None:
        self.cloud_id = normalize_cloud_id(self.cloud_id)
        if not is_cloud_id(self.cloud_id):
            raise ValueError("a cloud id is 6 hex digits")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}")
        if self.missing not in ("", "device", "components"):
            raise ValueError('missing must be "", "device" or "components"')
        if self.multiplier < 0 or self.divisor < 0:
            raise ValueError("multiplier and divisor are unsigned")

    def public(self) -> dict[str, object]:
        """Everything but the password, for /_sim endpoints and logs."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "password"}


QUIRKS = frozenset(f.name for f in fields(SimHousehold)) - {"cloud_id", "protocol", "user_email", "password", "origin"}


def parse_protocol_mix(text: str) -> dict[str, float]:
    """``cloud=0.8,eagle100=0.1,eagle200=0.1`` -> weights that sum to 1."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if name not in PROTOCOLS:
            raise ValueError(f"unknown protocol {name!r} (one of {', '.join(PROTOCOLS)})")
        try:
            weight = float(value) if sep else 1.0
        except ValueError:
            raise ValueError(f"{name}: {value!r} is not a number") from None
        if weight < 0:
            raise ValueError(f"{name}: a weight cannot be negative")
        weights[name] = weight
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("the protocol mix needs at least one positive weight")
    return {name: weight / total for name, weight in weights.items()}


def _split(count: int, mix: dict[str, float]) -> list[str]:
    """Exactly ``count`` protocol names in the given proportions (largest remainder first)."""
    exact = {name: count * share for name, share in mix.items()}
    numbers = {name: int(value) for name, value in exact.items()}
    left = count - sum(numbers.values())
    for name in sorted(exact, key=lambda n: exact[n] - numbers[n], reverse=True)[:left]:
        numbers[name] += 1
    return [name for name in PROTOCOLS for _ in range(numbers.get(name, 0))]


def generate_households(
    count: int, *, seed: int | str, mix: dict[str, float] | None = None, quirk_rate: float = 0.1
) -> list[SimHousehold]:
    """``count`` households with distinct cloud ids and fresh credentials, the same for the same seed.

    About ``quirk_rate`` of them get a firmware quirk that a robust client reads correctly (wide Demand,
    invalid price, braceless JSON, inline units, unsigned wrap, a stale meter listed first, a bare &); none
    gets a quirk that makes every answer unusable, so a benchmark can count every failure as a real one."""
    if not 0 <= count <= 0x1000000:
        raise ValueError("between 0 and 16,777,216 households")
    rng = random.Random(f"households:{seed}")
    ids = sorted(f"{n:06x}" for n in rng.sample(range(0x1000000), count))
    protocols = _split(count, mix or {"cloud": 1.0})
    rng.shuffle(protocols)
    alphabet = string.ascii_letters + string.digits
    households = []
    for cloud_id, protocol in zip(ids, protocols, strict=True):
        quirks: dict[str, object] = {}
        if rng.random() < quirk_rate:
            if protocol == "eagle200":
                name = rng.choice(("inline_units", "unsigned_wrap", "stale_meter", "bare_ampersand"))
            else:
                name = rng.choice(("wide_demand", "invalid_price", "braceless_json" if protocol == "eagle100" else ""))
            if name:
                quirks[name] = True
        if protocol == "cloud":
            password = "".join(rng.choice(alphabet) for _ in range(16))
            email = f"household-{cloud_id}@sim.example.org"
        else:
            password = "".join(rng.choice("0123456789abcdef") for _ in range(16))  # an install code
            email = ""
        households.append(
            SimHousehold(
                cloud_id,
                protocol=protocol,
                user_email=email,
                password=password,
                exports=rng.random() < 0.03,
                origin="generated",
                **quirks,
            )
        )
    return households


def write_credentials(path: str | os.PathLike, households: Iterable[SimHousehold], address: str) -> int:
    """Write the ``import_households`` format (one JSON object a line) readable by the owner only.

    Local households get ``address`` (this simulator's host:port) so that the imported records reach it."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when the file existed with wider permissions
    written = 0
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        for household in households:
            record = {
                "cloud_id": household.cloud_id,
                "user_email": household.user_email,
                "user_pw": household.password,
                "protocol": household.protocol,
                "address": "" if household.protocol == "cloud" else address,
            }
            out.write(json.dumps(record) + "\n")
            written += 1
    return written


def households_from_db() -> list[SimHousehold]:
    """Active households of the database, with their decrypted passwords. Needs Django set up; call it from
    a thread where synchronous ORM access is allowed. A password that cannot be decrypted skips that one."""
    from loggerapp.fields import DecryptionError
    from loggerapp.models import Household

    active = Household.objects.filter(active=True).order_by("cloud_id")
    try:
        rows = list(active)
    except DecryptionError:
        # One undecryptable password must not hide the others: load row by row and skip the bad ones.
        rows = []
        for pk, cloud_id in active.values_list("pk", "cloud_id"):
            try:
                rows.append(Household.objects.get(pk=pk))
            except DecryptionError:
                logger.warning("household %s: its password cannot be decrypted; not simulated", cloud_id)
    households = []
    for row in rows:
        try:
            households.append(
                SimHousehold(
                    row.cloud_id,
                    protocol=row.protocol,
                    user_email=row.user_email,
                    password=row.password,
                    origin="db",
                )
            )
        except ValueError as exc:
            logger.warning("household %s: not simulated (%s)", row.cloud_id, exc)
    return households
