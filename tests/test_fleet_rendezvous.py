"""Rendezvous ownership: pure, no services. Adding or removing a member moves only its own share."""

from __future__ import annotations

import itertools
from collections import Counter

from loggerapp.fleet.rendezvous import Window, owned, owner, ownership_windows

HOUSEHOLDS = [f"{n:06x}" for n in range(3000)]
MEMBERS = ["host-a:10:aaaaaa", "host-b:11:bbbbbb", "host-c:12:cccccc"]


def test_every_household_has_exactly_one_owner_and_shares_are_even():
    counts = Counter(owner(cloud_id, MEMBERS) for cloud_id in HOUSEHOLDS)
    assert sum(counts.values()) == len(HOUSEHOLDS)
    assert set(counts) == set(MEMBERS)
    for count in counts.values():
        assert abs(count - 1000) < 120  # about a third each
    shares = [owned(HOUSEHOLDS, MEMBERS, member) for member in MEMBERS]
    assert set.union(*shares) == set(HOUSEHOLDS)
    assert sum(len(share) for share in shares) == len(HOUSEHOLDS)


def test_the_owner_does_not_depend_on_the_order_of_the_members():
    for cloud_id in HOUSEHOLDS[:200]:
        assert owner(cloud_id, MEMBERS) == owner(cloud_id, list(reversed(MEMBERS)))


def test_a_new_member_takes_only_households_from_others_and_about_its_share():
    newcomer = "host-d:13:dddddd"
    before = {cloud_id: owner(cloud_id, MEMBERS) for cloud_id in HOUSEHOLDS}
    after = {cloud_id: owner(cloud_id, [*MEMBERS, newcomer]) for cloud_id in HOUSEHOLDS}
    moved = [cloud_id for cloud_id in HOUSEHOLDS if before[cloud_id] != after[cloud_id]]
    assert all(after[cloud_id] == newcomer for cloud_id in moved)
    assert abs(len(moved) - 750) < 110


def test_a_member_leaving_moves_only_its_own_households():
    gone = MEMBERS[1]
    rest = [member for member in MEMBERS if member != gone]
    for cloud_id in HOUSEHOLDS:
        before = owner(cloud_id, MEMBERS)
        after = owner(cloud_id, rest)
        if before != gone:
            assert after == before
        else:
            assert after in rest


def test_without_members_nobody_owns_anything():
    assert owner("002506", []) is None
    assert owned(HOUSEHOLDS, [], MEMBERS[0]) == set()
    assert owned(HOUSEHOLDS, MEMBERS[:2], MEMBERS[2]) == set()


def test_windows_without_joins_are_the_plain_share():
    windows = ownership_windows(HOUSEHOLDS, MEMBERS, [], MEMBERS[0])
    assert set(windows) == owned(HOUSEHOLDS, MEMBERS, MEMBERS[0])
    assert set(windows.values()) == {Window(None, None)}


def test_a_join_ends_the_old_owners_window_where_the_joiners_begins():
    newcomer = "host-d:13:dddddd"
    joins = [(1000.0, newcomer, True)]
    old = {member: ownership_windows(HOUSEHOLDS, MEMBERS, joins, member) for member in MEMBERS}
    new = ownership_windows(HOUSEHOLDS, MEMBERS, joins, newcomer)
    assert set(new.values()) == {Window(1000.0, None)}
    for cloud_id, _window in new.items():
        holders = [member for member in MEMBERS if cloud_id in old[member]]
        assert len(holders) == 1  # polled by exactly one member until the join, by the newcomer after
        assert old[holders[0]][cloud_id] == Window(None, 1000.0)
    for member in MEMBERS:
        kept = {cloud_id for cloud_id, window in old[member].items() if window.end is None}
        assert kept == owned(HOUSEHOLDS, [*MEMBERS, newcomer], member)


def test_two_joins_in_a_row_hand_each_household_over_at_most_twice_without_overlap():
    joins = [(1000.0, "host-d:13:dddddd", True), (2000.0, "host-e:14:eeeeee", True)]
    everyone = [*MEMBERS, *(member for _, member, _ in joins)]
    windows = {member: ownership_windows(HOUSEHOLDS, MEMBERS, joins, member) for member in everyone}
    for cloud_id in HOUSEHOLDS:
        spans = sorted(
            ((w.start or 0.0), (w.end or float("inf"))) for member in everyone if (w := windows[member].get(cloud_id))
        )
        assert spans[0][0] == 0.0 and spans[-1][1] == float("inf")
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end == start  # contiguous: no gap, no overlap


def test_an_announced_leave_hands_each_of_its_households_to_one_member_at_its_time():
    leaver = MEMBERS[1]
    leave = [(1000.0, leaver, False)]
    windows = {member: ownership_windows(HOUSEHOLDS, MEMBERS, leave, member) for member in MEMBERS}
    assert set(windows[leaver]) == owned(HOUSEHOLDS, MEMBERS, leaver)
    assert set(windows[leaver].values()) == {Window(None, 1000.0)}
    rest = [member for member in MEMBERS if member != leaver]
    for cloud_id in windows[leaver]:
        takers = [member for member in rest if cloud_id in windows[member]]
        assert len(takers) == 1 and windows[takers[0]][cloud_id] == Window(1000.0, None)
    for member in rest:  # the others keep what they had, for good
        kept = {cloud_id for cloud_id, window in windows[member].items() if window.start is None}
        assert kept == owned(HOUSEHOLDS, MEMBERS, member)
        assert all(window.end is None for window in windows[member].values())
