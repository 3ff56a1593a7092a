"""The alert policy's pipeline (policy/__init__.py) and how the dispatcher drives it:
stages in order, what a stage's tick makes goes through the later stages only, due
times on trio's clock, held alerts flushed on close."""

from __future__ import annotations

import attrs
import trio
from factories import alert_event, probe_result

from trio_monitor import parse_config
from trio_monitor.engine.dispatch import Dispatcher
from trio_monitor.engine.state import MemoryStateStore
from trio_monitor.policy import Policy

CONFIG = parse_config(
    {
        "alerts": {"failure_threshold": 1},
        "targets": [{"name": "api", "url": "http://127.0.0.1/"}],
    }
)


class Marker:
    """A stage that marks what passes (`detail` += its name), and holds the first
    alert back for `hold` seconds when asked to."""

    def __init__(self, name, hold=None):
        self.name, self.hold, self.held, self.configured = name, hold, [], None

    def process(self, alerts, now):
        out = []
        for alert in alerts:
            alert = attrs.evolve(alert, detail=(alert.detail or "") + self.name)
            if self.hold is not None:
                self.held.append((now + self.hold, alert))
                self.hold = None
            else:
                out.append(alert)
        return out

    def tick(self, now, wall):
        due = [attrs.evolve(a, ts=wall) for t, a in self.held if t <= now]
        self.held = [(t, a) for t, a in self.held if t > now]
        return due

    def next_tick(self):
        return min((t for t, _ in self.held), default=None)

    def flush(self, now, wall):
        out, self.held = [a for _, a in self.held], []
        return out

    def configure(self, config):
        self.configured = config


def test_stages_run_in_order_and_a_tick_goes_through_the_later_ones_only():
    first, second, third = Marker("1"), Marker("2", hold=5.0), Marker("3")
    policy = Policy(CONFIG, MemoryStateStore(CONFIG.alerts), [first, second, third])
    assert policy.process([alert_event(detail="")], now=10.0) == []
    assert policy.next_tick() == 15.0
    assert policy.tick(14.0, wall=99.0) == []
    (late,) = policy.tick(15.0, wall=99.0)
    assert (late.detail, late.ts) == ("123", 99.0)
    assert policy.next_tick() == float("inf")
    (passed,) = policy.process([alert_event(detail="")], now=16.0)  # the stage holds one only
    assert passed.detail == "123"


def test_flush_sends_what_is_held_through_the_later_stages():
    policy = Policy(CONFIG, None, [Marker("1", hold=60.0), Marker("2")])
    policy.process([alert_event(detail="")], now=0.0)
    assert [a.detail for a in policy.flush(1.0, wall=2.0)] == ["12"]
    assert policy.flush(1.0, wall=2.0) == []


async def test_the_dispatcher_publishes_what_the_policy_makes_at_its_due_time(autojump_clock):
    stage = Marker("m", hold=30.0)
    state = MemoryStateStore(CONFIG.alerts)
    dispatcher = Dispatcher(state, Policy(CONFIG, state, [stage]))
    seen, alerted = [], trio.Event()

    def observe(record):
        seen.append(record)
        if record.type == "alert":
            alerted.set()

    dispatcher.add_observer(observe)
    (target,) = CONFIG.targets
    async with trio.open_nursery() as nursery:
        await nursery.start(dispatcher.run_policy)
        start = trio.current_time()
        dispatcher.probed(target, probe_result("api", ok=False), start, current=True)
        assert [r.type for r in seen] == ["probe"]  # its `down` is held for 30 s
        await alerted.wait()
        assert trio.current_time() - start == 30.0
        (alert,) = seen[1:]
        assert (alert.event, alert.detail) == ("down", "m")
        await dispatcher.reconfigure(CONFIG, CONFIG)
        assert stage.configured is CONFIG
        dispatcher.probed(target, probe_result("api", ok=True), start + 31, current=True)
        dispatcher.probed(target, probe_result("api", ok=False), start + 32, current=True)
        dispatcher.close()  # the held `down` goes out, and run_policy ends
    assert [r.event for r in seen if r.type == "alert"] == ["down", "up", "down"]


def test_probes_without_alerts_do_not_touch_the_policy():
    class Refuses(Marker):
        def process(self, alerts, now):
            raise AssertionError("called without alerts")

    state = MemoryStateStore(CONFIG.alerts)
    dispatcher = Dispatcher(state, Policy(CONFIG, state, [Refuses("x")]))
    (target,) = CONFIG.targets
    dispatcher.probed(target, probe_result("api", ok=True), 0.0, current=True)
