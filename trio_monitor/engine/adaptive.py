"""Adaptive concurrency: steer the probe limiter's size from outcomes and event-loop lag.

Multiplicative increase while the limiter is the bottleneck, results are healthy and
the loop keeps up; multiplicative decrease when timeouts or connection errors spike
above their usual rate or the loop lags. The usual rate matters: a fleet where 5% of
targets are simply down must not shrink the limit forever.
"""

from __future__ import annotations

import trio

from .._errors import ErrorKind
from .._records import ProbeResult

# Outcomes that suggest *we* are overloading the network or ourselves.
PRESSURE = frozenset({ErrorKind.TIMEOUT, ErrorKind.CONNECT})
GROWTH = 1.25  # per healthy window in which the limit was the bottleneck
BACKOFF = 0.5  # per window with an error spike or loop lag
SPIKE = 0.10  # error rate above the usual one that counts as a spike
LAG_LIMIT = 0.1  # seconds of event-loop lag that count as "not keeping up"
LAG_PERIOD = 0.1  # how often the scheduler samples the lag
BASELINE_WEIGHT = 0.2  # EWMA weight of a new healthy window in the usual error rate
MIN_WINDOW = 20  # results per decision at least


class AdaptiveLimit:
    def __init__(self, limiter: trio.CapacityLimiter, low: int, high: int) -> None:
        self.limiter = limiter
        self.low, self.high = low, high
        limiter.total_tokens = max(low, min(high, low * 4))
        self.baseline = 0.0  # usual share of PRESSURE errors, learned from healthy windows
        self._results = 0
        self._pressure = 0
        self._saturated = False
        self._lag = 0.0

    def set_bounds(self, low: int, high: int) -> None:
        self.low, self.high = low, high
        self._resize(self.limiter.total_tokens)

    @property
    def limit(self) -> int:
        return int(self.limiter.total_tokens)

    def note_result(self, result: ProbeResult) -> None:
        self._results += 1
        if self.limiter.statistics().tasks_waiting:
            self._saturated = True  # probes queue for tokens: the limit is the bottleneck
        if result.error in PRESSURE:
            self._pressure += 1
        if self._results >= max(MIN_WINDOW, self.limit // 2):
            self._decide()

    def note_lag(self, lag: float) -> None:
        self._lag = max(self._lag, lag)

    def _decide(self) -> None:
        rate = self._pressure / self._results
        if rate > self.baseline + SPIKE or self._lag > LAG_LIMIT:
            self._resize(self.limit * BACKOFF)
        else:
            self.baseline += BASELINE_WEIGHT * (rate - self.baseline)
            if self._saturated:
                self._resize(max(self.limit + 1, self.limit * GROWTH))
        self._results = self._pressure = 0
        self._saturated = False
        self._lag = 0.0

    def _resize(self, size: float) -> None:
        self.limiter.total_tokens = max(self.low, min(self.high, int(size)))
