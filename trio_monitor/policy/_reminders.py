"""Reminders (`repeat`): while an outage lasts, its page is repeated.

A page (a deliverable `down`, `group_down`, or a `flap_end` that settled DOWN) starts
the outage's reminders: one `reminder` alert at each interval among the target's
`[targets.alerts] repeat` and the `repeat` of the notifiers that take its reminders
(alerts/routing.py `reminder_intervals`; a group's: its members'), each interval on its
own grid anchored on the page: reminder k of interval r is due `page + k * r`, never
`previous tick + r`, so a late tick does not push the next one back; after a stall
longer than an interval one reminder goes out, numbered for the latest due time.
Routing then gives each notifier the reminders of its own interval.

They stop at the outage's end (`up`, `group_up`, `flapping`, a `flap_end` UP) or
when the state store no longer says DOWN (no member of a group does). Nothing is
made for held, suppressed or folded alerts: those were no page (a suppressed child's
page, sent when its parents recover, starts its reminders then).

Restarts: an outage open in history whose page went out (incidents.paged) resumes
its grid from that page (`resume`); due times that passed while the monitor was not
running are not made up, the next one keeps its number (reminder k is always the
page + k * r one).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable

import attrs
from attrs import define

from .._config import Config, Target, human_duration
from .._records import AlertEvent
from ..alerts.routing import reminder_intervals
from ..engine.state import DOWN, StateView
from ..store.records import Incident
from ._resume import resumed_down


def _pages(alert: AlertEvent) -> bool:
    """The alert that tells notifiers an outage began (and was delivered)."""
    return alert.deliverable and (
        alert.event in ("down", "group_down") or (alert.event == "flap_end" and alert.state == DOWN)
    )


def _ends(alert: AlertEvent) -> bool:
    return alert.event in ("up", "group_up", "flapping") or (
        alert.event == "flap_end" and alert.state != DOWN
    )


@define
class _Outage:
    page: AlertEvent
    anchor: float  # trio's clock at the page: reminder k of interval r is due anchor + k * r
    every: frozenset[float]
    generation: int  # heap entries of an older generation are stale


class Reminders:
    def __init__(self, config: Config, state: StateView) -> None:
        self._state = state
        self._outages: dict[str, _Outage] = {}  # by the page's target (a group's id)
        # (due, target, interval, generation, reminder number): the earliest first
        self._due: list[tuple[float, str, float, int, int]] = []
        self._generation = 0
        self._now = -math.inf  # the latest trio time seen (a reload's new intervals start there)
        self.configure(config)

    def configure(self, config: Config) -> None:
        self._alerts = config.alerts
        self._targets = {t.name: t for t in config.targets}
        for name, outage in list(self._outages.items()):
            every = self._intervals(outage.page)
            if not every:
                del self._outages[name]
            elif every != outage.every:
                self._schedule(name, outage.page, outage.anchor, every, self._now)

    def _intervals(self, page: AlertEvent) -> frozenset[float]:
        targets = [t for n in page.members or (page.target,) if (t := self._targets.get(n))]
        return frozenset().union(*(reminder_intervals(self._alerts, t) for t in targets))

    def _schedule(
        self, name: str, page: AlertEvent, anchor: float, every: frozenset[float], after: float
    ) -> None:
        """Reminders of `page` on each interval's grid from `anchor`, the first due
        after `after` (trio's clock)."""
        self._generation += 1
        self._outages[name] = _Outage(page, anchor, every, self._generation)
        for r in every:
            k = max(1, math.floor((after - anchor) / r) + 1)
            heapq.heappush(self._due, (anchor + k * r, name, r, self._generation, k))

    def process(self, alerts: list[AlertEvent], now: float) -> list[AlertEvent]:
        self._now = max(self._now, now)
        for alert in alerts:
            if _pages(alert):
                every = self._intervals(alert)
                if every:
                    self._schedule(alert.target, alert, now, every, now)
            elif _ends(alert):
                self._outages.pop(alert.target, None)
        return alerts

    def _still_down(self, outage: _Outage) -> bool:
        names = outage.page.members or (outage.page.target,)
        return any((st := self._state.get(n)) is not None and st.state == DOWN for n in names)

    def tick(self, now: float, wall: float) -> list[AlertEvent]:
        self._now = max(self._now, now)
        out = []
        while self._due and self._due[0][0] <= now:
            _, name, r, generation, k = heapq.heappop(self._due)
            outage = self._outages.get(name)
            if outage is None or outage.generation != generation:
                continue
            if not self._still_down(outage):
                del self._outages[name]
                continue
            k = max(k, math.floor((now - outage.anchor) / r))  # the latest one due, once
            out.append(self._reminder(outage.page, r, k, wall))
            heapq.heappush(self._due, (outage.anchor + (k + 1) * r, name, r, generation, k + 1))
        return out

    def _reminder(self, page: AlertEvent, every: float, number: int, wall: float) -> AlertEvent:
        since = page.ts if page.since is None else page.since
        reason, what = page.reason, page.detail
        st = None if page.members else self._state.get(page.target)
        if st is not None and st.last is not None and not st.last.ok:
            reason = None if st.last.error is None else str(st.last.error)
            what = st.last.error_detail
        cause = ": ".join(p for p in (reason, what) if p)
        downtime = wall - since
        return AlertEvent(
            ts=wall,
            target=page.target,
            url=page.url,
            event="reminder",
            reason=reason,
            detail=f"still down after {human_duration(downtime)}" + (f": {cause}" if cause else ""),
            since=since,
            downtime_s=round(downtime, 3),
            labels=page.labels,
            group=page.group,
            cause=page.cause,
            members=page.members,
            repeat_s=every,
            reminder=number,
        )

    def next_tick(self) -> float | None:
        while self._due and self._stale(self._due[0]):
            heapq.heappop(self._due)
        return self._due[0][0] if self._due else None

    def _stale(self, entry: tuple[float, str, float, int, int]) -> bool:
        outage = self._outages.get(entry[1])
        return outage is None or outage.generation != entry[3]

    def flush(self, now: float, wall: float) -> list[AlertEvent]:
        return []  # a reminder waits for its time; a restart resumes the grid from history

    def resume(self, outages: Iterable[Incident], now: float, wall: float) -> None:
        """Outages open in history whose page went out: their grids go on."""
        for incident in outages:
            target = self._targets.get(incident.target)
            if target is None or incident.paged is None:
                continue
            page = _page(target, incident)
            every = self._intervals(page)
            if every:
                self._schedule(target.name, page, now - (wall - incident.paged), every, now)
        self._now = max(self._now, now)


def _page(target: Target, incident: Incident) -> AlertEvent:
    """The page of an outage resumed from history (its `down`, as far as it is kept)."""
    page = resumed_down(target, incident)
    return page if incident.paged is None else attrs.evolve(page, ts=incident.paged)
