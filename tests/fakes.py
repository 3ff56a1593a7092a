"""A fake prober and scheduler helpers for logic tests on trio's autojump clock."""

from __future__ import annotations

import functools
import time
from collections import defaultdict

import factories
import trio
from factories import config_doc, probe_result

from trio_monitor import RoundSummary, run_monitor
from trio_monitor.engine.dispatch import Dispatcher
from trio_monitor.engine.schedule import Scheduler
from trio_monitor.engine.state import MemoryStateStore
from trio_monitor.probes.http import prepare


def make_config(targets, **monitor):
    """Unstaggered unless asked: most tests here reason about exact start times."""
    return factories.make_config(config_doc(*targets, monitor={"stagger": "0s", **monitor}))


def result_for(plan, round_no, ok=True):
    t = plan.target
    latency_ms = 1.0 if ok else None
    return probe_result(
        t.name, ts=time.time(), url=t.url, ok=ok, latency_ms=latency_ms, round=round_no
    )


class FakeProber:
    """A prober for http targets that sends nothing: records when each target's probe
    started; each takes `durations[name]` seconds. Targets in `fail` raise; a probe of
    a target in `fail_during` ({name: (from, until)}) that starts in that window (seconds
    since t0) returns a failed result."""

    def __init__(self, durations=None, fail=(), fail_during=None):
        self.durations = durations or {}
        self.fail = set(fail)
        self.fail_during = fail_during or {}
        self.starts = defaultdict(list)
        self.active = defaultdict(int)
        self.max_active_per_target = defaultdict(int)
        self.active_total = 0
        self.max_total = 0
        self.t0 = trio.current_time()

    def prepare(self, target):
        return prepare(target)  # the real plan: the same per-origin limit keys

    async def reconfigure(self, old, new):
        pass

    async def probe(self, plan, round_no, deadlines):
        name = plan.target.name
        started = round(trio.current_time() - self.t0, 6)
        self.starts[name].append(started)
        self.active[name] += 1
        self.active_total += 1
        self.max_active_per_target[name] = max(self.max_active_per_target[name], self.active[name])
        self.max_total = max(self.max_total, self.active_total)
        try:
            await trio.sleep(self.durations.get(name, 0.01))
        finally:
            self.active[name] -= 1
            self.active_total -= 1
        if name in self.fail:
            raise ValueError("boom")
        start, until = self.fail_during.get(name, (0.0, 0.0))
        return result_for(plan, round_no, ok=not start <= started < until)


def dispatcher_for(config, records):
    """A dispatcher with the real state machine that hands every record to `records`."""
    dispatcher = Dispatcher(MemoryStateStore(config.alerts))
    dispatcher.add_observer(records.append)
    return dispatcher


def scheduler_for(config, prober, records):
    return Scheduler(config, {"http": prober}, dispatcher_for(config, records))


async def run_for(scheduler, seconds):
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        await trio.sleep(seconds)
        scheduler.stop()


def rounds(records):
    return [r for r in records if isinstance(r, RoundSummary)]


async def running(nursery, config, **options):
    """run_monitor started in `nursery` with signals left alone: -> its Monitor, running."""
    return await nursery.start(
        functools.partial(run_monitor, config, handle_signals=False, **options)
    )


class Box:
    """A value a callable hands out, replaced by a test (a config that changes)."""

    def __init__(self, value):
        self.value = value

    def __call__(self):
        return self.value


def silence_desk(config=None):
    """A real SilenceDesk over the maintenance stage of a policy (and a dispatcher
    nobody runs) for `config` (default: targets "api" labelled team=pay, and "db");
    its config is a Box: `desk.box.value = ...` swaps it (a store path, a reload)."""
    from trio_monitor.engine.silences import SilenceDesk
    from trio_monitor.policy import Holds, Policy

    if config is None:
        config = factories.make_config(
            config_doc(
                {"name": "api", "url": "http://127.0.0.1/", "labels": {"team": "pay"}},
                {"name": "db", "url": "http://127.0.0.2/"},
            )
        )
    state = MemoryStateStore(config.alerts)
    policy = Policy(config, state)
    (holds,) = (s for s in policy.stages if isinstance(s, Holds))
    box = Box(config)
    desk = SilenceDesk(holds, Dispatcher(state, policy), box)
    desk.box, desk.holds = box, holds  # type: ignore[attr-defined]
    return desk
