"""Rounds: which targets are due when, and one nursery per round to probe them.

Each target is due at anchor + n * interval, computed by multiplication from a
fixed anchor (never by adding intervals up), and the loop sleeps with
`sleep_until`, so the schedule does not drift however long probes take. Targets
due at the same instant form one round. Rounds overlap: a slow target keeps its
own round open while the next rounds start on time; if it is still in flight when
it is due again, that probe is skipped (counted), never stacked.
"""

from __future__ import annotations

import functools
import heapq
import logging
import math
import time
import zlib
from collections.abc import Awaitable, Callable

import httpx
import trio

from .._config import Config, Target
from .._errors import ErrorKind
from .._records import ProbeResult, Record, RoundSummary
from ..probes.http.probe import Plan, prepare, probe
from .adaptive import LAG_PERIOD, AdaptiveLimit
from .state import StateStore

log = logging.getLogger("trio_monitor")

SAME_ROUND = 0.001  # due times this close (seconds) share a round
LAG_FORGIVEN = 0.005  # loop stalls longer than this extend the deadlines in flight
LAG_MEMORY = 60.0  # seconds the worst stall is remembered, for health checks


def stagger_offset(target: Target, stagger: float) -> float:
    """Where a target's probes fall in its interval: fixed per name, spread evenly over
    the first `stagger` seconds (at most the interval), so rounds do not all fire at once.

    crc32, not hash(): Python salts hash() per process, and a target should keep its
    place across restarts (and across machines, later).
    """
    return zlib.crc32(target.name.encode()) / 2**32 * min(stagger, target.interval)


ProbeFn = Callable[[httpx.AsyncClient, Plan, int], Awaitable[ProbeResult]]


class _Slot:
    """A target's place in the schedule. A new slot (reload) orphans the old heap entries."""

    __slots__ = ("anchor", "n", "plan")

    def __init__(self, plan: Plan, anchor: float) -> None:
        self.plan = plan
        self.anchor = anchor
        self.n = 0

    @property
    def due(self) -> float:
        return self.anchor + self.n * self.plan.target.interval

    def advance(self, now: float) -> None:
        """Move to the next due time after now (skipping any the loop was too late for)."""
        interval = self.plan.target.interval
        self.n = max(self.n + 1, math.floor((now - self.anchor) / interval) + 1)


class Scheduler:
    def __init__(
        self,
        config: Config,
        transport: httpx.AsyncBaseTransport,
        state: StateStore,
        emit: Callable[[Record], None],
        *,
        probe_fn: ProbeFn | None = None,
        counters: Callable[[], dict[str, int]] = dict,
    ) -> None:
        self._transport = transport
        self._state = state
        self._emit = emit
        # deadline scopes of the probes in flight, pushed back by event-loop stalls
        self._deadlines: set[trio.CancelScope] = set()
        self._probe_fn = probe_fn or functools.partial(probe, deadlines=self._deadlines)
        self.limiter = trio.CapacityLimiter(config.monitor.concurrency)
        self._adaptive: AdaptiveLimit | None = None
        self._stagger = config.monitor.stagger
        self._per_host = config.monitor.per_host
        self._host_limiters: dict[str, trio.CapacityLimiter] = {}
        self._slots: dict[str, _Slot] = {}
        self._heap: list[tuple[float, int, _Slot]] = []
        self._seq = 0
        self._wakeup = trio.Event()
        self._in_flight: set[str] = set()
        self._round = 0
        self._grace = config.monitor.grace
        self._starting: trio.CancelScope | None = None
        self._rounds: trio.Nursery | None = None
        self._stopping = False
        self._counters = counters  # losses since start, for the round line
        # for health checks: when the loop began, when the last round began, and the
        # worst event-loop stall of the last minute (seconds, when it was measured)
        self.started_at = trio.current_time()
        self.last_round_at: float | None = None
        self.worst_lag = (0.0, self.started_at)
        self._apply(config, trio.current_time())

    # --- configuration -----------------------------------------------------------

    def _apply(self, config: Config, now: float) -> None:
        monitor = config.monitor
        low = min(monitor.adaptive_min, monitor.concurrency)
        if not monitor.adaptive:
            self._adaptive = None
            self.limiter.total_tokens = monitor.concurrency
        elif self._adaptive is None:
            self._adaptive = AdaptiveLimit(self.limiter, low, monitor.concurrency)
        else:
            self._adaptive.set_bounds(low, monitor.concurrency)
        self._grace = monitor.grace
        self._stagger = monitor.stagger
        if monitor.per_host != self._per_host:
            self._per_host = monitor.per_host
            for limiter in self._host_limiters.values():
                limiter.total_tokens = monitor.per_host
        slots: dict[str, _Slot] = {}
        for target in config.targets:
            old = self._slots.get(target.name)
            if old is not None and old.plan.target == target:
                slots[target.name] = old  # unchanged: keeps its cadence
            else:
                slot = _Slot(prepare(target), now + stagger_offset(target, self._stagger))
                slots[target.name] = slot
                self._push(slot)
        self._slots = slots
        hosts = {slot.plan.host for slot in slots.values()}
        for host in [h for h, lim in self._host_limiters.items() if h not in hosts]:
            if self._host_limiters[host].borrowed_tokens == 0:
                del self._host_limiters[host]

    def reconfigure(self, config: Config) -> None:
        """Use a new (already validated) config from the next due time on."""
        self._apply(config, trio.current_time())
        self._wakeup.set()

    @property
    def targets(self) -> list[Target]:
        return [slot.plan.target for slot in self._slots.values()]

    # --- the loop ----------------------------------------------------------------

    def _push(self, slot: _Slot) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (slot.due, self._seq, slot))

    def _live(self, slot: _Slot) -> bool:
        return self._slots.get(slot.plan.target.name) is slot

    async def run(self, *, once: bool = False) -> RoundSummary | None:
        """Probe until stop() (or, with once, one round of every target). -> last summary."""
        summary: list[RoundSummary] = []
        async with trio.open_nursery() as rounds:
            self._rounds = rounds
            with trio.CancelScope() as self._starting:
                if self._stopping:
                    self._starting.cancel()
                if once:
                    plans = [slot.plan for slot in self._slots.values()]
                    self._in_flight.update(p.target.name for p in plans)
                    rounds.start_soon(self._run_once, plans, summary)
                else:
                    async with trio.open_nursery() as loop:
                        loop.start_soon(self._sample_lag)
                        await self._loop(rounds, summary)
        return summary[-1] if summary else None

    async def _run_once(self, plans: list[Plan], summary: list[RoundSummary]) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sample_lag)
            await self._run_round(self._next_round(), plans, 0, summary)
            nursery.cancel_scope.cancel()

    def _next_round(self) -> int:
        self._round += 1
        return self._round

    async def _loop(self, rounds: trio.Nursery, summary: list[RoundSummary]) -> None:
        while True:
            while self._heap and not self._live(self._heap[0][2]):
                heapq.heappop(self._heap)
            if not self._heap:
                await self._wakeup.wait()  # no targets (yet): wait for a reload
                self._wakeup = trio.Event()
                continue
            due = self._heap[0][0]
            with trio.move_on_at(due):
                await self._wakeup.wait()  # a reload may bring an earlier due time
            if self._wakeup.is_set():
                self._wakeup = trio.Event()
                continue
            now = trio.current_time()
            plans: list[Plan] = []
            skipped = 0
            while self._heap and self._heap[0][0] <= due + SAME_ROUND:
                _, _, slot = heapq.heappop(self._heap)
                if not self._live(slot):
                    continue
                name = slot.plan.target.name
                if name in self._in_flight:
                    skipped += 1
                    log.info("%s: still in flight when due again; skipped", name)
                else:
                    self._in_flight.add(name)
                    plans.append(slot.plan)
                slot.advance(now)
                self._push(slot)
            self.last_round_at = now
            rounds.start_soon(self._run_round, self._next_round(), plans, skipped, summary)

    async def _sample_lag(self) -> None:
        """How late a short sleep wakes up tells whether the event loop keeps up.

        Time the loop was stalled is ours, not the targets': with thousands of probes
        in flight on a saturated CPU, each step of every probe waits for all the others,
        and deadlines would pass on answers that sat unread in socket buffers. So every
        deadline in flight is pushed back by the stall, and a timeout means the target.
        """
        while True:
            asked = trio.current_time() + LAG_PERIOD
            await trio.sleep_until(asked)
            now = trio.current_time()
            lag = now - asked
            if lag >= self.worst_lag[0] or now - self.worst_lag[1] > LAG_MEMORY:
                self.worst_lag = (lag, now)
            if lag > LAG_FORGIVEN:
                for scope in self._deadlines:
                    scope.deadline += lag
            if self._adaptive is not None:
                self._adaptive.note_lag(lag)

    def stop(self) -> None:
        """Start no more probes; in-flight ones get `grace` seconds, then are cancelled."""
        self._stopping = True
        if self._starting is not None:
            self._starting.cancel()
        if self._rounds is not None:
            self._rounds.cancel_scope.deadline = trio.current_time() + self._grace

    # --- one round ---------------------------------------------------------------

    async def _run_round(
        self, round_no: int, plans: list[Plan], skipped: int, summary: list[RoundSummary]
    ) -> None:
        ts, started = time.time(), trio.current_time()
        outcomes = [0, 0]  # ok, failed
        async with trio.open_nursery() as nursery:
            for plan in plans:
                nursery.start_soon(self._probe_one, plan, round_no, outcomes)
        record = RoundSummary(
            ts=ts,
            round=round_no,
            targets=len(plans),
            ok=outcomes[0],
            failed=outcomes[1],
            duration_ms=round((trio.current_time() - started) * 1000, 3),
            skipped=skipped,
            concurrency=int(self.limiter.total_tokens),
            **self._counters(),
        )
        summary.append(record)
        del summary[:-1]
        self._emit(record)

    def _host_limiter(self, host: str) -> trio.CapacityLimiter:
        limiter = self._host_limiters.get(host)
        if limiter is None:
            limiter = self._host_limiters[host] = trio.CapacityLimiter(self._per_host)
        return limiter

    async def _probe_one(self, plan: Plan, round_no: int, outcomes: list[int]) -> None:
        target = plan.target
        adaptive = self._adaptive
        try:
            # The deadline starts inside probe(), after both limits: time spent queued
            # behind other probes is ours, not the target's, and must not look like a timeout.
            async with self._host_limiter(plan.host), self.limiter:
                try:
                    result = await self._probe_fn(self._transport, plan, round_no)
                except Exception as exc:  # a bug must cost one result, not the monitor
                    log.exception("internal error probing %s", target.name)
                    result = _internal_error(plan, round_no, exc)
        finally:
            self._in_flight.discard(target.name)
        alerts = []
        slot = self._slots.get(target.name)
        if slot is not None and slot.plan is plan:  # else a reload removed or changed it meanwhile
            result, alerts = self._state.observe(target, result, trio.current_time())
        outcomes[0 if result.ok else 1] += 1
        if adaptive is not None:
            adaptive.note_result(result)
        self._emit(result)
        for alert in alerts:
            self._emit(alert)


def _internal_error(plan: Plan, round_no: int, exc: Exception) -> ProbeResult:
    return ProbeResult(
        ts=time.time(),
        target=plan.target.name,
        url=plan.target.url,
        ok=False,
        status=None,
        latency_ms=None,
        error=ErrorKind.INTERNAL,
        error_detail=f"{type(exc).__name__}: {exc}"[:200],
        attempts=1,
        round=round_no,
    )
