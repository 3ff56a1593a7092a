"""History records shared by the store, reports and (later) the API, and the latency
histogram that makes percentiles over long ranges possible without raw rows.

Latency histogram: fixed log-scale buckets. Bucket i holds latencies in
[FLOOR_MS * BASE**(i-1), FLOOR_MS * BASE**i) for i >= 1; bucket 0 holds everything
below FLOOR_MS. A percentile is read as the geometric middle of its bucket, so its
relative error is at most sqrt(BASE) - 1 (4.9% for BASE = 1.1), whatever the range.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable

from attrs import define, frozen

BASE = 1.1
FLOOR_MS = 0.1  # below this, one bucket: loopback answers faster than this are all "instant"
MAX_BUCKET = 255  # stored as one byte; 0.1 ms * 1.1**255 is far beyond any timeout
ERROR_BOUND = math.sqrt(BASE) - 1  # relative error of a percentile read from buckets

_LOG_BASE = math.log(BASE)
_PAIR = struct.Struct("<BI")  # (bucket, count) as stored in a rollup's blob


def bucket_of(latency_ms: float) -> int:
    if latency_ms < FLOOR_MS:
        return 0
    return min(MAX_BUCKET, int(math.log(latency_ms / FLOOR_MS) / _LOG_BASE) + 1)


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


@frozen
class Incident:
    target: str
    start: float
    end: float | None  # None while still open
    error: str  # the error kind that took the target down
    end_reason: str | None = None  # "up" (recovered), "removed" (no longer monitored)
    # while open: the target's last probe (None: not known, taken as observed till now)
    last_seen: float | None = None

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


def rollup(target: str, hour: int, samples: Iterable[Sample]) -> HourRollup:
    """Fold one hour of a target's samples into its rollup."""
    checks = failures = 0
    total = 0.0
    low = high = None
    hist = Histogram.empty()
    for s in samples:
        checks += 1
        if not s.ok:
            failures += 1
        elif s.latency_ms is not None:
            total += s.latency_ms
            low = s.latency_ms if low is None else min(low, s.latency_ms)
            high = s.latency_ms if high is None else max(high, s.latency_ms)
            hist.add(s.latency_ms)
    return HourRollup(target, hour, checks, failures, total, low, high, hist)
