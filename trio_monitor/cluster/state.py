"""A cluster node's StateStore: the local thresholds pace its probes, Redis decides.

The node keeps MemoryStateStore for what stays local: how its own location sees each
target it probes (`pace`: confirmation probes) and the page's view of them. Its alerts
are not sent: the cluster's verdicts and alerts come from Redis (functions.lua), once
for all nodes. Only while Redis is unreachable with `redis_down = "local"` does the
node send its own (fail-open).
"""

from __future__ import annotations

from collections.abc import Callable

from .._config import Config, Target
from .._records import AlertEvent, ProbeResult
from ..engine.state import MemoryStateStore, TargetState


class ClusterStateStore:
    def __init__(self, local: MemoryStateStore, alert_locally: Callable[[], bool]) -> None:
        self.local = local
        self._alert_locally = alert_locally

    def get(self, name: str) -> TargetState | None:
        return self.local.get(name)

    def observe(
        self, target: Target, result: ProbeResult, now: float
    ) -> tuple[ProbeResult, list[AlertEvent]]:
        result, alerts = self.local.observe(target, result, now)
        return result, alerts if self._alert_locally() else []

    def restore_down(self, target: str, since: float, now: float, wall_now: float) -> None:
        self.local.restore_down(target, since, now, wall_now)

    def pace(self, name: str) -> str | None:
        return self.local.pace(name)

    async def reconfigure(self, old: Config, new: Config) -> None:
        await self.local.reconfigure(old, new)
