"""Dependencies (policy/_dependencies.py): a child's `down` behind a DOWN parent is
marked `suppressed_by`, its `up` too; when no parent is DOWN any more, a child still
DOWN gets its page then. Through the whole policy, fed by the real state store."""

from __future__ import annotations

import json
import math
import signal

import attrs
import pytest
import trio
from factories import alert_event, probe_result, write_config
from test_cli import WAIT, cli_config, start_monitor
from test_server import write_history

from trio_monitor import parse_config
from trio_monitor.engine.state import MemoryStateStore
from trio_monitor.policy import Policy
from trio_monitor.policy._dependencies import Dependencies
from trio_monitor.store.reader import HistoryReader
from trio_monitor.store.records import Incident


def config(**depends):
    """router, and targets depending on others (`a=("router",)`); thresholds 1/1."""
    names = ["router", *depends]
    return parse_config(
        {
            # grouping off: a down is not held for a window (test_grouping.py has both)
            "alerts": {"failure_threshold": 1, "flap_threshold": 0, "group_window": "0s"},
            "targets": [
                {"name": n, "url": f"http://127.0.0.1/{n}", "depends_on": list(depends.get(n, ()))}
                for n in names
            ],
        }
    )


class Fleet:
    """The state store and the policy, driven the way Dispatcher.probed drives them."""

    def __init__(self, cfg) -> None:
        self.config = cfg
        self.targets = {t.name: t for t in cfg.targets}
        self.state = MemoryStateStore(cfg.alerts)
        self.policy = Policy(cfg, self.state)
        self.now = 0.0

    def probe(self, name: str, ok: bool) -> list:
        self.now += 1.0
        result = probe_result(name, ok=ok, ts=1000.0 + self.now, error_detail="refused")
        _, alerts = self.state.observe(self.targets[name], result, self.now)
        return self.policy.process(alerts, self.now) if alerts else []


def events(alerts):
    return [(a.target, a.event, a.suppressed_by) for a in alerts]


def test_a_childs_outage_behind_a_down_parent_is_recorded_but_not_paged():
    fleet = Fleet(config(app=("router",)))
    (router_down,) = fleet.probe("router", ok=False)
    assert router_down.deliverable
    (down,) = fleet.probe("app", ok=False)
    assert (down.event, down.suppressed_by, down.deliverable) == ("down", ("router",), False)
    assert fleet.policy.suppressed_by("app") == ("router",)
    (up,) = fleet.probe("app", ok=True)  # nobody heard of the outage: nor of its end
    assert (up.event, up.suppressed_by, up.deliverable) == ("up", ("router",), False)
    assert fleet.policy.suppressed_by("app") == ()
    assert events(fleet.probe("router", ok=True)) == [("router", "up", None)]  # nothing owed


def test_when_the_parent_recovers_a_child_still_down_is_paged_then():
    fleet = Fleet(config(app=("router",), db=("router",)))
    fleet.probe("router", ok=False)
    (app_down,) = fleet.probe("app", ok=False)
    fleet.probe("db", ok=False)
    fleet.probe("db", ok=True)  # db recovered behind the router: nothing owed
    router_up, page = fleet.probe("router", ok=True)
    assert router_up.event == "up"
    assert (page.target, page.event, page.deliverable) == ("app", "down", True)
    assert page.ts == router_up.ts  # when it became the child's own outage
    assert page.since == app_down.since  # the outage's start, unchanged
    assert page.detail == "refused; suppressed while router was down"
    assert fleet.policy.suppressed_by("app") == ()
    (app_up,) = fleet.probe("app", ok=True)  # its page went out: so does its end
    assert (app_up.event, app_up.deliverable) == ("up", True)


def test_parents_count_transitively_and_the_page_waits_for_every_one():
    fleet = Fleet(config(app=("router",), web=("app",)))
    fleet.probe("router", ok=False)
    (app,) = fleet.probe("app", ok=False)
    (web,) = fleet.probe("web", ok=False)
    assert app.suppressed_by == ("router",)
    assert web.suppressed_by == ("app", "router")  # the nearest first
    # the router is back: app's page goes out; web waits, app is still DOWN
    assert events(fleet.probe("router", ok=True)) == [
        ("router", "up", None),
        ("app", "down", None),
    ]
    assert fleet.policy.suppressed_by("web") == ("app", "router")
    _, page = fleet.probe("app", ok=True)
    assert (page.target, page.event, page.deliverable) == ("web", "down", True)
    assert page.detail == "refused; suppressed while app, router were down"


def test_a_grandparent_down_suppresses_even_when_the_parent_is_up():
    fleet = Fleet(config(app=("router",), web=("app",)))
    fleet.probe("app", ok=True)
    fleet.probe("router", ok=False)
    (web,) = fleet.probe("web", ok=False)
    assert web.suppressed_by == ("router",)


def test_a_child_down_before_its_parent_is_paged_as_usual():
    fleet = Fleet(config(app=("router",)))
    (down,) = fleet.probe("app", ok=False)
    assert down.deliverable
    fleet.probe("router", ok=False)
    assert events(fleet.probe("router", ok=True)) == [("router", "up", None)]  # no second page
    (up,) = fleet.probe("app", ok=True)
    assert up.deliverable


def test_held_alerts_are_left_alone():
    fleet = Fleet(config(app=("router",)))
    fleet.probe("router", ok=False)
    stage = Dependencies(fleet.config, fleet.state)
    held = alert_event("down", "app", held_by="maintenance:nightly")
    assert stage.process([held], 5.0) == [held]
    assert stage.suppressed_by("app") == ()


def test_a_reload_that_drops_the_dependency_pages_the_child_at_the_next_tick():
    fleet = Fleet(config(app=("router",)))
    fleet.probe("router", ok=False)
    fleet.probe("app", ok=False)
    assert fleet.policy.next_tick() == math.inf
    (deps,) = (s for s in fleet.policy.stages if isinstance(s, Dependencies))
    deps.configure(config(app=()))
    assert fleet.policy.next_tick() == fleet.now  # at once
    (page,) = fleet.policy.tick(100.0, wall=5000.0)
    assert (page.target, page.event, page.ts, page.deliverable) == ("app", "down", 5000.0, True)
    assert fleet.policy.next_tick() == math.inf


def test_a_child_that_stops_being_down_without_an_up_owes_nothing():
    fleet = Fleet(config(app=("router",)))
    fleet.probe("router", ok=False)
    fleet.probe("app", ok=False)
    fleet.state.retain(["router"])  # e.g. a reload removed it: its state is gone
    assert events(fleet.probe("router", ok=True)) == [("router", "up", None)]
    assert fleet.policy.suppressed_by("app") == ()


def test_owed_pages_survive_a_restart():
    cfg = config(app=("router",), db=("router",))
    fleet = Fleet(cfg)
    # what history says: the router's outage was paged, app's and db's were suppressed;
    # db was paged later (the router recovered once in between)
    outages = [
        Incident("router", 900.0, None, "connect", paged=901.0),
        Incident("app", 950.0, None, "status", suppressed_by=("router",)),
        Incident("db", 950.0, None, "status", suppressed_by=("router",), paged=980.0),
    ]
    for incident in outages:
        fleet.state.restore_down(incident.target, incident.start, 0.0, 1000.0)
    fleet.policy.resume(outages, 0.0, 1000.0)
    assert fleet.policy.suppressed_by("app") == ("router",)
    assert fleet.policy.suppressed_by("db") == ()
    assert fleet.policy.tick(0.0, 1000.0) == []  # the router is still DOWN: app waits
    _, page = fleet.probe("router", ok=True)
    assert (page.target, page.event, page.since, page.deliverable) == ("app", "down", 950.0, True)
    assert page.url == "http://127.0.0.1/app"
    assert page.detail == "suppressed while router was down"


def test_an_owed_page_whose_parent_is_no_longer_down_at_restart_goes_out_at_once():
    fleet = Fleet(config(app=("router",)))
    outage = Incident("app", 950.0, None, "status", suppressed_by=("router",))
    fleet.state.restore_down("app", 950.0, 0.0, 1000.0)
    fleet.policy.resume([outage], 7.0, 1000.0)  # the router's outage ended meanwhile
    assert fleet.policy.next_tick() == 7.0  # at once
    (page,) = fleet.policy.tick(7.0, 1000.0)
    assert attrs.evolve(page, detail=None) == alert_event(
        "down",
        "app",
        ts=1000.0,
        url="http://127.0.0.1/app",
        reason="status",
        since=950.0,
    )


async def test_history_keeps_the_suppression_and_when_the_page_went_out(tmp_path):
    path = str(tmp_path / "h.db")
    await write_history(
        path,
        [
            alert_event("down", "router", ts=101.0, since=100.0, reason="connect"),
            alert_event("down", "app", ts=111.0, since=110.0, suppressed_by=("router",)),
            alert_event("down", "db", ts=112.0, since=110.0, held_by="maintenance:nightly"),
            alert_event("up", "router", ts=150.0),
            alert_event("down", "app", ts=150.0, since=110.0),  # its page, owed till now
        ],
    )
    with HistoryReader(path) as reader:
        got = {i.target: (i.start, i.suppressed_by, i.paged) for i in reader.incidents(0, 1e9)}
    assert got == {
        "router": (100.0, None, 101.0),
        "app": (110.0, ("router",), 150.0),
        "db": (110.0, None, None),
    }


# --- end to end: the console script, a webhook on loopback -----------------------------


def _alert(target: str, event: str):
    return lambda r: r["type"] == "alert" and (r["target"], r["event"]) == (target, event)


@pytest.mark.subprocess
async def test_one_page_for_a_parent_and_its_children_and_the_owed_one_after(tmp_path, server):
    for name in ("router", "app", "db"):
        server.bodies[name] = b"ok"
    targets = [{"name": "router", "url": server.url("/body/router")}] + [
        {"name": n, "url": server.url(f"/body/{n}"), "depends_on": ["router"]}
        for n in ("app", "db")
    ]
    hook = {"url": server.url("/hook")}
    config = write_config(
        tmp_path,
        cli_config(
            *targets, alerts={"failure_threshold": 1, "group_window": "0s", "webhook": [hook]}
        ),
    )
    async with start_monitor(config) as monitor:
        for name in ("router", "app", "db"):  # every one UP first
            await monitor.wait_record(lambda r, n=name: r.get("target") == n and r["ok"] is True)
        del server.bodies["router"]
        with trio.fail_after(WAIT):
            await server.wait_received(1)  # the router's page
        del server.bodies["app"], server.bodies["db"]
        _, app_down = await monitor.wait_record(_alert("app", "down"))
        _, db_down = await monitor.wait_record(_alert("db", "down"))
        assert app_down["suppressed_by"] == db_down["suppressed_by"] == ["router"]
        server.bodies["app"] = b"ok"  # app recovers behind the router: not announced
        _, app_up = await monitor.wait_record(_alert("app", "up"))
        assert app_up["suppressed_by"] == ["router"]
        server.bodies["router"] = b"ok"  # the router recovers, db is still down: db's page
        with trio.fail_after(WAIT):
            await server.wait_received(3)
        index, page = await monitor.wait_record(
            lambda r: _alert("db", "down")(r) and r["suppressed_by"] is None
        )
        server.bodies["db"] = b"ok"
        await monitor.wait_record(_alert("db", "up"), index)
        with trio.fail_after(WAIT):
            await server.wait_received(4)
        monitor.send(signal.SIGTERM)
        assert await monitor.wait_exit() == 0
    hooked = [json.loads(body) for body in server.received]
    assert [(a["target"], a["event"]) for a in hooked] == [
        ("router", "down"),
        ("router", "up"),
        ("db", "down"),
        ("db", "up"),
    ]
    assert hooked[2]["detail"].endswith("; suppressed while router was down")
    assert hooked[2]["since"] == db_down["since"] == page["since"]
    with HistoryReader(str(tmp_path / "m.db")) as reader:
        got = {i.target: (i.suppressed_by, i.paged is None) for i in reader.incidents(0, 2e9)}
    assert got == {"router": (None, False), "app": (("router",), True), "db": (("router",), False)}
