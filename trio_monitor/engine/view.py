"""What the HTTP server (and the watchdog) may read of a running monitor.

MonitorView depends on narrow protocols (States, Schedule), not on the monitor.

Nothing here blocks or awaits: the view reads the monitor's in-memory state. The last
24 hours per target are kept as hourly slots (checks, ok, latency histogram), the
finished hours frozen as compact blobs: about 2 KB per target, whatever the interval.
Phase timings (p50/p95 per phase over the same 24 hours and the same ok probes as the
latency) are kept the same way: one dict of bucket counts for all five phases in the
current hour, a blob per finished hour, nothing for targets without phases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import trio
from attrs import field, frozen

from .._config import NO_LABELS, Config, Target
from .._records import AlertEvent, ProbeResult, Record
from ..net.certs import TlsDetails
from ..policy._grouping import Group, decide, facts
from ..store.records import Histogram, PhaseHistograms, PhaseStats
from .state import DOWN, TargetState

HOURS = 24
STALL_LIMIT = 5.0  # seconds of event-loop lag that make the monitor unhealthy
# probes starting later than this share of the shortest interval (their median over
# the last minute) make the monitor unhealthy: it cannot keep its schedule
START_LAG_SHARE = 0.5


class _Hour:
    __slots__ = ("checks", "hist", "hour", "ok", "phases")

    def __init__(self, hour: int) -> None:
        self.hour, self.checks, self.ok = hour, 0, 0
        self.hist: Histogram | bytes = Histogram.empty()  # bytes once the hour is over
        # None until a probe with phases comes; bytes once the hour is over
        self.phases: PhaseHistograms | bytes | None = None

    def histogram(self) -> Histogram:
        return self.hist if isinstance(self.hist, Histogram) else Histogram.from_blob(self.hist)

    def phase_histograms(self) -> PhaseHistograms:
        if isinstance(self.phases, PhaseHistograms):
            return self.phases
        return PhaseHistograms.from_blob(self.phases)

    def close(self) -> None:
        """The hour is over: keep it compact."""
        self.hist = self.histogram().to_blob()
        if isinstance(self.phases, PhaseHistograms):
            self.phases = self.phases.to_blob()


class RecentStats:
    """Per target: the last 24 hourly slots of results, and the TLS details of its
    latest probe that had them (a probe that failed before a handshake leaves the
    certificate shown). O(1) per result."""

    def __init__(self) -> None:
        self._targets: dict[str, list[_Hour]] = {}  # oldest first, at most HOURS
        self._tls: dict[str, TlsDetails] = {}

    def observe(self, record: Record) -> None:
        if isinstance(record, ProbeResult):
            self._add(record)

    def _add(self, result: ProbeResult) -> None:
        if result.tls is not None:
            self._tls[result.target] = result.tls
        hour = int(result.ts // 3600)
        slots = self._targets.get(result.target)
        if slots is None:
            slots = self._targets[result.target] = []  # an empty deque is ~600 B
        if not slots or slots[-1].hour < hour:
            if slots:
                slots[-1].close()
            slots.append(_Hour(hour))
            del slots[:-HOURS]
        slot = slots[-1]
        if slot.hour != hour:
            return  # a late result for an hour already closed: not worth reopening it
        slot.checks += 1
        if result.ok:
            slot.ok += 1
            if result.latency_ms is not None:
                slot.histogram().add(result.latency_ms)  # the current hour: not a blob yet
            if result.phases_ms is not None:
                if not isinstance(slot.phases, PhaseHistograms):
                    slot.phases = PhaseHistograms()
                slot.phases.add_phases(result.phases_ms)

    def summary(self, name: str, now: float) -> tuple[int, float | None, float | None]:
        """-> (checks, availability %, p95 ms) over the 24 hours before `now`."""
        first = int(now // 3600) - HOURS + 1
        checks = ok = 0
        merged = Histogram.empty()
        for slot in self._targets.get(name, ()):
            if slot.hour >= first:
                checks += slot.checks
                ok += slot.ok
                merged.merge(slot.histogram())
        availability = round(100.0 * ok / checks, 3) if checks else None
        return checks, availability, merged.percentile(95)

    def tls(self, name: str) -> TlsDetails | None:
        return self._tls.get(name)

    def phases(self, name: str, now: float) -> dict[str, PhaseStats | None]:
        """-> per phase, p50/p95 over the 24 hours before `now` (the probes `summary`
        reads latencies of); None for a phase that did not happen in them."""
        first = int(now // 3600) - HOURS + 1
        merged = PhaseHistograms()
        for slot in self._targets.get(name, ()):
            if slot.hour >= first and slot.phases is not None:
                merged.merge(slot.phase_histograms())
        return merged.stats()

    def retain(self, names: set[str]) -> None:
        for name in [n for n in self._targets if n not in names]:
            del self._targets[name]
        for name in [n for n in self._tls if n not in names]:
            del self._tls[name]

    async def reconfigure(self, old: Config, new: Config) -> None:
        # by name: a target whose settings (even its URL) changed is the same target,
        # and its 24 hours go on; only removed targets are forgotten
        self.retain({t.name for t in new.targets})


@frozen
class TargetStatus:
    name: str
    url: str
    state: str  # "UP" | "DOWN" | "UNKNOWN"
    since: float | None  # unix seconds the state began
    last: ProbeResult | None
    interval_s: float
    checks_24h: int
    availability_24h_pct: float | None
    p95_24h_ms: float | None
    kind: str = "http"
    tls: TlsDetails | None = None  # of the latest probe that got a certificate
    # per phase of PHASES: p50/p95 over the same 24 hours; None where it did not happen
    phases_24h: dict[str, PhaseStats | None] = field(factory=dict)
    group: str | None = None  # the target's `group`
    labels: Mapping[str, str] = NO_LABELS  # the target's labels ([monitor]'s and its own)
    # early warning: its open `degrading` alert (the evidence), None without one
    degrading: AlertEvent | None = None
    # DOWN behind DOWN parents (depends_on): its page waits for them; () otherwise
    suppressed_by: tuple[str, ...] = ()


@frozen
class Health:
    ok: bool
    reason: str
    last_round_age_s: float | None
    max_age_s: float
    start_lag_p50_s: float | None = None  # over the last minute; None: no probe started
    start_lag_max_s: float | None = None


class States(Protocol):
    def get(self, name: str) -> TargetState | None: ...


class Warnings(Protocol):
    def warning(self, name: str) -> AlertEvent | None: ...


class Schedule(Protocol):
    """When rounds began, the worst event-loop stall of the last minute, and how late
    probes started in the last minute."""

    @property
    def first_due(self) -> float: ...

    @property
    def last_round_at(self) -> float | None: ...

    @property
    def worst_lag(self) -> tuple[float, float]: ...

    def recent_start_lag(self) -> tuple[float, float] | None: ...


class MonitorView:
    """Read-only, non-blocking access to a running monitor's state."""

    def __init__(
        self,
        config: Callable[[], Config],
        states: States,
        schedule: Schedule,
        recent: RecentStats,
        wall: Callable[[], float],
        warnings: Warnings | None = None,
        suppressed_by: Callable[[str], tuple[str, ...]] = lambda _: (),
        cluster: Callable[[], dict[str, Any] | None] = lambda: None,
    ) -> None:
        self._config = config
        self._suppressed_by = suppressed_by
        self._states = states
        self._schedule = schedule
        self._recent = recent
        self._wall = wall
        self._warnings = warnings
        self._cluster = cluster

    def cluster(self) -> dict[str, Any] | None:
        """The cluster as this node sees it (cluster/status.py); None: not a node."""
        return self._cluster()

    @property
    def store_path(self) -> str | None:
        return self._config().store_path

    @property
    def state_dir(self) -> Path | None:
        """Where files beside the history live (browser artifacts); None: nowhere."""
        from ..probes.browser.artifacts import state_dir

        return state_dir(self._config())

    def _status(self, target: Target, now: float) -> TargetStatus:
        state = self._states.get(target.name)
        checks, availability, p95 = self._recent.summary(target.name, now)
        return TargetStatus(
            name=target.name,
            url=target.url,
            state=state.state if state else "UNKNOWN",
            since=state.since if state else None,
            last=state.last if state else None,
            interval_s=target.interval,
            checks_24h=checks,
            availability_24h_pct=availability,
            p95_24h_ms=p95,
            kind=target.kind,
            tls=self._recent.tls(target.name),
            phases_24h=self._recent.phases(target.name, now),
            group=target.group,
            labels=target.labels,
            degrading=None if self._warnings is None else self._warnings.warning(target.name),
            suppressed_by=self._suppressed_by(target.name),
        )

    def targets(self) -> list[TargetStatus]:
        now = self._wall()
        return [self._status(t, now) for t in self._config().targets]

    def outage_groups(self) -> tuple[list[Group], list[str]]:
        """The DOWN targets grouped as storm grouping groups downs (policy/_grouping.py:
        the same facts, `group_by` and `group_min`), and those left alone; none grouped
        when grouping is off."""
        config = self._config()
        down = []
        for target in config.targets:
            st = self._states.get(target.name)
            if st is not None and st.state == DOWN:
                error = None if st.last is None or st.last.error is None else str(st.last.error)
                detail = None if st.last is None else st.last.error_detail
                down.append(
                    facts(target.name, target.url, error, detail, target.labels, target, st.last)
                )
        if not config.alerts.group_window:
            return [], [f.target for f in down]
        return decide(down, config.alerts.group_by, config.alerts.group_min)

    def target(self, name: str) -> TargetStatus | None:
        for t in self._config().targets:
            if t.name == name:
                return self._status(t, self._wall())
        return None

    def health(self) -> Health:
        """Healthy while rounds run on schedule: the last one began less than twice the
        shortest interval ago (before the first: its due time did), the event
        loop is not stalled, and probes start on time: the median start lag of the
        last minute is at most START_LAG_SHARE of the shortest interval."""
        schedule = self._schedule
        config = self._config()
        if not config.targets:
            return Health(True, "ok (no targets)", None, 0.0)
        shortest = min(t.interval for t in config.targets)
        max_age = 2 * shortest
        last = schedule.last_round_at
        reference = last if last is not None else schedule.first_due
        age = max(0.0, trio.current_time() - reference)
        start_lag = schedule.recent_start_lag()
        p50, worst = start_lag if start_lag is not None else (None, None)

        def health(ok: bool, reason: str, shown_age: float | None) -> Health:
            return Health(ok, reason, shown_age, max_age, p50, worst)

        if age > max_age:
            return health(False, f"no round for {age:.0f} s (limit {max_age:g} s)", age)
        shown_age = age if last is not None else None
        lag, when = schedule.worst_lag
        if lag > STALL_LIMIT and trio.current_time() - when <= max_age:
            return health(False, f"event loop stalled for {lag:.1f} s", shown_age)
        lag_limit = START_LAG_SHARE * shortest
        if p50 is not None and p50 > lag_limit:
            return health(
                False,
                f"probes start {p50:.1f} s late (median of the last minute, worst "
                f"{worst or 0.0:.1f} s; limit {lag_limit:g} s, half the shortest interval): "
                "more probes are due than concurrency serves",
                shown_age,
            )
        return health(True, "ok", shown_age)
