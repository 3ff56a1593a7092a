"""Seeded benchmark targets, and the trio-monitor config and aiohttp target list for them.

Every target has a designed outcome: `ok` (200 after its latency), `error` (500 after
its latency), `hang` (never answers) or `closed` (connection refused). Latencies are
drawn log-uniform from 20-400 ms; failures are an exact share of the targets, placed
at random (seeded), so two runs with the same seed probe the same farm the same way.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

import tomli_w

LATENCY_MS = (20, 400)
MIXED = {"error": 0.05, "hang": 0.02, "closed": 0.03}  # the rest are healthy
HEALTHY: dict[str, float] = {}

# the error kind each designed failure should be reported with (trio-monitor's names)
EXPECTED_ERROR = {"ok": None, "error": "status", "hang": "timeout", "closed": "connect"}


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    kind: str  # ok | error | hang | closed
    latency_ms: int  # designed response delay (0 for hang and closed)

    @property
    def healthy(self) -> bool:
        return self.kind == "ok"


def _latency(rng: random.Random) -> int:
    low, high = LATENCY_MS
    return round(math.exp(rng.uniform(math.log(low), math.log(high))))


def _url(kind: str, port: int, latency_ms: int, name: str, scheme: str) -> str:
    path = {"ok": f"/d/{latency_ms}", "error": f"/e/{latency_ms}"}.get(kind, "/hang")
    return f"{scheme}://127.0.0.1:{port}{path}?t={name}"


def generate(
    count: int,
    ports: list[int],
    closed: list[int],
    failures: dict[str, float],
    seed: int,
    *,
    scheme: str = "http",
    delay_ms: int | None = None,
) -> list[Target]:
    """`count` targets over the farm's ports; `failures` maps a failure kind to its share.
    `delay_ms`: every target answers after exactly this delay (else log-uniform)."""
    rng = random.Random(seed)
    kinds = [kind for kind, share in failures.items() for _ in range(round(count * share))]
    kinds += ["ok"] * (count - len(kinds))
    rng.shuffle(kinds)
    targets = []
    for i, kind in enumerate(kinds):
        name = f"t{i:05d}"
        latency = (delay_ms or _latency(rng)) if kind in ("ok", "error") else 0
        port = closed[i % len(closed)] if kind == "closed" else ports[i % len(ports)]
        targets.append(Target(name, _url(kind, port, latency, name, scheme), kind, latency))
    return targets


def write_toml(
    path: Path, targets: list[Target], monitor: dict, history: bool, per_target: dict
) -> None:
    """trio-monitor's config: `monitor` is the [monitor] table, one [[targets]] per target
    with the `per_target` keys added; the history store beside it when `history`."""
    doc = {
        "monitor": monitor,
        "storage": {"enabled": history},
        "targets": [{"name": t.name, "url": t.url, **per_target} for t in targets],
    }
    path.write_bytes(tomli_w.dumps(doc).encode())


def write_json(path: Path, targets: list[Target]) -> None:
    path.write_text(json.dumps([asdict(t) for t in targets]))


def read_json(path: Path) -> list[Target]:
    return [Target(**item) for item in json.loads(path.read_text())]
