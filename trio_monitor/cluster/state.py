"""A cluster node's StateStore: the local thresholds pace its probes, Redis decides.

The node keeps MemoryStateStore for what stays local: how its own location sees each
target it probes (`pace`: confirmation probes) and the page's view of them. Its verdict
alerts are not sent: the cluster's verdicts and alerts come from Redis (functions.lua),
once for all nodes. A result's own events and early warning's `degrading` are handed
to the node, which puts them in the outbox once (ClusterNode.offer_event). Only while
Redis is unreachable with `redis_down = "local"` does the node send its own (fail-open).
"""

from __future__ import annotations

from collections.abc import Callable

from .._config import Config, Target
from .._records import AlertEvent, ProbeResult
from ..engine.dispatch import Warnings
from ..engine.state import MemoryStateStore, TargetState
from .client import RESULT_EVENTS


def _to_cluster(
    alerts: list[AlertEvent], locally: bool, send: Callable[[AlertEvent], None]
) -> list[AlertEvent]:
    """`alerts` to deliver here (Redis away with redis_down = "local"), else [] and those
    that are no verdict change handed to the node for the outbox (`send`)."""
    if locally:
        return alerts
    for alert in alerts:
        if alert.event in RESULT_EVENTS or alert.event == "degrading":
            send(alert)
    return []


class ClusterStateStore:
    """The verdict's alerts (down, up, flapping) are Redis's; a result's own events
    (`slow`, `content_changed`, certificates) go to the outbox through `send`."""

    def __init__(
        self,
        local: MemoryStateStore,
        alert_locally: Callable[[], bool],
        send: Callable[[AlertEvent], None],
    ) -> None:
        self.local = local
        self._alert_locally = alert_locally
        self._send = send

    def get(self, name: str) -> TargetState | None:
        return self.local.get(name)

    def observe(
        self, target: Target, result: ProbeResult, now: float
    ) -> tuple[ProbeResult, list[AlertEvent]]:
        result, alerts = self.local.observe(target, result, now)
        return result, _to_cluster(alerts, self._alert_locally(), self._send) if alerts else []

    def restore_down(self, target: str, since: float, now: float, wall_now: float) -> None:
        self.local.restore_down(target, since, now, wall_now)

    def pace(self, name: str) -> str | None:
        return self.local.pace(name)

    async def reconfigure(self, old: Config, new: Config) -> None:
        await self.local.reconfigure(old, new)


class ClusterWarnings:
    """Early warning in a cluster: each node's models warn about what it probes, and
    the warning goes to the outbox (`send`), once per target and signal between two
    verdict changes across the cluster (functions.lua `event`)."""

    def __init__(
        self,
        early: Warnings,
        alert_locally: Callable[[], bool],
        send: Callable[[AlertEvent], None],
    ) -> None:
        self._early = early
        self._alert_locally = alert_locally
        self._send = send

    def observe(self, target: Target, result: ProbeResult, now: float) -> list[AlertEvent]:
        alerts = self._early.observe(target, result, now)
        return _to_cluster(alerts, self._alert_locally(), self._send) if alerts else []
