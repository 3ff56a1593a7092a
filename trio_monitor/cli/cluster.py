"""`trio-monitor cluster status`: the cluster as Redis sees it, from any machine.

Reads the config's `[cluster]`, asks Redis (read-only: the member set, the config
hashes, the cluster id, Redis's clock) and prints the members, locations, leases and
how many targets each probes (cluster/status.py's shape; `--format json`). Exit 0;
1 when Redis does not answer (one line why); 2 without `[cluster]`.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Any

import trio

from .._config import Config
from .._errors import UsageError
from .common import read_config, with_config

TIMEOUT = 5.0


def add_arguments(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("action", choices=["status"], help="status: members, leases, shares")
    with_config(cmd)
    cmd.add_argument("--format", choices=["text", "json"], default="text")


def command(args: argparse.Namespace) -> int:
    config = read_config(args.config)
    if config.cluster is None:
        raise UsageError(f"{args.config}: no [cluster] section: not a cluster")
    body = trio.run(_status, config)
    if args.format == "json":
        print(json.dumps(body, indent=2))
    else:
        print(_text(body))
    if not body["redis"]["ok"]:
        print(
            f"trio-monitor: Redis {body['redis']['url']}: {body['redis']['error']}", file=sys.stderr
        )
        return 1
    return 0


async def _status(config: Config) -> dict[str, Any]:
    from ..cluster import client as cc  # coredis: only for this command
    from ..cluster.status import describe

    assert config.cluster is not None
    settings = config.cluster
    shown = functools.partial(
        describe,
        redis_url=settings.redis_shown,
        targets=config.targets,
        config_hash=settings.config_hash,
    )
    try:
        with trio.fail_after(TIMEOUT):
            async with cc.connect(settings.redis) as redis:
                now = await cc.redis_time(redis)
                live = dict(await redis.zrange(cc.MEMBERS, 0, -1, withscores=True))
                hashes = await redis.hgetall(cc.CONFIG_HASHES)
                cluster_id = await redis.get(cc.CLUSTER_ID)
    except Exception as exc:
        if not cc.is_trouble(exc):
            raise
        return shown(
            redis_ok=cc.trouble_kind(exc) not in cc.OUTAGES,
            redis_error=cc.trouble_text(exc),
            cluster_id=None,
            redis_now=None,
            live={},
            hashes={},
        )
    return shown(
        redis_ok=True,
        redis_error=None,
        cluster_id=cluster_id,
        redis_now=now,
        live={str(m): float(s) for m, s in live.items() if float(s) >= now},
        hashes={str(k): str(v) for k, v in hashes.items()},
    )


def _text(body: dict[str, Any]) -> str:
    redis = body["redis"]
    state = "ok" if redis["error"] is None else str(redis["error"])
    lines = [f"redis {redis['url']}: {state}", f"cluster {body['cluster_id'] or '-'}"]
    locations = ", ".join(f"{loc} ({n})" for loc, n in body["locations"].items()) or "-"
    lines.append(f"locations: {locations}")
    for m in body["members"]:
        matches = "config ok" if m["config_matches"] else "CONFIG DIFFERS"
        lines.append(
            f"  {m['member']}  lease {m['lease_left_s']:.1f}s  {m['targets']} target{'' if m['targets'] == 1 else 's'}  {matches}"
        )
    return "\n".join(lines)
