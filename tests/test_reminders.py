"""Reminders (policy/_reminders.py): while an outage lasts its page is repeated at each
interval among the target's `repeat` and its notifiers', on grids anchored on the page;
none after recovery; resumed after a restart from history."""

from __future__ import annotations

import json
import math
import signal
import time
from datetime import datetime

import pytest
import trio
from factories import alert_event, probe_result, write_config
from test_cli import WAIT, cli_config, start_monitor

from trio_monitor import parse_config
from trio_monitor._config import human_duration
from trio_monitor.alerts.routing import accepts, reminder_intervals
from trio_monitor.engine.dispatch import Dispatcher
from trio_monitor.engine.state import MemoryStateStore
from trio_monitor.policy import Policy
from trio_monitor.policy._reminders import Reminders
from trio_monitor.store.records import Incident

pytestmark = pytest.mark.usefixtures("memory_channel")

HOUR = 3600.0


def config(*tables, repeat="1h", targets=None):
    target = {"name": "api", "url": "http://127.0.0.1/api"}
    if repeat is not None:
        target["alerts"] = {"repeat": repeat}
    return parse_config(
        {
            "alerts": {
                "failure_threshold": 1,
                "flap_threshold": 0,
                "group_window": "0s",  # a down is not held for a window
                "memory": list(tables),
            },
            "targets": targets or [target],
        }
    )


def down(state, target, now, ts=1000.0):
    _, alerts = state.observe(
        target, probe_result(target.name, ok=False, ts=ts, error_detail="connection refused"), now
    )
    return alerts


def test_intervals_are_the_targets_and_those_of_the_notifiers_that_take_its_reminders():
    cfg = config(
        {"name": "own", "repeat": "30m"},
        {"name": "inherits"},  # no repeat of its own: the target's
        {"name": "other-team", "repeat": "5m", "match": {"team": "web"}},
        {"name": "no-reminders", "repeat": "10m", "events": ["down", "up"]},
        {"name": "named", "repeat": "2h"},
        targets=[
            {
                "name": "api",
                "url": "http://127.0.0.1/",
                "labels": {"team": "pay"},
                "alerts": {"repeat": "1h", "notify": ["own", "inherits", "other-team"]},
            }
        ],
    )
    assert reminder_intervals(cfg.alerts, cfg.targets[0]) == {HOUR, 1800.0}


async def test_reminders_repeat_on_the_pages_grid_until_recovery(autojump_clock):
    cfg = config()
    (target,) = cfg.targets
    state = MemoryStateStore(cfg.alerts)
    dispatcher = Dispatcher(state, Policy(cfg, state))
    seen = []
    dispatcher.add_observer(lambda r: seen.append(r) if r.type == "alert" else None)
    async with trio.open_nursery() as nursery:
        await nursery.start(dispatcher.run_policy)
        start = trio.current_time()
        since = time.time()  # the dispatcher's wall clock is the real one
        result = probe_result("api", ok=False, ts=since, error_detail="connection refused")
        dispatcher.probed(target, result, start, current=True)
        await trio.sleep(3.5 * HOUR)
        reminders = [a for a in seen if a.event == "reminder"]
        assert [(r.reminder, r.repeat_s) for r in reminders] == [(1, HOUR), (2, HOUR), (3, HOUR)]
        first = reminders[0]
        assert first.since == since
        assert 0 <= first.downtime_s == round(first.ts - since, 3)
        assert first.detail == (
            f"still down after {human_duration(first.downtime_s)}: connect: connection refused"
        )
        assert first.reason == "connect"
        dispatcher.probed(target, probe_result("api"), trio.current_time(), current=True)
        await trio.sleep(5 * HOUR)
        dispatcher.close()
    assert [a.event for a in seen] == ["down", "reminder", "reminder", "reminder", "up"]


def test_due_times_are_anchored_on_the_page_not_on_the_last_tick():
    cfg = config()
    state = MemoryStateStore(cfg.alerts)
    stage = Reminders(cfg, state)
    stage.process(down(state, cfg.targets[0], 0.0), 0.0)
    assert stage.next_tick() == HOUR
    (first,) = stage.tick(HOUR + 100, wall=1000.0 + HOUR + 100)  # a late tick
    assert first.reminder == 1
    assert first.detail == "still down after 1h01m: connect: connection refused"
    assert stage.next_tick() == 2 * HOUR  # not 2 h + 100 s
    (late,) = stage.tick(3 * HOUR + 5, wall=9000.0)  # after a stall: one, the latest
    assert late.reminder == 3
    assert stage.next_tick() == 4 * HOUR


def test_each_interval_has_its_own_grid_and_number():
    cfg = config({"name": "pager", "repeat": "30m"})
    state = MemoryStateStore(cfg.alerts)
    stage = Reminders(cfg, state)
    stage.process(down(state, cfg.targets[0], 0.0), 0.0)
    got = []
    while (due := stage.next_tick()) <= 2 * HOUR:
        got += [(due, r.repeat_s, r.reminder) for r in stage.tick(due, wall=due)]
    assert got == [
        (1800.0, 1800.0, 1),
        (HOUR, 1800.0, 2),
        (HOUR, HOUR, 1),
        (5400.0, 1800.0, 3),
        (2 * HOUR, 1800.0, 4),
        (2 * HOUR, HOUR, 2),
    ]
    table = cfg.alerts.channels("memory")[0]
    pager = accepts(table, "pager", {"api": cfg.targets[0]})
    assert [r for _, r, _ in got if pager(alert_event("reminder", repeat_s=r))] == [1800.0] * 4


def test_no_reminder_without_a_repeat_or_for_an_alert_that_was_not_delivered():
    cfg = config(repeat=None)
    state = MemoryStateStore(cfg.alerts)
    stage = Reminders(cfg, state)
    stage.process(down(state, cfg.targets[0], 0.0), 0.0)
    assert stage.next_tick() is None
    cfg = config()
    stage = Reminders(cfg, state)
    for mark in ({"suppressed_by": ("router",)}, {"held_by": "silence:1"}, {"group": "g-1"}):
        stage.process([alert_event("down", "api", **mark)], 0.0)
        assert stage.next_tick() is None, mark


def test_reminders_stop_when_the_state_store_no_longer_says_down():
    cfg = config()
    state = MemoryStateStore(cfg.alerts)
    stage = Reminders(cfg, state)
    stage.process(down(state, cfg.targets[0], 0.0), 0.0)
    state.retain([])  # e.g. removed by a reload
    assert stage.tick(HOUR, wall=5000.0) == []
    assert stage.next_tick() is None


def test_flapping_ends_them():
    cfg = config()
    state = MemoryStateStore(cfg.alerts)
    stage = Reminders(cfg, state)
    stage.process(down(state, cfg.targets[0], 0.0), 0.0)
    stage.process([alert_event("flapping", "api", state="UP")], 10.0)
    assert stage.next_tick() is None


def test_a_groups_page_is_reminded_for_the_group_not_per_member():
    targets = [
        {"name": n, "url": f"http://127.0.0.1/{n}", "alerts": {"repeat": r}}
        for n, r in (("a", "1h"), ("b", "30m"))
    ]
    cfg = config(targets=targets)
    state = MemoryStateStore(cfg.alerts)
    stage = Reminders(cfg, state)
    for target in cfg.targets:
        down(state, target, 0.0)
        stage.process([alert_event("down", target.name, group="group-1")], 0.0)  # folded
    page = alert_event(
        "group_down",
        "group-1",
        url="group:group-1",
        group="group-1",
        members=("a", "b"),
        cause="2 targets failing with connect",
        detail="2 targets failing with connect",
        since=900.0,
    )
    stage.process([page], 0.0)
    (reminder,) = stage.tick(1800.0, wall=2700.0)
    assert (reminder.target, reminder.members, reminder.group) == ("group-1", ("a", "b"), "group-1")
    assert reminder.deliverable
    assert reminder.detail == "still down after 30m00s: 2 targets failing with connect"
    assert stage.next_tick() == HOUR
    stage.process([alert_event("group_up", "group-1", group="group-1", members=("a", "b"))], 1.0)
    assert stage.next_tick() is None


def test_a_released_childs_page_starts_its_reminders():
    cfg = parse_config(
        {
            "alerts": {"failure_threshold": 1, "flap_threshold": 0, "group_window": "0s"},
            "targets": [
                {"name": "router", "url": "http://127.0.0.1/r"},
                {
                    "name": "app",
                    "url": "http://127.0.0.1/a",
                    "depends_on": ["router"],
                    "alerts": {"repeat": "1h"},
                },
            ],
        }
    )
    router, app = cfg.targets
    state = MemoryStateStore(cfg.alerts)
    policy = Policy(cfg, state)
    policy.process(down(state, router, 0.0), 0.0)
    policy.process(down(state, app, 10.0), 10.0)  # suppressed: no page, no reminder
    assert policy.next_tick() == math.inf
    _, alerts = state.observe(router, probe_result("router", ts=2000.0), 500.0)
    _, page = policy.process(alerts, 500.0)
    assert (page.target, page.event, page.deliverable) == ("app", "down", True)
    assert policy.next_tick() == 500.0 + HOUR


def test_a_reload_that_adds_an_interval_starts_it_from_now_on_the_same_grid():
    cfg = config()
    state = MemoryStateStore(cfg.alerts)
    stage = Reminders(cfg, state)
    stage.process(down(state, cfg.targets[0], 0.0), 0.0)
    stage.tick(HOUR, wall=1.0)
    stage.configure(config({"name": "pager", "repeat": "20m"}))
    assert stage.next_tick() == 4800.0  # page + 4 x 20 min: the first after the last time seen
    (reminder,) = stage.tick(4800.0, wall=2.0)
    assert (reminder.repeat_s, reminder.reminder) == (1200.0, 4)
    stage.configure(config(repeat=None))
    assert stage.next_tick() is None


def test_reminders_resume_after_a_restart_on_the_old_grid():
    cfg = config()
    (target,) = cfg.targets
    state = MemoryStateStore(cfg.alerts)
    policy = Policy(cfg, state)
    wall = 100_000.0
    paged = wall - 2.5 * HOUR  # paged 2 h 30 min ago; reminders 1 and 2 went out then
    outage = Incident("api", paged - 60, None, "connect", paged=paged)
    state.restore_down("api", outage.start, 50.0, wall)
    policy.resume([outage], 50.0, wall)
    assert policy.next_tick() == 50.0 + 0.5 * HOUR
    (reminder,) = policy.tick(50.0 + 0.5 * HOUR, wall + 0.5 * HOUR)
    assert (reminder.reminder, reminder.since, reminder.downtime_s) == (
        3,
        paged - 60,
        3 * HOUR + 60,
    )
    assert reminder.url == target.url
    # an outage whose page never went out (suppressed, held) resumes none
    policy = Policy(cfg, state)
    policy.resume([Incident("api", paged, None, "connect", suppressed_by=("x",))], 50.0, wall)
    assert policy.stages[-1].next_tick() is None


# --- end to end: the console script, a webhook on loopback -----------------------------


def _hooked(server) -> list[dict]:
    return [json.loads(body) for body in server.received]


def _seconds(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


def _remind_config(server) -> dict:
    target = {"name": "api", "url": server.url("/body/api"), "alerts": {"repeat": "1s"}}
    hook = {"url": server.url("/hook")}
    alerts = {"failure_threshold": 1, "group_window": "0s", "webhook": [hook]}
    return cli_config(target, alerts=alerts)


@pytest.mark.subprocess
async def test_the_console_script_reminds_every_second_until_recovery(tmp_path, server):
    server.bodies.pop("api", None)  # /body/api answers 404 until it is set
    config = write_config(tmp_path, _remind_config(server))
    async with start_monitor(config) as monitor:
        with trio.fail_after(WAIT):
            await server.wait_received(3)
        down, first, second = _hooked(server)[:3]
        assert down["event"] == "down"
        assert [(r["event"], r["reminder"], r["repeat_s"]) for r in (first, second)] == [
            ("reminder", 1, 1.0),
            ("reminder", 2, 1.0),
        ]
        assert first["since"] == second["since"] == down["since"]
        took = human_duration(second["downtime_s"])  # about 2 s
        assert second["detail"] == f"still down after {took}: {down['reason']}: {down['detail']}"
        # on the page's grid: reminder k about k seconds after the page
        page = _seconds(down["ts"])
        assert 0.9 <= _seconds(first["ts"]) - page < 1.9
        assert 1.9 <= _seconds(second["ts"]) - page < 2.9
        server.bodies["api"] = b"back"
        index, up = await monitor.wait_record(lambda r: r["type"] == "alert" and r["event"] == "up")
        # two seconds of probes after the recovery: no reminder among them
        await monitor.wait_record(
            lambda r: r["type"] == "probe" and _seconds(r["ts"]) > _seconds(up["ts"]) + 2.5, index
        )
        monitor.send(signal.SIGTERM)
        assert await monitor.wait_exit() == 0
    alerts = [r for r in monitor.records() if r["type"] == "alert"]
    events = [a["event"] for a in alerts]
    assert events[0] == "down"
    assert events[-1] == "up"
    assert set(events[1:-1]) == {"reminder"}
    assert [a["reminder"] for a in alerts[1:-1]] == list(range(1, len(events) - 1))
    assert [a["event"] for a in _hooked(server)] == events  # each was delivered, none after up


@pytest.mark.subprocess
async def test_reminders_go_on_after_a_restart(tmp_path, server):
    server.bodies.pop("api", None)
    config = write_config(tmp_path, _remind_config(server))
    async with start_monitor(config) as monitor:
        with trio.fail_after(WAIT):
            await server.wait_received(3)  # the down, reminders 1 and 2
        monitor.send(signal.SIGTERM)
        assert await monitor.wait_exit() == 0
    before = [a for a in monitor.records() if a["type"] == "alert"]
    down, last = before[0], before[-1]
    async with start_monitor(config) as monitor:
        _, reminder = await monitor.wait_record(lambda r: r["type"] == "alert")
        monitor.send(signal.SIGTERM)
        assert await monitor.wait_exit() == 0
    # still the same outage: no second page, its reminders numbered on from the page
    assert reminder["event"] == "reminder"
    assert reminder["since"] == down["since"]
    assert reminder["reminder"] > last["reminder"]
    page = _seconds(down["ts"])
    assert reminder["reminder"] <= _seconds(reminder["ts"]) - page < reminder["reminder"] + 1
    assert [a["event"] for a in monitor.records() if a["type"] == "alert"][:1] == ["reminder"]


def test_with_the_grouping_stage_a_group_is_reminded_once_not_per_member():
    targets = [
        {"name": n, "url": f"http://127.0.0.1/{n}", "alerts": {"repeat": "1h"}}
        for n in ("a", "b", "c")
    ]
    cfg = parse_config(
        {
            "alerts": {"failure_threshold": 1, "flap_threshold": 0, "group_window": "10s"},
            "targets": targets,
        }
    )
    state = MemoryStateStore(cfg.alerts)
    policy = Policy(cfg, state)
    for i, target in enumerate(cfg.targets):
        assert policy.process(down(state, target, float(i)), float(i)) == []  # in the window
    released = policy.tick(policy.next_tick(), wall=1010.0)
    (page,) = [a for a in released if a.deliverable]
    assert (page.event, page.members) == ("group_down", ("a", "b", "c"))
    assert policy.next_tick() == 10.0 + HOUR
    (reminder,) = policy.tick(10.0 + HOUR, wall=1010.0 + HOUR)
    assert (reminder.target, reminder.members, reminder.reminder) == (page.target, page.members, 1)
    assert reminder.deliverable
