"""What a round's probes pass through: the probe limits, and the event-loop lag watch.

Limits: a probe takes a token of its origin's limiter (`per_host`, keyed by the plan's
`limit_key`), then one of the global limiter (`concurrency`, steered by AdaptiveLimit
when `adaptive` is on). Its deadline starts only after both: time queued behind other
probes is ours, not the target's, and must not look like a timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import trio

from .._config import MonitorSection
from .._records import ProbeResult
from .adaptive import LAG_PERIOD, AdaptiveLimit

LAG_FORGIVEN = 0.005  # loop stalls longer than this extend the deadlines in flight
LAG_MEMORY = 60.0  # seconds the worst stall is remembered, for health checks


class Limits:
    def __init__(self, monitor: MonitorSection) -> None:
        self.limiter = trio.CapacityLimiter(monitor.concurrency)
        self.adaptive: AdaptiveLimit | None = None  # None: a fixed limit
        self._per_host = monitor.per_host
        self._by_key: dict[str, trio.CapacityLimiter] = {}
        self.apply(monitor, ())

    def apply(self, monitor: MonitorSection, keys: Iterable[str]) -> None:
        """New settings; forget idle per-origin limiters no plan uses (`keys`)."""
        low = min(monitor.adaptive_min, monitor.concurrency)
        if not monitor.adaptive:
            self.adaptive = None
            self.limiter.total_tokens = monitor.concurrency
        elif self.adaptive is None:
            self.adaptive = AdaptiveLimit(self.limiter, low, monitor.concurrency)
        else:
            self.adaptive.set_bounds(low, monitor.concurrency)
        if monitor.per_host != self._per_host:
            self._per_host = monitor.per_host
            for limiter in self._by_key.values():
                limiter.total_tokens = monitor.per_host
        used = set(keys)
        for key in [k for k, lim in self._by_key.items() if k not in used]:
            if self._by_key[key].borrowed_tokens == 0:
                del self._by_key[key]

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        limiter = self._by_key.get(key)
        if limiter is None:
            limiter = self._by_key[key] = trio.CapacityLimiter(self._per_host)
        async with limiter, self.limiter:
            yield

    def note(self, result: ProbeResult) -> None:
        if self.adaptive is not None:
            self.adaptive.note_result(result)


class LagWatch:
    """How late a short sleep wakes up tells whether the event loop keeps up.

    Time the loop was stalled is ours, not the targets': with thousands of probes in
    flight on a saturated CPU, each step of every probe waits for all the others, and
    deadlines would pass on answers that sat unread in socket buffers. So every
    deadline in flight (`deadlines`, filled by the probes) is pushed back by the stall,
    and a timeout means the target.
    """

    def __init__(self, limits: Limits) -> None:
        self.deadlines: set[trio.CancelScope] = set()
        self._limits = limits
        self.worst = (0.0, trio.current_time())  # the worst stall of the last minute, when

    async def run(self) -> None:
        while True:
            asked = trio.current_time() + LAG_PERIOD
            await trio.sleep_until(asked)
            now = trio.current_time()
            lag = now - asked
            if lag >= self.worst[0] or now - self.worst[1] > LAG_MEMORY:
                self.worst = (lag, now)
            if lag > LAG_FORGIVEN:
                for scope in self.deadlines:
                    scope.deadline += lag
            if self._limits.adaptive is not None:
                self._limits.adaptive.note_lag(lag)
