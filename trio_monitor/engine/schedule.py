"""Which targets are due when, and one nursery per round to probe them.

Each target is due at anchor + n * interval, computed by multiplication from a
fixed anchor (never by adding intervals up), and the loop sleeps with
`sleep_until`, so the schedule does not drift however long probes take. Targets
due at the same instant form one round. Rounds overlap: a slow target keeps its
own round open while the next rounds start on time; if it is still in flight when
it is due again, that probe is skipped (counted), never stacked.

Confirmation: while a target's state is undecided (failures, not yet DOWN) or DOWN
(`StateStore.pace`), its next probe is due `confirm_interval` (`recover_interval`)
after the previous one started, or when it ends if that is later, when that comes
before its next normal due time; else the normal probe serves. These extra due times
live beside the slot's anchor and never move it: a settled target goes on at
anchor + n * interval. They join rounds like normal ones (one in flight per target,
the same limits and deadlines, plus the confirmation share: see rounds.py).

Checks: a kind can have news of a target between its due times (push: a ping came,
or its heartbeat's deadline passes). `Scheduler.check(name)` asks for a probe now, and
after each probe a prober that has `next_check(plan, now)` says when it wants the next
one (None: none); each slot holds one such check at most, the soonest. Check probes
start at once (no spot), in rounds of their own, and never move the anchor either.

This is the target-selection seam: here every target is this process's; a cluster
node takes its share of them instead (`select`, cluster/node.py), without touching
rounds, probes or consumers. A target it does not own keeps its slot and cadence (its
due times pass unprobed), so one it gains back needs no new anchor; one it gains is
probed at once (a check).
"""

from __future__ import annotations

import functools
import heapq
import logging
import math
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import trio

from .._config import Config, Target
from .._errors import ErrorKind, ProbeFailure
from .._records import RoundSummary
from ..probes.base import Plan, Prober, failed
from .dispatch import Dispatcher
from .rounds import LagWatch, Limits, StartLag
from .state import RECOVER

log = logging.getLogger("trio_monitor")

DUE, CONFIRM, CHECK = 0, 1, 2  # why a heap entry is there: due time, confirmation, check
SAME_ROUND = 0.001  # due times this close (seconds) share a round
# A target's place in its stagger window is a round's tick (a multiple of SPREAD_TICK:
# targets on one tick share a round, one nursery and one round line, rather than one per
# target) plus its own start within that tick (`stagger_spot`): the load is flat, and
# probes started together do not queue behind each other's work.
SPREAD_TICK = 0.1
SPOT_BATCH = 0.02  # probes whose spots are this close start together (one wake-up: each
# costs a cancel scope and its Cancelled, about 11 µs; 20 ms is still a flat load)


def stagger_window(target: Target, stagger: float | None) -> float:
    """How far into its interval a target's offset may fall: the whole interval when
    `stagger` is unset (the load is flat: as many probes start in every second), else
    at most `stagger` (an explicit cap: bursts, for those who want them)."""
    return target.interval if stagger is None else min(stagger, target.interval)


def stagger_spot(target: Target, stagger: float | None) -> tuple[float, float]:
    """Where a target's probes fall in its interval: (its round's offset, a multiple of
    SPREAD_TICK; its own start after that, under SPREAD_TICK). Fixed per name, spread
    evenly over its stagger window, so probes do not all fire at once.

    crc32, not hash(): Python salts hash() per process, and a target should keep its
    place across restarts (and across machines, later).
    """
    spot = zlib.crc32(target.name.encode()) / 2**32 * stagger_window(target, stagger)
    offset = math.floor(spot / SPREAD_TICK) * SPREAD_TICK
    return offset, spot - offset


class _Slot:
    """A target's place in the schedule. A new slot (reload) orphans the old heap entries."""

    __slots__ = ("anchor", "check_at", "confirm_at", "n", "next_check", "plan", "prober", "spot")

    def __init__(self, plan: Plan, prober: Prober[Any], anchor: float, spot: float = 0.0) -> None:
        self.plan = plan
        self.prober = prober
        # (plan, now) -> when its kind wants the next check probe (see the module doc)
        self.next_check: Callable[[Any, float], float | None] | None = getattr(
            prober, "next_check", None
        )
        self.check_at: float | None = None  # a check probe's due time, if any
        self.anchor = anchor  # its rounds' due times are anchor + n x interval
        self.spot = spot  # its probe starts this long after its round's due time
        self.n = 0
        self.confirm_at: float | None = None  # a confirmation probe's due time, if any

    @property
    def due(self) -> float:
        return self.anchor + self.n * self.plan.target.interval

    def pace(self, pace: str | None, started: float, now: float) -> float | None:
        """-> the due time of the confirmation probe that follows a probe started at
        `started` and ended `now`, or None: settled, or the normal due time is as soon."""
        target = self.plan.target
        if pace is None:
            return None
        every = target.recover_interval if pace == RECOVER else target.confirm_interval
        at = max(started + every, now)
        return at if at < self.due - SAME_ROUND else None

    def advance(self, now: float) -> None:
        """Move to the next due time after now (skipping any the loop was too late for)."""
        interval = self.plan.target.interval
        self.n = max(self.n + 1, math.floor((now - self.anchor) / interval) + 1)


class Scheduler:
    def __init__(
        self,
        config: Config,
        probers: Mapping[str, Prober[Any]],
        dispatcher: Dispatcher,
        *,
        counters: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self._probers = probers
        self._dispatcher = dispatcher
        self.limits = Limits(config.monitor)
        self.lag = LagWatch(self.limits)
        self.start_lag = StartLag()
        self._slots: dict[str, _Slot] = {}
        # (due time, push order, slot, DUE | CONFIRM | CHECK)
        self._heap: list[tuple[float, int, _Slot, int]] = []
        self._seq = 0
        self._wakeup = trio.Event()
        self._in_flight: set[str] = set()
        self._round = 0
        self._grace = config.monitor.grace
        self._starting = trio.CancelScope()
        self._rounds: trio.Nursery | None = None  # while run() runs
        self._counters = counters  # losses since start, for the round line
        self._owns: Callable[[str], bool] = _everything  # the target-selection seam
        # for health checks: when the loop began and when the last round began
        self.started_at = trio.current_time()
        self.last_round_at: float | None = None
        self._loop_began = self.started_at  # set again when the loop begins
        self._apply(config, trio.current_time())
        # when the first round is due (health allows for the wait before it)
        self.first_due = min(
            (slot.due + slot.spot for slot in self._slots.values()), default=self.started_at
        )

    # --- configuration -----------------------------------------------------------

    def stage(self, config: Config, now: float) -> dict[str, _Slot]:
        """The slots `config` needs, every new or changed target's plan prepared, without
        changing anything: what can still fail in applying a config fails here."""
        stagger = config.monitor.stagger
        slots: dict[str, _Slot] = {}
        for target in config.targets:
            old = self._slots.get(target.name)
            if old is not None and old.plan.target == target:
                slots[target.name] = old  # unchanged: keeps its cadence
            else:
                prober = self._probers[target.kind]
                offset, spot = stagger_spot(target, stagger)
                slots[target.name] = _Slot(prober.prepare(target), prober, now + offset, spot)
        return slots

    def _apply(self, config: Config, now: float) -> None:
        slots = self.stage(config, now)
        self._grace = config.monitor.grace
        for name, slot in slots.items():
            if self._slots.get(name) is not slot:
                self._push(slot)
                if slot.next_check is not None:  # e.g. a heartbeat's first deadline
                    self._check_next(slot, slot.next_check(slot.plan, now))
        self._slots = slots
        self.limits.apply(config.monitor, (slot.plan.limit_key for slot in slots.values()))

    async def reconfigure(self, old: Config, new: Config) -> None:
        """Use a new (already validated) config from the next due time on."""
        self._apply(new, trio.current_time())
        self._wakeup.set()

    @property
    def targets(self) -> list[Target]:
        return [slot.plan.target for slot in self._slots.values()]

    @property
    def limiter(self) -> trio.CapacityLimiter:
        return self.limits.limiter

    @property
    def worst_lag(self) -> tuple[float, float]:
        return self.lag.worst

    def recent_start_lag(self) -> tuple[float, float] | None:
        """(median, worst) seconds probes started behind schedule in the last minute."""
        return self.start_lag.recent(trio.current_time())

    # --- the loop ----------------------------------------------------------------

    def _push(self, slot: _Slot, at: float | None = None, why: int = DUE) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (slot.due if at is None else at, self._seq, slot, why))

    def _live(self, slot: _Slot) -> bool:
        return self._slots.get(slot.plan.target.name) is slot

    def _current(self, entry: tuple[float, int, _Slot, int]) -> bool:
        """A heap entry still stands: its slot is configured and, for a confirmation or
        a check, still wants that one (a later result, or a normal probe, replaces it)."""
        at, _, slot, why = entry
        if not self._live(slot):
            return False
        return why == DUE or at == (slot.confirm_at if why == CONFIRM else slot.check_at)

    def select(self, owns: Callable[[str], bool], gained: Iterable[str] = ()) -> None:
        """Probe only the targets `owns` accepts from now on, and each of `gained` (newly
        this process's) at once."""
        self._owns = owns
        for name in gained:
            self.check(name)

    def check(self, name: str) -> None:
        """Probe the target `name` now, between its due times: its kind has news of it
        (push: a ping came). A check already due is enough; one asked while the target
        is in flight is for its prober's `next_check` to ask again when that ends."""
        slot = self._slots.get(name)
        now = trio.current_time()
        if slot is not None and (slot.check_at is None or slot.check_at > now):
            self._check_next(slot, now)

    async def run(self, *, once: bool = False) -> RoundSummary | None:
        """Probe until stop() (or, with once, one round of every target). -> last summary."""
        summary: list[RoundSummary] = []
        async with trio.open_nursery() as rounds:
            self._rounds = rounds
            with self._starting:
                if once:
                    slots = [(slot, False) for slot in self._slots.values()]
                    self._in_flight.update(s.plan.target.name for s, _ in slots)
                    rounds.start_soon(self._run_once, slots, summary)
                else:
                    async with trio.open_nursery() as loop:
                        loop.start_soon(self.lag.run)
                        await self._loop(rounds, summary)
        return summary[-1] if summary else None

    async def _run_once(self, slots: list[tuple[_Slot, bool]], summary: list[RoundSummary]) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.lag.run)
            await self._run_round(
                self._next_round(), slots, 0, summary, trio.current_time(), spread=False
            )
            nursery.cancel_scope.cancel()

    def _next_round(self) -> int:
        self._round += 1
        return self._round

    async def _loop(self, rounds: trio.Nursery, summary: list[RoundSummary]) -> None:
        self._loop_began = trio.current_time()
        while True:
            while self._heap and not self._current(self._heap[0]):
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
            slots: list[tuple[_Slot, bool]] = []
            checks: list[tuple[_Slot, bool]] = []
            skipped = 0
            while self._heap and self._heap[0][0] <= due + SAME_ROUND:
                entry = heapq.heappop(self._heap)
                if not self._current(entry):
                    continue
                _, _, slot, why = entry
                confirm = why == CONFIRM
                name = slot.plan.target.name
                slot.check_at = None  # the probe starting (or in flight) asks next_check
                if not self._owns(name):  # another node's (cluster): its cadence goes on
                    slot.confirm_at = None
                    if why == DUE:
                        slot.advance(now)
                        self._push(slot)
                    continue
                if why == CHECK:
                    if name not in self._in_flight:  # else: its end asks next_check
                        self._in_flight.add(name)
                        checks.append((slot, False))
                    continue
                if name in self._in_flight:
                    skipped += 1
                    log.info("%s: still in flight when due again; skipped", name)
                else:
                    self._in_flight.add(name)
                    slots.append((slot, confirm))
                slot.confirm_at = None  # the probe starting now decides the next one
                if not confirm:
                    slot.advance(now)
                    self._push(slot)
            self.last_round_at = now
            if slots or skipped:
                rounds.start_soon(
                    self._run_round,
                    self._next_round(),
                    slots,
                    skipped,
                    summary,
                    due,
                    self._loop_began,
                )
            if checks:  # at once, in a round of their own (no spots to wait for)
                rounds.start_soon(
                    functools.partial(self._run_round, spread=False),
                    self._next_round(),
                    checks,
                    0,
                    summary,
                    due,
                    self._loop_began,
                )

    def stop(self) -> None:
        """Start no more probes; in-flight ones get `grace` seconds, then are cancelled."""
        self._starting.cancel()
        if self._rounds is not None:
            self._rounds.cancel_scope.deadline = trio.current_time() + self._grace

    # --- one round ---------------------------------------------------------------

    async def _run_round(
        self,
        round_no: int,
        slots: list[tuple[_Slot, bool]],
        skipped: int,
        summary: list[RoundSummary],
        due: float,
        lag_from: float = -math.inf,
        *,
        spread: bool = True,
    ) -> None:
        """Start `slots`' probes, each at its spot after `due` (at once if that is past:
        waiting for a spot after a late start would make the next round find the probe
        not even started, and skip it). Time before `lag_from` is not lag: start-up."""
        ts, started = time.time(), trio.current_time()
        outcomes = [0, 0]  # ok, failed
        lags: list[float] = []  # seconds each probe started after `due`
        if spread:  # confirmations start when due, scheduled probes at their spots
            slots = sorted(slots, key=lambda sc: 0.0 if sc[1] else sc[0].spot)
        async with trio.open_nursery() as nursery:
            for i, (slot, confirm) in enumerate(slots):
                start = due + slot.spot if spread and not confirm else due
                if start > trio.current_time() + SPOT_BATCH:
                    await trio.sleep_until(start)
                if self._starting.cancel_called:  # stopping: start no more
                    self._in_flight.difference_update(s.plan.target.name for s, _ in slots[i:])
                    break
                nursery.start_soon(
                    self._probe_one, slot, confirm, round_no, outcomes, max(start, lag_from), lags
                )
        lags.sort()
        record = RoundSummary(
            ts=ts,
            round=round_no,
            targets=len(slots),
            ok=outcomes[0],
            failed=outcomes[1],
            duration_ms=round((trio.current_time() - started) * 1000, 3),
            skipped=skipped,
            confirm=sum(confirm for _, confirm in slots),
            concurrency=int(self.limits.limiter.total_tokens),
            lag_p50_ms=_ms(lags[(len(lags) - 1) // 2]) if lags else None,
            lag_max_ms=_ms(lags[-1]) if lags else None,
            **self._counters(),
        )
        summary.append(record)
        del summary[:-1]
        self._dispatcher.publish(record)

    async def _probe_one(
        self,
        slot: _Slot,
        confirm: bool,
        round_no: int,
        outcomes: list[int],
        due: float,
        lags: list[float],
    ) -> None:
        plan = slot.plan
        target = plan.target
        try:
            # The deadline starts inside probe(), after both limits (see rounds.py).
            async with self.limits.hold(plan.limit_key, confirm=confirm):
                started = now = trio.current_time()
                late = max(0.0, now - due)  # (started up to SPOT_BATCH early: not late)
                lags.append(late)
                if not confirm:  # health judges the schedule; confirmations queue by design
                    self.start_lag.note(late, now)
                try:
                    result = await slot.prober.probe(plan, round_no, self.lag.deadlines)
                except Exception as exc:  # a bug must cost one result, not the monitor
                    log.exception("internal error probing %s", target.name)
                    detail = f"{type(exc).__name__}: {exc}"[:200]
                    failure = ProbeFailure(ErrorKind.INTERNAL, detail)
                    result = failed(target, round_no, failure, time.time())
        finally:
            self._in_flight.discard(target.name)
        if confirm:
            result = attrs.evolve(result, confirm=True)
        outcomes[0 if result.ok else 1] += 1
        self.limits.note(result)
        # a reload may have removed or changed the target meanwhile: then the result
        # is still reported, but no longer moves the state of what is configured now
        now = trio.current_time()
        pace = self._dispatcher.probed(target, result, now, current=self._live(slot))
        # (with --once nothing runs a confirmation: the loop never starts)
        self._confirm_next(slot, slot.pace(pace, started, now))
        if slot.next_check is not None and self._live(slot):
            self._check_next(slot, slot.next_check(plan, now))

    def _confirm_next(self, slot: _Slot, at: float | None) -> None:
        """Schedule the slot's confirmation probe at `at` (None: none, the normal due
        times go on), and wake the loop: it may be sooner than what it sleeps for."""
        slot.confirm_at = at
        if at is not None:
            self._push(slot, at, CONFIRM)
            self._wakeup.set()

    def _check_next(self, slot: _Slot, at: float | None) -> None:
        """The slot's one check probe is due at `at` now (None: none)."""
        if at == slot.check_at:
            return  # already in the heap
        slot.check_at = at
        if at is not None:
            self._push(slot, at, CHECK)
            self._wakeup.set()


def _everything(_name: str) -> bool:
    return True


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
