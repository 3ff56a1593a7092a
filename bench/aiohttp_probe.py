"""The prober a user would hand-write: plain asyncio + aiohttp, one round over all targets.

    python bench/aiohttp_probe.py --targets targets.json --concurrency 500 --per-host 500

One ClientSession with a TCPConnector(limit=concurrency, limit_per_host=per_host), an
asyncio.Semaphore(concurrency), a per-request timeout that starts once the semaphore
is held, the whole body read. Statuses 200-399 are ok, like trio-monitor's default.
Prints one JSON line: {"type": "summary", "targets", "ok", "failed", "duration_ms",
"failures": {name: error kind}, "latency_ms": {name: ms, for ok probes}}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import aiohttp


async def probe(
    session: aiohttp.ClientSession, gate: asyncio.Semaphore, url: str, seconds: float
) -> tuple[str | None, float]:
    """-> (None if ok, else an error kind named like trio-monitor's; latency ms)."""
    async with gate:
        started = time.perf_counter()
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=seconds)) as resp:
                await resp.read()
                error = None if 200 <= resp.status < 400 else "status"
        except TimeoutError:
            error = "timeout"
        except aiohttp.ClientConnectionError:
            error = "connect"
        except aiohttp.ClientError:
            error = "protocol"
        return error, (time.perf_counter() - started) * 1000


async def one_round(targets: list[dict], concurrency: int, per_host: int, seconds: float) -> dict:
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=per_host)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        results = await asyncio.gather(*(probe(session, gate, t["url"], seconds) for t in targets))
        duration_ms = (time.perf_counter() - started) * 1000
    named = [(t["name"], error, ms) for t, (error, ms) in zip(targets, results, strict=True)]
    failures = {name: error for name, error, _ in named if error is not None}
    return {
        "type": "summary",
        "targets": len(targets),
        "ok": len(targets) - len(failures),
        "failed": len(failures),
        "duration_ms": round(duration_ms, 3),
        "failures": failures,
        "latency_ms": {name: round(ms, 3) for name, error, ms in named if error is None},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", required=True, help="JSON list of {name, url}")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--per-host", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    args = parser.parse_args(argv)
    with open(args.targets) as f:
        targets = json.load(f)
    summary = asyncio.run(one_round(targets, args.concurrency, args.per_host, args.timeout))
    print(json.dumps(summary), flush=True)
    return 0 if summary["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
