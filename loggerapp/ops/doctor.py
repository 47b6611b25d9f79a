"""`manage.py doctor`: is this installation configured so that every part can work?

Unlike /healthz (is it running right now?), the doctor exercises each dependency the way the services will:
it writes, reads back and deletes a probe object in the archive, writes a probe file under LOG_ROOT, decrypts a
stored EAGLE password, and reads one household's EAGLE live. Results are PASS, WARN (works, but look at it),
SKIP (nothing to test) or FAIL; any FAIL makes the command exit non-zero. Details never hold a secret: errors
are reported by type and a short message, never with a URL that could carry credentials.
"""

from __future__ import annotations

import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor

from iseif.private import make_private_dir, readable_by_others
from loggerapp.ops import health

PASS, WARN, SKIP, FAIL = "PASS", "WARN", "SKIP", "FAIL"


@dataclass
class DoctorResult:
    name: str
    outcome: str
    detail: str
    elapsed_ms: float = 0.0

    @property
    def failed(self) -> bool:
        return self.outcome == FAIL


def _short(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:limit]}" if text else type(exc).__name__


def check_database() -> tuple[str, str]:
    result = health.check_database()
    if not result.ok:
        return FAIL, result.detail
    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as exc:
        return FAIL, f"cannot read the migration state ({type(exc).__name__})"
    if plan:
        return FAIL, f"{len(plan)} migration(s) not applied: run `manage.py migrate`"
    return PASS, f"{connection.vendor} {connection.settings_dict.get('NAME')}, migrations applied"


def check_redis() -> tuple[str, str]:
    result = health.check_redis()
    return (PASS, "ping answered") if result.ok else (FAIL, result.detail + "; check REDIS_URL")


def check_archive() -> tuple[str, str]:
    """Write, read back and delete a probe object through storages["archive"] (S3 or the local folder)."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import storages

    storage = storages["archive"]
    prefix = settings.ARCHIVE_PREFIX.strip("/")
    name = f"{prefix}/_doctor/probe-{secrets.token_hex(8)}.txt" if prefix else f"_doctor/probe-{secrets.token_hex(8)}"
    payload = f"iseif doctor probe {time.time()}\n".encode()
    bucket = settings.AWS_STORAGE_BUCKET_NAME
    where = f"bucket {bucket}" if bucket else str(settings.ARCHIVE_ROOT)
    step = "write"
    try:
        saved = storage.save(name, ContentFile(payload))
        step = "read back"
        with storage.open(saved, "rb") as handle:
            if handle.read() != payload:
                return FAIL, f"{where}: the probe object read back differs from what was written"
        step = "delete"
        storage.delete(saved)
        if storage.exists(saved):
            return FAIL, f"{where}: the probe object is still there after delete"
    except Exception as exc:  # any storage backend's error (botocore, OSError, ...)
        return FAIL, f"{where}: cannot {step} a probe object ({_short(exc)})"
    return PASS, f"{where}: write, read back and delete work"


def check_log_root() -> tuple[str, str]:
    root = Path(settings.LOG_ROOT)
    try:
        make_private_dir(root)
        probe = root / f".doctor-probe-{secrets.token_hex(6)}"
        probe.write_bytes(b"probe\n")
        probe.unlink()
        free_mb = shutil.disk_usage(root).free / 2**20
    except OSError as exc:
        return FAIL, f"{root} is not writable ({_short(exc)})"
    if free_mb < settings.DOCTOR_MIN_FREE_MB:
        return FAIL, f"{root}: only {free_mb:,.0f} MB free (DOCTOR_MIN_FREE_MB={settings.DOCTOR_MIN_FREE_MB})"
    return PASS, f"{root} writable, {free_mb:,.0f} MB free"


def check_private_files() -> tuple[str, str]:
    """DATA_DIR, LOG_ROOT, the local archive folder and the SQLite file are not readable by other users.

    They are created private (iseif/private.py), but folders made before that, or by hand, keep their mode."""
    from django.core.files.storage import FileSystemStorage, storages

    places = [Path(settings.DATA_DIR), Path(settings.LOG_ROOT)]
    if isinstance(storages["archive"], FileSystemStorage):
        places.append(Path(storages["archive"].location))
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        places.append(Path(database["NAME"]))
    open_to_others = [str(place) for place in dict.fromkeys(places) if place.exists() and readable_by_others(place)]
    if open_to_others:
        return WARN, f"others can read {', '.join(open_to_others)}: chmod -R go-rwx each (see docs/security.md)"
    return PASS, f"{len(places)} places, none readable by other users"


def check_encryption() -> tuple[str, str]:
    """The Fernet keys load, and one stored password decrypts with them (a wrong key fails loudly here)."""
    from loggerapp.fields import DecryptionError, fernet
    from loggerapp.models import Household

    try:
        fernet()
    except Exception as exc:  # ImproperlyConfigured for a missing or malformed key
        return FAIL, _short(exc)
    keys = len(settings.FIELD_ENCRYPTION_KEYS)
    try:
        stored = Household.objects.exclude(password="").order_by("pk").values_list("cloud_id", "password").first()
    except DecryptionError:
        return FAIL, "a stored EAGLE password cannot be decrypted: wrong FIELD_ENCRYPTION_KEY?"
    except DatabaseError as exc:
        return FAIL, f"cannot read households ({type(exc).__name__})"
    if stored is None:
        return PASS, f"{keys} key(s) load; no stored password to test yet"
    return PASS, f"{keys} key(s) load; the password of {stored[0]} decrypts"


def check_eagle(cloud_id: str | None = None) -> tuple[str, str]:
    """One live read of one household (the first active one, or `cloud_id`), bounded by LIVE_READ_DEADLINE.

    The same bounded read as the admin's "test connection now" and /api/event/ (loggerapp/live.py), so a
    gateway that never finishes its answer cannot hang the doctor.
    """
    from loggerapp.models import Household, Status

    try:
        from loggerapp.live import deadline_in, live_read
    except ImportError as exc:
        return FAIL, f"the EAGLE client cannot be imported ({_short(exc)})"
    households = Household.objects.filter(active=True) if cloud_id is None else Household.objects.all()
    if cloud_id is not None:
        households = households.filter(cloud_id=cloud_id.lower())
    try:
        household = households.order_by("cloud_id").first()
    except Exception as exc:  # DecryptionError or DatabaseError: reported by their own checks too
        return FAIL, f"cannot load a household ({_short(exc)})"
    if household is None:
        return (FAIL, f"no household {cloud_id}") if cloud_id else (SKIP, "no active household to read")
    where = "the cloud relay" if household.protocol == "cloud" else f"the local {household.protocol} gateway"
    read = live_read(household, deadline_in())
    if read.ok:
        reading = read.reading
        return (
            PASS,
            f"{household.cloud_id}: {where} answered {reading.demand_kw:.3f} kW in {reading.latency_s * 1000:.0f} ms",
        )
    if read.error_kind == Status.UNREACHABLE:
        return FAIL, f"{household.cloud_id}: {where} is unreachable ({read.error_message[:160]})"
    if read.error_kind in (Status.BAD_CREDENTIALS, Status.METER_NOT_JOINED):
        return WARN, f"{household.cloud_id}: {where} answered, but {read.error_kind.replace('_', ' ')}"
    return FAIL, f"{household.cloud_id}: {where} answered badly ({read.error_kind}: {read.error_message[:160]})"


def check_pinger() -> tuple[str, str]:
    """Advisory: the doctor may run before the services start, so a missing heartbeat only warns."""
    result = health.check_pinger()
    return (PASS, result.detail) if result.ok else (WARN, result.detail)


def check_alert_mail() -> tuple[str, str]:
    if not settings.ALERT_EMAILS:
        return WARN, "ALERT_EMAILS is empty: alerts are recorded but nobody is mailed"
    return PASS, f"alerts go to {len(settings.ALERT_EMAILS)} recipient(s)"


def run_doctor(cloud_id: str | None = None, skip_eagle: bool = False) -> list[DoctorResult]:
    checks: list[tuple[str, Callable[[], tuple[str, str]]]] = [
        ("database", check_database),
        ("redis", check_redis),
        ("archive storage", check_archive),
        ("LOG_ROOT", check_log_root),
        ("private files", check_private_files),
        ("encryption key", check_encryption),
        ("EAGLE", (lambda: (SKIP, "--skip-eagle")) if skip_eagle else (lambda: check_eagle(cloud_id))),
        ("pinger heartbeat", check_pinger),
        ("alert mail", check_alert_mail),
    ]
    results = []
    for name, check in checks:
        started = time.perf_counter()
        try:
            outcome, detail = check()
        except Exception as exc:  # a check that crashes is a failed check, and the others still run
            outcome, detail = FAIL, f"check crashed: {_short(exc)}"
        results.append(DoctorResult(name, outcome, detail, (time.perf_counter() - started) * 1000))
    return results


def format_table(results: list[DoctorResult]) -> list[str]:
    width = max(len(result.name) for result in results)
    lines = [f"{'check':<{width}}  result  {'ms':>6}  detail"]
    for result in results:
        lines.append(f"{result.name:<{width}}  {result.outcome:<6}  {result.elapsed_ms:>6.0f}  {result.detail}")
    return lines
