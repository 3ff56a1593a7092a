"""The cluster chaos tests' harness (tests/test_cluster_chaos.py): node processes of the
real console script sharing one redis-server, each through its own pausable TCP proxy,
probing loopback targets of one TestServer that also receives the webhook.

What it measures comes from outside the nodes: the targets' own hit logs
(`TestServer.hit_times`), the webhook's deliveries with their `Idempotency-Key`, each
node's JSON lines (what it probed), the results stream (read by a watcher from the
start, so what a Redis restarted empty lost is still known) and each node's SQLite
history after it stopped.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import trio
from factories import config_doc, write_config
from redis_server import RedisServer
from servers import TestServer
from test_cli import Running, start_monitor
from test_cluster_node import history_rows

from trio_monitor import load_config
from trio_monitor._config import Target
from trio_monitor.cluster import client as cc
from trio_monitor.cluster.node import BEAT, TTL
from trio_monitor.cluster.ownership import owned

INTERVAL = 1.0  # every target's
NODES = ("n1", "n2", "n3")
TARGETS = tuple(f"t{i}" for i in range(9))
TEST_S = 90.0  # one whole test, generous for a loaded 2-core machine
WAIT_S = 30.0  # any one wait for the cluster (leases, beats, probes) before failing
# a node gone without giving its lease back: its targets are probed again at most this
# long after their last probe: its last probe (up to one interval before it went), its
# lease's remaining TTL, and the survivors' next beat (every BEAT), which probes what it
# gains at once
TAKEOVER_S = INTERVAL + TTL + BEAT
STEADY_S = 2 * INTERVAL  # otherwise: no target unprobed longer than two intervals


def member(node: str) -> str:
    return f"default/{node}"


class RedisProxy:
    """A loopback TCP proxy in front of Redis. `pause()` is a partition as the node sees
    one: its connections stay open and fall silent (bytes held, none forwarded; new ones
    accepted and left unconnected), no reset; `resume()` heals it (held bytes go on, as
    TCP's retransmissions would deliver them)."""

    def __init__(self, redis: RedisServer) -> None:
        self.redis = redis  # its port, read at each connection (a restart may move it)
        self.port = 0
        self._open = trio.Event()
        self._open.set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self, nursery: trio.Nursery) -> None:
        listeners = await nursery.start(trio.serve_tcp, self._handle, 0)
        self.port = listeners[0].socket.getsockname()[1]

    def pause(self) -> None:
        if self._open.is_set():
            self._open = trio.Event()

    def resume(self) -> None:
        self._open.set()

    async def _passable(self) -> None:
        while not self._open.is_set():
            await self._open.wait()  # (pause() may have put a new event in place)

    async def _handle(self, client: trio.SocketStream) -> None:
        async with client:
            await self._passable()
            try:
                upstream = await trio.open_tcp_stream("127.0.0.1", self.redis.port)
            except OSError:
                return  # Redis is down: the client sees its connection closed
            async with upstream, trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, client, upstream, nursery.cancel_scope)
                nursery.start_soon(self._pump, upstream, client, nursery.cancel_scope)

    async def _pump(
        self, source: trio.SocketStream, sink: trio.SocketStream, done: trio.CancelScope
    ) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while data := await source.receive_some(65536):
                await self._passable()
                await sink.send_all(data)
        done.cancel()  # one side closed: close both


@attrs.define
class Node:
    """One `trio-monitor run` process: its node name, history file and output."""

    name: str
    history: Path
    process: Running
    code: int | None = None  # its exit code, once it exited

    def probed(self, start: float, end: float) -> set[str]:
        """The targets it probed (by its own JSON lines) that started in [start, end]."""
        return {
            r["target"]
            for r in self.process.records()
            if r["type"] == "probe" and start <= _epoch(r["ts"]) <= end
        }


def _epoch(ts: str) -> float:
    return datetime.datetime.fromisoformat(ts).timestamp()


class Cluster:
    """NODES against one Redis; a test starts them, makes trouble and checks."""

    def __init__(
        self,
        redis: RedisServer,
        server: TestServer,
        directory: Path,
        nursery: trio.Nursery,
        stack: contextlib.AsyncExitStack,
        client: Any,
    ) -> None:
        self.redis = redis
        self.server = server
        self.directory = directory
        self.nursery = nursery
        self._stack = stack
        self.client = client  # straight to Redis, not through a proxy
        self.proxies: dict[str, RedisProxy] = {}
        self.nodes: list[Node] = []  # every process started, in order
        self.results: dict[str, tuple[str, float, str, bool]] = {}  # watcher's stream
        for name in TARGETS:
            server.bodies[name] = b"ok"
        self.targets: list[Target] = load_config(self._config(NODES[0], "probe")).targets

    # --- nodes ----------------------------------------------------------------------

    def _config(self, node: str, history: str) -> Path:
        """The node's config file: the same targets and alerts for every node, its own
        name, history file and proxy to Redis."""
        proxy = self.proxies.get(node)
        doc = config_doc(
            *({"name": name, "url": self.server.url(f"/body/{name}")} for name in TARGETS),
            monitor={"interval": f"{INTERVAL}s", "timeout": "2s", "retries": 0},
            alerts={
                "failure_threshold": 2,
                "flap_threshold": 0,
                "webhook": [{"url": self.server.url("/hook"), "timeout": "2s"}],
            },
            storage={"path": str(self.directory / f"{history}.db")},
            cluster={"redis": self.redis.url if proxy is None else proxy.url, "node": node},
        )
        return write_config(self.directory, doc, f"{history}.toml")

    async def start(self, node: str, history: str | None = None) -> Node:
        """Start a node process (through its proxy) and wait until it monitors."""
        if node not in self.proxies:
            proxy = RedisProxy(self.redis)
            await proxy.start(self.nursery)
            self.proxies[node] = proxy
        history = history or node
        path = self._config(node, history)
        process = await self._stack.enter_async_context(start_monitor(path))
        started = Node(node, self.directory / f"{history}.db", process)
        self.nodes.append(started)
        return started

    async def start_all(self) -> float:
        """Every node started and in the member list. -> when (wall clock)."""
        for node in NODES:
            await self.start(node)
        await self.wait_members(NODES)
        return time.time()

    def node(self, name: str) -> Node:
        """The newest process of that node name."""
        return [n for n in self.nodes if n.name == name][-1]

    def share(self, node: str, members: tuple[str, ...] = NODES) -> set[str]:
        """The targets `node` probes when `members` are live (ownership.py's answer)."""
        return set(owned(member(node), self.targets, [member(m) for m in members]))

    async def stop(self) -> None:
        """SIGTERM to every node still running; each must exit 0, no traceback."""
        running = [n for n in self.nodes if n.process.process.returncode is None]
        for node in running:
            node.process.send(15)

        async def stopped(node: Node) -> None:
            node.code = await node.process.wait_exit(WAIT_S)

        async with trio.open_nursery() as nursery:
            for node in running:
                nursery.start_soon(stopped, node)
        assert [(n.name, n.code) for n in running] == [(n.name, 0) for n in running]

    # --- Redis, straight ------------------------------------------------------------

    async def _ask(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """A call to Redis; None while it is away (a test restarts it)."""
        try:
            with trio.fail_after(2):
                return await call()
        except Exception as exc:
            if not cc.is_trouble(exc):
                raise
            return None

    async def members(self) -> set[str]:
        """The nodes holding a live lease (on Redis's clock)."""

        async def live() -> set[str]:
            now = await cc.redis_time(self.client)
            found = await self.client.zrange(cc.MEMBERS, 0, -1, withscores=True)
            return {str(m).partition("/")[2] for m, expiry in found if expiry > now}

        return await self._ask(live) or set()

    async def wait_members(self, nodes: tuple[str, ...]) -> None:
        async def exactly() -> bool:
            return await self.members() == set(nodes)

        await self.wait(exactly)

    async def verdicts(self) -> dict[str, str | None]:
        """Every target's verdict in Redis."""
        return {
            name: await self._ask(lambda name=name: self.client.hget(cc.target_key(name), "state"))
            for name in TARGETS
        }

    async def watch(self) -> None:
        """Every entry of the results stream, as it comes (across restarts)."""
        last = "0-0"
        async with cc.connect(self.redis.url) as redis:
            while True:
                answer = await self._ask(
                    lambda last=last: redis.xread({cc.RESULTS: last}, count=1000, block=200)
                )
                if answer is None:
                    await trio.sleep(0.1)  # Redis away: ask again
                for entries in (answer or {}).values():
                    for entry in entries:
                        fields = {str(k): str(v) for k, v in entry.field_values.items()}
                        result = cc.from_history_entry(fields["r"])
                        last = str(entry.identifier)
                        self.results[last] = (
                            result.target,
                            result.ts,
                            fields["node"].partition("/")[2],
                            fields["late"] == "1",
                        )

    # --- targets and pages ----------------------------------------------------------

    def hits(self, target: str) -> list[float]:
        return self.server.hit_times[f"/body/{target}"]

    async def wait_hits(self, target: str, n: int, after: float) -> None:
        """Until `target` was probed `n` times after `after` (wall clock)."""
        await self.wait(lambda: sum(t > after for t in self.hits(target)) >= n)

    def pages(self) -> list[tuple[str, str, str]]:
        """Every webhook delivery: (Idempotency-Key, event, target)."""
        return [
            (r["headers"].get("idempotency-key", ""), body["event"], body["target"])
            for r in self.server.requests
            if r["path"] == "/hook"
            for body in [json.loads(r["body"])]
        ]

    async def wait(self, predicate: Callable[[], Any]) -> None:
        """Poll a condition Redis's clock and the probes decide, within WAIT_S."""
        with trio.fail_after(WAIT_S):
            while True:
                answer = predicate()
                if isinstance(answer, Awaitable):
                    answer = await answer
                if answer:
                    return
                await trio.sleep(0.05)

    async def down(self, target: str) -> None:
        """`target` fails from now on; until its outage is paged."""
        del self.server.bodies[target]
        await self.wait(lambda: (target, "down") in {(t, e) for _, e, t in self.pages()})

    async def up(self, target: str) -> None:
        """`target` answers again; until its recovery is paged."""
        self.server.bodies[target] = b"ok"
        await self.wait(lambda: (target, "up") in {(t, e) for _, e, t in self.pages()})

    # --- checks ---------------------------------------------------------------------

    def gaps(self, start: float, end: float) -> list[tuple[str, float, float]]:
        """Each target's stretches without a probe within [start, end]: (target, from,
        to), from the target's own hit log."""
        found = []
        for target in TARGETS:
            times = [start, *(t for t in self.hits(target) if start < t < end), end]
            found += [(target, a, b) for a, b in itertools.pairwise(times)]
        return found

    def assert_probed(self, start: float, end: float, *, trouble: float | None = None) -> None:
        """No target unprobed longer than STEADY_S within [start, end], but across
        `trouble` (when a node went without giving its lease back): TAKEOVER_S."""
        for target, a, b in self.gaps(start, end):
            bound = TAKEOVER_S if trouble is not None and a <= trouble <= b else STEADY_S
            assert b - a <= bound, (
                f"{target} unprobed for {b - a:.2f}s (> {bound}s) from {a - start:.2f}s"
            )

    def assert_paged_once(self, target: str) -> None:
        """One outage of `target`: one down and one up across the nodes, with the ids
        (Idempotency-Key) of its first two verdict changes: none sent twice."""
        pages = self.pages()
        assert pages == [(f"{target}:1", "down", target), (f"{target}:2", "up", target)], pages

    async def assert_all_up(self) -> None:
        assert await self.verdicts() == dict.fromkeys(TARGETS, "UP")

    def assert_histories(self, nodes: list[Node], outage: str) -> None:
        """Each node's history: every result of the stream up to its mark, once; the
        outage as one incident."""
        for node in nodes:
            samples, incidents, mark = history_rows(node.history)
            assert len(samples) == len(set(samples)), node.name
            expected = {
                (target, ts)
                for entry, (target, ts, _, _) in self.results.items()
                if _stream_order(entry) <= _stream_order(mark)
            }
            assert set(samples) == expected, (node.name, len(samples), len(expected))
            assert [name for name, _ in incidents] == [outage], node.name


def _stream_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@contextlib.asynccontextmanager
async def chaos_cluster(
    redis: RedisServer, server: TestServer, directory: Path
) -> AsyncIterator[Cluster]:
    """A Cluster whose processes and proxies end with the block (killed if still there),
    which must end within TEST_S."""
    with trio.fail_after(TEST_S):
        async with cc.connect(redis.url) as client, trio.open_nursery() as nursery:
            try:
                async with contextlib.AsyncExitStack() as stack:
                    cluster = Cluster(redis, server, directory, nursery, stack, client)
                    nursery.start_soon(cluster.watch)
                    yield cluster
            finally:
                nursery.cancel_scope.cancel()
