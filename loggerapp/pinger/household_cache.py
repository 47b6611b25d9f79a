"""The last household list read from the database, kept on local disk so that a pinger started while the
database cannot be read still polls (issue 16: it used to poll nothing and say nothing).

- Written after every load that changed the list (``LOG_ROOT/pinger/households-<K>of<N>.json``, one file per
  shard), private (``iseif.private``: 0600 in a 0700 folder), replaced atomically (a temporary file renamed).
- Passwords stay encrypted: the file holds each password's ciphertext exactly as the database stores it, and a
  start from the cache decrypts it with FIELD_ENCRYPTION_KEY like a database load would. A household whose
  ciphertext no key can decrypt is left out (and counted in the log line).
- Read only when the first load fails; as soon as the database answers, its list replaces the cache's.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from iseif.private import make_private_dir, open_private

logger = logging.getLogger("loggerapp.pinger.household_cache")

VERSION = 1


def cache_path(log_root: Path, shard: object) -> Path:
    return Path(log_root) / "pinger" / f"households-{str(shard).replace('/', 'of')}.json"


def _row(entry: Any) -> dict[str, Any]:
    target = entry.target
    return {
        "household_id": entry.household_id,
        "cloud_id": entry.cloud_id,
        "protocol": target.protocol,
        "user_email": target.user_email,
        "password_ciphertext": entry.ciphertext,
        "address": target.address,
        "meter_address": target.meter_address,
        "https": target.https,
        "status": str(entry.status),
        "consecutive_failures": entry.consecutive_failures,
    }


def save(path: Path, entries: Iterable[Any]) -> None:
    """Replace the cache with these HouseholdEntry values (their ciphertexts, never a password)."""
    document = {"version": VERSION, "saved_at": time.time(), "households": [_row(entry) for entry in entries]}
    make_private_dir(path.parent)
    temporary = path.with_name(path.name + ".tmp")
    fd = open_private(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(document, handle, separators=(",", ":"))
    os.replace(temporary, path)


def load(path: Path) -> tuple[dict[str, Any], float] | None:
    """HouseholdEntry values by cloud id and the time they were saved, or None without a usable cache."""
    from loggerapp.eagle import EagleTarget
    from loggerapp.fields import DecryptionError, decrypt
    from loggerapp.pinger.registry import HouseholdEntry

    try:
        document = json.loads(path.read_bytes())
        rows = document["households"] if document.get("version") == VERSION else None
        saved_at = float(document["saved_at"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("household cache %s unusable (%s)", path, type(exc).__name__)
        return None
    if rows is None:
        return None
    entries: dict[str, Any] = {}
    unreadable = 0
    for row in rows:
        try:
            password = decrypt(row["password_ciphertext"] or "")
            target = EagleTarget(
                cloud_id=row["cloud_id"],
                protocol=row["protocol"],
                user_email=row["user_email"],
                password=password,
                address=row["address"],
                meter_address=row["meter_address"],
                https=bool(row["https"]),
            )
            entries[row["cloud_id"]] = HouseholdEntry(
                household_id=int(row["household_id"]),
                cloud_id=row["cloud_id"],
                target=target,
                status=row["status"],
                consecutive_failures=int(row["consecutive_failures"]),
                ciphertext=row["password_ciphertext"],
            )
        except (DecryptionError, KeyError, TypeError, ValueError):
            unreadable += 1
    if unreadable:
        logger.warning("household cache: %d households left out (unreadable rows or passwords)", unreadable)
    return entries, saved_at
