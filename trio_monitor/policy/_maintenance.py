"""Maintenance windows and runtime silences: the alert policy's first stage (`Holds`).

A [[maintenance]] window (config) or a silence (`/api/v1/silences`, kept in the history
store) holds the alerts of the targets it matches: they are marked `held_by`
("maintenance:NAME" or "silence:ID"), recorded like any alert, and not delivered.
Probes go on as ever. Two exceptions keep pages honest:

- an `up` whose `down` was delivered before the hold began is delivered (it closes a
  page someone has open);
- when the hold ends (the window's end, the silence's `until` or its DELETE), a target
  still DOWN whose `down` was held gets one `down` then (ts: that moment; `since`: the
  outage's start; `detail` says it was held).

When a window holds is pure arithmetic on wall time (`occurrence`, `next_occurrence`):
a recurring window starts at each time its cron expression fires in its zone (cronsim,
across daylight-saving changes: a start that does not exist, 02:30 on a spring-forward
day, is at 03:00; one that exists twice, 01:30 on a fall-back day, is the first) and
lasts `duration` of elapsed time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from zoneinfo import ZoneInfo

import attrs
from attrs import frozen
from cronsim import CronSim

from .._config import Config, Maintenance, labels_match
from .._records import AlertEvent, rfc3339
from ..engine.state import DOWN, StateView
from ..store.records import Incident
from ._resume import resumed_down

MAINTENANCE, SILENCE = "maintenance:", "silence:"


@frozen
class Silence:
    """A runtime silence: it holds the alerts of the targets it matches until `until`
    (or until it is expired early: `until` is then that moment)."""

    id: str
    start: float  # when it was added (unix seconds)
    until: float
    match: Mapping[str, str] | None = None  # labels, all of them; None: by name only
    targets: tuple[str, ...] = ()
    comment: str = ""
    author: str = ""

    def matches(self, name: str, labels: Mapping[str, str] | None) -> bool:
        if name in self.targets:
            return True
        return self.match is not None and labels_match(self.match, labels)

    def holds(self, name: str, labels: Mapping[str, str] | None, wall: float) -> bool:
        return self.start <= wall < self.until and self.matches(name, labels)


def occurrence(window: Maintenance, wall: float) -> tuple[float, float] | None:
    """The window's [start, end) that `wall` is in, or None: it does not hold then."""
    if window.cron is None:
        assert window.start is not None
        assert window.end is not None
        return (window.start, window.end) if window.start <= wall < window.end else None
    assert window.duration is not None
    # the first start after wall - duration: the window holds if it is not after wall
    start = _next_start(window.cron, window.timezone, wall - window.duration)
    return (start, start + window.duration) if start <= wall else None


def next_occurrence(window: Maintenance, wall: float) -> tuple[float, float] | None:
    """The window's occurrence holding at `wall`, else its next one; None: no more."""
    if window.cron is None:
        assert window.start is not None
        assert window.end is not None
        return (window.start, window.end) if wall < window.end else None
    held = occurrence(window, wall)
    if held is not None:
        return held
    assert window.duration is not None
    start = _next_start(window.cron, window.timezone, wall)
    return start, start + window.duration


def occurrences(window: Maintenance, since: float, until: float) -> Iterator[tuple[float, float]]:
    """The window's occurrences that overlap [since, until), in order (a report's)."""
    span = next_occurrence(window, since)
    while span is not None and span[0] < until:
        yield span
        if window.cron is None:
            return
        span = next_occurrence(window, span[1])


def _next_start(cron: str, zone: str, after: float) -> float:
    """The first time `cron` fires in `zone` strictly after `after` (unix seconds)."""
    whole = math.floor(after)
    fires = CronSim(cron, datetime.fromtimestamp(whole, ZoneInfo(zone)))
    start = next(fires).timestamp()
    # cronsim counts from the whole second: one firing at that very second came first
    return start if start > after else next(fires).timestamp()


def holder(
    windows: Iterable[Maintenance],
    silences: Iterable[Silence],
    name: str,
    labels: Mapping[str, str] | None,
    wall: float,
) -> tuple[str, float, float] | None:
    """What holds this target's alerts at `wall` -> ("maintenance:NAME" or
    "silence:ID", when that hold began, when it ends), windows first; None: nothing."""
    for window in windows:
        if window.matches(name, labels) and (span := occurrence(window, wall)) is not None:
            return MAINTENANCE + window.name, *span
    for silence in silences:
        if silence.holds(name, labels, wall):
            return SILENCE + silence.id, silence.start, silence.until
    return None


@attrs.define
class _Held:
    down: AlertEvent  # the target's `down`, held
    by: str
    until: float  # wall time the hold ends


class Holds:
    """The stage: marks alerts of held targets, remembers the `down`s it held, and at
    each hold's end sends one `down` for a target that is still DOWN."""

    def __init__(self, config: Config, state: StateView) -> None:
        self._windows = config.maintenance
        self._targets = {t.name: t for t in config.targets}
        self._state = state
        self._silences: dict[str, Silence] = {}
        self._held: dict[str, _Held] = {}  # target -> the down it holds
        self._offset = 0.0  # wall - trio clock, as last seen: due times on trio's clock
        self._changed = False  # silences or windows changed: look again at once

    # --- silences (the monitor's API handlers call these) ---

    def restore(self, silences: Iterable[Silence]) -> None:
        """Silences from the history store, at start-up."""
        for silence in silences:
            self._silences[silence.id] = silence

    def silence(self, silence: Silence) -> None:
        self._silences[silence.id] = silence
        self._changed = True

    def expire(self, silence_id: str, wall: float) -> Silence | None:
        """End a silence now. -> it as it ended; None: no such silence (or over)."""
        silence = self._silences.get(silence_id)
        if silence is None or silence.until <= wall:
            return None
        self._silences[silence_id] = ended = attrs.evolve(silence, until=max(wall, silence.start))
        self._changed = True
        return ended

    def silences(self, wall: float) -> list[Silence]:
        """Those not over at `wall` (active, or added to start later), oldest first."""
        return sorted((s for s in self._silences.values() if s.until > wall), key=lambda s: s.start)

    def held_by(self, name: str, labels: Mapping[str, str] | None, wall: float) -> str | None:
        """What holds this target's alerts now (the API's target `maintenance`)."""
        hold = holder(self._windows, self._silences.values(), name, labels, wall)
        return None if hold is None else hold[0]

    def resume(self, outages: Iterable[Incident], now: float, wall: float) -> None:
        """Outages open in history at start-up (after `restore`): one whose `down` was
        never paged (nor suppressed: dependencies owe that page) and that a hold holds
        now was held, so it stays held: its `up` is held too, or one `down` goes out
        when the hold ends."""
        self._offset = wall - now
        for incident in outages:
            target = self._targets.get(incident.target)
            if target is None or incident.paged is not None or incident.suppressed_by:
                continue
            hold = holder(self._windows, self._silences.values(), target.name, target.labels, wall)
            if hold is not None:
                self._held[target.name] = _Held(resumed_down(target, incident), hold[0], hold[2])

    def windows(self) -> tuple[Maintenance, ...]:
        return self._windows

    # --- the stage ---

    def process(self, alerts: list[AlertEvent], now: float) -> list[AlertEvent]:
        out = []
        for alert in alerts:
            self._offset = alert.ts - now
            hold = holder(
                self._windows, self._silences.values(), alert.target, alert.labels, alert.ts
            )
            held = self._held.get(alert.target)
            if alert.event == "up" and held is not None:
                # its down was never delivered: neither is its up
                del self._held[alert.target]
                alert = attrs.evolve(alert, held_by=hold[0] if hold else held.by)
            elif hold is not None and alert.event != "up":
                # an up whose down went out before the hold closes that page: delivered
                if alert.event == "down":
                    self._held[alert.target] = _Held(alert, hold[0], hold[2])
                alert = attrs.evolve(alert, held_by=hold[0])
            out.append(alert)
        return out

    def tick(self, now: float, wall: float) -> list[AlertEvent]:
        self._offset = wall - now
        self._changed = False
        self._silences = {i: s for i, s in self._silences.items() if s.until > wall}
        out = []
        for name, held in list(self._held.items()):
            hold = holder(self._windows, self._silences.values(), name, held.down.labels, wall)
            if hold is not None:  # still held: by the same, or by another window or silence
                held.by, _, held.until = hold
                continue
            del self._held[name]
            state = self._state.get(name)
            if state is not None and state.state == DOWN:
                out.append(_released(held, wall))
        return out

    def next_tick(self) -> float | None:
        if self._changed:
            return -math.inf
        if not self._held:
            return None
        return min(h.until for h in self._held.values()) - self._offset

    def flush(self, now: float, wall: float) -> list[AlertEvent]:
        return []  # holds last for hours: what is held at a stop stays held

    def configure(self, config: Config) -> None:
        self._windows = config.maintenance
        self._targets = {t.name: t for t in config.targets}
        self._changed = True


def _released(held: _Held, wall: float) -> AlertEvent:
    """The one `down` a target still DOWN gets when its hold ends."""
    down = held.down
    note = f"held by {held.by} since {rfc3339(down.ts)}; still down at its end"
    return attrs.evolve(
        down,
        ts=wall,
        since=down.since if down.since is not None else down.ts,
        held_by=None,
        detail=f"{down.detail} ({note})" if down.detail else note,
    )
