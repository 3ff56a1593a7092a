"""History records shared by the store, reports and (later) the API, and the latency
histogram that makes percentiles over long ranges possible without raw rows.

Latency histogram: fixed log-scale buckets. Bucket i holds latencies in
[FLOOR_MS * BASE**(i-1), FLOOR_MS * BASE**i) for i >= 1; bucket 0 holds everything
below FLOOR_MS. A percentile is read as the geometric middle of its bucket, so its
relative error is at most sqrt(BASE) - 1 (4.9% for BASE = 1.1), whatever the range.

Phase timings (ProbeResult.phases_ms) use the same buckets: a sample keeps them as a
5-byte code (`encode_phases`: one byte per phase of PHASES, 0 for one that did not
happen, else its bucket + 1), and `PhaseHistograms` counts them per phase, so p50/p95
per phase cost the same as the latency's, from a sample, an hour or a year.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping

from attrs import define, field, frozen

from .._records import PHASES

BASE = 1.1
FLOOR_MS = 0.1  # below this, one bucket: loopback answers faster than this are all "instant"
MAX_BUCKET = 255  # stored as one byte; 0.1 ms * 1.1**255 is far beyond any timeout
ERROR_BOUND = math.sqrt(BASE) - 1  # relative error of a percentile read from buckets

_LOG_BASE = math.log(BASE)
_PAIR = struct.Struct("<BI")  # (bucket, count) as stored in a rollup's blob


def bucket_of(latency_ms: float) -> int:
    if latency_ms < FLOOR_MS:
        return 0
    bucket = int(math.log(latency_ms / FLOOR_MS) / _LOG_BASE) + 1
    return bucket if bucket < MAX_BUCKET else MAX_BUCKET  # not min(): a call less a phase


def bucket_value(bucket: int) -> float:
    """The geometric middle of a bucket, in ms: the value a percentile reads as."""
    if bucket == 0:
        return FLOOR_MS / 2
    return FLOOR_MS * BASE ** (bucket - 0.5)


@define
class Histogram:
    """Counts per bucket; add, merge, read percentiles. O(buckets) memory."""

    counts: dict[int, int]

    @classmethod
    def empty(cls) -> Histogram:
        return cls({})

    def add(self, latency_ms: float, n: int = 1) -> None:
        b = bucket_of(latency_ms)
        self.counts[b] = self.counts.get(b, 0) + n

    def merge(self, other: Histogram) -> None:
        for b, n in other.counts.items():
            self.counts[b] = self.counts.get(b, 0) + n

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def percentile(self, p: float) -> float | None:
        """p in (0, 100]. None when empty. Nearest-rank on the bucketed values."""
        total = self.total
        if total == 0:
            return None
        rank = max(1, math.ceil(p / 100 * total))
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                return round(bucket_value(b), 3)
        raise AssertionError("unreachable: rank <= total")

    def to_blob(self) -> bytes:
        return b"".join(_PAIR.pack(b, n) for b, n in sorted(self.counts.items()))

    @classmethod
    def from_blob(cls, blob: bytes) -> Histogram:
        return cls({b: n for b, n in _PAIR.iter_unpack(blob)})


# --- phase timings ---------------------------------------------------------------


def _phase_bucket(ms: float) -> int:
    """A phase's bucket: the top one counts as the one below (both are far beyond any
    timeout), so that bucket + 1 fits a byte of `encode_phases`."""
    return min(bucket_of(ms), MAX_BUCKET - 1)


def encode_phases(phases_ms: Mapping[str, float | None] | None) -> bytes | None:
    """phases_ms -> 5 bytes, one a phase (0: it did not happen, else its bucket + 1; the
    top bucket shares a code with the one below: both are far beyond any timeout).
    None without phases (no connection, or a kind that has none)."""
    if phases_ms is None:
        return None
    get = phases_ms.get
    # a list, not a generator (a tenth faster: every probe, in the view and in the
    # history writer)
    return bytes([0 if (ms := get(phase)) is None else _phase_bucket(ms) + 1 for phase in PHASES])


@frozen
class PhaseStats:
    """One phase's percentiles (ms, read from buckets) over the `count` probes where it
    happened."""

    p50: float
    p95: float
    count: int


@define
class PhaseHistograms:
    """One latency histogram per phase of PHASES, in one dict keyed by
    phase index * 256 + bucket (a dict per phase would cost five times the memory)."""

    counts: dict[int, int] = field(factory=dict)

    def add(self, code: bytes) -> None:
        """One sample's `encode_phases` code."""
        for i, byte in enumerate(code[: len(PHASES)]):
            if byte:
                key = i * 256 + byte - 1
                self.counts[key] = self.counts.get(key, 0) + 1

    def add_phases(self, phases_ms: Mapping[str, float | None]) -> None:
        """Count what `add(encode_phases(phases_ms))` would, without the code between
        (the view, every probe: half the time)."""
        counts = self.counts
        get = phases_ms.get
        for i, phase in enumerate(PHASES):
            if (ms := get(phase)) is not None:
                key = i * 256 + _phase_bucket(ms)
                counts[key] = counts.get(key, 0) + 1

    def merge(self, other: PhaseHistograms) -> None:
        for key, n in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + n

    def histogram(self, phase: str) -> Histogram:
        i = PHASES.index(phase)
        return Histogram({k % 256: n for k, n in self.counts.items() if k // 256 == i})

    def stats(self) -> dict[str, PhaseStats | None]:
        """Per phase of PHASES: p50 and p95, None when it never happened."""
        out: dict[str, PhaseStats | None] = {}
        for phase in PHASES:
            h = self.histogram(phase)
            p50, p95 = h.percentile(50), h.percentile(95)
            out[phase] = None if p50 is None or p95 is None else PhaseStats(p50, p95, h.total)
        return out

    def to_blob(self) -> bytes | None:
        """Per phase that happened: its index, its lowest and highest bucket, then the
        count of every bucket between as a varint (zeros too). A phase's buckets are
        few and close together, so this is about a byte a bucket (pairs of bucket and
        count took 6: the rollups of bench/store_size.py were 7 times bigger).
        None when empty, so hours without phases cost nothing (a NULL)."""
        if not self.counts:
            return None
        out = bytearray()
        for i in range(len(PHASES)):
            buckets = [k % 256 for k in self.counts if k // 256 == i]
            if not buckets:
                continue
            lo, hi = min(buckets), max(buckets)
            out += bytes((i, lo, hi))
            for b in range(lo, hi + 1):
                _put_varint(out, self.counts.get(i * 256 + b, 0))
        return bytes(out)

    @classmethod
    def from_blob(cls, blob: bytes | None) -> PhaseHistograms:
        counts: dict[int, int] = {}
        pos = 0
        while blob and pos < len(blob):
            i, lo, hi = blob[pos], blob[pos + 1], blob[pos + 2]
            pos += 3
            for b in range(lo, hi + 1):
                n, pos = _get_varint(blob, pos)
                if n:
                    counts[i * 256 + b] = n
        return cls(counts)


def _put_varint(out: bytearray, n: int) -> None:
    """LEB128: 7 bits a byte, the high bit set on all but the last."""
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)


def _get_varint(blob: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        byte = blob[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return n, pos
        shift += 7


# --- what reports read, from the store or from JSON lines -------------------------


@frozen
class Sample:
    """One probe, as history keeps it."""

    target: str
    ts: float  # unix seconds
    ok: bool
    latency_ms: float | None
    error: str | None
    status: int | None = None
    phases: bytes | None = None  # encode_phases of its phases_ms


@frozen
class HourRollup:
    """All probes of one target in one hour [hour, hour + 3600)."""

    target: str
    hour: int  # unix seconds, a multiple of 3600
    checks: int
    failures: int
    latency_sum: float  # over ok probes with a latency
    latency_min: float | None
    latency_max: float | None
    histogram: Histogram  # of the same latencies
    phases: PhaseHistograms = field(factory=PhaseHistograms)  # of the ok probes


@frozen
class Incident:
    target: str
    start: float
    end: float | None  # None while still open
    error: str  # the error kind that took the target down
    end_reason: str | None = None  # "up" (recovered), "removed" (no longer monitored)
    # while open: the target's last probe (None: not known, taken as observed till now)
    last_seen: float | None = None
    # the parents that were DOWN when its `down` came (depends_on): not paged then
    suppressed_by: tuple[str, ...] | None = None
    paged: float | None = None  # when its page (a deliverable `down`) went out; None: not yet
    # storm grouping: the group its `down` was folded into, and the group's cause
    group: str | None = None
    cause: str | None = None

    def duration(self, until: float) -> float:
        return (until if self.end is None else self.end) - self.start

    def observed_end(self, until: float, interval: float = 0.0) -> float:
        """Where its downtime ends: its end; while open, `until`, or its target's last
        probe plus one `interval` when that came earlier: after it nothing watched the
        target (the monitor stopped, or no longer probes it), a gap, not downtime."""
        if self.end is not None:
            return self.end
        if self.last_seen is None:
            return until
        return max(self.start, min(until, self.last_seen + interval))

    def unobserved(self, until: float, interval: float = 0.0) -> bool:
        """Open, but no probe of its target for over two intervals before `until`
        (one late or in-flight probe is not yet a gap)."""
        return (
            self.end is None
            and self.last_seen is not None
            and until > self.last_seen + 2 * interval
        )


@frozen
class Certificate:
    """A target's latest TLS certificate, as history keeps it (table `certs`)."""

    target: str
    seen: float  # when the monitor first saw it
    subject: str
    issuer: str
    not_after: float
    earliest_not_after: float  # of the chain it came with
    earliest_subject: str

    @property
    def expires(self) -> float:
        """When the chain stops being valid: the leaf or an earlier intermediate."""
        return min(self.not_after, self.earliest_not_after)


@frozen
class ContentChange:
    target: str
    ts: float
    previous_hash: str | None
    content_hash: str | None


@frozen
class StoredWarning:
    """A stored `degrading` alert (early warning)."""

    target: str
    ts: float
    signal: str
    baseline: float | None
    current: float | None
    score: float | None
    detail: str | None


def rollup(target: str, hour: int, samples: Iterable[Sample]) -> HourRollup:
    """Fold one hour of a target's samples into its rollup."""
    checks = failures = 0
    total = 0.0
    low = high = None
    hist = Histogram.empty()
    phases = PhaseHistograms()
    for s in samples:
        checks += 1
        if not s.ok:
            failures += 1
        elif s.latency_ms is not None:
            total += s.latency_ms
            low = s.latency_ms if low is None else min(low, s.latency_ms)
            high = s.latency_ms if high is None else max(high, s.latency_ms)
            hist.add(s.latency_ms)
        if s.ok and s.phases is not None:  # the probes the latencies are of
            phases.add(s.phases)
    return HourRollup(target, hour, checks, failures, total, low, high, hist, phases)
