"""From events to a `Report`: the `Aggregator` keeps per target only counters, a latency
`Histogram` and a fixed number of time slots (O(targets x slots) memory whatever the
range, never a raw row); `build_report` turns it into the frozen views the renderers
print. The rules it applies are in the package docstring."""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from attrs import define, field, frozen

from ..net.certs import describe_expiry
from ..store.records import (
    Certificate,
    ContentChange,
    Histogram,
    HourRollup,
    Incident,
    PhaseHistograms,
    PhaseStats,
    Sample,
    StoredWarning,
)

SLOTS = 48  # time slots over [since, until) for the charts
DEFAULT_SLOWEST = 5  # targets listed by p95
EXPIRING_WITHIN = 30 * 86400.0  # certificates listed when they expire this soon after `until`
# an early warning is "followed by an outage" when one of its target's incidents in the
# report begins within this long after it
OUTAGE_WITHIN = 6 * 3600.0
HOUR = 3600
# kinds whose latency is not a response time (push: the job's run time, start to ping):
# no place among the slowest
NOT_RESPONSE_TIME = frozenset({"push"})
# what a kind's latency measures, where it is not "the whole probe"
LATENCY_MEANS = {
    "browser": "navigation to wait_for (page load)",
    "http": "request to end of body",
    "icmp": "average echo round trip",
    "push": "the job's run time (/start to ping)",
}


def _zeros(n: int) -> array[float]:
    return array("d", bytes(8 * n))


@define
class _TargetAgg:
    """Everything kept for one target: counters, a histogram, SLOTS x 4 numbers."""

    name: str
    slots: int
    url: str | None = None
    kind: str | None = None  # the probe kind; None when no source said
    checks: int = 0
    ok: int = 0
    held: int = 0  # probes left out: in a maintenance window or silence (--exclude-maintenance)
    latency_sum: float = 0.0  # over ok probes with a latency
    latency_n: int = 0
    latency_min: float | None = None
    latency_max: float | None = None
    histogram: Histogram = field(factory=Histogram.empty)
    phases: PhaseHistograms = field(factory=PhaseHistograms)  # of the same ok probes
    incidents: list[Incident] = field(factory=list)
    changes: int = 0
    # failed probes by error kind; raw samples only (hourly rollups keep no error kinds)
    errors: dict[str, int] = field(factory=dict)
    certificate: Certificate | None = None  # the latest one known, at any time
    warnings: list[StoredWarning] = field(factory=list)  # `degrading` alerts in range
    # per slot; floats because an hourly rollup is spread over the slots it overlaps;
    # arrays of doubles, not lists of float objects: 4 x 8 bytes a slot, per target
    slot_checks: array[float] = field(init=False)
    slot_failures: array[float] = field(init=False)
    slot_latency_sum: array[float] = field(init=False)
    slot_latency_n: array[float] = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.slot_checks = _zeros(self.slots)
        self.slot_failures = _zeros(self.slots)
        self.slot_latency_sum = _zeros(self.slots)
        self.slot_latency_n = _zeros(self.slots)

    def extremes(self, low: float | None, high: float | None) -> None:
        if low is not None:
            self.latency_min = low if self.latency_min is None else min(self.latency_min, low)
        if high is not None:
            self.latency_max = high if self.latency_max is None else max(self.latency_max, high)


class Aggregator:
    """Folds samples, rollups, incidents and content changes of [since, until) into
    per-target counters and SLOTS time slots. `only`: the targets wanted (None: all)."""

    def __init__(
        self,
        since: float,
        until: float,
        *,
        slots: int = SLOTS,
        only: Iterable[str] | None = None,
        intervals: Mapping[str, float] | None = None,
        held: Mapping[str, Sequence[tuple[float, float]]] | None = None,
    ) -> None:
        if not since < until:
            raise ValueError("since must be before until")
        self.since = since
        self.until = until
        self.slots = slots
        self.width = (until - since) / slots
        self.only = None if only is None else frozenset(only)
        # probe interval per target (the config's, or what the data shows): an open
        # incident counts as downtime up to its last probe plus one interval
        self.intervals: dict[str, float] = dict(intervals or {})
        # report --exclude-maintenance: per target, the [start, end) spans its alerts
        # were held (maintenance windows, silences); probes in them are left out
        self.held: dict[str, Sequence[tuple[float, float]]] = dict(held or {})
        self.targets: dict[str, _TargetAgg] = {}
        self.seen: set[str] = set()  # every target name a source mentioned, wanted or not
        self.outside = 0  # samples seen outside the range (JSON lines notes them)
        self.first_ts: float | None = None  # of every sample seen, in range or not
        self.last_ts: float | None = None

    def wants(self, target: str) -> bool:
        return self.only is None or target in self.only

    def target(self, name: str, url: str | None = None, kind: str | None = None) -> _TargetAgg:
        """The target's state, created on first sight (so it is listed without data)."""
        agg = self.targets.get(name)
        if agg is None:
            agg = self.targets[name] = _TargetAgg(name, self.slots)
        if url is not None:
            agg.url = url
        if kind is not None:
            agg.kind = kind
        return agg

    def _held(self, target: str, ts: float) -> bool:
        return any(start <= ts < end for start, end in self.held.get(target, ()))

    def _slot(self, ts: float) -> int:
        return max(0, min(self.slots - 1, int((ts - self.since) / self.width)))

    def add_sample(self, s: Sample) -> None:
        if not self.wants(s.target):
            return
        agg = self.target(s.target)
        self.first_ts = s.ts if self.first_ts is None else min(self.first_ts, s.ts)
        self.last_ts = s.ts if self.last_ts is None else max(self.last_ts, s.ts)
        if not self.since <= s.ts < self.until:
            self.outside += 1
            return
        if self._held(s.target, s.ts):
            agg.held += 1
            return
        i = self._slot(s.ts)
        agg.checks += 1
        agg.slot_checks[i] += 1
        if not s.ok:
            agg.slot_failures[i] += 1
            error = s.error or "unknown"
            agg.errors[error] = agg.errors.get(error, 0) + 1
            return
        agg.ok += 1
        if s.latency_ms is not None:
            agg.latency_sum += s.latency_ms
            agg.latency_n += 1
            agg.extremes(s.latency_ms, s.latency_ms)
            agg.histogram.add(s.latency_ms)
            agg.slot_latency_sum[i] += s.latency_ms
            agg.slot_latency_n[i] += 1
        if s.phases is not None:
            agg.phases.add(s.phases)

    def add_rollup(self, r: HourRollup) -> None:
        """A whole hour counts if its middle is in the range (so an edge is off by at most
        half an hour); its counts are spread over the slots its in-range part overlaps."""
        if not self.wants(r.target) or not self.since <= r.hour + HOUR / 2 < self.until:
            return
        agg = self.target(r.target)
        if self._held(r.target, r.hour + HOUR / 2):  # an hour is held if its middle is
            agg.held += r.checks
            return
        latency_n = r.histogram.total
        agg.checks += r.checks
        agg.ok += r.checks - r.failures
        agg.latency_sum += r.latency_sum
        agg.latency_n += latency_n
        agg.extremes(r.latency_min, r.latency_max)
        agg.histogram.merge(r.histogram)
        agg.phases.merge(r.phases)
        lo, hi = max(r.hour, self.since), min(r.hour + HOUR, self.until)
        first = self._slot(lo)
        last = max(first, min(self.slots - 1, math.ceil((hi - self.since) / self.width) - 1))
        for i in range(first, last + 1):
            s_lo = self.since + i * self.width
            part = (min(hi, s_lo + self.width) - max(lo, s_lo)) / (hi - lo)
            if part <= 0:
                continue
            agg.slot_checks[i] += r.checks * part
            agg.slot_failures[i] += r.failures * part
            agg.slot_latency_sum[i] += r.latency_sum * part
            agg.slot_latency_n[i] += latency_n * part

    def add_incident(self, inc: Incident) -> None:
        if not self.wants(inc.target):
            return
        if inc.start < self.until and (inc.end is None or inc.end > self.since):
            self.target(inc.target).incidents.append(inc)

    def add_certificate(self, cert: Certificate) -> None:
        """The target's certificate, if it is the latest seen (whatever the range: a
        certificate is about the future)."""
        if not self.wants(cert.target):
            return
        agg = self.target(cert.target)
        if agg.certificate is None or cert.seen >= agg.certificate.seen:
            agg.certificate = cert

    def add_change(self, change: ContentChange) -> None:
        if self.wants(change.target) and self.since <= change.ts < self.until:
            self.target(change.target).changes += 1

    def add_warning(self, warning: StoredWarning) -> None:
        if self.wants(warning.target) and self.since <= warning.ts < self.until:
            self.target(warning.target).warnings.append(warning)


# --- the report --------------------------------------------------------------------


@frozen
class IncidentView:
    target: str
    start: float
    end: float | None  # None: still open
    error: str
    duration_s: float  # whole incident; an open one up to `until` or its last probe
    in_range_s: float  # the part inside [since, until)
    end_reason: str | None = None  # "up", "removed" (no longer monitored); None: open
    # open only: the target's last probe; with `unobserved`, nothing probed it after
    # (no data since), and its downtime stopped one interval after that probe
    last_seen: float | None = None
    unobserved: bool = False

    @property
    def open(self) -> bool:
        return self.end is None

    @property
    def ongoing(self) -> bool:
        """Open and still watched: an unobserved one is "no data", not ongoing."""
        return self.end is None and not self.unobserved

    @property
    def removed(self) -> bool:
        return self.end_reason == "removed"


@frozen
class WarningView:
    """An early warning (`degrading`), and whether an outage of its target followed."""

    target: str
    ts: float
    signal: str
    detail: str | None
    outage_start: float | None  # the first incident beginning within OUTAGE_WITHIN after

    @property
    def lead_s(self) -> float | None:
        return None if self.outage_start is None else self.outage_start - self.ts


@frozen
class SlotView:
    start: float
    checks: float
    failures: float
    mean_latency_ms: float | None

    @property
    def availability(self) -> float | None:
        return None if self.checks <= 0 else 1 - self.failures / self.checks


@frozen
class TargetReport:
    target: str
    url: str | None
    checks: int
    ok: int
    availability_pct: float | None  # None when no checks
    p50: float | None
    p95: float | None
    p99: float | None
    mean_ms: float | None
    min_ms: float | None
    max_ms: float | None
    incidents: tuple[IncidentView, ...]
    downtime_s: float
    longest_outage_s: float | None
    mttr_s: float | None  # None without closed incidents
    content_changes: int
    slots: tuple[SlotView, ...]
    certificate: Certificate | None = None  # the latest one known
    # per phase of PHASES (ok probes): p50/p95; None for a phase that did not happen
    phases: dict[str, PhaseStats | None] = field(factory=dict)
    kind: str | None = None  # the probe kind ("http", "dns", ...); None: not known
    # failed probes by error kind, most first (raw samples only: hourly rollups, which
    # replace them after raw_retention, keep no error kinds)
    errors: dict[str, int] = field(factory=dict)
    held_checks: int = 0  # probes left out: held by maintenance (--exclude-maintenance)
    warnings: tuple[WarningView, ...] = ()  # early warnings in range, oldest first

    @property
    def latency_is_response_time(self) -> bool:
        """Its latency is a network response time; a push target's is its job's run time."""
        return self.kind not in NOT_RESPONSE_TIME

    @property
    def failures(self) -> int:
        return self.checks - self.ok

    @property
    def ongoing(self) -> int:
        return sum(i.ongoing for i in self.incidents)

    @property
    def unobserved(self) -> int:
        return sum(i.unobserved for i in self.incidents)


@frozen
class Report:
    since: float
    until: float
    slot_seconds: float
    targets: tuple[TargetReport, ...]
    source: dict[str, Any]  # where the data came from, and what was skipped

    @property
    def checks(self) -> int:
        return sum(t.checks for t in self.targets)

    @property
    def ok(self) -> int:
        return sum(t.ok for t in self.targets)

    @property
    def availability_pct(self) -> float | None:
        return None if not self.checks else 100 * self.ok / self.checks

    @property
    def incidents(self) -> list[IncidentView]:
        return sorted((i for t in self.targets for i in t.incidents), key=lambda i: i.start)

    @property
    def warnings(self) -> list[WarningView]:
        """Every target's early warnings in range, oldest first."""
        return sorted((w for t in self.targets for w in t.warnings), key=lambda w: w.ts)

    def expiry(self, cert: Certificate) -> str:
        """ "expires on 2026-12-03 (in 6 days)", counted from `until`, and which
        certificate when an intermediate expires before the leaf."""
        which = (
            "" if cert.earliest_not_after >= cert.not_after else f"chain ({cert.earliest_subject}) "
        )
        return which + describe_expiry(cert.expires, self.until)

    def expiring(self, within: float = EXPIRING_WITHIN) -> list[Certificate]:
        """The targets' certificates (or their chains) that expire before `until` +
        `within`, already expired ones included, soonest first."""
        certs = [t.certificate for t in self.targets if t.certificate is not None]
        return sorted(
            (c for c in certs if c.expires < self.until + within),
            key=lambda c: (c.expires, c.target),
        )

    def latency_means(self) -> dict[str, str]:
        """What latency measures, for each kind of the report's targets that says; none
        when every target is an HTTP one (nothing to tell apart)."""
        kinds = {t.kind for t in self.targets if t.kind is not None}
        if kinds <= {"http"}:
            return {}
        return {kind: LATENCY_MEANS[kind] for kind in sorted(kinds & LATENCY_MEANS.keys())}

    @property
    def timed(self) -> list[TargetReport]:
        """The targets with phase timings (those whose probes had a connection)."""
        return [t for t in self.targets if any(p is not None for p in t.phases.values())]

    def slowest(self, n: int) -> list[TargetReport]:
        """The n targets with the highest p95 (targets without latencies, and those
        whose latency is not a response time, are left out)."""
        timed = [t for t in self.targets if t.p95 is not None and t.latency_is_response_time]
        return sorted(timed, key=lambda t: (-(t.p95 or 0.0), t.target))[:n]


def _union_length(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, -math.inf
    for lo, hi in sorted(spans):
        lo = max(lo, end)
        if hi > lo:
            total += hi - lo
            end = hi
    return total


def _target_report(agg: _TargetAgg, a: Aggregator) -> TargetReport:
    views = []
    interval = a.intervals.get(agg.name, 0.0)
    for inc in sorted(agg.incidents, key=lambda i: i.start):
        end = inc.observed_end(a.until, interval)
        lo = max(inc.start, a.since)
        hi = min(end, a.until)
        views.append(
            IncidentView(
                agg.name,
                inc.start,
                inc.end,
                inc.error,
                max(0.0, end - inc.start),
                max(0.0, hi - lo),
                inc.end_reason,
                inc.last_seen if inc.end is None else None,
                inc.unobserved(a.until, interval),
            )
        )
    closed = [v.duration_s for v in views if not v.open]
    slots = tuple(
        SlotView(
            a.since + i * a.width,
            agg.slot_checks[i],
            agg.slot_failures[i],
            agg.slot_latency_sum[i] / agg.slot_latency_n[i] if agg.slot_latency_n[i] else None,
        )
        for i in range(a.slots)
    )
    h = agg.histogram
    return TargetReport(
        target=agg.name,
        url=agg.url,
        checks=agg.checks,
        ok=agg.ok,
        availability_pct=100 * agg.ok / agg.checks if agg.checks else None,
        p50=h.percentile(50),
        p95=h.percentile(95),
        p99=h.percentile(99),
        mean_ms=agg.latency_sum / agg.latency_n if agg.latency_n else None,
        min_ms=agg.latency_min,
        max_ms=agg.latency_max,
        incidents=tuple(views),
        downtime_s=_union_length(
            [(max(v.start, a.since), max(v.start, a.since) + v.in_range_s) for v in views]
        ),
        longest_outage_s=max((v.duration_s for v in views), default=None),
        mttr_s=sum(closed) / len(closed) if closed else None,
        content_changes=agg.changes,
        slots=slots,
        certificate=agg.certificate,
        phases=agg.phases.stats(),
        kind=agg.kind,
        errors=dict(sorted(agg.errors.items(), key=lambda e: (-e[1], e[0]))),
        held_checks=agg.held,
        warnings=_warning_views(agg),
    )


def _warning_views(agg: _TargetAgg) -> tuple[WarningView, ...]:
    starts = sorted(i.start for i in agg.incidents)
    views = []
    for w in sorted(agg.warnings, key=lambda w: w.ts):
        after = next((s for s in starts if w.ts <= s <= w.ts + OUTAGE_WITHIN), None)
        views.append(WarningView(agg.name, w.ts, w.signal, w.detail, after))
    return tuple(views)


def build_report(a: Aggregator, source: dict[str, Any] | None = None) -> Report:
    return Report(
        since=a.since,
        until=a.until,
        slot_seconds=a.width,
        targets=tuple(_target_report(a.targets[name], a) for name in sorted(a.targets)),
        source=source or {},
    )
