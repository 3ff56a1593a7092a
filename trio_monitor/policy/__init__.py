"""The alert policy: what happens to alerts between the state machine and the notifiers.

    StateStore.observe ──▶ alerts ──▶ Policy.process ──▶ Dispatcher.publish ──▶ JSON lines,
                                          ▲                history, outbox ──▶ routing
                                          │                (alerts/routing.py) ──▶ notifiers
                            Policy.tick (due times: reminders, window ends, group windows)

Each concern is one `Stage`, in a fixed order (`_stages`): maintenance windows and
silences hold alerts, dependencies suppress them, grouping folds simultaneous ones into
one, reminders repeat an outage's page. A stage marks alerts rather than dropping them
(`held_by`, `suppressed_by`, `group`): every alert is recorded, only deliverable ones
(`AlertEvent.deliverable`) reach notifiers.

No trio and no clock here: time comes in as arguments (`now` on trio's clock for due
times, an alert's own `ts` for wall time), so `trio-monitor simulate` replays history
through this very code, and the live monitor drives it from `engine/dispatch.py`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

from .._config import Config
from .._records import AlertEvent
from ..engine.state import StateView
from ..store.records import Incident
from ._dependencies import Dependencies
from ._grouping import Grouping
from ._maintenance import Holds, Silence, next_occurrence, occurrence, occurrences
from ._reminders import Reminders

__all__ = [
    "Grouping", "Holds", "Policy", "Silence", "Stage", "next_occurrence", "occurrence", "occurrences",
]  # fmt: skip


class Stage(Protocol):
    def process(self, alerts: list[AlertEvent], now: float) -> list[AlertEvent]:
        """A probe's alerts (never empty), or those an earlier stage's `tick` made, in
        order -> what goes on: the same alerts, marked, held back for later, or more."""
        ...

    def tick(self, now: float, wall: float) -> list[AlertEvent]:
        """Called at (or after) `next_tick`: alerts that are due now (their `ts` is `wall`)."""
        ...

    def next_tick(self) -> float | None:
        """When `tick` has something to do (trio's clock); None: nothing pending."""
        ...

    def flush(self, now: float, wall: float) -> list[AlertEvent]:
        """The monitor stops: alerts held back only for a moment (a group's window) go
        out now, so none is lost; what waits for a later time (a reminder) does not."""
        ...

    def configure(self, config: Config) -> None:
        """A reload's new config (all or nothing: it has been validated)."""
        ...


def _stages(config: Config, state: StateView) -> list[Stage]:
    """The stages in their order; each stage's module adds itself here."""
    return [
        Holds(config, state),  # maintenance windows and silences: hold
        Dependencies(config, state),  # suppress: a child's outage behind a DOWN parent
        # grouping: simultaneous downs with a shared cause -> one group_down
        Grouping(config, state),
        Reminders(config, state),  # repeat an outage's page while it lasts
    ]


class Policy:
    """The stages, run in order; what a stage's `tick` makes goes through the later ones."""

    def __init__(
        self, config: Config, state: StateView, stages: Sequence[Stage] | None = None
    ) -> None:
        self.stages = list(_stages(config, state) if stages is None else stages)

    def process(self, alerts: list[AlertEvent], now: float) -> list[AlertEvent]:
        return self._through(self.stages, alerts, now)

    def tick(self, now: float, wall: float) -> list[AlertEvent]:
        out: list[AlertEvent] = []
        for i, stage in enumerate(self.stages):
            due = stage.next_tick()
            if due is not None and due <= now:
                out += self._through(self.stages[i + 1 :], stage.tick(now, wall), now)
        return out

    def flush(self, now: float, wall: float) -> list[AlertEvent]:
        out: list[AlertEvent] = []
        for i, stage in enumerate(self.stages):
            out += self._through(self.stages[i + 1 :], stage.flush(now, wall), now)
        return out

    def resume(self, outages: Sequence[Incident], now: float, wall: float) -> None:
        """Outages still open in history (of configured targets, already DOWN in the
        state store) at start-up: stages that keep per-outage state pick theirs up."""
        for stage in self.stages:
            if isinstance(stage, Holds | Dependencies | Grouping | Reminders):
                stage.resume(outages, now, wall)

    def suppressed_by(self, name: str) -> tuple[str, ...]:
        """The DOWN parents a target's page waits for (dependencies); () if none."""
        for stage in self.stages:
            if isinstance(stage, Dependencies):
                return stage.suppressed_by(name)
        return ()

    def next_tick(self) -> float:
        """The earliest stage's due time; inf when none is pending."""
        return min((t for s in self.stages if (t := s.next_tick()) is not None), default=math.inf)

    @staticmethod
    def _through(stages: Sequence[Stage], alerts: list[AlertEvent], now: float) -> list[AlertEvent]:
        for stage in stages:
            if not alerts:
                break
            alerts = stage.process(alerts, now)
        return alerts

    async def reconfigure(self, old: Config, new: Config) -> None:
        for stage in self.stages:
            stage.configure(new)
