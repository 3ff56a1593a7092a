"""Which targets this node probes: rendezvous (highest-random-weight) hashing.

A target with `locations = k` is probed from the k live locations that rank highest
for it, and in each of those by the one live member of that location that ranks
highest. No leases per target: every node computes the same answer from the same
member list, and a member joining or leaving moves only the targets it wins or held
(about 1/N of its location's). Ranks are blake2b of (location or member, target):
the same on every machine, unlike Python's salted hash().
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from .._config import Target


def _rank(owner: str, target: str) -> int:
    digest = hashlib.blake2b(f"{owner}\0{target}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def by_location(members: Iterable[str]) -> dict[str, list[str]]:
    """`location/node` members grouped by location."""
    grouped: dict[str, list[str]] = {}
    for member in members:
        location, _, _ = member.partition("/")
        grouped.setdefault(location, []).append(member)
    return grouped


def owners(target: Target, locations: Mapping[str, list[str]]) -> list[str]:
    """The members that probe `target`: one per location, in its top `locations`."""
    chosen = sorted(locations, key=lambda loc: _rank(loc, target.name), reverse=True)
    return [
        max(locations[loc], key=lambda member: _rank(member, target.name))
        for loc in chosen[: target.locations]
        if locations[loc]
    ]


def owned(member: str, targets: Iterable[Target], members: Iterable[str]) -> frozenset[str]:
    """The names of the targets `member` probes, given the live members (itself
    included whether or not the list has it: a node always counts itself)."""
    locations = by_location({*members, member})
    return frozenset(t.name for t in targets if member in owners(t, locations))
