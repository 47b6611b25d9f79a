"""Who holds a claim on an hour file, and whether that run is still alive.

A run writes its identity into every claim (``HourFile.claimed_by``): host name, a token of the process space
it runs in (the kernel's boot id and the process's PID namespace), its PID and the PID's start time, and a
random part. A later run judges a claim it finds:

- same host and process space: the claimant is alive exactly while a process with that PID *and that start
  time* exists (the start time tells a reused PID apart), so the claims of a killed run are taken at once;
- another host (a fleet shares one ledger), an unknown process space, or a claim written by older code: the
  claimant is alive while it renews its lease, i.e. while its claims were stamped within
  ROTATION_CLAIM_LEASE_SECONDS; every run renews its claims several times per lease.

Both mistakes a judgement can make are harmless to the data: taking a live run's file makes both upload it,
and the archive's create-only write and merge keep one copy of every line (the loser keeps its local file for
the next run); trusting a dead run only waits for its lease to run out.
"""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

OWNER_MAX = 100  # HourFile.claimed_by's length
_HOST_MAX = 48


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


@cache
def process_space() -> str:
    """A short token naming the set of processes this one can see by PID: boot id + PID namespace ("" if unknown).

    Two containers may share a host name but not a PID namespace, and a reboot starts PIDs over.
    """
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = None
    if not boot or not namespace:
        return ""
    return hashlib.sha256(f"{boot} {namespace}".encode()).hexdigest()[:10]


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None when there is no such process."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # Field 22; the command name (field 2) is in parentheses and may itself hold spaces or parentheses.
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


@dataclass(frozen=True)
class RunIdentity:
    """One upload run, as written into its claims: ``host:space:pid:start:nonce``."""

    host: str
    space: str
    pid: int
    start: str
    nonce: str

    def __str__(self) -> str:
        return f"{self.host}:{self.space}:{self.pid}:{self.start}:{self.nonce}"

    @classmethod
    def parse(cls, text: str) -> RunIdentity | None:
        """The identity in a claim, or None for a claim written by older code (``host:pid:nonce``) or garbage."""
        parts = text.rsplit(":", 4)
        if len(parts) != 5 or not parts[2].isdigit():
            return None
        host, space, pid, start, nonce = parts
        return cls(host=host, space=space, pid=int(pid), start=start, nonce=nonce)

    @classmethod
    def of_this_process(cls) -> RunIdentity:
        """A new identity for a run in this process (each run gets its own nonce)."""
        pid = os.getpid()
        return cls(
            host=socket.gethostname()[:_HOST_MAX].replace(":", "_"),
            space=process_space(),
            pid=pid,
            start=process_start(pid) or "",
            nonce=uuid.uuid4().hex[:8],
        )


# Verdicts on a claim held by another run.
ALIVE = "alive"
DEAD = "dead"


@dataclass(frozen=True)
class Verdict:
    """Whether another run's claims may be taken now, and why, in words for the log."""

    state: str  # ALIVE or DEAD
    why: str

    @property
    def dead(self) -> bool:
        return self.state == DEAD


def judge(owner: str, here: RunIdentity, last_renewed: datetime | None, now: datetime, lease: timedelta) -> Verdict:
    """Judge the run that wrote ``owner`` into its claims, from this run's point of view (see the module doc).

    ``last_renewed`` is the newest ``claimed_at`` among its claims.
    """
    theirs = RunIdentity.parse(owner)
    same_space = theirs is not None and here.space and (theirs.host, theirs.space) == (here.host, here.space)
    # Another run in this very process (a thread; or one that died without unwinding) is judged by its lease.
    if theirs is not None and same_space and (theirs.pid, theirs.start) != (here.pid, here.start):
        start = process_start(theirs.pid)
        if start is None:
            return Verdict(DEAD, f"its process {theirs.pid} on this host is gone")
        if start != theirs.start:
            return Verdict(DEAD, f"its process {theirs.pid} on this host is gone (the PID now names another process)")
        return Verdict(ALIVE, f"its process {theirs.pid} on this host is running")
    if last_renewed is None:
        return Verdict(DEAD, "its claims carry no time")
    age = (now - last_renewed).total_seconds()
    where = (
        "(written by an older version)" if theirs is None else "in this process" if same_space else "on another host"
    )
    if age > lease.total_seconds():
        return Verdict(
            DEAD, f"run {where} has not renewed its lease for {age:.0f} s (lease {lease.total_seconds():.0f} s)"
        )
    return Verdict(ALIVE, f"run {where} renewed its lease {max(0.0, age):.0f} s ago")
