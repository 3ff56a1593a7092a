"""cluster/client.py and its Functions library (functions.lua) against a real
redis-server: fencing, duplicates, late results, thresholds, the quorum table, alert
ids, and MemoryStateStore as the oracle for one location."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable

import attrs
import pytest
import trio
from factories import alert_event, make_config, make_target, probe_result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_server import RedisServer

from trio_monitor.cluster import client as cc
from trio_monitor.engine.state import MemoryStateStore

T0 = 1_800_000_000.0
Node = Callable[..., cc.ClusterClient]


@pytest.fixture
async def node(redis_server: RedisServer) -> AsyncIterator[Node]:
    """node(member, token) -> a ClusterClient on the test's Redis, library loaded."""
    redis = cc.connect(redis_server.url)
    async with redis:
        loader = cc.ClusterClient(redis, "default/loader", "t0")
        await loader.load_functions()
        await loader.cluster_id("test-cluster")  # without one a beat says Redis is empty

        def make(member: str = "default/a", token: str = "t1") -> cc.ClusterClient:
            return cc.ClusterClient(redis, member, token, cluster="test-cluster")

        yield make


_ids = itertools.count()


async def send(
    client: cc.ClusterClient,
    target,
    ok: bool,
    *,
    age: float = 0.0,
    thresholds: tuple[int, int] | None = None,
    result_id: str | None = None,
    ts: float = T0,
) -> cc.Observed:
    """One result of `target` (failure and success thresholds overridden if given)."""
    if thresholds is not None:
        target = attrs.evolve(
            target, failure_threshold=thresholds[0], success_threshold=thresholds[1]
        )
    result = probe_result(target.name, ok=ok, ts=ts)
    return await client.observe(
        target, result, age=age, result_id=result_id or f"{client.token}:{next(_ids)}"
    )


async def test_the_library_loads_once_per_version(node: Node) -> None:
    client = node()
    assert await client.load_functions() == cc.VERSION
    assert int(await client.redis.fcall("tm_version", [], [])) == cc.VERSION


async def test_a_newer_incarnation_fences_the_older_one(node: Node) -> None:
    target = make_target(name="api")
    old, new = node(token="old"), node(token="new")
    assert await old.claim() is None
    assert (await send(old, target, True)).status == cc.APPLIED
    assert not (await old.heartbeat(3.0, "h")).fenced
    assert await new.claim() == "old"
    assert (await send(old, target, False)).status == cc.FENCED
    assert (await old.heartbeat(3.0, "h")).fenced
    assert (await send(new, target, True)).status == cc.APPLIED


async def test_the_same_result_sent_again_changes_nothing(node: Node) -> None:
    client = node()
    target = make_target(name="api")
    down = (1, 1)
    first = await send(client, target, False, thresholds=down, result_id="r1")
    assert first.status == cc.APPLIED
    assert first.alert is not None
    assert first.alert["id"] == "api:1"
    again = await send(client, target, False, thresholds=down, result_id="r1")
    assert (again.status, again.alert, again.stream_id) == (cc.DUPLICATE, None, "")
    assert await client.redis.xlen(cc.RESULTS) == 1
    assert await client.redis.xlen(cc.OUTBOX) == 1


async def test_a_late_result_goes_to_history_only_once(node: Node) -> None:
    client = node()
    target = make_target(name="api")
    await send(client, target, True)
    late = await send(client, target, False, age=30.0, result_id="late-1")
    assert late.status == cc.LATE
    assert late.state == "UP"
    assert late.stream_id
    [entry] = await client.redis.xrange(cc.RESULTS, late.stream_id, late.stream_id)
    assert entry.field_values["late"] == "1"
    assert '"ok":false' in entry.field_values["r"]
    assert (await send(client, target, False, age=30.0, result_id="late-1")).status == cc.DUPLICATE
    assert await client.redis.xlen(cc.RESULTS) == 2


async def test_thresholds_and_alert_ids(node: Node) -> None:
    client = node()
    target = make_target(name="api")
    states = []
    alerts = []
    for ok in (True, False, False, False, False, True):
        observed = await send(client, target, ok)
        states.append(observed.state)
        if observed.alert:
            alerts.append(observed.alert)
    assert states == ["UP", "UP", "UP", "DOWN", "DOWN", "UP"]
    assert [(a["event"], a["id"]) for a in alerts] == [("down", "api:1"), ("up", "api:2")]
    assert alerts[0]["failures"] == 3
    assert alerts[0]["reason"] == "connect"
    entries = await client.redis.xrange(cc.OUTBOX)
    assert [entry.field_values["id"] for entry in entries] == ["api:1", "api:2"]


async def test_the_quorum_table(node: Node) -> None:
    """locations = 3, quorum = 2: DOWN at 2 locations down, UP at 2 up, else hold."""
    target = attrs.evolve(make_target(name="api", interval="60s"), locations=3, quorum=2)
    a, b, c = (node(f"{loc}/n", f"tok-{loc}") for loc in "abc")
    once = (1, 1)

    async def see(client: cc.ClusterClient, ok: bool) -> tuple[str, str | None]:
        observed = await send(client, target, ok, thresholds=once)
        return observed.state, observed.alert and observed.alert["event"]

    assert await see(a, True) == ("UNKNOWN", None)
    assert await see(b, True) == ("UP", None)
    assert await see(a, False) == ("UP", None)  # 1 down, 1 up: hold
    assert await see(b, False) == ("DOWN", "down")
    assert await see(c, True) == ("DOWN", None)  # 2 down, 1 up: still DOWN
    assert await see(b, True) == ("UP", "up")  # 1 down, 2 up


async def test_a_silent_location_stops_counting_after_two_intervals(node: Node) -> None:
    target = attrs.evolve(make_target(name="api"), locations=2, quorum=2, interval=0.1)
    a, b = node("a/n", "ta"), node("b/n", "tb")
    once = (1, 1)
    assert (await send(a, target, False, thresholds=once)).state == "UNKNOWN"
    await trio.sleep(0.25)  # two intervals of Redis's clock: a falls silent
    assert (await send(b, target, False, thresholds=once)).state == "UNKNOWN"
    assert (await send(a, target, False, thresholds=once)).state == "DOWN"  # both fresh


async def test_heartbeat_lists_live_members_and_drops_expired_leases(node: Node) -> None:
    a, b = node("x/a", "ta"), node("x/b", "tb")
    await b.heartbeat(0.1, "hash-b")
    beat = await a.heartbeat(3.0, "hash-a")
    assert set(beat.live) == {"x/a", "x/b"}
    assert beat.hashes == {"x/a": "hash-a", "x/b": "hash-b"}
    assert beat.live["x/a"] == pytest.approx(beat.now + 3.0, abs=0.01)
    await trio.sleep(0.15)  # b's lease runs out on Redis's clock
    beat = await a.heartbeat(3.0, "hash-a")
    assert set(beat.live) == {"x/a"}
    assert beat.hashes == {"x/a": "hash-a"}
    await a.leave()
    assert await a.redis.zcard(cc.MEMBERS) == 0


async def test_cluster_id_is_set_once(node: Node) -> None:
    client = node()
    assert await client.cluster_id("c1") == ("test-cluster", False)  # the fixture's
    await client.redis.delete([cc.CLUSTER_ID])
    assert await client.cluster_id("c2") == ("c2", True)
    assert (await send(client, make_target(name="api"), True)).status == cc.APPLIED


async def test_without_a_cluster_id_nothing_is_written(node: Node) -> None:
    client = node()
    await client.redis.delete([cc.CLUSTER_ID])
    assert (await send(client, make_target(name="api"), False)).status == cc.EMPTY
    assert (await client.heartbeat(3.0, "h")).empty
    assert await client.redis.exists([cc.target_key("api"), cc.RESULTS, cc.MEMBERS]) == 0


async def test_a_node_writes_only_into_the_cluster_it_joined(node: Node) -> None:
    """Redis came back empty and another node set a new id first: this node's beats and
    results are refused until it joins that cluster itself (and seeds what it knows)."""
    client, first = node(), node("default/b", "t2")
    await client.redis.delete([cc.CLUSTER_ID])
    assert await first.cluster_id("new") == ("new", True)
    assert (await send(client, make_target(name="api"), False)).status == cc.EMPTY
    assert (await client.heartbeat(3.0, "h")).empty
    assert await client.redis.exists([cc.target_key("api"), cc.RESULTS, cc.MEMBERS]) == 0
    assert await client.cluster_id("mine") == ("new", False)
    assert (await send(client, make_target(name="api"), False)).status == cc.APPLIED


@pytest.mark.fuzz
@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    oks=st.lists(st.booleans(), max_size=25),
    failure=st.integers(1, 4),
    success=st.integers(1, 3),
)
def test_one_location_decides_as_the_memory_store_does(
    redis_server: RedisServer, oks: list[bool], failure: int, success: int
) -> None:
    """locations = quorum = 1: the same states and the same down/up alerts (since,
    failures) as MemoryStateStore, result by result."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    config = make_config(
        {
            "alerts": {
                "failure_threshold": failure,
                "success_threshold": success,
                "flap_threshold": 0,
            },
            "targets": [{"name": name, "url": "http://127.0.0.1/"}],
        }
    )
    target = config.targets[0]
    oracle = MemoryStateStore(config.alerts)
    thresholds = (failure, success)

    async def check() -> None:  # one trio run (and connection) per example
        async with cc.connect(redis_server.url) as redis:
            client = cc.ClusterClient(redis, f"default/{name}", name)
            await client.load_functions()
            await client.cluster_id("property")
            for i, ok in enumerate(oks):
                ts = T0 + i
                _, expected = oracle.observe(target, probe_result(name, ok=ok, ts=ts), float(i))
                observed = await send(client, target, ok, ts=ts, thresholds=thresholds)
                state = oracle.get(name)
                assert state is not None
                assert observed.state == state.state
                got = [] if observed.alert is None else [observed.alert]
                assert [(a["event"], a["since"], a.get("failures")) for a in got] == [
                    (a.event, a.since, a.failures) for a in expected
                ]

    trio.run(check)


async def test_the_alert_streams_are_trimmed_as_the_results_stream(node: Node) -> None:
    """The outbox and {tm}:alerts keep about ALERTS_MAXLEN entries (XADD MAXLEN ~): with
    the library's cap lowered to 10, 500 alerts leave far fewer than 500 entries."""
    assert f"local ALERTS_MAXLEN = {cc.ALERTS_MAXLEN}\n" in cc.LIBRARY  # one cap, two languages
    client = node()
    small = cc.LIBRARY.replace(
        f"local ALERTS_MAXLEN = {cc.ALERTS_MAXLEN}\n", "local ALERTS_MAXLEN = 10\n"
    )
    await client.redis.function_load(small, replace=True)
    for n in range(500):
        alert = attrs.evolve(alert_event("down", f"t{n}"), id=f"t{n}:1")
        assert await client.alert(alert, ttl=60) == "applied"
    assert await client.redis.xlen(cc.ALERTS) < 250
