"""What a round's probes pass through: the probe limits, and the event-loop lag watch.

Limits: a probe takes a token of its origin's limiter (`per_host`, keyed by the plan's
`limit_key`), then one of the global limiter (`concurrency`, steered by AdaptiveLimit
when `adaptive` is on). Its deadline starts only after both: time queued behind other
probes is ours, not the target's, and must not look like a timeout. A confirmation
probe first takes a token of the confirmation share (half of the lowest the probe limit
can be: `concurrency`, or `adaptive_min` with `adaptive`), so a mass failure (a network
blip failing thousands of targets at once) can never hold more than half of the probe
limit with its extra probes: the healthy targets' schedule keeps the other half.

A limiter that cannot block is not taken: a target has one probe in flight at most, so
an origin with no more targets than `per_host`, a fleet no larger than `concurrency`
(and not adaptive) or than the confirmation share never waits for a token, and taking
one would only cost time per probe. Counted over the targets before and after a
reload, since a removed target's last probe may still be in flight.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter, deque
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager

import trio

from .._config import MonitorSection
from .._records import ProbeResult
from ..store.records import Histogram
from .adaptive import LAG_PERIOD, AdaptiveLimit

LAG_FORGIVEN = 0.005  # loop stalls longer than this extend the deadlines in flight
LAG_MEMORY = 60.0  # seconds the worst stall is remembered, for health checks
START_LAG_PERIOD = 10.0  # the start-lag window moves in steps of this many seconds


class Limits:
    def __init__(self, monitor: MonitorSection) -> None:
        self.limiter = trio.CapacityLimiter(monitor.concurrency)
        self.confirm_share = trio.CapacityLimiter(1)  # set by apply
        self.adaptive: AdaptiveLimit | None = None  # None: a fixed limit
        self._per_host = monitor.per_host
        self._by_key: dict[str, trio.CapacityLimiter] = {}
        self._keys: Counter[str] = Counter()  # targets per limit key, as last applied
        self._contended: frozenset[str] = frozenset()  # keys whose limiter can block
        self._global: tuple[trio.CapacityLimiter, ...] = ()  # those that can block
        self._share: tuple[trio.CapacityLimiter, ...] = ()
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
        self.confirm_share.total_tokens = max(
            1, (low if monitor.adaptive else monitor.concurrency) // 2
        )
        if monitor.per_host != self._per_host:
            self._per_host = monitor.per_host
            for limiter in self._by_key.values():
                limiter.total_tokens = monitor.per_host
        used = Counter(keys)
        # in flight at most: one probe per target, old (still finishing) or new
        flying = used | self._keys
        self._keys = used
        self._contended = frozenset(k for k, n in flying.items() if n > self._per_host)
        total = flying.total()
        self._global = (self.limiter,) if monitor.adaptive or total > monitor.concurrency else ()
        self._share = (self.confirm_share,) if total > self.confirm_share.total_tokens else ()
        for key in [k for k, lim in self._by_key.items() if k not in self._contended]:
            if self._by_key[key].borrowed_tokens == 0:
                del self._by_key[key]

    def hold(self, key: str, *, confirm: bool = False) -> AbstractAsyncContextManager[None]:
        """Hold what this probe needs: its share (a confirmation), its origin's limiter,
        the global one; only those that can block (see the module docstring)."""
        # the share first: a confirmation probe waiting for it holds no other token
        limiters = (self._share if confirm else ()) + self._origin(key) + self._global
        return _Held(limiters) if limiters else _FREE

    def _origin(self, key: str) -> tuple[trio.CapacityLimiter, ...]:
        if key not in self._contended:
            return ()
        limiter = self._by_key.get(key)
        if limiter is None:
            limiter = self._by_key[key] = trio.CapacityLimiter(self._per_host)
        return (limiter,)

    def note(self, result: ProbeResult) -> None:
        if self.adaptive is not None:
            self.adaptive.note_result(result)


_FREE = contextlib.nullcontext()  # nothing to hold: no generator, no list per probe


class _Held:
    """Acquires limiters in order; releases the ones it got, in reverse, whatever
    happened (a cancelled acquire holds nothing).

    A free token is taken without the scheduling point `acquire()` adds even when it
    need not wait: the probe reaches one at its first I/O anyway, and a pass through
    the scheduler per limiter per probe is a noticeable share of a probe's CPU. Waiting
    probes are still served first (`acquire_nowait` refuses while any is parked)."""

    __slots__ = ("_held", "_limiters")

    def __init__(self, limiters: tuple[trio.CapacityLimiter, ...]) -> None:
        self._limiters = limiters
        self._held = 0

    async def __aenter__(self) -> None:
        try:
            for limiter in self._limiters:
                try:
                    limiter.acquire_nowait()
                except trio.WouldBlock:
                    await limiter.acquire()
                self._held += 1
        except BaseException:
            self._release()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._release()

    def _release(self) -> None:
        for limiter in reversed(self._limiters[: self._held]):
            limiter.release()
        self._held = 0


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


class StartLag:
    """How late probes start: the time from a probe's due time until it holds both
    limits. Behind a backlog (more due probes than `concurrency` serves) this grows
    while every probe still succeeds, so it is what tells a monitor that cannot keep
    its schedule. Kept over the last LAG_MEMORY seconds, in START_LAG_PERIOD steps,
    as latency histograms: O(1) memory whatever the number of probes."""

    def __init__(self) -> None:
        # (period number, histogram of lags in ms, the worst lag in s), oldest first
        self._periods: deque[tuple[int, Histogram, list[float]]] = deque()

    def note(self, lag: float, now: float) -> None:
        period = math.floor(now / START_LAG_PERIOD)
        if not self._periods or self._periods[-1][0] < period:
            self._periods.append((period, Histogram.empty(), [0.0]))
            self._forget(now)
        _, histogram, worst = self._periods[-1]
        histogram.add(max(0.0, lag) * 1000)
        worst[0] = max(worst[0], lag)

    def _forget(self, now: float) -> None:
        first = math.floor((now - LAG_MEMORY) / START_LAG_PERIOD)
        while self._periods and self._periods[0][0] < first:
            self._periods.popleft()

    def recent(self, now: float) -> tuple[float, float] | None:
        """-> (median, worst) start lag in seconds of the probes started in about the
        last LAG_MEMORY seconds; None when none started."""
        self._forget(now)
        merged = Histogram.empty()
        for _, histogram, _ in self._periods:
            merged.merge(histogram)
        p50 = merged.percentile(50)
        if p50 is None:
            return None
        return p50 / 1000, max(worst[0] for _, _, worst in self._periods)
