"""The alert policy on cluster alerts (cluster/policy.py): maintenance windows and
silences, dependencies, storm grouping and reminders, with two in-process nodes on a
real redis-server, probing a loopback server and alerting a loopback webhook. Each
alert is delivered once across the nodes (its id, the Idempotency-Key, never twice)."""

from __future__ import annotations

import io
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import trio
from factories import alert_event, make_config
from fakes import running
from redis_server import RedisServer
from servers import TestServer
from test_cluster_node import WAIT_S, wait_for

from trio_monitor._lifecycle import Monitor
from trio_monitor._records import AlertEvent
from trio_monitor.alerts import base as alert_base
from trio_monitor.cluster import client as cc
from trio_monitor.cluster import node as cluster_node
from trio_monitor.cluster.policy import ClusterPolicy, silence_entry, stream_time
from trio_monitor.policy import Silence

TOKEN = "cluster-s3cret-t0ken"


def config(
    redis: RedisServer,
    server: TestServer,
    node: str,
    targets: list[dict[str, Any]],
    *,
    alerts: dict[str, Any] | None = None,
    serve: bool = False,
    notify: bool = True,
    **sections: Any,
):
    webhook = {"url": server.url("/hook"), "retries": 0, "timeout": "2s"}
    return make_config(
        {
            **({"server": {"listen": "127.0.0.1:0", "token": TOKEN}} if serve else {}),
            "monitor": {"interval": "300ms", "timeout": "1s", "retries": 0},
            "alerts": {
                "failure_threshold": 2,
                "flap_threshold": 0,
                "group_window": "0s",
                "webhook": [webhook] if notify else [],
                **(alerts or {}),
            },
            "storage": {"enabled": False},
            "cluster": {"redis": redis.url, "node": node},
            "targets": [{"url": server.url(f"/body/{t['name']}"), **t} for t in targets],
            **sections,
        }
    )


def delivered(server: TestServer) -> list[dict[str, Any]]:
    """The alerts the webhook took (answered 200), in order."""
    return [json.loads(body) for body in server.received]


def events(server: TestServer) -> list[tuple[str, str]]:
    return [(a["target"], a["event"]) for a in delivered(server)]


def once(server: TestServer) -> None:
    ids = [a["id"] for a in delivered(server)]
    assert len(ids) == len(set(ids)), ids


def reminders_told(server: TestServer) -> bool:
    """Reminders 1, 2, ... n delivered, none missing (nor twice: `once`)."""
    numbers = sorted(a["reminder"] for a in delivered(server) if a["event"] == "reminder")
    return numbers == list(range(1, len(numbers) + 1))


async def two_nodes(nursery: trio.Nursery, a_config, b_config) -> tuple[Monitor, Monitor]:
    a: Monitor = await running(nursery, a_config, out=io.BytesIO())
    b: Monitor = await running(nursery, b_config, out=io.BytesIO())
    assert a.cluster is not None
    assert b.cluster is not None
    node_a, node_b = a.cluster, b.cluster
    await wait_for(lambda: len(node_a.status.live) == 2 == len(node_b.status.live))
    return a, b


def up(server: TestServer, *names: str) -> None:
    for name in names:
        server.bodies[name] = b"ok"


def down(server: TestServer, *names: str) -> None:
    for name in names:
        server.bodies.pop(name, None)


async def test_a_maintenance_window_holds_a_cluster_down_until_its_end(
    redis_server: RedisServer, server: TestServer
) -> None:
    """The window holds t1's `down` on every node; at its end t1 is still DOWN: one
    `down` then (its own id), delivered once."""
    up(server, "t0", "t1")
    end = datetime.now(UTC) + timedelta(seconds=6)
    window = {
        "name": "upgrade",
        "targets": ["t1"],
        "start": (end - timedelta(hours=1)).isoformat(),
        "end": end.isoformat(),
    }
    targets = [{"name": "t0"}, {"name": "t1"}]
    async with trio.open_nursery() as nursery:
        a, b = await two_nodes(
            nursery,
            config(redis_server, server, "a", targets, maintenance=[window]),
            config(redis_server, server, "b", targets, maintenance=[window]),
        )
        down(server, "t1")
        await wait_for(lambda: len(delivered(server)) == 1)
        assert datetime.now(UTC) >= end  # not before: held until then
        [page] = delivered(server)
        assert (page["target"], page["event"], page["id"].partition("/")[0]) == (
            "t1",
            "down",
            "t1:1",
        )
        assert "held by maintenance:upgrade" in page["detail"]
        up(server, "t1")
        await wait_for(lambda: len(delivered(server)) == 2)
        a.stop()
        b.stop()
    assert events(server) == [("t1", "down"), ("t1", "up")]
    once(server)


async def test_a_silence_made_through_one_node_holds_what_the_other_delivers(
    redis_server: RedisServer, server: TestServer
) -> None:
    """Node a (no notifiers of its own) takes the silence through its API; node b
    delivers every alert: t1's `down` is held, and sent once when a's DELETE ends it."""
    up(server, "t0", "t1")
    targets = [{"name": "t0"}, {"name": "t1"}]
    async with trio.open_nursery() as nursery:
        a, b = await two_nodes(
            nursery,
            config(redis_server, server, "a", targets, serve=True, notify=False),
            config(redis_server, server, "b", targets),
        )
        assert a.listening is not None
        assert b.cluster is not None
        node_b = b.cluster
        host, port = a.listening
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", headers=auth) as http:
            made = await http.post(
                "/api/v1/silences", json={"targets": ["t1"], "duration": "1h", "author": "ops"}
            )
            assert made.status_code == 201, made.text
            silence = made.json()["id"]
            await wait_for(lambda: [s.id for s in node_b.policy.holds.silences(0)] == [silence])
            listed = await http.get("/api/v1/silences")
            assert [s["id"] for s in listed.json()["silences"]] == [silence]
            # each node's own alerts (Redis away, redis_down = "local") are held too
            await wait_for(lambda: [s.id for s in b._holds.silences(0)] == [silence])
            down(server, "t1")
            await wait_for(lambda: "t1" in node_b.policy.holds._held)
            assert node_b.policy.holds._held["t1"].by == f"silence:{silence}"
            assert not delivered(server)
            ended = await http.delete(f"/api/v1/silences/{silence}")
            assert ended.status_code == 200, ended.text
        await wait_for(lambda: len(delivered(server)) == 1)
        up(server, "t1")
        await wait_for(lambda: len(delivered(server)) == 2)
        a.stop()
        b.stop()
    got = delivered(server)
    assert [(g["target"], g["event"]) for g in got] == [("t1", "down"), ("t1", "up")]
    assert f"held by silence:{silence}" in got[0]["detail"]
    once(server)


async def test_a_child_behind_a_down_parent_is_paged_once_when_the_parent_recovers(
    redis_server: RedisServer, server: TestServer
) -> None:
    up(server, "router", "db")
    targets = [{"name": "router"}, {"name": "db", "depends_on": ["router"]}]
    async with trio.open_nursery() as nursery:
        a, b = await two_nodes(
            nursery,
            config(redis_server, server, "a", targets),
            config(redis_server, server, "b", targets),
        )
        assert b.cluster is not None
        node_b = b.cluster
        down(server, "router")
        await wait_for(lambda: events(server) == [("router", "down")])
        down(server, "db")
        await wait_for(lambda: node_b.policy.policy.suppressed_by("db") == ("router",))
        assert a.view._suppressed_by("db") == ("router",)  # the API's and the page's
        up(server, "router")
        await wait_for(lambda: len(delivered(server)) == 3)
        up(server, "db")
        await wait_for(lambda: len(delivered(server)) == 4)
        a.stop()
        b.stop()
    # (two consumers deliver side by side: the router's `up` and db's owed page, made
    # at the same point of the stream, may arrive in either order)
    got = {(g["target"], g["event"]): g for g in delivered(server)}
    assert sorted(got) == [("db", "down"), ("db", "up"), ("router", "down"), ("router", "up")]
    owed = got["db", "down"]  # once, when the router recovered
    assert "suppressed while router was down" in owed["detail"]
    assert owed["id"].startswith("db:1/")
    once(server)


async def test_a_storm_within_the_group_window_is_one_group_alert(
    redis_server: RedisServer, server: TestServer
) -> None:
    names = [f"s{i}" for i in range(4)]
    up(server, *names)
    targets = [{"name": n} for n in names]
    alerts = {"group_window": "3s", "group_min": 3}
    async with trio.open_nursery() as nursery:
        a, b = await two_nodes(
            nursery,
            config(redis_server, server, "a", targets, alerts=alerts),
            config(redis_server, server, "b", targets, alerts=alerts),
        )
        down(server, *names)
        await wait_for(lambda: len(delivered(server)) == 1)
        up(server, *names)
        await wait_for(lambda: len(delivered(server)) == 2)
        seen = server.hits["/body/s0"]
        await wait_for(lambda: server.hits["/body/s0"] > seen + 6)  # nothing more comes
        a.stop()
        b.stop()
    got = delivered(server)
    assert [g["event"] for g in got] == ["group_down", "group_up"]
    assert got[0]["members"] == names
    assert got[0]["id"] == f"{got[0]['group']}:group_down"
    once(server)


async def test_reminders_come_on_their_grid_once_also_after_the_consumer_is_gone(
    redis_server: RedisServer, server: TestServer, monkeypatch
) -> None:
    """repeat = 1s: both nodes make each reminder, one goes out. The node delivering
    one is stopped mid-delivery (its webhook failed once: it waits to retry); the other
    claims the entry (XAUTOCLAIM) and goes on with the grid, nothing lost or doubled."""
    monkeypatch.setattr(cluster_node, "CLAIM_IDLE_MS", 1000)
    monkeypatch.setattr(alert_base, "BACKOFF", 30.0)  # the failed one waits: stopped first
    up(server, "t0", "t1")
    targets = [{"name": "t0"}, {"name": "t1", "alerts": {"repeat": "1s"}}]
    webhook = {"url": server.url("/hook"), "retries": 1, "timeout": "2s"}
    alerts = {"webhook": [webhook]}
    monitors: dict[str, Monitor] = {}
    async with trio.open_nursery() as nursery:
        a, b = await two_nodes(
            nursery,
            config(redis_server, server, "a", targets, alerts=alerts),
            config(redis_server, server, "b", targets, alerts=alerts),
        )
        monitors = {"default/a": a, "default/b": b}
        down(server, "t1")
        await wait_for(lambda: len(delivered(server)) >= 3)  # down, reminders 1 and 2
        server.hook_failures = 1
        await wait_for(lambda: server.hook_failures == 0)
        assert a.cluster is not None
        [group] = a.cluster._groups
        async with cc.connect(redis_server.url) as redis:
            with trio.fail_after(10):  # the other one may be delivering one right now
                while True:
                    pending: Any = await redis.xpending(cc.ALERTS, group)
                    if len(pending.consumers) == 1:
                        break
                    await trio.sleep(0.05)
        [holder] = [str(consumer) for consumer in pending.consumers]
        stopped = monitors.pop(holder)
        stopped.abort()
        [survivor] = monitors.values()
        before = len(delivered(server))
        await wait_for(lambda: len(delivered(server)) >= before + 4)
        up(server, "t1")
        await wait_for(lambda: reminders_told(server) and events(server)[-1] == ("t1", "up"))
        survivor.stop()
    once(server)
    got = delivered(server)
    reminders = sorted((g for g in got if g["event"] == "reminder"), key=lambda r: r["reminder"])
    assert reminders_told(server)
    assert len(reminders) >= 6
    assert {r["repeat_s"] for r in reminders} == {1.0}
    downtimes = [r["downtime_s"] for r in reminders]  # the grid: 1 s apart, exactly
    assert all(abs(b - a - 1.0) < 1e-6 for a, b in itertools.pairwise(downtimes)), downtimes
    assert [g["event"] for g in got if g["event"] != "reminder"] == ["down", "up"]


def _stream(entries: list[tuple[float, AlertEvent]]) -> list[tuple[str, dict[str, str], Any]]:
    """Outbox entries (id, fields, the alert) at those times."""
    out = []
    for seq, (at, alert) in enumerate(entries):
        assert alert.id is not None
        fields = {"id": alert.id, "alert": cc.alert_body(alert)}
        out.append((f"{at * 1000:.0f}-{seq}", fields, alert))
    return out


def test_every_reading_of_the_outbox_makes_the_same_alerts() -> None:
    """The policy is a function of the stream: a node reading it entry by entry (ticking
    up to each point it has read) and one reading it at once (a restart, a slow node)
    make the same alerts with the same ids: held and released, suppressed and owed,
    reminders on their grid."""
    t0 = 1_800_000_000.0
    doc = {
        "alerts": {"group_window": "0s", "webhook": [{"url": "http://127.0.0.1:9/"}]},
        "targets": [
            {"name": "router", "url": "http://127.0.0.1:9/r", "alerts": {"repeat": "10s"}},
            {"name": "db", "url": "http://127.0.0.1:9/d", "depends_on": ["router"]},
            {"name": "web", "url": "http://127.0.0.1:9/w"},
        ],
    }
    silence = Silence("s1", start=t0, until=t0 + 30, targets=("web",))
    entries = _stream(
        [
            (t0 + 1, alert_event("down", "router", ts=t0 + 0.9, id="router:1")),
            (t0 + 2, alert_event("down", "db", ts=t0 + 1.9, id="db:1")),
            (t0 + 3, alert_event("down", "web", ts=t0 + 2.9, id="web:1")),
            (t0 + 45, alert_event("up", "router", ts=t0 + 44.9, id="router:2")),
        ]
    )
    entries.insert(0, (f"{(t0 + 0.5) * 1000:.0f}-9", {"silence": silence_entry(silence)}, None))
    end = t0 + 60

    def read(batches: list[int]) -> list[tuple[float, str, str]]:
        policy = ClusterPolicy(make_config(doc))
        made: list[Any] = []
        done = 0
        for size in batches:
            for entry_id, fields, alert in entries[done : done + size]:
                made += policy.entry(entry_id, fields, alert)
            done += size
            made += policy.until(stream_time(entries[done - 1][0]))
        made += policy.until(end)
        return [(at, alert_id, alert.event) for at, alert_id, alert in made]

    one_by_one, at_once = read([1] * len(entries)), read([len(entries)])
    assert one_by_one == at_once
    ids = [alert_id for _, alert_id, _ in at_once]

    def ms(ts: float) -> str:
        return f"{ts * 1000:.0f}"

    reminder = [f"router:reminder@{ms(t0 + 0.9)}/10/{k}" for k in (1, 2, 3, 4)]
    assert (
        ids
        == [
            "router:1",
            "db:1",  # suppressed: router is down
            "web:1",  # held by the silence
            *reminder[:2],
            f"web:1/{ms(t0 + 30.1)}",  # the silence's end: still down, sent then
            *reminder[2:],
            "router:2",
            f"db:1/{ms(t0 + 44.9)}",  # owed: its parent recovered
        ]
    )


async def policed_alerts(redis: Any) -> list[Any]:
    """The entries of {tm}:alerts the cluster's mark ({tm}:policed) covers."""
    mark = int(await redis.get(cc.POLICED) or 0)
    return list(await redis.xrange(cc.ALERTS, "-", str(mark)))


async def test_a_restarted_node_rebuilds_the_policy_and_sends_nothing_twice(
    redis_server: RedisServer, server: TestServer
) -> None:
    """The only node stops and starts again: it reads the outbox from its start, sends
    nothing the cluster sent (the mark `{tm}:policed`, alone: the ids it covers are
    dropped here, as if their TTL had run out), and the reminders go on with their
    numbers."""
    up(server, "t0", "t1")
    targets = [{"name": "t0"}, {"name": "t1", "alerts": {"repeat": "1s"}}]
    async with trio.open_nursery() as nursery:
        first: Monitor = await running(
            nursery, config(redis_server, server, "a", targets), out=io.BytesIO()
        )
        assert first.cluster is not None
        [group] = first.cluster._groups
        down(server, "t1")
        await wait_for(lambda: len(delivered(server)) >= 3)  # down, reminders 1 and 2
        # the mark moves after the alerts it covers are in the stream, and a consumer
        # may deliver them first: wait for it to pass reminder 1 before the stop
        async with cc.connect(redis_server.url) as redis:
            with trio.fail_after(WAIT_S):
                while True:  # Redis's state, polled as wait_for polls
                    if len(await policed_alerts(redis)) >= 2:
                        break
                    await trio.sleep(0.05)
        first.stop()
    told = len(delivered(server))
    async with cc.connect(redis_server.url) as redis:
        # the ids of the alerts the mark covers, sent and delivered, dropped as if past
        # their TTL: the mark alone keeps the replay from sending those again
        covered = await policed_alerts(redis)
        assert len(covered) >= 2  # the down, reminder 1
        for entry in covered:
            alert_id = entry.field_values["id"]
            assert await redis.delete([cc.ALERT_IDS + alert_id]) == 1
            # (one sent but not delivered yet when the node stopped has no such mark:
            # the node's next incarnation delivers it, as its own pending entry)
            await redis.delete([f"{cc.PREFIX}delivered:{group}:{alert_id}"])
    async with trio.open_nursery() as nursery:
        again: Monitor = await running(
            nursery, config(redis_server, server, "a", targets), out=io.BytesIO()
        )
        await wait_for(lambda: len(delivered(server)) >= told + 2)
        up(server, "t1")
        await wait_for(lambda: reminders_told(server) and events(server)[-1] == ("t1", "up"))
        again.stop()
    once(server)
    assert [e for e in events(server) if e[1] != "reminder"] == [("t1", "down"), ("t1", "up")]
