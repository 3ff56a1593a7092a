"""The cluster as shown: one JSON shape for `/api/v1/cluster`, the status page's
cluster panel and `trio-monitor cluster status` (no coredis needed to build it).

    {"redis": {"url", "ok", "error"}, "cluster_id", "node" (this node, or null for the
     CLI), "config_hash", "members": [{"member", "location", "node",
     "lease_left_s", "targets", "config_hash", "config_matches"}], "locations":
     {location: live members}, "owned": [names] (this node's; null for the CLI),
     "lag": {"queue", "fold_s"} (this node's; null for the CLI)}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .._config import Target
from .ownership import by_location, owners


def describe(
    *,
    redis_url: str,
    redis_ok: bool,
    redis_error: str | None,
    cluster_id: str | None,
    redis_now: float | None,
    live: Mapping[str, float],
    hashes: Mapping[str, str],
    targets: Iterable[Target],
    config_hash: str,
    node: str | None = None,
    owned: Iterable[str] | None = None,
    lag: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    locations = by_location(live)
    counts = dict.fromkeys(live, 0)
    for target in targets:
        for member in owners(target, locations):
            counts[member] += 1
    members = [
        {
            "member": member,
            "location": member.partition("/")[0],
            "node": member.partition("/")[2],
            "lease_left_s": None if redis_now is None else round(expiry - redis_now, 3),
            "targets": counts[member],
            "config_hash": hashes.get(member),
            "config_matches": hashes.get(member) == config_hash,
        }
        for member, expiry in sorted(live.items())
    ]
    return {
        "redis": {"url": redis_url, "ok": redis_ok, "error": redis_error},
        "cluster_id": cluster_id,
        "node": node,
        "config_hash": config_hash,
        "members": members,
        "locations": {loc: len(names) for loc, names in sorted(locations.items())},
        "owned": None if owned is None else sorted(owned),
        "lag": None if lag is None else dict(lag),
    }
