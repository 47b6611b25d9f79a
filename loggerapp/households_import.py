"""Bulk import of households from the study's JSON-lines format.

One JSON object a line: ``cloud_id``, ``user_email``, ``user_pw`` and optionally ``total_events_logged``,
``first_timestamp``, ``last_timestamp`` (the old user records), plus our own optional ``protocol``,
``address``, ``https``, ``meter_address``, ``label`` and ``active``. The address follows the model's one rule
(loggerapp.validators.validate_gateway_address, applied by ``full_clean``): a bad one is a bad line.

Decisions, in order of how often they matter:
1. Every line is validated on its own and a bad line is reported by number; the good ones still go in
   (``atomic=True`` refuses the whole file instead). Error messages never quote the line: it holds a password.
2. Importing is idempotent. Re-importing a file updates the same rows, and the statistics only move forward:
   the total is the larger of stored and imported, the first time the earlier, the last time the later, so an
   old export never rolls back what the pinger has counted since.
3. ``cloud_id`` must be a JSON string. An integer would already have lost its leading zeros, and guessing
   them back could attach a household's data to another one's id.
4. Timestamps may be Unix seconds (the old logger's) or ISO 8601 strings; naive ones are taken as UTC.
5. Lines are decoded one by one (UTF-8; a byte-order mark before the first line is dropped, as spreadsheet
   programs write one), so a line that is not UTF-8 is one bad line, not the end of the import. Whatever a line
   holds (nesting deep enough to exhaust the parser, a number too large for the database) is a bad line too.
   Only a UTF-16 file is refused as a whole: every line of it would fail, for one reason the user can fix at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import DataError, transaction

from loggerapp.models import Household, HouseholdStats, Protocol
from loggerapp.validators import is_cloud_id

_KNOWN_KEYS = {
    "cloud_id",
    "user_email",
    "user_pw",
    "total_events_logged",
    "first_timestamp",
    "last_timestamp",
    "protocol",
    "address",
    "https",
    "meter_address",
    "label",
    "active",
}


_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
MAX_TOTAL_EVENTS = 2**63 - 1  # total_events_logged is a 64-bit integer column


class LineError(ValueError):
    """A line that cannot be imported; the message is safe to print (no password)."""


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (nothing was written); the message is safe to print."""


def decode_line(raw: bytes | str, number: int) -> str:
    """One line as text: UTF-8, without the byte-order mark some editors put before the first line."""
    if isinstance(raw, bytes):
        if number == 1 and raw.startswith(_UTF16_BOMS):
            raise ImportFileError("the file is UTF-16 text; save it as UTF-8 and import it again")
        if number == 1:
            raw = raw.removeprefix(_UTF8_BOM)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LineError(f"not UTF-8 text (byte {exc.start + 1} of the line); save the file as UTF-8") from None
    return raw.removeprefix("\ufeff") if number == 1 else raw


@dataclass
class ImportRecord:
    cloud_id: str
    user_email: str
    password: str = field(repr=False)
    protocol: str = Protocol.CLOUD
    address: str = ""
    https: bool = False
    meter_address: str = ""
    label: str | None = None
    active: bool | None = None
    total_events_logged: int | None = None
    first_timestamp: datetime | None = None
    last_timestamp: datetime | None = None


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    lines: int = 0
    dry_run: bool = False
    atomic: bool = False

    @property
    def failed(self) -> int:
        return len(self.errors)

    @property
    def written(self) -> bool:
        return not self.dry_run and not (self.atomic and self.errors)

    def summary(self) -> str:
        """One line that never says "created" about something that was not written."""
        lines = f"{self.lines} line{'s' if self.lines != 1 else ''} read"
        counts = f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, {self.failed} failed"
        if self.written:
            return f"{counts}; {lines}."
        would = f"would create {self.created}, update {self.updated}, leave {self.unchanged} unchanged"
        if self.dry_run:
            return f"Dry run, nothing written: the file {would}; {self.failed} failed; {lines}."
        good = self.created + self.updated + self.unchanged
        return (
            f"Nothing written: {self.failed} failed and --atomic refuses the whole file; the {good} good "
            f"line{'s' if good != 1 else ''} {would}; {lines}."
        )


def _timestamp(value: object, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise LineError(f"{name} must be Unix seconds or an ISO 8601 time")
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise LineError(f"{name} is out of range") from None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise LineError(f"{name} must be Unix seconds or an ISO 8601 time") from None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise LineError(f"{name} must be Unix seconds or an ISO 8601 time")


def _text(obj: dict, name: str, *, max_length: int, required: bool = False) -> str:
    value = obj.get(name)
    if value is None:
        if required:
            raise LineError(f"{name} is missing")
        return ""
    if not isinstance(value, str):
        raise LineError(f"{name} must be a string")
    if len(value) > max_length:
        raise LineError(f"{name} is longer than {max_length} characters")
    if "\0" in value:  # PostgreSQL text cannot hold it
        raise LineError(f"{name} holds a NUL character")
    return value


def parse_line(text: str) -> ImportRecord:
    """Validate one line of the import format; raises LineError with a message safe to print."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LineError(f"not valid JSON (column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise LineError("not an import record (nested too deeply)") from None
    except ValueError:  # an integer with more digits than Python converts (sys.get_int_max_str_digits)
        raise LineError("not an import record (a number with too many digits)") from None
    if not isinstance(obj, dict):
        raise LineError("not a JSON object")
    unknown = sorted(set(obj) - _KNOWN_KEYS)
    if unknown:
        raise LineError(f"unknown field(s): {', '.join(k[:40] for k in unknown[:5])}")

    raw_id = obj.get("cloud_id")
    if not isinstance(raw_id, str):
        raise LineError("cloud_id must be a string of 6 hex digits (an integer has lost its leading zeros)")
    cloud_id = raw_id.strip().lower()
    if not is_cloud_id(cloud_id):
        raise LineError(f"cloud_id {raw_id[:20]!r} is not 6 hex digits")

    protocol = _text(obj, "protocol", max_length=10) or Protocol.CLOUD
    if protocol not in Protocol.values:
        raise LineError(f"protocol must be one of {', '.join(Protocol.values)}")
    email = _text(obj, "user_email", max_length=254, required=protocol == Protocol.CLOUD).strip()
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise LineError("user_email is not an e-mail address") from None
    password = _text(obj, "user_pw", max_length=500, required=True)
    if not password:
        raise LineError("user_pw is empty")

    total = obj.get("total_events_logged")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
        raise LineError("total_events_logged must be a non-negative integer")
    if total is not None and total > MAX_TOTAL_EVENTS:
        raise LineError(f"total_events_logged is larger than {MAX_TOTAL_EVENTS}")
    active = obj.get("active")
    if active is not None and not isinstance(active, bool):
        raise LineError("active must be true or false")
    https = obj.get("https", False)
    if not isinstance(https, bool):
        raise LineError("https must be true or false")
    label = obj.get("label")
    if label is not None:
        label = _text(obj, "label", max_length=200)

    return ImportRecord(
        cloud_id=cloud_id,
        user_email=email,
        password=password,
        protocol=protocol,
        address=_text(obj, "address", max_length=255).strip(),
        https=https,
        meter_address=_text(obj, "meter_address", max_length=32).strip(),
        label=label,
        active=active,
        total_events_logged=total,
        first_timestamp=_timestamp(obj.get("first_timestamp"), "first_timestamp"),
        last_timestamp=_timestamp(obj.get("last_timestamp"), "last_timestamp"),
    )


def _apply(record: ImportRecord) -> str:
    """Create or update one household and merge its statistics; returns created/updated/unchanged."""
    household = Household.objects.filter(cloud_id=record.cloud_id).first()
    outcome = "created" if household is None else "unchanged"
    if household is None:
        household = Household(cloud_id=record.cloud_id)
    wanted = {
        "user_email": record.user_email,
        "password": record.password,
        "protocol": record.protocol,
        "address": record.address,
        "https": record.https,
        "meter_address": record.meter_address,
    }
    if record.label is not None:
        wanted["label"] = record.label
    if record.active is not None:
        wanted["active"] = record.active
    changed = [name for name, value in wanted.items() if getattr(household, name) != value]
    for name in changed:
        setattr(household, name, wanted[name])
    if changed and "password" not in changed:
        household.password = record.password  # the line gives it: it may follow a new address (Household.clean)
    if outcome == "created" or changed:
        household.full_clean()
        household.save()
        outcome = outcome if outcome == "created" else "updated"

    stats, _ = HouseholdStats.objects.get_or_create(household=household)
    stats_changed = []
    if record.total_events_logged is not None and record.total_events_logged > stats.total_events_logged:
        stats.total_events_logged = record.total_events_logged
        stats_changed.append("total_events_logged")
    if record.first_timestamp and (stats.first_timestamp is None or record.first_timestamp < stats.first_timestamp):
        stats.first_timestamp = record.first_timestamp
        stats_changed.append("first_timestamp")
    if record.last_timestamp and (stats.last_timestamp is None or record.last_timestamp > stats.last_timestamp):
        stats.last_timestamp = record.last_timestamp
        stats_changed.append("last_timestamp")
    if stats_changed:
        stats.save(update_fields=[*stats_changed, "updated"])
        if outcome == "unchanged":
            outcome = "updated"
    return outcome


class _DryRunRollback(Exception):
    pass


def import_households(
    lines: Iterable[str],
    *,
    dry_run: bool = False,
    atomic: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import households line by line (bytes, decoded here, or text). With ``atomic``, any bad line means nothing
    is written. Raises ImportFileError, with nothing written, when the file as a whole cannot be read."""
    report = ImportReport(dry_run=dry_run, atomic=atomic)
    try:
        with transaction.atomic():
            for number, raw in enumerate(lines, start=1):
                report.lines = number
                if progress:
                    progress(number)
                try:
                    text = decode_line(raw, number)
                    if not text.strip():
                        continue
                    record = parse_line(text)
                    with transaction.atomic():  # a savepoint: a failing row leaves the others intact
                        outcome = _apply(record)
                except LineError as exc:
                    report.errors.append((number, str(exc)))
                    continue
                except ValidationError as exc:
                    report.errors.append((number, "; ".join(exc.messages)))
                    continue
                except DataError as exc:  # a value the checks above missed; the savepoint undid just this line
                    report.errors.append((number, f"the database refuses a value ({type(exc).__name__})"))
                    continue
                setattr(report, outcome, getattr(report, outcome) + 1)
            if dry_run or (atomic and report.errors):
                raise _DryRunRollback
    except _DryRunRollback:
        pass
    return report
