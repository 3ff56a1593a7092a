"""Cluster alerts beyond the verdicts' (cluster/node.py, functions.lua): what a failed
Redis call was, the alert policy and routing at the delivering consumer, result events
and early warnings once across the cluster. A real redis-server, in-process nodes, a
loopback webhook receiver."""

from __future__ import annotations

import io
import json
import logging
import socket
import time
from typing import Any

import coredis
import pytest
import trio
from factories import alert_event, make_config, make_target, probe_result
from fakes import Box, running
from redis_server import RedisServer
from servers import TestServer
from test_cluster_node import single, wait_for

from trio_monitor._lifecycle import Monitor
from trio_monitor.cluster import client as cc
from trio_monitor.cluster.state import ClusterWarnings


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_redis_trouble_is_named_by_its_kind(redis_server: RedisServer) -> None:
    """An error answer is not an outage: coredis's classes (its stream group errors are
    no ResponseError) map to kinds at the boundary."""
    async with cc.connect(redis_server.url) as redis:
        await redis.set("{tm}:plain", "1")
        replies = []
        for call in (
            lambda: redis.xadd("{tm}:plain", {"a": "1"}),  # WRONGTYPE
            lambda: redis.fcall("tm_nothing_like_it", [], []),  # function not found
            lambda: redis.evalsha("0" * 40, [], []),  # NOSCRIPT
            lambda: redis.eval("return redis.call('NOPE')", [], []),  # a script's error
        ):
            with pytest.raises(coredis.exceptions.RedisError) as caught:
                await call()
            replies.append(caught.value)
        await redis.xgroup_create("{tm}:s", "g", "$", mkstream=True)
        with pytest.raises(coredis.exceptions.StreamDuplicateConsumerGroupError) as duplicate:
            await redis.xgroup_create("{tm}:s", "g", "$", mkstream=True)
        replies.append(duplicate.value)
    assert [cc.trouble_kind(exc) for exc in replies] == [cc.ERROR_REPLY] * 5
    assert cc.trouble_text(replies[0]).startswith("error reply: WrongTypeError: ")
    try:
        async with cc.connect(f"redis://127.0.0.1:{_closed_port()}/0") as redis:
            await redis.ping()
    except Exception as exc:  # coredis: an exception group of its task group's
        away = exc
    else:
        pytest.fail("a closed port answered")
    assert cc.is_trouble(away)
    assert cc.trouble_kind(away) == cc.UNREACHABLE
    assert cc.trouble_kind(trio.TooSlowError()) == cc.TIMEOUT
    assert cc.trouble_kind(ExceptionGroup("g", [coredis.exceptions.WrongTypeError("x")])) == (
        cc.ERROR_REPLY
    )


async def test_an_error_reply_is_logged_and_shown_as_one_not_as_an_outage(
    redis_server: RedisServer, server: TestServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The outbox key holds a string (someone else's data): every consumer call gets
    WRONGTYPE. Redis answers, so the node says so, once, and stays `ok`."""
    async with cc.connect(redis_server.url) as redis:
        await redis.set(cc.OUTBOX, "not a stream")
    caplog.set_level(logging.INFO, "trio_monitor")
    async with trio.open_nursery() as nursery:
        monitor: Monitor = await running(nursery, single(redis_server, server), out=io.BytesIO())
        assert monitor.cluster is not None
        node = monitor.cluster
        await wait_for(lambda: node.status.redis_ok and node.status.redis_error is not None)
        shown = node.describe()["redis"]
        monitor.stop()
    assert shown["ok"] is True
    assert shown["error"].startswith("error reply: WrongTypeError: ")
    lines = [r.getMessage() for r in caplog.records if "cluster: Redis" in r.getMessage()]
    assert not [line for line in lines if "unreachable" in line]
    wrongtype = [line for line in lines if "answered error reply: WrongTypeError" in line]
    assert len(wrongtype) == 1, lines


def two_nodes_config(redis: RedisServer, server: TestServer, node: str, **alerts: Any):
    """Two targets: `slow` (a 300 ms page, slow above 100 ms) and `page` (content_alert),
    labelled by team; a webhook per team (`match`) and one that takes only `down`."""
    return make_config(
        {
            "monitor": {"interval": "300ms", "timeout": "2s", "retries": 0},
            "alerts": {
                "failure_threshold": 2,
                "flap_threshold": 0,
                "webhook": [
                    {"name": "pay", "url": server.url("/hook/pay"), "match": {"team": "pay"}},
                    {"name": "web", "url": server.url("/hook/web"), "match_re": {"team": "w.b"}},
                    {"name": "downs", "url": server.url("/hook/downs"), "events": ["down"]},
                ],
                **alerts,
            },
            "storage": {"enabled": False},
            "cluster": {"redis": redis.url, "node": node},
            "targets": [
                {
                    "name": "slow",
                    "url": server.url("/slow/300"),
                    "slow": "100ms",
                    "labels": {"team": "pay"},
                },
                {
                    "name": "page",
                    "url": server.url("/body/page"),
                    "content_alert": True,
                    "labels": {"team": "web"},
                },
            ],
        }
    )


def hooked(server: TestServer) -> list[tuple[str, str, str]]:
    """(receiver, Idempotency-Key, event) of every webhook call, in order."""
    return [
        (
            r["path"].rpartition("/")[2],
            r["headers"]["idempotency-key"],
            json.loads(r["body"])["event"],
        )
        for r in server.requests
        if r["path"].startswith("/hook/")
    ]


async def test_result_events_are_sent_once_across_the_cluster_and_routed(
    redis_server: RedisServer, server: TestServer
) -> None:
    """`slow` and `content_changed` in cluster mode: into the outbox once (whichever
    node probes the target), delivered once, by the notifier whose `match` (or
    `match_re`) takes the target's labels and not by one whose `events` leave it out."""
    server.bodies["page"] = b"one"
    async with trio.open_nursery() as nursery:
        a: Monitor = await running(
            nursery, two_nodes_config(redis_server, server, "a"), out=io.BytesIO()
        )
        b: Monitor = await running(
            nursery, two_nodes_config(redis_server, server, "b"), out=io.BytesIO()
        )
        assert a.cluster is not None
        assert b.cluster is not None
        await wait_for(lambda: len(a.cluster.status.live) == 2 == len(b.cluster.status.live))
        await wait_for(lambda: server.hits["/body/page"] >= 3)
        server.bodies["page"] = b"two"
        await wait_for(
            lambda: {event for *_, event in hooked(server)} == {"slow", "content_changed"}
        )
        seen = server.hits["/body/page"] + server.hits["/slow/300"]
        await wait_for(lambda: server.hits["/body/page"] + server.hits["/slow/300"] > seen + 6)
        a.stop()
        b.stop()
    got = hooked(server)
    assert sorted((receiver, event) for receiver, _, event in got) == [
        ("pay", "slow"),
        ("web", "content_changed"),
    ]
    keys = {key: event for _, key, event in got}
    assert {key.partition("@")[0] for key in keys} == {"slow:slow", "page:content_changed"}


async def test_an_event_id_goes_into_the_outbox_once(redis_server: RedisServer) -> None:
    """functions.lua `event`: the same id twice (a repeat, or another node's) is a
    duplicate; a versioned id (early warning's) is new again after a verdict change."""
    async with cc.connect(redis_server.url) as redis:
        loader = cc.ClusterClient(redis, "default/a", "t1")
        await loader.load_functions()
        await loader.cluster_id("test-cluster")
        other = cc.ClusterClient(redis, "west/b", "t2", "test-cluster")
        target = make_target(name="api")
        warning = alert_event("degrading", "api", signal="latency")
        assert await loader.event(warning, "api:degrading/latency", ttl=60, versioned=True) == (
            "applied",
            "api:degrading/latency@v0",
        )
        assert (await other.event(warning, "api:degrading/latency", ttl=60, versioned=True))[
            0
        ] == cc.DUPLICATE
        for ok in (False, False, False):  # DOWN: the verdict's version goes on
            await loader.observe(
                target, probe_result("api", ok=ok), age=0, result_id=str(ok) + str(time.monotonic())
            )
        assert await other.event(warning, "api:degrading/latency", ttl=60, versioned=True) == (
            "applied",
            "api:degrading/latency@v1",
        )
        slow = alert_event("slow", "api")
        assert (await loader.event(slow, "api:slow@default/1", ttl=60))[0] == "applied"
        assert (await loader.event(slow, "api:slow@default/1", ttl=60))[0] == cc.DUPLICATE
        entries = await redis.xrange(cc.OUTBOX, "-", "+")
    ids = [e.field_values["id"] for e in entries if e.field_values["alert"].find("down") < 0]
    assert ids == ["api:degrading/latency@v0", "api:degrading/latency@v1", "api:slow@default/1"]


async def test_early_warnings_go_to_the_cluster_not_to_local_notifiers() -> None:
    """ClusterWarnings: a `degrading` goes to the node (the outbox), none is delivered
    here unless Redis is away with redis_down = "local"."""
    warning = alert_event("degrading", "api", signal="latency")

    class Early:
        def observe(self, target, result, now):
            return [warning]

    sent: list[Any] = []
    local = Box(False)
    warnings = ClusterWarnings(Early(), local, sent.append)
    target = make_target(name="api")
    assert warnings.observe(target, probe_result("api"), 0.0) == []
    assert sent == [warning]
    local.value = True
    assert warnings.observe(target, probe_result("api"), 0.0) == [warning]
    assert sent == [warning]
