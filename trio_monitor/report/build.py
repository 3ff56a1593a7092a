"""`trio-monitor report`: availability, latency and incidents over a time range.

Data flows one way: a source (the history store, or the monitor's own JSON lines)
feeds events (Sample, HourRollup, Incident, ContentChange from `_history`) into an
`Aggregator`, which keeps per target only counters, a latency `Histogram` and a fixed
number of time slots: O(targets x slots) memory, whatever the range, never a raw row.
`build_report` turns the aggregator into a `Report`; `render_text`, `render_json` and
`render_html` print it.

Rules (the README's "Reports" section says the same):

* Only data inside [since, until) counts. A sample counts if its `ts` is in the range;
  an hourly rollup counts (whole) if the middle of its hour is, and is spread over the
  slots its hour overlaps in proportion to the overlap.
* Latency percentiles (p50/p95/p99) are read from the log-bucket histogram: their
  relative error is at most `_history.ERROR_BOUND` (sqrt(1.1) - 1, about 4.9%) for
  latencies of at least `FLOOR_MS` (0.1 ms). They cover ok probes only.
* An incident counts if it overlaps the range. `downtime_s` is the time inside the range
  covered by incidents (overlaps merged). An incident's `duration_s`, the longest outage
  and the MTTR use whole incidents (an open one up to `until`): an outage that began
  before the range still took that long. MTTR is the mean duration of closed incidents.
* JSON lines: probe lines are samples (content_changed ones also count as a content
  change); alert `down` opens an incident at its `since`, the next `up` of the target
  closes it at the up's `ts`; a `down` while one is open changes nothing (the monitor
  restarted while the target was down). Round, slow and content_changed alert lines are
  not needed. Unparseable lines and lines of unknown types are skipped and counted, with
  a note on stderr; a first line that is not a trio-monitor record is an error.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol

from attrs import define, field, frozen

from .._config import format_duration, load_config, parse_when
from .._errors import UsageError
from .._records import rfc3339
from ..store import HistoryReader
from ..store.records import ERROR_BOUND, ContentChange, Histogram, HourRollup, Incident, Sample

__all__ = [
    "ERROR_BOUND",
    "SLOTS",
    "Aggregator",
    "HistorySource",
    "Report",
    "build_report",
    "feed_jsonl",
    "feed_store",
    "render_html",
    "render_json",
    "render_text",
]

SLOTS = 48  # time slots over [since, until) for the charts
DEFAULT_SINCE = "24h"
DEFAULT_SLOWEST = 5
FORMATS = ("text", "json", "html")
REPORT_SCHEMA = 1  # the JSON report's own version: fields are only added within it
MAX_LINE = 1 << 20  # a JSON line longer than this is skipped as unparseable
_HOUR = 3600

Warn = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"trio-monitor: {message}", file=sys.stderr)


class HistorySource(Protocol):
    """What `_store.HistoryReader` offers the report (a fake in tests)."""

    def targets(self) -> list[str]: ...
    def samples(self, target: str, since: float, until: float) -> Iterator[Sample]: ...
    def rollups(self, target: str, since: float, until: float) -> Iterator[HourRollup]: ...
    def incidents(
        self, since: float, until: float, target: str | None = None
    ) -> list[Incident]: ...
    def changes(
        self, since: float, until: float, target: str | None = None
    ) -> list[ContentChange]: ...
    def unstored(self) -> int: ...


# --- the time range ----------------------------------------------------------------


def parse_time(text: str, now: float, *, option: str = "--since") -> float:
    """A duration back from now ("24h", "7d", "1h30m") or an RFC 3339 time -> unix seconds.

    A time without an offset is taken as UTC; a bare date is its midnight UTC."""
    try:
        return parse_when(text, now)
    except ValueError:
        raise UsageError(
            f"invalid {option} {text!r} (use a duration back from now like 24h, 7d, 30d, "
            "or an RFC 3339 time like 2026-11-27T00:00:00Z)"
        ) from None


def resolve_range(since: str | None, until: str | None, now: float) -> tuple[float, float]:
    start = parse_time(since or DEFAULT_SINCE, now, option="--since")
    end = now if until is None else parse_time(until, now, option="--until")
    if start >= end:
        raise UsageError(f"empty range: --since {rfc3339(start)} is not before {rfc3339(end)}")
    return start, end


# --- aggregation ---------------------------------------------------------------------


@define
class _TargetAgg:
    """Everything kept for one target: counters, a histogram, SLOTS x 4 numbers."""

    name: str
    slots: int
    url: str | None = None
    checks: int = 0
    ok: int = 0
    latency_sum: float = 0.0  # over ok probes with a latency
    latency_n: int = 0
    latency_min: float | None = None
    latency_max: float | None = None
    histogram: Histogram = field(factory=Histogram.empty)
    incidents: list[Incident] = field(factory=list)
    changes: int = 0
    # per slot; floats because an hourly rollup is spread over the slots it overlaps
    slot_checks: list[float] = field(init=False)
    slot_failures: list[float] = field(init=False)
    slot_latency_sum: list[float] = field(init=False)
    slot_latency_n: list[float] = field(init=False)

    def __attrs_post_init__(self) -> None:
        self.slot_checks = [0.0] * self.slots
        self.slot_failures = [0.0] * self.slots
        self.slot_latency_sum = [0.0] * self.slots
        self.slot_latency_n = [0.0] * self.slots

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
    ) -> None:
        if not since < until:
            raise ValueError("since must be before until")
        self.since = since
        self.until = until
        self.slots = slots
        self.width = (until - since) / slots
        self.only = None if only is None else frozenset(only)
        self.targets: dict[str, _TargetAgg] = {}
        self.seen: set[str] = set()  # every target name a source mentioned, wanted or not
        self.outside = 0  # samples seen outside the range (JSON lines notes them)
        self.first_ts: float | None = None  # of every sample seen, in range or not
        self.last_ts: float | None = None

    def wants(self, target: str) -> bool:
        return self.only is None or target in self.only

    def target(self, name: str, url: str | None = None) -> _TargetAgg:
        """The target's state, created on first sight (so it is listed without data)."""
        agg = self.targets.get(name)
        if agg is None:
            agg = self.targets[name] = _TargetAgg(name, self.slots)
        if url is not None:
            agg.url = url
        return agg

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
        i = self._slot(s.ts)
        agg.checks += 1
        agg.slot_checks[i] += 1
        if not s.ok:
            agg.slot_failures[i] += 1
            return
        agg.ok += 1
        if s.latency_ms is not None:
            agg.latency_sum += s.latency_ms
            agg.latency_n += 1
            agg.extremes(s.latency_ms, s.latency_ms)
            agg.histogram.add(s.latency_ms)
            agg.slot_latency_sum[i] += s.latency_ms
            agg.slot_latency_n[i] += 1

    def add_rollup(self, r: HourRollup) -> None:
        """A whole hour counts if its middle is in the range (so an edge is off by at most
        half an hour); its counts are spread over the slots its in-range part overlaps."""
        if not self.wants(r.target) or not self.since <= r.hour + _HOUR / 2 < self.until:
            return
        agg = self.target(r.target)
        latency_n = r.histogram.total
        agg.checks += r.checks
        agg.ok += r.checks - r.failures
        agg.latency_sum += r.latency_sum
        agg.latency_n += latency_n
        agg.extremes(r.latency_min, r.latency_max)
        agg.histogram.merge(r.histogram)
        lo, hi = max(r.hour, self.since), min(r.hour + _HOUR, self.until)
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

    def add_change(self, change: ContentChange) -> None:
        if self.wants(change.target) and self.since <= change.ts < self.until:
            self.target(change.target).changes += 1


# --- the report --------------------------------------------------------------------


@frozen
class IncidentView:
    target: str
    start: float
    end: float | None  # None: still open (ongoing)
    error: str
    duration_s: float  # whole incident; an open one up to `until`
    in_range_s: float  # the part inside [since, until)

    @property
    def ongoing(self) -> bool:
        return self.end is None


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

    @property
    def failures(self) -> int:
        return self.checks - self.ok

    @property
    def ongoing(self) -> int:
        return sum(i.ongoing for i in self.incidents)


@frozen
class Report:
    since: float
    until: float
    slot_seconds: float
    targets: tuple[TargetReport, ...]
    source: dict  # where the data came from, and what was skipped

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

    def slowest(self, n: int) -> list[TargetReport]:
        """The n targets with the highest p95 (targets without latencies are left out)."""
        timed = [t for t in self.targets if t.p95 is not None]
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
    for inc in sorted(agg.incidents, key=lambda i: i.start):
        lo = max(inc.start, a.since)
        hi = min(a.until if inc.end is None else inc.end, a.until)
        duration = max(0.0, inc.duration(a.until))
        views.append(IncidentView(agg.name, inc.start, inc.end, inc.error, duration, hi - lo))
    closed = [v.duration_s for v in views if not v.ongoing]
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
    )


def build_report(a: Aggregator, source: dict | None = None) -> Report:
    return Report(
        since=a.since,
        until=a.until,
        slot_seconds=a.width,
        targets=tuple(_target_report(a.targets[name], a) for name in sorted(a.targets)),
        source=source or {},
    )


# --- sources -----------------------------------------------------------------------


def feed_store(
    a: Aggregator, reader: HistorySource, known: Iterable[str] = (), urls: dict | None = None
) -> dict:
    """Feed every wanted target's rollups and samples, then incidents and changes.

    `known`: more target names to list even without history (the config's). The reader
    returns the rollups of hours that *start* in the range asked for, so it is asked
    from half an hour earlier: an hour whose middle is in the range counts (add_rollup
    drops the rest). Everything is read in one snapshot when the reader offers one, so
    samples and rollups combine exactly even while the monitor prunes."""
    urls = urls or {}
    snapshot = getattr(reader, "snapshot", None)
    with snapshot() if snapshot is not None else nullcontext():
        for name in sorted({*reader.targets(), *known}):
            if not a.wants(name):
                continue
            a.target(name, urls.get(name))
            for r in reader.rollups(name, a.since - _HOUR / 2, a.until):
                a.add_rollup(r)
            for s in reader.samples(name, a.since, a.until):
                a.add_sample(s)
        single = next(iter(a.only)) if a.only is not None and len(a.only) == 1 else None
        for inc in reader.incidents(a.since, a.until, target=single):
            a.add_incident(inc)
        for change in reader.changes(a.since, a.until, target=single):
            a.add_change(change)
        unstored = reader.unstored()
    return {"kind": "store", "unstored": unstored}


def _parse_ts(value: object) -> float:
    if not isinstance(value, str):
        raise TypeError("ts is not a string")
    when = datetime.fromisoformat(value)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _opt_str(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError("expected a string")


def _number(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("expected a number")
    return float(value)


def _lines(stream: IO[bytes]) -> Iterator[bytes | None]:
    """Lines of a binary stream; None for a line longer than MAX_LINE (skipped unread)."""
    while raw := stream.readline(MAX_LINE):
        if len(raw) == MAX_LINE and not raw.endswith(b"\n"):
            while (rest := stream.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                pass
            yield None
        else:
            yield raw


def feed_jsonl(a: Aggregator, stream: IO[bytes], name: str, *, warn: Warn = _stderr) -> dict:
    """One pass over the monitor's JSON lines. Returns counts for the report's `source`."""
    counts = {"lines": 0, "probes": 0, "alerts": 0, "rounds": 0, "other_types": 0, "bad": 0}
    first_bad: int | None = None
    open_since: dict[str, tuple[float, str]] = {}  # target -> (start, error kind)
    seen_record = False
    for lineno, raw in enumerate(_lines(stream), 1):
        if raw is not None and not raw.strip():
            continue
        counts["lines"] += 1
        try:
            if raw is None:
                raise ValueError(f"longer than {MAX_LINE} bytes")
            rec = json.loads(raw)
            if not isinstance(rec, dict) or "schema" not in rec or "type" not in rec:
                raise ValueError("not a trio-monitor record (no schema and type)")
        except ValueError as exc:
            if not seen_record:
                why = str(exc).splitlines()[0][:80]
                raise UsageError(
                    f"{name}: line {lineno} is not a trio-monitor JSON line ({why}); "
                    "expected the output of `trio-monitor run`"
                ) from None
            counts["bad"] += 1
            first_bad = first_bad or lineno
            continue
        seen_record = True
        kind = rec["type"]
        try:
            if kind == "probe":
                counts["probes"] += 1
                _probe_line(a, rec)
            elif kind == "alert":
                counts["alerts"] += 1
                _alert_line(a, rec, open_since)
            elif kind == "round":
                counts["rounds"] += 1
            else:
                counts["other_types"] += 1
        except (KeyError, TypeError, ValueError):
            counts["bad"] += 1
            first_bad = first_bad or lineno
    for target, (start, error) in open_since.items():
        a.add_incident(Incident(target, start, None, error))
    if counts["bad"]:
        warn(f"{name}: skipped {_n(counts['bad'], 'unparseable line')} (first on line {first_bad})")
    if counts["other_types"]:
        warn(f"{name}: skipped {_n(counts['other_types'], 'line')} of unknown types")
    if a.outside and a.first_ts is not None and a.last_ts is not None:
        warn(
            f"{name}: {a.outside} probe lines outside {rfc3339(a.since)} .. {rfc3339(a.until)} "
            f"were left out (the file spans {rfc3339(a.first_ts)} .. {rfc3339(a.last_ts)}; "
            "see --since/--until)"
        )
    return {"kind": "jsonl", "path": name, **counts, "outside_range": a.outside}


def _probe_line(a: Aggregator, rec: dict) -> None:
    target = rec["target"]
    if not isinstance(target, str):
        raise TypeError("target is not a string")
    ts = _parse_ts(rec["ts"])
    a.seen.add(target)
    ok = rec["ok"]
    if not isinstance(ok, bool):
        raise TypeError("ok is not a boolean")
    latency = _number(rec.get("latency_ms"))
    error = _opt_str(rec.get("error"))
    status = rec.get("status")
    if not a.wants(target):
        return
    a.target(target, _opt_str(rec.get("url")))
    a.add_sample(
        Sample(target, ts, ok, latency, error, status if isinstance(status, int) else None)
    )
    if rec.get("content_changed") is True:
        a.add_change(ContentChange(target, ts, None, _opt_str(rec.get("content_hash"))))


def _alert_line(a: Aggregator, rec: dict, open_since: dict[str, tuple[float, str]]) -> None:
    target, event = rec["target"], rec["event"]
    if not isinstance(target, str):
        raise TypeError("target is not a string")
    ts = _parse_ts(rec["ts"])
    since = _parse_ts(rec["since"]) if rec.get("since") is not None else None
    a.seen.add(target)
    if not a.wants(target):
        return
    a.target(target, _opt_str(rec.get("url")))
    if event == "down":
        if target not in open_since:
            open_since[target] = (ts if since is None else since, _opt_str(rec.get("reason")) or "")
    elif event == "up":
        start, error = open_since.pop(target, (None, "unknown"))
        if start is None:  # the down came before this file began
            downtime = _number(rec.get("downtime_s"))
            start = since if since is not None else ts - (downtime or 0.0)
        a.add_incident(Incident(target, start, ts, error or "unknown"))


@contextmanager
def open_history(path: str) -> Iterator[HistorySource]:
    """The store's reader; its own one-line StoreErrors (not ours, too new) pass through."""
    if not Path(path).exists():
        raise UsageError(f"no history at {path} yet (`trio-monitor run` stores it)")
    try:
        reader = HistoryReader(path)
    except (OSError, sqlite3.Error) as exc:
        raise UsageError(f"cannot open history {path}: {exc}") from None
    try:
        yield reader
    finally:
        close = getattr(reader, "close", None)
        if close is not None:
            close()


# --- formatting helpers ----------------------------------------------------------------


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def human_duration(seconds: float | None) -> str:
    """12 -> '12s', 130 -> '2m10s', 7260 -> '2h01m', 93600 -> '1d02h'."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 10:
        return f"{value:.2f}"
    if value < 10000:
        return f"{value:.1f}"
    return f"{value:.0f}"


def _pct(value: float | None, digits: int = 2) -> str:
    """Never rounds a not-quite-perfect availability up to 100."""
    if value is None:
        return "-"
    text = f"{value:.{digits}f}"
    if value < 100 and float(text) >= 100:
        text = f"{100 - 10**-digits:.{digits}f}"
    return text


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


# --- json ----------------------------------------------------------------------------


def report_dict(report: Report, slowest: int = DEFAULT_SLOWEST) -> dict:
    """The JSON report. Its shape is a contract: fields are added, never renamed."""
    targets = []
    for t in report.targets:
        targets.append(
            {
                "target": t.target,
                "url": t.url,
                "checks": t.checks,
                "ok": t.ok,
                "failures": t.failures,
                "availability_pct": _r(t.availability_pct, 4),
                "latency_ms": {
                    "p50": t.p50,
                    "p95": t.p95,
                    "p99": t.p99,
                    "mean": _r(t.mean_ms),
                    "min": _r(t.min_ms),
                    "max": _r(t.max_ms),
                    "error_bound": round(ERROR_BOUND, 4),
                },
                "incidents": [
                    {
                        "start": rfc3339(i.start),
                        "end": None if i.end is None else rfc3339(i.end),
                        "duration_s": _r(i.duration_s),
                        "in_range_s": _r(i.in_range_s),
                        "error": i.error,
                        "ongoing": i.ongoing,
                    }
                    for i in t.incidents
                ],
                "downtime_s": _r(t.downtime_s),
                "longest_outage_s": _r(t.longest_outage_s),
                "mttr_s": _r(t.mttr_s),
                "content_changes": t.content_changes,
                "slots": {
                    "checks": [_r(s.checks, 2) for s in t.slots],
                    "failures": [_r(s.failures, 2) for s in t.slots],
                    "mean_latency_ms": [_r(s.mean_latency_ms) for s in t.slots],
                },
            }
        )
    incidents = report.incidents
    return {
        "report_schema": REPORT_SCHEMA,
        "since": rfc3339(report.since),
        "until": rfc3339(report.until),
        "slot_seconds": _r(report.slot_seconds),
        "source": report.source,
        "summary": {
            "targets": len(report.targets),
            "checks": report.checks,
            "ok": report.ok,
            "availability_pct": _r(report.availability_pct, 4),
            "incidents": len(incidents),
            "ongoing": sum(i.ongoing for i in incidents),
            "downtime_s": _r(sum(t.downtime_s for t in report.targets)),
            "content_changes": sum(t.content_changes for t in report.targets),
        },
        "slowest": [
            {"target": t.target, "p50": t.p50, "p95": t.p95, "p99": t.p99}
            for t in report.slowest(slowest)
        ],
        "targets": targets,
    }


def render_json(report: Report, slowest: int = DEFAULT_SLOWEST) -> str:
    return json.dumps(report_dict(report, slowest), ensure_ascii=False, indent=2) + "\n"


# --- text ------------------------------------------------------------------------------

# (header, width) of the numeric columns; the name column gets what is left of 80
_COLUMNS = (
    ("CHECKS", 7),
    ("AVAIL%", 7),
    ("P50ms", 7),
    ("P95ms", 7),
    ("P99ms", 7),
    ("INC", 4),
    ("DOWN", 7),
)


def render_text(report: Report, slowest: int = DEFAULT_SLOWEST, width: int = 80) -> str:
    fixed = sum(w + 1 for _, w in _COLUMNS)
    name_w = max(6, min(width - fixed, max((len(t.target) for t in report.targets), default=6)))
    span = format_duration(report.until - report.since)
    out = [
        f"trio-monitor report: {rfc3339(report.since)} .. {rfc3339(report.until)} ({span})",
        "",
        "TARGET".ljust(name_w) + "".join(" " + h.rjust(w) for h, w in _COLUMNS),
    ]
    for t in report.targets:
        cells = (
            str(t.checks),
            _pct(t.availability_pct),
            _ms(t.p50),
            _ms(t.p95),
            _ms(t.p99),
            f"{len(t.incidents)}{'!' if t.ongoing else ''}",
            human_duration(t.downtime_s) if t.incidents else "-",
        )
        row = _fit(t.target, name_w).ljust(name_w)
        out.append(
            row + "".join(" " + c.rjust(w) for c, (_, w) in zip(cells, _COLUMNS, strict=True))
        )
    if not report.targets:
        out.append("(no targets)")
    incidents = report.incidents
    ongoing = [i for i in incidents if i.ongoing]
    out += [
        "",
        f"{_n(len(report.targets), 'target')}, {_n(report.checks, 'check')}, "
        f"availability {_pct(report.availability_pct, 3)}"
        f"{'' if report.availability_pct is None else '%'}",
        f"{_n(len(incidents), 'incident')} ({len(ongoing)} ongoing), "
        f"downtime {human_duration(sum(t.downtime_s for t in report.targets))}",
    ]
    for i in ongoing:
        name = _fit(i.target, max(10, width - 58))
        out.append(f"ongoing: {name} down since {rfc3339(i.start)} ({i.error or '?'})")
    top = report.slowest(slowest)
    if top:
        out += ["", f"slowest by p95 (+/-{ERROR_BOUND:.1%}):"]
        for n, t in enumerate(top, 1):
            label = _fit(t.target, width - 40).ljust(min(width - 40, name_w))
            out.append(f"{n:>3}. {label}  p95 {_ms(t.p95):>7} ms  p99 {_ms(t.p99):>7} ms")
    return "\n".join(out) + "\n"


# --- html ----------------------------------------------------------------------------

COLOR_OK = "#2da44e"  # slot availability >= 99.9%
COLOR_WARN = "#d4a72c"  # >= 95%
COLOR_BAD = "#cf222e"  # below
COLOR_NODATA = "#d0d7de"
COLOR_LINE = "#0969da"  # the latency line
SLOT_PX = 10  # uptime bar: one SLOT_PX-wide column per slot, a 1 px gap between

_CSS = """
*{box-sizing:border-box}
body{margin:0;padding:20px 28px;font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,
"DejaVu Sans",sans-serif;color:#1f2328;background:#f6f8fa}
h1{font-size:20px;margin:0 0 2px}h2{font-size:15px;margin:18px 0 8px}
.muted{color:#656d76}.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace}
.cards{display:flex;gap:10px;margin:12px 0 4px;flex-wrap:wrap}
.card{background:#fff;border:1px solid #d8dee4;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:18px}
table{border-collapse:collapse;background:#fff;border:1px solid #d8dee4;width:100%}
th,td{padding:4px 10px;border-bottom:1px solid #eaeef2;text-align:right;white-space:nowrap}
th{background:#f6f8fa;font-weight:600}
td.name,th.name{text-align:left;max-width:320px;overflow:hidden;text-overflow:ellipsis}
.good{color:#1a7f37}.bad{color:#a40e26;font-weight:600}.warn{color:#9a6700}
.target{display:grid;grid-template-columns:500px 1fr;gap:16px;background:#fff;
border:1px solid #d8dee4;border-radius:6px;padding:10px 14px;margin-bottom:10px}
.target h3{margin:0;font-size:14px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.url{font-size:12px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.stats{margin:6px 0}.axis{font-size:11px;fill:#656d76}
.legend span{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 10px}
.badge{background:#cf222e;color:#fff;border-radius:10px;padding:0 7px;font-size:11px}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _short_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%m-%d %H:%M")


def _slot_color(slot: SlotView) -> str:
    a = slot.availability
    if a is None:
        return COLOR_NODATA
    if a >= 0.999:
        return COLOR_OK
    return COLOR_WARN if a >= 0.95 else COLOR_BAD


def _uptime_svg(t: TargetReport, report: Report) -> str:
    w = len(t.slots) * SLOT_PX
    rects = []
    for i, s in enumerate(t.slots):
        end = s.start + report.slot_seconds
        a = s.availability
        what = "no data" if a is None else f"{100 * a:.2f}% of {s.checks:.0f} checks"
        tip = f"{_short_time(s.start)} .. {_short_time(end)} UTC: {what}"
        rects.append(
            f'<rect x="{i * SLOT_PX}" y="0" width="{SLOT_PX - 1}" height="24" '
            f'fill="{_slot_color(s)}"><title>{_e(tip)}</title></rect>'
        )
    return (
        f'<svg class="uptime" width="{w}" height="40" viewBox="0 0 {w} 40" '
        f'shape-rendering="crispEdges" role="img" aria-label="uptime">{"".join(rects)}'
        f'<text class="axis" x="0" y="37">{_e(_short_time(report.since))}</text>'
        f'<text class="axis" x="{w}" y="37" text-anchor="end">'
        f"{_e(_short_time(report.until))} UTC</text></svg>"
    )


def _nice_ceiling(x: float) -> float:
    if x <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(x))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= x:
            return m * exp
    return 10 * exp


def _latency_svg(t: TargetReport, report: Report) -> str:
    width, height = 560, 170
    left, right, top, bottom = 56, 548, 10, 140
    values = [s.mean_latency_ms for s in t.slots]
    peak = max((v for v in values if v is not None), default=None)
    ymax = _nice_ceiling((peak or 1.0) * 1.1)
    n = len(values)

    def x(i: float) -> float:
        return left + (i + 0.5) * (right - left) / n

    def y(v: float) -> float:
        return bottom - v / ymax * (bottom - top)

    parts = []
    for frac in (0, 0.5, 1):
        gy = bottom - frac * (bottom - top)
        parts.append(
            f'<line x1="{left}" x2="{right}" y1="{gy:.1f}" y2="{gy:.1f}" stroke="#eaeef2"/>'
            f'<text class="axis" x="{left - 6}" y="{gy + 4:.1f}" text-anchor="end">'
            f"{ymax * frac:g}{' ms' if frac == 1 else ''}</text>"
        )
    parts.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{bottom}" stroke="#8c959f"/>'
        f'<line x1="{left}" x2="{right}" y1="{bottom}" y2="{bottom}" stroke="#8c959f"/>'
    )
    mid = (report.since + report.until) / 2
    for px, ts, anchor in (
        (left, report.since, "start"),
        ((left + right) / 2, mid, "middle"),
        (right, report.until, "end"),
    ):
        parts.append(
            f'<text class="axis" x="{px:.1f}" y="{bottom + 16}" text-anchor="{anchor}">'
            f"{_e(_short_time(ts))}</text>"
        )
    run: list[str] = []
    runs = []
    for i, v in enumerate([*values, None]):
        if v is not None:
            run.append(f"{x(i):.1f},{y(v):.1f}")
        elif run:
            runs.append(run)
            run = []
    for pts in runs:
        if len(pts) == 1:
            cx, cy = pts[0].split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{COLOR_LINE}"/>')
        else:
            parts.append(
                f'<polyline class="latency" fill="none" stroke="{COLOR_LINE}" stroke-width="2" '
                f'stroke-linejoin="round" points="{" ".join(pts)}"/>'
            )
    if not runs:
        parts.append(
            f'<text class="axis" x="{(left + right) / 2}" y="{(top + bottom) / 2}" '
            'text-anchor="middle">no latency data</text>'
        )
    return (
        f'<svg class="latency-chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="mean latency per slot">'
        f"{''.join(parts)}</svg>"
    )


def _avail_class(pct: float | None) -> str:
    if pct is None:
        return "muted"
    return "good" if pct >= 99.9 else "warn" if pct >= 95 else "bad"


def render_html(report: Report, slowest: int = DEFAULT_SLOWEST) -> str:
    """One self-contained page: inline CSS and SVG, no scripts, nothing fetched."""
    incidents = report.incidents
    ongoing = sum(i.ongoing for i in incidents)
    downtime = sum(t.downtime_s for t in report.targets)
    span = format_duration(report.until - report.since)
    o = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>trio-monitor report {_e(rfc3339(report.since))} .. "
        f"{_e(rfc3339(report.until))}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>trio-monitor report</h1>",
        f'<div class="muted">{_e(rfc3339(report.since))} .. {_e(rfc3339(report.until))} '
        f"({_e(span)}, {len(report.targets[0].slots) if report.targets else SLOTS} slots of "
        f"{_e(human_duration(report.slot_seconds))})</div>",
        '<div class="cards">',
        f'<div class="card">targets<b>{len(report.targets)}</b></div>',
        f'<div class="card">checks<b>{report.checks}</b></div>',
        f'<div class="card">availability<b class="{_avail_class(report.availability_pct)}">'
        f"{_pct(report.availability_pct, 3)}%</b></div>",
        f'<div class="card">incidents<b>{len(incidents)}'
        + (f' <span class="badge">{ongoing} ongoing</span>' if ongoing else "")
        + "</b></div>",
        f'<div class="card">downtime<b>{_e(human_duration(downtime))}</b></div>',
        "</div>",
        "<h2>Targets</h2>",
        '<table><tr><th class="name">target</th><th>checks</th><th>availability</th>'
        "<th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>incidents</th><th>downtime</th>"
        "<th>MTTR</th><th>content changes</th></tr>",
    ]
    for t in report.targets:
        o.append(
            f'<tr><td class="name" title="{_e(t.target)}">{_e(t.target)}</td>'
            f"<td>{t.checks}</td>"
            f'<td class="{_avail_class(t.availability_pct)}">{_pct(t.availability_pct)}%</td>'
            f"<td>{_ms(t.p50)}</td><td>{_ms(t.p95)}</td><td>{_ms(t.p99)}</td>"
            f"<td>{len(t.incidents)}"
            + (' <span class="badge">ongoing</span>' if t.ongoing else "")
            + f"</td><td>{human_duration(t.downtime_s) if t.incidents else '-'}</td>"
            f"<td>{human_duration(t.mttr_s)}</td><td>{t.content_changes}</td></tr>"
        )
    o.append("</table>")
    o.append(
        '<h2>Over time <span class="legend muted">'
        f'<span style="background:{COLOR_OK}"></span>&ge; 99.9%'
        f'<span style="background:{COLOR_WARN}"></span>&ge; 95%'
        f'<span style="background:{COLOR_BAD}"></span>&lt; 95%'
        f'<span style="background:{COLOR_NODATA}"></span>no data</span></h2>'
    )
    for t in report.targets:
        url = f'<div class="url muted mono">{_e(t.url)}</div>' if t.url else ""
        o.append(
            f'<div class="target"><div><h3 title="{_e(t.target)}">{_e(t.target)}</h3>{url}'
            f'<div class="stats"><span class="{_avail_class(t.availability_pct)}">'
            f"{_pct(t.availability_pct)}%</span> of {t.checks} checks &middot; "
            f"p50 {_ms(t.p50)} &middot; p95 {_ms(t.p95)} &middot; p99 {_ms(t.p99)} ms</div>"
            f"{_uptime_svg(t, report)}</div>"
            f"<div>{_latency_svg(t, report)}</div></div>"
        )
    o.append("<h2>Incidents</h2>")
    if incidents:
        o.append(
            '<table><tr><th class="name">target</th><th class="name">start</th>'
            '<th class="name">end</th><th>duration</th><th class="name">error</th></tr>'
        )
        for i in reversed(incidents):
            end = '<span class="badge">ongoing</span>' if i.ongoing else _e(rfc3339(i.end or 0))
            o.append(
                f'<tr><td class="name">{_e(i.target)}</td><td class="name mono">'
                f'{_e(rfc3339(i.start))}</td><td class="name mono">{end}</td>'
                f"<td>{_e(human_duration(i.duration_s))}</td>"
                f'<td class="name">{_e(i.error or "?")}</td></tr>'
            )
        o.append("</table>")
    else:
        o.append('<p class="muted">No incidents in this range.</p>')
    top = report.slowest(slowest)
    if top:
        o.append(
            f'<h2>Slowest by p95 <span class="muted">(percentiles &plusmn;{ERROR_BOUND:.1%})'
            '</span></h2><table><tr><th class="name">target</th><th>p50 ms</th>'
            "<th>p95 ms</th><th>p99 ms</th></tr>"
        )
        for t in top:
            o.append(
                f'<tr><td class="name">{_e(t.target)}</td><td>{_ms(t.p50)}</td>'
                f"<td>{_ms(t.p95)}</td><td>{_ms(t.p99)}</td></tr>"
            )
        o.append("</table>")
    o.append(f'<p class="muted">source: {_e(json.dumps(report.source))}</p></body></html>')
    return "\n".join(o) + "\n"


RENDERERS: dict[str, Callable[[Report, int], str]] = {
    "text": render_text,
    "json": render_json,
    "html": render_html,
}


# --- the command -----------------------------------------------------------------------


def add_arguments(cmd: argparse.ArgumentParser) -> None:
    source = cmd.add_mutually_exclusive_group()
    source.add_argument("-c", "--config", help="config file whose history to read (monitor.toml)")
    source.add_argument(
        "--jsonl", metavar="FILE", help="read the monitor's JSON lines ('-': stdin)"
    )
    cmd.add_argument(
        "--since", default=DEFAULT_SINCE, help="start: duration back from now (24h, 7d) or RFC 3339"
    )
    cmd.add_argument("--until", help="end: duration back from now or RFC 3339 (default now)")
    cmd.add_argument("--target", action="append", metavar="NAME", help="only this target (repeat)")
    cmd.add_argument("--format", choices=FORMATS, default="text", help="output format")
    cmd.add_argument("-o", "--output", help="write the report to this file (default stdout)")
    cmd.add_argument("--slowest", type=int, default=DEFAULT_SLOWEST, metavar="N", help="list N")


def _check_targets(wanted: list[str] | None, known: Iterable[str], where: str) -> None:
    known = sorted(set(known))
    for name in wanted or ():
        if name not in known:
            shown = ", ".join(known[:10]) + (", ..." if len(known) > 10 else "")
            raise UsageError(f"unknown target {name!r} in {where} (known: {shown or 'none'})")


def make_report(args: argparse.Namespace, now: float, *, warn: Warn = _stderr) -> Report:
    """Read the chosen source into a Report (no output)."""
    since, until = resolve_range(args.since, args.until, now)
    if args.slowest < 0:
        raise UsageError(f"--slowest must be 0 or more, got {args.slowest}")
    agg = Aggregator(since, until, only=args.target)
    if args.jsonl is not None:
        if args.jsonl == "-":
            source = feed_jsonl(agg, sys.stdin.buffer, "<stdin>", warn=warn)
        else:
            try:
                stream = open(args.jsonl, "rb")  # noqa: SIM115 - closed right below
            except OSError as exc:
                raise UsageError(f"cannot read {args.jsonl}: {exc.strerror or exc}") from None
            with stream:
                source = feed_jsonl(agg, stream, args.jsonl, warn=warn)
        _check_targets(args.target, agg.seen, args.jsonl if args.jsonl != "-" else "<stdin>")
        return build_report(agg, source)
    config_path = args.config or "monitor.toml"
    config = load_config(config_path)
    if config.store_path is None:
        raise UsageError(f"history is disabled in {config_path}")
    urls = {t.name: t.url for t in config.targets}
    try:
        with open_history(config.store_path) as reader:
            _check_targets(args.target, {*reader.targets(), *urls}, config_path)
            source = feed_store(agg, reader, urls, urls)
    except (OSError, sqlite3.Error) as exc:
        raise UsageError(f"cannot read history {config.store_path}: {exc}") from None
    if source.get("unstored"):
        warn(f"{source['unstored']} probe results were not stored (the store fell behind)")
    return build_report(agg, {**source, "path": config.store_path})


def report_command(args: argparse.Namespace) -> int:
    report = make_report(args, datetime.now(UTC).timestamp())
    text = RENDERERS[args.format](report, args.slowest)
    if args.output and args.output != "-":
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    else:
        sys.stdout.write(text)
    return 0
