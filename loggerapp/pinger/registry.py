"""The households this pinger polls, reloaded from the database while it runs.

Decisions:
1. Loading runs in a worker thread (never on the event loop) and closes its database connection afterwards:
   a load every minute does not need a connection held open, and a restarted database is simply met by the
   next load.
2. Sharding is applied before the passwords are decrypted: first (id, cloud_id) of every active household,
   then full rows of this shard's households only.
3. A failed load (database down) raises ``RegistryUnavailable``; the caller keeps polling the households it
   already knows and tries again at the next refresh.
4. The diff compares whole targets (protocol, address, credentials): a changed password replaces the target
   without a restart, and resets that household's back-off.
5. Each loaded household gets a HouseholdStats row if it has none yet, and brings its stored status and
   consecutive failures, so a restarted pinger continues them (no flood of "state changed" lines, back-off
   continues where it was).
6. One household whose stored password cannot be decrypted (a wrong or rotated FIELD_ENCRYPTION_KEY, a row
   written by hand) is left out and logged; it never stops the others from loading. The ciphertext is read as
   plain text and decrypted row by row, because the field's own decryption would abort the whole query.
7. ``apply_load`` brings the loop's set of polled households in line with a load, and says which households'
   next ticks must be queued (new ones, and those whose new credentials end a back-off).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError, close_old_connections, connection
from django.db.models import TextField
from django.db.models.functions import Cast

from loggerapp.models import Status
from loggerapp.pinger import decisions
from loggerapp.pinger.blocking import BlockedWatch, run_in_daemon_thread
from loggerapp.pinger.decisions import HouseholdState
from loggerapp.pinger.schedule import Shard
from loggerapp.pinger.stats import ensure_stats_rows

logger = logging.getLogger("loggerapp.pinger.registry")


class RegistryUnavailable(Exception):
    """The household list could not be read (database down); keep the known list."""


@dataclass
class HouseholdEntry:
    household_id: int
    cloud_id: str
    target: Any = field(repr=False)  # loggerapp.eagle.EagleTarget (its repr hides the password anyway)
    status: str = Status.NEVER_POLLED
    consecutive_failures: int = 0
    # The password as stored (encrypted), for the local household cache (pinger/household_cache.py).
    ciphertext: str = field(default="", repr=False, compare=False)


@dataclass
class RegistryDiff:
    added: list[HouseholdEntry]
    removed: list[str]
    changed: list[HouseholdEntry]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def load_households(shard: Shard) -> dict[str, HouseholdEntry]:
    """Active households of a shard, keyed by cloud id. Runs in a thread; raises RegistryUnavailable."""
    from loggerapp.eagle import EagleTarget
    from loggerapp.fields import DecryptionError, decrypt
    from loggerapp.models import Household

    close_old_connections()
    try:
        ids = [
            pk
            for pk, cloud_id in Household.objects.filter(active=True).order_by().values_list("pk", "cloud_id")
            if shard.holds(cloud_id)
        ]
        entries: dict[str, HouseholdEntry] = {}
        missing_stats: list[int] = []
        unreadable: list[str] = []
        for start in range(0, len(ids), 2000):
            rows = (
                Household.objects.filter(pk__in=ids[start : start + 2000])
                .select_related("stats")
                .defer("password")
                .annotate(password_ciphertext=Cast("password", output_field=TextField()))
                .order_by()
            )
            for household in rows:
                try:
                    household.password = decrypt(household.password_ciphertext or "")
                except DecryptionError:
                    unreadable.append(household.cloud_id)
                    continue
                stats = getattr(household, "stats", None)
                if stats is None:
                    missing_stats.append(household.pk)
                entries[household.cloud_id] = HouseholdEntry(
                    household_id=household.pk,
                    cloud_id=household.cloud_id,
                    target=EagleTarget.from_household(household),
                    status=stats.status if stats else Status.NEVER_POLLED,
                    consecutive_failures=stats.consecutive_failures if stats else 0,
                    ciphertext=household.password_ciphertext or "",
                )
        ensure_stats_rows(missing_stats)
        _report_unreadable(unreadable)
        return entries
    except DatabaseError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise RegistryUnavailable(f"{type(exc).__name__}: {first_line}") from exc
    finally:
        connection.close()


_unreadable_reported: frozenset[str] = frozenset()


def _report_unreadable(cloud_ids: list[str]) -> None:
    """Log the households left out for an undecryptable password, whenever that set changes (not every load)."""
    global _unreadable_reported
    current = frozenset(cloud_ids)
    if current != _unreadable_reported:
        if current:
            logger.error(
                "%d households not polled: their password cannot be decrypted with FIELD_ENCRYPTION_KEY (%s)",
                len(current),
                ", ".join(sorted(current)[:20]),
            )
        _unreadable_reported = current


def diff(known: dict[str, HouseholdEntry], loaded: dict[str, HouseholdEntry]) -> RegistryDiff:
    """What changed between the polled households and a fresh load."""
    added = [entry for cloud_id, entry in loaded.items() if cloud_id not in known]
    removed = [cloud_id for cloud_id in known if cloud_id not in loaded]
    changed = [
        entry
        for cloud_id, entry in loaded.items()
        if cloud_id in known
        and (known[cloud_id].target != entry.target or known[cloud_id].household_id != entry.household_id)
    ]
    return RegistryDiff(added, removed, changed)


class HouseholdLoader:
    """Loads the household list for the event loop, in a worker thread of its own.

    Remembers whether the database is down, so that an outage and its end are each logged once, and a bug in a
    load never ends the loop: the known list keeps being polled and the next refresh tries again.
    """

    def __init__(self, shard: Shard, warn_after: float = 30.0) -> None:
        self.shard = shard
        self.database_down = False
        # A load runs in a daemon thread of its own, watched: a database that never answers blocks it for ever
        # (pinger/blocking.py), and must neither hold up the exit nor go unmentioned.
        self.watch = BlockedWatch("household list load", warn_after)

    async def load(self, known: int) -> dict[str, HouseholdEntry] | None:
        """The fresh list, or None when it could not be read (``known``: households polled meanwhile)."""
        self.watch.begin()
        try:
            loaded = await run_in_daemon_thread(load_households, self.shard, name="pinger-db")
        except RegistryUnavailable as exc:
            if not self.database_down:
                self.database_down = True
                logger.warning(
                    "household list not refreshed, database unavailable (%s); polling the %d known households",
                    exc,
                    known,
                )
            return None
        except Exception:  # a bug must not end the refresher (nor the run): keep the known list, retry later
            logger.exception("household list could not be loaded; polling the %d known households", known)
            return None
        finally:
            self.watch.end()
        if self.database_down:
            self.database_down = False
            logger.warning("database reachable again; household list refreshed")
        return loaded

    def close(self) -> None:
        """Nothing to release: a load still blocked is in a daemon thread."""


def apply_load(
    households: dict[str, HouseholdState], loaded: dict[str, HouseholdEntry], now: float, interval: float
) -> tuple[RegistryDiff, list[HouseholdState]]:
    """Update the polled set (``households``, by cloud id) to a fresh load.

    Returns what changed, and the households whose next tick must be queued: the new ones, and those whose
    changed credentials end a bad-credentials back-off. A removed household is marked, so that its queued tick
    is dropped when it comes due.
    """
    changes = diff({cloud_id: state.entry for cloud_id, state in households.items()}, loaded)
    to_queue: list[HouseholdState] = []
    for entry in changes.added:
        state = decisions.new_state(entry, now, interval)
        households[entry.cloud_id] = state
        to_queue.append(state)
    for cloud_id in changes.removed:
        households.pop(cloud_id).removed = True
    for entry in changes.changed:
        state = households[entry.cloud_id]
        state.entry = entry
        tick = decisions.after_new_credentials(state, now, interval)
        if tick is not None:
            state.bad_credentials = 0
            state.next_tick = tick
            to_queue.append(state)
    return changes, to_queue


def log_changes(changes: RegistryDiff, polled: int, initial: bool) -> None:
    if initial:
        logger.info("polling %d households", polled)
        return
    if not changes:
        return
    logger.info(
        "household list refreshed: %d added, %d removed, %d changed; %d households",
        len(changes.added),
        len(changes.removed),
        len(changes.changed),
        polled,
    )
    for entry in changes.added:
        logger.info("household %s added", entry.cloud_id)
    for cloud_id in changes.removed:
        logger.info("household %s removed or deactivated", cloud_id)
    for entry in changes.changed:
        logger.info("household %s: protocol, address or credentials changed", entry.cloud_id)
