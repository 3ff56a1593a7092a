"""cluster/ownership.py: rendezvous hashing of targets over the live members."""

from __future__ import annotations

import attrs
from factories import make_target

from trio_monitor.cluster.ownership import by_location, owned, owners

BASE = make_target(name="t")
TARGETS = [attrs.evolve(BASE, name=f"t{i}") for i in range(3000)]


def shares(members: list[str]) -> dict[str, frozenset[str]]:
    return {m: owned(m, TARGETS, members) for m in members}


def test_every_target_has_exactly_one_owner_per_location() -> None:
    members = ["eu/a", "eu/b", "eu/c"]
    split = shares(members)
    assert sum(len(s) for s in split.values()) == len(TARGETS)
    assert set().union(*split.values()) == {t.name for t in TARGETS}
    for share in split.values():
        assert 800 < len(share) < 1200  # about a third each


def test_a_join_or_a_leave_moves_about_one_in_n() -> None:
    before = shares(["eu/a", "eu/b", "eu/c"])
    after = shares(["eu/a", "eu/b", "eu/c", "eu/d"])
    moved = sum(len(before[m] - after[m]) for m in before)
    assert moved == len(after["eu/d"])  # only what the new member took
    assert 600 < moved < 900  # about a quarter
    left = shares(["eu/a", "eu/b"])
    assert before["eu/a"] <= left["eu/a"]  # the survivors keep theirs, and split c's
    assert before["eu/b"] <= left["eu/b"]


def test_locations_pick_that_many_locations_and_one_member_in_each() -> None:
    target = attrs.evolve(BASE, name="api", locations=2, quorum=1)
    members = by_location(["eu/a", "eu/b", "us/a", "ap/a", "ap/b"])
    chosen = owners(target, members)
    assert len(chosen) == 2
    assert len({m.partition("/")[0] for m in chosen}) == 2
    assert owners(target, members) == chosen  # the same answer every time


def test_a_node_counts_itself_even_before_its_first_beat_is_listed() -> None:
    assert owned("eu/a", TARGETS[:10], []) == {t.name for t in TARGETS[:10]}
