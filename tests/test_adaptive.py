"""Adaptive concurrency: grows while healthy and saturated, backs off on spikes and lag."""

from __future__ import annotations

import attrs
import trio
from fakes import FakeProber, make_config, result_for, rounds, scheduler_for

from trio_monitor import ErrorKind, ProbeResult, prepare
from trio_monitor.engine.adaptive import MIN_WINDOW, AdaptiveLimit

PLAN = prepare(make_config([{"name": "t", "url": "http://127.0.0.1/"}]).targets[0])


def outcome(error=None) -> ProbeResult:
    result = result_for(PLAN, 1, ok=error is None)
    return result if error is None else attrs.evolve(result, error=error)


def feed(limit: AdaptiveLimit, n: int, *, every: int = 0, error=ErrorKind.TIMEOUT, busy=True):
    """n results; every `every`-th one failed with `error`; the limiter saturated if busy."""
    for i in range(n):
        if busy:
            limit._saturated = True
        limit.note_result(outcome(error if every and i % every == 0 else None))


def test_grows_while_saturated_and_healthy_up_to_the_bound():
    limit = AdaptiveLimit(trio.CapacityLimiter(1), low=10, high=100)
    assert limit.limit == 40  # starts at 4x the floor
    feed(limit, MIN_WINDOW)
    assert limit.limit == 50
    feed(limit, 2000)
    assert limit.limit == 100


def test_does_not_grow_when_the_limit_is_not_the_bottleneck():
    limit = AdaptiveLimit(trio.CapacityLimiter(1), low=10, high=100)
    feed(limit, 200, busy=False)
    assert limit.limit == 40


def test_error_spike_halves_down_to_the_floor():
    limit = AdaptiveLimit(trio.CapacityLimiter(1), low=10, high=100)
    feed(limit, MIN_WINDOW, every=2)  # 50% timeouts
    assert limit.limit == 20
    feed(limit, 500, every=2, error=ErrorKind.CONNECT)
    assert limit.limit == 10


def test_steady_share_of_dead_targets_is_learned_not_punished():
    # 8% of targets are simply down; that is the fleet, not overload.
    limit = AdaptiveLimit(trio.CapacityLimiter(1), low=10, high=1000)
    feed(limit, 5000, every=12)
    assert limit.limit == 1000
    assert 0.05 < limit.baseline < 0.1


def test_other_failures_are_not_pressure():
    limit = AdaptiveLimit(trio.CapacityLimiter(1), low=10, high=100)
    feed(limit, 200, every=1, error=ErrorKind.STATUS)
    assert limit.limit == 100


def test_loop_lag_backs_off():
    limit = AdaptiveLimit(trio.CapacityLimiter(1), low=10, high=100)
    limit.note_lag(0.5)
    feed(limit, MIN_WINDOW)
    assert limit.limit == 20


async def test_scheduler_grows_then_backs_off(autojump_clock):
    targets = [
        {"name": f"t{i}", "url": f"http://127.0.0.{i % 250 + 1}:{i + 1}/"} for i in range(400)
    ]
    config = make_config(
        targets, interval="10s", adaptive=True, adaptive_min=10, concurrency=200, per_host=100
    )
    prober = FakeProber({f"t{i}": 0.5 for i in range(400)})
    records = []
    scheduler = scheduler_for(config, prober, records)

    async def failing(plan, round_no, deadlines):
        await trio.sleep(0.5)
        return attrs.evolve(result_for(plan, round_no, ok=False), error=ErrorKind.TIMEOUT)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        await trio.sleep(35)
        grown = scheduler.limiter.total_tokens
        prober.probe = failing
        await trio.sleep(20)
        scheduler.stop()
    limits = [r.concurrency for r in rounds(records)]
    assert 40 < limits[0] < 200  # from 4x the floor, growing step by step
    assert grown == 200  # and capped at `concurrency`
    assert prober.max_total == 200
    assert limits[-1] == scheduler.limiter.total_tokens == 10  # timeouts: back to the floor
