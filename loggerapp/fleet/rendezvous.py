"""Which member polls which household: rendezvous (highest random weight) hashing, pure.

Decisions:
1. Every member computes the owner of a household from the cloud id and the list of live member ids alone, so
   members that read the same membership agree without talking to each other.
2. Rendezvous rather than ``hash % N``: adding a member moves only the households it wins (about 1/N of them),
   removing one moves only its own; nobody else's household changes hands, so the schedules of the others are
   untouched.
3. A member's windows (``ownership_windows``): joins are announced ahead (a member becomes effective at its
   ``active_from``), so everyone can compute, for each household, the moment it changes hands, and the old owner
   stops exactly where the new owner starts: no gap, no double poll.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def weight(member_id: str, cloud_id: str) -> int:
    """The member's score for a household (the first 8 bytes of a SHA-1 of both)."""
    digest = hashlib.sha1(f"{member_id}\x00{cloud_id}".encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big")


def owner(cloud_id: str, members: Iterable[str]) -> str | None:
    """The member with the highest score for the household (ties by member id); None without members."""
    best: tuple[int, str] | None = None
    for member_id in members:
        candidate = (weight(member_id, cloud_id), member_id)
        if best is None or candidate > best:
            best = candidate
    return best[1] if best is not None else None


def owned(cloud_ids: Iterable[str], members: Sequence[str], me: str) -> set[str]:
    """The households ``me`` owns among ``members`` (empty when ``me`` is not one of them)."""
    if me not in members:
        return set()
    return {cloud_id for cloud_id in cloud_ids if owner(cloud_id, members) == me}


@dataclass(frozen=True)
class Window:
    """The time span in which a member polls a household: ticks due at or after ``start`` (None: now) and
    before ``end`` (None: until further notice)."""

    start: float | None = None
    end: float | None = None


def ownership_windows(
    cloud_ids: Iterable[str], effective: Sequence[str], joining: Sequence[tuple[float, str]], me: str
) -> dict[str, Window]:
    """What ``me`` polls, given the members effective now and the members joining later ((when, member id)).

    Each join only moves households to the joiner (rendezvous), so a household is owned by me over one span: from
    now (or from my own join) until the first joiner that wins it takes it (or for good).
    """
    steps = sorted(joining)
    result: dict[str, Window] = {}
    for cloud_id in cloud_ids:
        members = list(effective)
        holder = owner(cloud_id, members)
        start: float | None = None
        end: float | None = None
        mine = holder == me
        for when, member_id in steps:
            members.append(member_id)
            if owner(cloud_id, members) != member_id:
                continue
            if mine:
                end = when
                break
            if member_id == me:
                mine, start = True, when
        if mine:
            result[cloud_id] = Window(start, end)
    return result
