"""cluster/node.py end to end: monitors in one trio run sharing a real redis-server,
probing a loopback server, alerting a loopback webhook."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import jsonschema
import trio
from factories import make_config
from fakes import running
from redis_server import RedisServer
from servers import TestServer

from trio_monitor import run_monitor
from trio_monitor._config import ServerSection
from trio_monitor._lifecycle import EXIT_TAKEN_OVER, Monitor
from trio_monitor.cluster import client as cc
from trio_monitor.server.openapi import openapi_document

NAMES = [f"t{i}" for i in range(8)]
WAIT_S = 20.0


def cluster_config(
    redis: RedisServer,
    server: TestServer,
    node: str,
    history: Path | None = None,
    *,
    serve: bool = False,
    **cluster: Any,
):
    storage = {"enabled": False} if history is None else {"path": str(history)}
    served = {"server": {"listen": "127.0.0.1:0"}} if serve else {}
    return make_config(
        {
            **served,
            "monitor": {"interval": "300ms", "timeout": "1s", "retries": 0},
            "alerts": {
                "failure_threshold": 2,
                "flap_threshold": 0,
                "webhook": [{"url": server.url("/hook"), "retries": 0, "timeout": "2s"}],
            },
            "storage": storage,
            "cluster": {"redis": redis.url, "node": node, **cluster},
            "targets": [{"name": n, "url": server.url(f"/body/{n}")} for n in NAMES],
        }
    )


def hooks(server: TestServer) -> Iterator[tuple[str, dict]]:
    for request in server.requests:
        if request["path"] == "/hook":
            yield request["headers"]["idempotency-key"], json.loads(request["body"])


async def wait_for(predicate) -> None:
    """Poll a condition that Redis's clock (leases, beats) decides, within WAIT_S."""
    with trio.fail_after(WAIT_S):
        while True:
            if predicate():
                return
            await trio.sleep(0.05)


def history_rows(path: Path) -> tuple[list[tuple[str, float]], list[tuple[str, float]], str]:
    """A node's history: its samples (target, ts), incidents (target, start) and how far
    it folded the results stream."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        samples = conn.execute(
            "SELECT name, ts FROM samples JOIN targets ON targets.id = target_id"
        ).fetchall()
        incidents = conn.execute(
            "SELECT name, start FROM incidents JOIN targets ON targets.id = target_id"
        ).fetchall()
        (mark,) = conn.execute(
            "SELECT value FROM meta WHERE key = ?", (f"stream:{cc.RESULTS}",)
        ).fetchone()
    return samples, incidents, mark


async def stream_results(redis: RedisServer, through: str) -> list[tuple[str, float]]:
    async with cc.connect(redis.url) as client:
        entries = await client.xrange(cc.RESULTS, "-", through)
    results = [cc.from_history_entry(str(e.field_values["r"])) for e in entries]
    return [(r.target, r.ts) for r in results]


async def test_two_nodes_share_the_targets_and_page_once(
    redis_server: RedisServer, server: TestServer, tmp_path: Path
) -> None:
    for name in NAMES:
        server.bodies[name] = b"ok"
    async with trio.open_nursery() as nursery:
        a: Monitor = await running(
            nursery,
            cluster_config(redis_server, server, "a", tmp_path / "a.db", serve=True),
            out=io.BytesIO(),
        )
        b: Monitor = await running(
            nursery, cluster_config(redis_server, server, "b", tmp_path / "b.db"), out=io.BytesIO()
        )
        assert a.cluster is not None
        assert b.cluster is not None
        node_a, node_b = a.cluster, b.cluster
        await wait_for(lambda: len(node_a.status.live) == 2 == len(node_b.status.live))
        mine = {n for n in NAMES if node_a.owns(n)}
        theirs = {n for n in NAMES if node_b.owns(n)}
        assert mine | theirs == set(NAMES)
        assert not mine & theirs
        assert mine
        assert theirs
        # /api/v1/cluster, as documented
        assert a.listening is not None
        host, port = a.listening
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
            response = await http.get("/api/v1/cluster")
        assert response.status_code == 200
        body = response.json()
        schema = openapi_document(ServerSection())["components"]["schemas"]["Cluster"]
        jsonschema.validate(body, schema)
        assert body["node"] == "default/a"
        assert [m["member"] for m in body["members"]] == ["default/a", "default/b"]
        assert [m["targets"] for m in body["members"]] == [len(mine), len(theirs)]
        assert all(m["config_matches"] for m in body["members"])
        assert body["locations"] == {"default": 2}
        assert body["owned"] == sorted(mine)
        assert body["redis"] == {"url": redis_server.url, "ok": True, "error": None}
        # node a's page shows the targets node b probes as b sees them, with their checks

        def shown_up(monitor: Monitor) -> bool:
            return all(t.state == "UP" and t.checks_24h for t in monitor.view.targets())

        await wait_for(lambda: shown_up(a) and shown_up(b))
        # an outage: paged once, by whichever node's consumer takes it; then recovery
        del server.bodies["t3"]
        await wait_for(lambda: len(list(hooks(server))) == 1)
        server.bodies["t3"] = b"ok"
        await wait_for(lambda: len(list(hooks(server))) == 2)
        a.stop()
        b.stop()
    got = list(hooks(server))
    assert [(key, alert["event"], alert["id"]) for key, alert in got] == [
        ("t3:1", "down", "t3:1"),
        ("t3:2", "up", "t3:2"),
    ]
    # each node's history: every node's results, each once, through its mark; the
    # cluster's outage as one incident
    for db in ("a.db", "b.db"):
        samples, incidents, mark = history_rows(tmp_path / db)
        expected = await stream_results(redis_server, mark)
        assert len(samples) == len(set(samples))
        assert len(expected) == len(set(expected))  # Redis took each result once
        assert sorted(samples) == sorted(set(expected))
        assert {name for name, _ in samples} == set(NAMES)
        assert [name for name, _ in incidents] == ["t3"]


async def test_a_newer_process_with_the_same_node_name_stops_the_older(
    redis_server: RedisServer, server: TestServer
) -> None:
    for name in NAMES:
        server.bodies[name] = b"ok"
    codes: list[int] = []

    async def run(config, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        code = await run_monitor(
            config, handle_signals=False, out=io.BytesIO(), task_status=task_status
        )
        codes.append(code)

    config = cluster_config(redis_server, server, "same")
    async with trio.open_nursery() as nursery:
        old: Monitor = await nursery.start(run, config)
        assert old.cluster is not None
        await wait_for(lambda: old.cluster is not None and old.cluster.status.redis_ok)
        new: Monitor = await nursery.start(run, config)
        await wait_for(lambda: codes == [EXIT_TAKEN_OVER])  # the old one, by itself
        assert new.cluster is not None
        assert not new.cluster.taken_over
        new.stop()
    assert codes == [EXIT_TAKEN_OVER, 0]


async def test_a_node_with_other_targets_is_shown_and_logged(
    redis_server: RedisServer, server: TestServer, caplog
) -> None:
    for name in NAMES:
        server.bodies[name] = b"ok"
    other = cluster_config(redis_server, server, "b")
    other = attrs.evolve(
        other,
        cluster=attrs.evolve(other.cluster, config_hash="0123456789abcdef"),
    )
    async with trio.open_nursery() as nursery:
        a: Monitor = await running(
            nursery, cluster_config(redis_server, server, "a"), out=io.BytesIO()
        )
        b: Monitor = await running(nursery, other, out=io.BytesIO())
        assert a.cluster is not None
        node = a.cluster
        await wait_for(lambda: len(node.status.live) == 2)
        await wait_for(lambda: node.status.config_differs == ["default/b"])
        body = a.view.cluster()
        assert body is not None
        assert [(m["member"], m["config_matches"]) for m in body["members"]] == [
            ("default/a", True),
            ("default/b", False),
        ]
        a.stop()
        b.stop()
    assert any(
        "targets or alerting settings differ from this node's on default/b" in r.getMessage()
        for r in caplog.records
    )


def single(redis: RedisServer, server: TestServer, **cluster: Any):
    for name in NAMES:
        server.bodies[name] = b"ok"
    return cluster_config(redis, server, "a", **cluster)


async def paged_down(nursery: trio.Nursery, redis: RedisServer, server: TestServer):
    """One node running, its target t3 down and paged once."""
    monitor: Monitor = await running(nursery, single(redis, server), out=io.BytesIO())
    assert monitor.cluster is not None
    del server.bodies["t3"]
    await wait_for(lambda: len(list(hooks(server))) == 1)
    return monitor, monitor.cluster


async def no_second_page_then_up(node: Any, server: TestServer) -> None:
    """Redis is back (results go in again) without a second page; then t3 recovers."""
    sent = node.status.sent
    await wait_for(lambda: node.status.redis_ok and node.status.sent > sent + 8)
    assert len(list(hooks(server))) == 1  # t3 still down: no page
    server.bodies["t3"] = b"ok"
    await wait_for(lambda: len(list(hooks(server))) == 2)


async def test_results_wait_for_redis_and_alerts_with_them_by_default(
    redis_server: RedisServer, server: TestServer
) -> None:
    """redis_down = "wait": while Redis is away, results queue (in order) and nothing is
    paged; when it returns they go in, and the outage they show is paged once."""
    async with trio.open_nursery() as nursery:
        monitor: Monitor = await running(nursery, single(redis_server, server), out=io.BytesIO())
        assert monitor.cluster is not None
        node = monitor.cluster
        await wait_for(lambda: node.status.redis_ok)
        redis_server.stop()
        del server.bodies["t3"]
        await wait_for(lambda: server.hits["/body/t3"] >= 6 and not node.status.redis_ok)
        assert not list(hooks(server))
        redis_server.start()
        await wait_for(lambda: len(list(hooks(server))) == 1)
        monitor.stop()
    assert [(key, alert["event"]) for key, alert in hooks(server)] == [("t3:1", "down")]


async def test_local_alerts_while_redis_is_away_when_asked(
    redis_server: RedisServer, server: TestServer
) -> None:
    async with trio.open_nursery() as nursery:
        monitor: Monitor = await running(
            nursery, single(redis_server, server, redis_down="local"), out=io.BytesIO()
        )
        assert monitor.cluster is not None
        node = monitor.cluster
        await wait_for(lambda: node.status.redis_ok)
        redis_server.stop()
        del server.bodies["t3"]
        await wait_for(lambda: len(list(hooks(server))) == 1)
        assert not node.status.redis_ok
        monitor.stop()
    [(_, alert)] = hooks(server)
    assert (alert["event"], alert["target"], alert["id"]) == ("down", "t3", None)


async def test_a_restarted_redis_with_its_data_pages_nothing_twice(
    redis_server: RedisServer, server: TestServer
) -> None:
    async with trio.open_nursery() as nursery:
        monitor, node = await paged_down(nursery, redis_server, server)
        cluster_id = node.status.cluster_id
        redis_server.stop()  # SIGTERM: the append-only file is flushed
        redis_server.start()
        await no_second_page_then_up(node, server)
        assert node.status.cluster_id == cluster_id
        monitor.stop()
    assert [(key, alert["event"]) for key, alert in hooks(server)] == [
        ("t3:1", "down"),
        ("t3:2", "up"),
    ]


async def test_a_redis_back_empty_is_seeded_from_the_nodes_not_paged_again(
    redis_server: RedisServer, server: TestServer
) -> None:
    async with trio.open_nursery() as nursery:
        monitor, node = await paged_down(nursery, redis_server, server)
        cluster_id = node.status.cluster_id
        redis_server.restart_empty()
        await wait_for(lambda: node.status.cluster_id not in (None, cluster_id))
        await no_second_page_then_up(node, server)
        monitor.stop()
    got = list(hooks(server))
    assert [(key, alert["event"]) for key, alert in got] == [("t3:1", "down"), ("t3:2", "up")]
    assert got[1][1]["since"] == got[0][1]["since"]  # the same outage, ended


async def test_a_flushed_redis_with_the_functions_left_is_seeded_too(
    redis_server: RedisServer, server: TestServer
) -> None:
    """FLUSHALL (the functions stay): the beat finds no cluster id and the node joins
    again, seeding what it knows: no second page."""
    async with trio.open_nursery() as nursery:
        monitor, node = await paged_down(nursery, redis_server, server)
        cluster_id = node.status.cluster_id
        async with cc.connect(redis_server.url) as redis:
            await redis.flushall()
        await wait_for(lambda: node.status.cluster_id not in (None, cluster_id))
        await no_second_page_then_up(node, server)
        monitor.stop()
    assert [(key, alert["event"]) for key, alert in hooks(server)] == [
        ("t3:1", "down"),
        ("t3:2", "up"),
    ]
