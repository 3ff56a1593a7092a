"""Dependencies (`depends_on`): a child's outage behind a DOWN parent is not paged.

A child's `down` that comes while any of its parents, followed transitively, is DOWN
(the state store says so, whether or not that parent's own page went out) is marked
`suppressed_by` those parents: recorded, not delivered. The stage remembers it; the
child's later `up` is suppressed the same way (nobody heard of the outage, so nobody
hears of its end). When no parent is DOWN any more (an alert of a parent passes:
`up`, `flap_end`, ...; or a reload changes the dependencies) a child still DOWN gets
its `down` then, with `ts` that moment, `since` its outage's start and a `detail`
saying which parents it was suppressed behind.

Alerts already held (maintenance, silences) are left alone: they are not sent anyway,
and when their hold ends they come through this stage like any alert.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import attrs

from .._config import Config
from .._records import AlertEvent
from ..engine.state import DOWN, StateView
from ..store.records import Incident
from ._resume import resumed_down


def _parents_text(parents: tuple[str, ...]) -> str:
    verb = "was" if len(parents) == 1 else "were"
    return f"{', '.join(parents)} {verb} down"


class Dependencies:
    def __init__(self, config: Config, state: StateView) -> None:
        self._state = state
        # child -> its suppressed `down` (marked), while the child's page is owed
        self._suppressed: dict[str, AlertEvent] = {}
        self._recheck = False  # a reload changed who depends on whom: look again at a tick
        self._now = -math.inf  # the latest time seen: when such a look is due
        self.configure(config)

    def configure(self, config: Config) -> None:
        self._targets = {t.name: t for t in config.targets}
        self._parents = {t.name: t.depends_on for t in config.targets if t.depends_on}
        self._parent_names = {p for parents in self._parents.values() for p in parents}
        # dependencies may have changed: owed pages whose parents are no longer DOWN (or
        # no longer parents) go out at the next tick (a removed target's state is gone:
        # nothing is sent for it)
        self._recheck = self._recheck or bool(self._suppressed)

    def suppressed_by(self, name: str) -> tuple[str, ...]:
        """The parents a DOWN target's page waits for; () when it was paged (or is UP)."""
        alert = self._suppressed.get(name)
        return () if alert is None or alert.suppressed_by is None else alert.suppressed_by

    def down_parents(self, name: str) -> tuple[str, ...]:
        """The target's parents, followed transitively, that are DOWN now (nearest first)."""
        found: list[str] = []
        seen = {name}
        pending = deque(self._parents.get(name, ()))
        while pending:
            parent = pending.popleft()
            if parent in seen:
                continue
            seen.add(parent)
            st = self._state.get(parent)
            if st is not None and st.state == DOWN:
                found.append(parent)
            pending += self._parents.get(parent, ())
        return tuple(found)

    def process(self, alerts: list[AlertEvent], now: float) -> list[AlertEvent]:
        self._now = max(self._now, now)
        out: list[AlertEvent] = []
        released_by: float | None = None  # the ts of a parent's alert: children may be owed
        for alert in alerts:
            if alert.held_by is None:
                alert = self._mark(alert)
            out.append(alert)
            if alert.target in self._parent_names and self._suppressed:
                released_by = alert.ts
        if released_by is not None:
            out += self._release(released_by)
        return out

    def _mark(self, alert: AlertEvent) -> AlertEvent:
        name = alert.target
        if alert.event == "down":
            parents = self.down_parents(name)
            if not parents:
                self._suppressed.pop(name, None)
                return alert
            alert = attrs.evolve(alert, suppressed_by=parents)
            self._suppressed[name] = alert
        elif alert.event == "up" and name in self._suppressed:
            alert = attrs.evolve(alert, suppressed_by=self._suppressed.pop(name).suppressed_by)
        elif alert.event == "flapping":
            self._suppressed.pop(name, None)  # its changes are announced as flapping now
        return alert

    def _release(self, wall: float) -> list[AlertEvent]:
        """The owed pages of children whose parents are no longer DOWN (ts `wall`)."""
        out = []
        for name, alert in list(self._suppressed.items()):
            st = self._state.get(name)
            if st is None or st.state != DOWN:
                del self._suppressed[name]  # recovered without an `up` (flapping, removed)
            elif not self.down_parents(name):
                del self._suppressed[name]
                note = f"suppressed while {_parents_text(alert.suppressed_by or ())}"
                out.append(
                    attrs.evolve(
                        alert,
                        ts=wall,
                        suppressed_by=None,
                        detail=f"{alert.detail}; {note}" if alert.detail else note,
                    )
                )
        return out

    def tick(self, now: float, wall: float) -> list[AlertEvent]:
        self._recheck = False
        return self._release(wall)

    def next_tick(self) -> float | None:
        return self._now if self._recheck else None

    def flush(self, now: float, wall: float) -> list[AlertEvent]:
        return []  # an owed page waits for its parents; a restart resumes it from history

    def resume(self, outages: Iterable[Incident], now: float, wall: float) -> None:
        """Outages open in history whose page is still owed (suppressed, not paged)."""
        for incident in outages:
            target = self._targets.get(incident.target)
            if target is not None and incident.suppressed_by and incident.paged is None:
                self._suppressed[target.name] = resumed_down(
                    target, incident, suppressed_by=incident.suppressed_by
                )
        self._recheck = bool(self._suppressed)
        self._now = max(self._now, now)
