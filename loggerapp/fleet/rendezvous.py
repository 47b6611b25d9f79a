"""Which member polls which household: rendezvous (highest random weight) hashing, pure.

Decisions:
1. Every member computes the owner of a household from the cloud id and the list of live member ids alone, so
   members that read the same membership agree without talking to each other.
2. Rendezvous rather than ``hash % N``: adding a member moves only the households it wins (about 1/N of them),
   removing one moves only its own; nobody else's household changes hands, so the schedules of the others are
   untouched.
3. A member's windows (``ownership_windows``): joins and clean leaves are announced ahead (a member is effective
   from its ``active_from`` until its ``active_until``), so everyone can compute, for each household, the moment
   it changes hands, and the old owner stops exactly where the new owner starts: no gap, no double poll.
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
    cloud_ids: Iterable[str], effective: Sequence[str], changes: Sequence[tuple[float, str, bool]], me: str
) -> dict[str, Window]:
    """What ``me`` polls, given the members effective now and the announced changes ((when, member id, joins):
    a member joining, or leaving when ``joins`` is False).

    A household is owned by me over its first span: from now (or from the change that gives it to me) until the
    change that takes it away (or for good). A later span, if any, is found when the picture is computed again
    after that change.
    """
    steps = sorted(changes)
    result: dict[str, Window] = {}
    for cloud_id in cloud_ids:
        members = set(effective)
        mine = owner(cloud_id, members) == me
        start: float | None = None
        end: float | None = None
        for when, member_id, joins in steps:
            if joins:
                members.add(member_id)
            else:
                members.discard(member_id)
            now_mine = owner(cloud_id, members) == me
            if mine and not now_mine:
                end = when
                break
            if not mine and now_mine:
                mine, start = True, when
        if mine:
            result[cloud_id] = Window(start, end)
    return result
