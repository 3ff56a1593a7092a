"""Cluster mode under chaos, process by process: NODES (cluster_harness.py) of the real
console script against one redis-server, one target of a node's share down and back
while something goes wrong: a node killed or stopped, Redis restarted (with its data,
or empty), a second process with a node's name, a node cut off from Redis.

Every test checks, from outside the nodes: no target unprobed longer than two intervals
(TAKEOVER_S across a node gone without giving its lease back), the outage paged exactly
once (one down, one up, no Idempotency-Key twice), every verdict UP at the end, and each
remaining node's history holding every result of the stream, once.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Awaitable, Callable

import pytest
from cluster_harness import NODES, TARGETS, TTL, WAIT_S, Cluster, chaos_cluster

from trio_monitor._lifecycle import EXIT_TAKEN_OVER

pytestmark = [pytest.mark.subprocess, pytest.mark.redis]

VICTIM = "n1"
OTHERS = tuple(n for n in NODES if n != VICTIM)

Chaos = Callable[[str], Awaitable[float | None]]


async def outage_across(cluster: Cluster, chaos: Chaos) -> None:
    """Every node joined; a target of VICTIM's share goes down and is paged; `chaos`
    (given that target; returns once the cluster coped: when a node went away without
    giving its lease back, or None); the target comes back and is paged. Then the
    checks (module docstring), the nodes stopped."""
    steady = await cluster.start_all()
    target = sorted(cluster.share(VICTIM))[0]
    await cluster.down(target)
    trouble = await chaos(target)
    await cluster.up(target)
    cluster.assert_probed(steady, time.time(), trouble=trouble)
    await cluster.assert_all_up()
    remaining = [n for n in cluster.nodes if n.process.process.returncode is None]
    await cluster.stop()
    cluster.assert_paged_once(target)
    cluster.assert_histories(remaining, target)


async def test_a_node_killed_hard_is_replaced_within_its_lease(redis_server, server, tmp_path):
    """kill -9: the node's lease runs out (TTL), the others take its targets over and
    probe them at once; the outage it paged is not paged again."""
    async with chaos_cluster(redis_server, server, tmp_path) as cluster:

        async def kill(target: str) -> float:
            killed = time.time()
            cluster.node(VICTIM).process.process.kill()
            await cluster.wait_members(OTHERS)
            await cluster.wait_hits(target, 3, time.time())
            return killed

        await outage_across(cluster, kill)


async def test_a_node_stopped_past_its_lease_rejoins(redis_server, server, tmp_path):
    """SIGSTOP past the lease: the others take its targets over as if it had died; after
    SIGCONT it beats again (its fencing token still holds), rejoins and gets its share
    back; whatever it sends late is history only: no second page."""
    async with chaos_cluster(redis_server, server, tmp_path) as cluster:

        async def pause(target: str) -> float:
            node = cluster.node(VICTIM).process
            stopped = time.time()
            node.send(signal.SIGSTOP)
            await cluster.wait_members(OTHERS)
            await cluster.wait_hits(target, 2, time.time())
            node.send(signal.SIGCONT)
            await cluster.wait_members(NODES)
            await cluster.wait_hits(target, 2, time.time())
            return stopped

        await outage_across(cluster, pause)


@pytest.mark.parametrize("empty", [False, True], ids=["with-data", "empty"])
async def test_redis_killed_and_restarted(redis_server, server, tmp_path, empty):
    """Redis killed for longer than a lease, then restarted with its append-only file,
    or empty. Probing goes on meanwhile; back, every node keeps the members it knew for
    one lease, so the first one back probes only its own share (no node probes another's
    at any time); an empty Redis is seeded again from the nodes: the ongoing outage is
    not paged again and its recovery's id follows the outage's."""
    async with chaos_cluster(redis_server, server, tmp_path) as cluster:

        async def restart(target: str) -> None:
            # more than a second after the page: the append-only file (fsync each
            # second) has it, as the README's persistence note asks
            await cluster.wait_hits(target, 2, time.time())
            cluster.redis.kill()
            gone = time.time()
            for name in TARGETS:  # probing goes on, until every lease has run out
                await cluster.wait_hits(name, int(TTL) + 1, gone)
            if empty:
                cluster.redis.restart_empty()
            else:
                cluster.redis.start()
            await cluster.wait_members(NODES)
            await cluster.wait_hits(target, 3, time.time())
            for node in NODES:
                assert cluster.node(node).probed(gone, time.time()) <= cluster.share(node), node

        await outage_across(cluster, restart)


async def test_a_second_process_with_a_running_nodes_name(redis_server, server, tmp_path):
    """The older process is fenced and stops (exit 3, one line saying why); the newer
    one goes on with the same share and its own history, folded from the start."""
    async with chaos_cluster(redis_server, server, tmp_path) as cluster:

        async def twin(target: str) -> None:
            old = cluster.node(VICTIM)
            await cluster.start(VICTIM, history="n1-again")
            assert await old.process.wait_exit(WAIT_S) == EXIT_TAKEN_OVER
            assert any(
                f"cluster: node default/{VICTIM} was taken over by a newer process" in line
                for line in old.process.err.lines
            )
            await cluster.wait_hits(target, 3, time.time())

        await outage_across(cluster, twin)


async def test_a_node_cut_off_from_redis_spools_and_replays(redis_server, server, tmp_path):
    """A partition (the node's connections to Redis fall silent): it keeps probing and
    queues its results; its lease runs out and the others take its targets over; healed,
    it sends its queue in order: results older than the ones applied meanwhile are
    history only (late), no second page; each lands in every history once."""
    async with chaos_cluster(redis_server, server, tmp_path) as cluster:

        async def partition(target: str) -> float:
            proxy = cluster.proxies[VICTIM]
            cut = time.time()
            proxy.pause()
            await cluster.wait_members(OTHERS)
            await cluster.wait_hits(target, 3, time.time())
            proxy.resume()
            healed = time.time()
            await cluster.wait_members(NODES)
            # sent in order: one of its results from after the heal means the queue is in
            await cluster.wait(
                lambda: any(n == VICTIM and ts > healed for _, ts, n, _ in cluster.results.values())
            )
            late = [ts for _, ts, n, late in cluster.results.values() if n == VICTIM and late]
            assert late
            assert all(cut - 2 <= ts <= healed for ts in late)
            return cut

        await outage_across(cluster, partition)
