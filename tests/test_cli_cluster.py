"""`trio-monitor cluster status` (cli/cluster.py): the real console script against a
real redis-server; its JSON shape is a contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from factories import write_config
from redis_server import RedisServer
from test_cli import run_cli

from trio_monitor.cluster import client as cc

pytestmark = pytest.mark.subprocess

MEMBER_KEYS = {
    "member", "location", "node", "lease_left_s", "targets", "config_hash", "config_matches"
}  # fmt: skip


def cluster_doc(redis: RedisServer) -> dict:
    return {
        "cluster": {"redis": redis.url, "node": "a", "location": "eu"},
        "storage": {"enabled": False},
        "targets": [{"name": f"t{i}", "url": f"http://127.0.0.1:9/{i}"} for i in range(5)],
    }


async def test_status_as_json_has_the_documented_shape(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    import json

    from trio_monitor import load_config

    path = write_config(tmp_path, cluster_doc(redis_server))
    settings = load_config(path).cluster
    assert settings is not None
    async with cc.connect(redis_server.url) as redis:
        node = cc.ClusterClient(redis, "eu/a", "token-1")
        await node.load_functions()
        await node.cluster_id("c-1")
        await node.heartbeat(30.0, settings.config_hash)
        await cc.ClusterClient(redis, "us/b", "token-2", "c-1").heartbeat(30.0, "another-hash")
    done = await run_cli("cluster", "status", "-c", str(path), "--format", "json", cwd=tmp_path)
    assert done.code == 0, done.stderr
    body = json.loads(done.stdout)
    assert set(body) == {
        "redis", "cluster_id", "node", "config_hash", "members", "locations", "owned", "lag"
    }  # fmt: skip
    assert body["redis"] == {"url": redis_server.url, "ok": True, "error": None}
    assert (body["cluster_id"], body["node"], body["owned"], body["lag"]) == (
        "c-1",
        None,
        None,
        None,
    )
    assert body["locations"] == {"eu": 1, "us": 1}
    assert [set(m) for m in body["members"]] == [MEMBER_KEYS, MEMBER_KEYS]
    a, b = body["members"]
    assert (a["member"], a["location"], a["node"], a["config_matches"]) == ("eu/a", "eu", "a", True)
    assert (b["member"], b["config_matches"]) == ("us/b", False)
    assert a["targets"] + b["targets"] == 5  # locations = 1: each target in one location
    assert 0 < a["lease_left_s"] <= 30
    text = await run_cli("cluster", "status", "-c", str(path), cwd=tmp_path)
    assert text.code == 0
    assert "us/b" in text.stdout
    assert "CONFIG DIFFERS" in text.stdout


async def test_status_says_when_redis_does_not_answer(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    path = write_config(tmp_path, cluster_doc(redis_server))
    redis_server.kill()
    done = await run_cli("cluster", "status", "-c", str(path), cwd=tmp_path)
    assert done.code == 1
    assert done.stderr.startswith(f"trio-monitor: Redis {redis_server.url}: ")
    assert len(done.stderr.strip().splitlines()) == 1


async def test_status_without_a_cluster_section_is_a_usage_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"targets": []})
    done = await run_cli("cluster", "status", "-c", str(path), cwd=tmp_path)
    assert done.code == 2
    assert "no [cluster] section" in done.stderr
