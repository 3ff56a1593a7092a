"""Storm grouping (policy/_grouping.py): the pure decision (property tests), the facts
a down target's failure gives, and the stage: window, fold, group_up, flush, reloads."""

from __future__ import annotations

import json
import signal

import pytest
from factories import alert_event, probe_result, write_config
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cli import cli_config, parse_lines, start_monitor

from trio_monitor import parse_config
from trio_monitor._config import GROUP_BY
from trio_monitor.engine.state import MemoryStateStore
from trio_monitor.net.certs import TlsDetails
from trio_monitor.policy import Policy
from trio_monitor.policy._grouping import Facts, Group, Grouping, decide, facts
from trio_monitor.store.records import Incident

# --- the decision: a pure function, property-tested ---------------------------------

CAUSES = (*GROUP_BY, "label:team")
value = st.one_of(st.none(), st.sampled_from(["a", "b", "c"]))


@st.composite
def fleets(draw):
    names = draw(st.lists(st.sampled_from([f"t{i}" for i in range(40)]), unique=True))
    return [
        Facts(
            target=name,
            address=draw(value),
            network=draw(value),
            error=draw(value),
            resolver=draw(value),
            certificate=draw(value),
            labels={} if (team := draw(value)) is None else {"team": team},
        )
        for name in names
    ]


by_orders = st.permutations(CAUSES).flatmap(lambda p: st.integers(1, len(p)).map(lambda n: p[:n]))
EXAMPLES = settings(max_examples=300, deadline=None, database=None)


@pytest.mark.fuzz
@EXAMPLES
@given(fleets(), by_orders, st.integers(2, 6), st.randoms(use_true_random=False))
def test_every_down_is_in_one_group_or_alone_and_groups_share_their_cause(
    fleet, group_by, group_min, rnd
):
    groups, alone = decide(fleet, group_by, group_min)
    placed = [m for g in groups for m in g.members] + alone
    assert sorted(placed) == sorted(f.target for f in fleet)  # each exactly once: none lost
    by_name = {f.target: f for f in fleet}
    for group in groups:
        assert len(group.members) >= group_min
        assert group.by in group_by
        assert all(by_name[m].value(group.by) == group.value for m in group.members)
        errors = {by_name[m].error for m in group.members}
        assert group.error == (errors.pop() if len(errors) == 1 else None)
    shuffled = list(fleet)
    rnd.shuffle(shuffled)
    assert decide(shuffled, group_by, group_min) == (groups, alone)  # arrival order


@pytest.mark.fuzz
@EXAMPLES
@given(fleets(), by_orders, st.integers(2, 6))
def test_no_cause_is_left_that_could_still_make_a_group(fleet, group_by, group_min):
    _groups, alone = decide(fleet, group_by, group_min)
    left = [f for f in fleet if f.target in alone]
    for cause in group_by:
        values = [f.value(cause) for f in left if f.value(cause) is not None]
        assert all(values.count(v) < group_min for v in values)


def test_the_more_specific_cause_wins_and_the_words_name_cause_and_error():
    def on(name, ip, error="connect: connection refused"):
        return Facts(name, address=ip, network=ip.rpartition(".")[0] + ".0/24", error=error)

    fleet = [on("a", "10.1.2.7"), on("b", "10.1.2.7"), on("c", "10.1.2.7")]
    fleet += [on(f"n{i}", f"10.1.2.{10 + i}") for i in range(11)]
    groups, alone = decide(fleet, GROUP_BY, 3)
    assert [(g.by, g.value, len(g.members)) for g in groups] == [
        ("address", "10.1.2.7", 3),
        ("network", "10.1.2.0/24", 11),
    ]
    assert alone == []
    assert groups[1].describe() == (
        "11 targets on 10.1.2.0/24 failing with connect: connection refused"
    )
    assert groups[1].cause == "network 10.1.2.0/24"
    # the user's order of preference: the network first takes all 14
    (whole,), _ = decide(fleet, ("network", "address"), 3)
    assert len(whole.members) == 14
    mixed = [on(f"m{i}", f"10.9.9.{i}", "timeout" if i % 3 else "dns") for i in range(6)]
    (group,), _ = decide(mixed, GROUP_BY, 3)
    assert group.describe(f.error for f in mixed) == (
        "6 targets on 10.9.9.0/24 failing (timeout x4, dns x2)"
    )
    labelled = [Facts(n, labels={"team": "pay"}) for n in "xyz"]
    (team,), _ = decide(labelled, ("label:team",), 3)
    assert (team.cause, team.describe()) == ("label team=pay", "3 targets with team=pay")
    assert decide(labelled, ("label:team",), 4) == ([], ["x", "y", "z"])


# --- facts ----------------------------------------------------------------------------

CONFIG = parse_config(
    {
        "alerts": {"failure_threshold": 1},
        "targets": [
            {"name": "web", "url": "https://www.example.test/"},
            {"name": "res", "url": "http://svc.test/", "resolver": "10.0.0.53"},
        ],
    }
)


def test_facts_of_a_refused_connection_a_dns_failure_and_a_bad_certificate():
    web, res = CONFIG.targets
    refused = facts(
        "x", "http://10.1.2.3:8080/", "connect", "cannot connect to 10.1.2.3:8080 (Connection refused)",
        None, None, None,
    )  # fmt: skip
    assert (refused.address, refused.network, refused.error) == (
        "10.1.2.3",
        "10.1.2.0/24",
        "connect: connection refused",
    )
    assert refused.resolver is None
    assert refused.certificate is None
    v6 = facts(
        "x", "http://h/", "timeout", None, None, None, probe_result(remote_addr="[2001:db8::5]:443")
    )
    assert (v6.address, v6.network, v6.error) == ("2001:db8::5", "2001:db8::/64", "timeout")
    named = facts("res", res.url, "dns", "svc.test: no such name", {"team": "a"}, res, None)
    assert (named.address, named.network, named.resolver) == ("svc.test", None, "10.0.0.53:53")
    assert named.labels == {"team": "a"}
    assert facts("web", web.url, "dns", "x", None, web, None).resolver == "system"
    tls = TlsDetails(
        subject="CN=*.example.test", issuer="CN=ca", sans=(), not_before=0.0,
        not_after=1_800_000_000.0, days_left=-1.0, version=None, cipher=None,
        earliest_not_after=1_800_000_000.0, earliest_subject="CN=*.example.test",
    )  # fmt: skip
    bad = facts("web", web.url, "tls", "expired", None, web, probe_result(ok=False, tls=tls))
    assert bad.certificate == "CN=*.example.test (expires 2027-01-15T08:00:00.000Z)"
    # a certificate is no cause of a refused connection, a resolver none of a timeout
    assert (
        facts("web", web.url, "timeout", None, None, web, probe_result(tls=tls)).certificate is None
    )


# --- the stage ------------------------------------------------------------------------

FLEET = parse_config(
    {
        "alerts": {"failure_threshold": 1, "group_window": "10s", "group_min": 3},
        "targets": [
            {"name": f"n{i}", "url": f"http://10.1.2.{i}/", "labels": {"team": "pay"}}
            for i in range(1, 7)
        ]
        + [{"name": "far", "url": "http://192.0.2.9/"}],
    }
)


def refused(name, ts, **fields):
    ip = {t.name: t.url for t in FLEET.targets}[name]
    return alert_event(
        "down", name, ts=ts, url=ip, reason="connect",
        detail=f"cannot connect to {ip[7:-1]}:80 (Connection refused)", since=ts,
        labels={"team": "pay"} if name != "far" else None, **fields,
    )  # fmt: skip


def stage(config=FLEET):
    return Grouping(config, MemoryStateStore(config.alerts))


def test_downs_in_the_window_become_one_group_down_and_the_rest_go_out_as_they_were():
    g = stage()
    assert g.process([refused("n1", 100.0)], now=0.0) == []
    assert g.next_tick() == 10.0
    assert g.process([refused("n2", 101.0), refused("far", 101.5)], now=1.5) == []
    assert g.process([refused("n3", 103.0)], now=3.0) == []
    assert g.tick(9.9, wall=109.9) == []
    group_down, *downs = g.tick(10.0, wall=110.0)
    assert group_down.event == "group_down"
    assert group_down.deliverable
    assert group_down.detail == "3 targets on 10.1.2.0/24 failing with connect: connection refused"
    assert (group_down.members, group_down.cause) == (("n1", "n2", "n3"), "network 10.1.2.0/24")
    assert (group_down.ts, group_down.since, group_down.reason) == (110.0, 100.0, "connect")
    assert group_down.target == group_down.group
    assert group_down.url == f"group:{group_down.group}"
    assert group_down.labels == {"team": "pay"}  # shared: routing by team still works
    assert [(d.target, d.group, d.deliverable) for d in downs] == [
        ("n1", group_down.group, False),
        ("n2", group_down.group, False),
        ("far", None, True),  # alone, as it was
        ("n3", group_down.group, False),
    ]
    assert downs[2] == refused("far", 101.5)
    assert g.next_tick() is None
    # a later down with the same cause is folded in at once, no window
    (late,) = g.process([refused("n4", 130.0)], now=30.0)
    assert (late.group, late.deliverable, g.next_tick()) == (group_down.group, False, None)
    # members' ups are marked; the last one's brings one group_up
    for name in ("n1", "n3", "n2"):
        (up,) = g.process([alert_event("up", name, ts=140.0)], now=40.0)
        assert (up.group, up.deliverable) == (group_down.group, False)
    up, group_up = g.process([alert_event("up", "n4", ts=150.0)], now=50.0)
    assert up.group == group_down.group
    assert group_up.event == "group_up"
    assert group_up.deliverable
    assert (group_up.members, group_up.since, group_up.downtime_s) == (
        ("n1", "n2", "n3", "n4"),
        100.0,
        50.0,
    )
    assert group_up.target == group_down.target
    # the group is closed: a new down opens a new window
    assert g.process([refused("n5", 200.0)], now=100.0) == []


def test_too_few_downs_go_out_alone_at_the_window_end_and_an_up_within_it_releases_its_down():
    g = stage()
    g.process([refused("n1", 100.0), refused("n2", 100.0)], now=0.0)
    down, up = g.process([alert_event("up", "n1", ts=102.0)], now=2.0)
    assert (down.target, down.event, up.event) == ("n1", "down", "up")
    assert [(a.target, a.group) for a in g.tick(10.0, wall=110.0)] == [("n2", None)]


def test_held_and_suppressed_downs_are_never_grouped_nor_delayed():
    g = stage()
    held = refused("n1", 100.0, held_by="maintenance:m")
    suppressed = refused("n2", 100.0, suppressed_by=("core",))
    assert g.process([held, suppressed], now=0.0) == [held, suppressed]
    g.process([refused("n3", 100.0), refused("n4", 100.0)], now=0.0)
    assert [a.group for a in g.tick(10.0, wall=110.0)] == [None, None]


def test_flush_releases_the_window_grouped_and_loses_nothing():
    g = stage()
    downs = [refused(f"n{i}", 100.0 + i) for i in range(1, 5)] + [refused("far", 100.0)]
    g.process(downs, now=0.0)
    out = g.flush(2.0, wall=102.0)
    assert [a.event for a in out].count("group_down") == 1
    assert sorted(a.target for a in out if a.event == "down") == sorted(d.target for d in downs)
    assert g.flush(3.0, wall=103.0) == []
    assert g.next_tick() is None


def test_group_window_0s_turns_grouping_off_also_for_a_window_already_open():
    g = stage()
    g.process([refused("n1", 100.0)], now=0.0)
    off = parse_config(
        {
            "alerts": {"group_window": "0s"},
            "targets": [{"name": t.name, "url": t.url} for t in FLEET.targets],
        }
    )
    g.configure(off)
    assert g.next_tick() == float("-inf")
    assert [a.target for a in g.tick(0.5, wall=100.5)] == ["n1"]
    assert g.process([refused("n2", 101.0)], now=1.0) == [refused("n2", 101.0)]


def test_a_reload_that_removes_a_groups_last_open_member_closes_the_group():
    g = stage()
    g.process([refused(f"n{i}", 100.0) for i in (1, 2, 3)], now=0.0)
    (group_down, *_) = g.tick(10.0, wall=110.0)
    for name in ("n1", "n2"):
        g.process([alert_event("up", name, ts=120.0)], now=20.0)
    smaller = parse_config(
        {"targets": [{"name": t.name, "url": t.url} for t in FLEET.targets if t.name != "n3"]}
    )
    g.configure(smaller)
    (group_up,) = g.tick(30.0, wall=130.0)
    assert (group_up.event, group_up.group, group_up.ts) == ("group_up", group_down.group, 130.0)


def test_restored_groups_fold_new_downs_and_send_one_group_up():
    """`resume` (history's open incidents at start-up): a cause reads back as the group
    it names (labels too), members' ups are marked, the last one sends the group_up."""
    assert Group.of_cause("label team=pay", ["b", "a"]) == Group(
        "label:team", "pay", ("a", "b"), None
    )
    assert Group.of_cause("network 10.1.2.0/24", ["a"]).cause == "network 10.1.2.0/24"
    g = stage()
    open_ = [("n1", 100.0, "group-1", "label team=pay"), ("n2", 90.0, "group-1", "label team=pay"),
             ("gone", 80.0, "group-1", "label team=pay"), ("far", 95.0, "group-2", "address 192.0.2.9"),
             ("n4", 99.0, None, None)]  # fmt: skip
    g.resume([Incident(t, s, None, "connect", group=i, cause=c) for t, s, i, c in open_], 0.0, 1.0)
    # a later down sharing the restored group's cause joins it at once
    (folded,) = g.process([refused("n3", 200.0)], now=0.0)
    assert (folded.group, folded.cause, folded.deliverable) == ("group-1", "label team=pay", False)
    ups = [alert_event("up", n, ts=300.0 + i) for i, n in enumerate(("n1", "n2", "n3", "far"))]
    out = g.process(ups, now=1.0)
    assert [(a.event, a.target, a.group) for a in out] == [
        ("up", "n1", "group-1"), ("up", "n2", "group-1"), ("up", "n3", "group-1"),
        ("group_up", "group-1", "group-1"), ("up", "far", "group-2"), ("group_up", "group-2", "group-2"),
    ]  # fmt: skip
    group_up = out[3]
    assert (group_up.members, group_up.since, group_up.ts) == (("n1", "n2", "n3"), 90.0, 302.0)
    assert group_up.labels == {"team": "pay"}
    assert group_up.detail == "all 3 targets of the group (label team=pay) are up"


def test_the_policy_runs_grouping_by_default_and_its_stage_reads_the_state_store():
    state = MemoryStateStore(FLEET.alerts)
    policy = Policy(FLEET, state)
    targets = {t.name: t for t in FLEET.targets}
    for i, name in enumerate(("n1", "n2", "n3")):
        result = probe_result(name, ok=False, url=targets[name].url, remote_addr=None,
                              error_detail=f"cannot connect to 10.1.2.{i + 1}:80 (Connection refused)")  # fmt: skip
        _, alerts = state.observe(targets[name], result, now=float(i))
        assert policy.process(alerts, now=float(i)) == []
    group_down, *downs = policy.tick(10.0, wall=2_000_000_000.0)
    assert group_down.detail == "3 targets on 10.1.2.0/24 failing with connect: connection refused"
    assert len(downs) == 3


# --- end to end: the real console script, a loopback fleet and webhook ----------------


@pytest.mark.subprocess
async def test_targets_that_fail_together_page_once_and_recover_once(server, tmp_path):
    """Four targets on 127.0.0.1 answer 404 together: the webhook gets one group_down
    (not four downs); when they answer again, one group_up."""
    keys = [f"k{i}" for i in range(4)]
    targets = [{"name": k, "url": server.url(f"/body/{k}")} for k in keys]
    webhook = {"url": server.url("/hook"), "timeout": "5s"}
    alerts = {"failure_threshold": 1, "group_window": "1s", "webhook": [webhook]}
    path = write_config(tmp_path, cli_config(*targets, alerts=alerts))
    async with start_monitor(path) as running:
        await server.wait_received(1)
        (page,) = [json.loads(b) for b in server.received]
        assert page["event"] == "group_down"
        assert page["members"] == keys
        assert page["detail"] == "4 targets on 127.0.0.1 failing with status: HTTP 404"
        _, line = await running.wait_record(lambda r: r.get("event") == "group_down")
        assert line["cause"] == "address 127.0.0.1"
        for k in keys:
            server.bodies[k] = b"back"
        await server.wait_received(2)
        _, recovered = await running.wait_record(lambda r: r.get("event") == "group_up")
    pages = [json.loads(b) for b in server.received]
    assert [p["event"] for p in pages] == ["group_down", "group_up"]
    assert pages[1]["group"] == page["group"] == recovered["group"]
    alerts_seen = [r for r in parse_lines(running.out.lines) if r["type"] == "alert"]
    downs = [a for a in alerts_seen if a["event"] == "down"]
    assert sorted(a["target"] for a in downs) == keys  # recorded, marked, not paged
    assert {a["group"] for a in downs} == {page["group"]}


@pytest.mark.subprocess
async def test_an_open_group_survives_a_restart_and_recovers_as_one_group_up(server, tmp_path):
    """The group is paged, the monitor stops (SIGTERM) and starts again while its members
    are still down: no page then (the outages go on), and their recovery is one
    `group_up` with the group's id and since, not one `up` per member."""
    keys = [f"r{i}" for i in range(4)]
    targets = [{"name": k, "url": server.url(f"/body/{k}")} for k in keys]
    webhook = {"url": server.url("/hook"), "timeout": "5s"}
    alerts = {"failure_threshold": 1, "group_window": "1s", "webhook": [webhook]}
    path = write_config(tmp_path, cli_config(*targets, alerts=alerts))
    async with start_monitor(path) as first:
        await server.wait_received(1)
        _, group_down = await first.wait_record(lambda r: r.get("event") == "group_down")
        first.send(signal.SIGTERM)
        assert await first.wait_exit() == 0
    async with start_monitor(path) as second:
        for k in keys:  # a few probes of the restarted monitor, still failing
            await second.wait_record(lambda r, k=k: r["type"] == "probe" and r["target"] == k)
        for k in keys:
            server.bodies[k] = b"back"
        _, group_up = await second.wait_record(lambda r: r.get("event") == "group_up")
        await server.wait_received(2)
        second.send(signal.SIGTERM)
        assert await second.wait_exit() == 0
    pages = [json.loads(b) for b in server.received]
    assert [p["event"] for p in pages] == ["group_down", "group_up"]
    assert pages[1]["group"] == group_up["group"] == group_down["group"]
    assert pages[1]["members"] == keys
    assert pages[1]["cause"] == group_down["cause"] == "address 127.0.0.1"
    assert pages[1]["since"] == group_down["since"]
    ups = [r for r in second.records() if r["type"] == "alert" and r["event"] == "up"]
    assert sorted(u["target"] for u in ups) == keys  # recorded, marked, not paged
    assert {u["group"] for u in ups} == {group_down["group"]}
