"""The prober a user would hand-write: plain asyncio + aiohttp, one round or a steady loop.

    python bench/aiohttp_probe.py --targets targets.json --concurrency 500 --per-host 500

One ClientSession with a TCPConnector(limit=concurrency, limit_per_host=per_host), an
asyncio.Semaphore(concurrency), a per-request timeout that starts once the semaphore
is held, the whole body read. Statuses 200-399 are ok, like trio-monitor's default.
`--fresh`: a new connection per request (TCPConnector(force_close=True)); `--ca-file`:
verify HTTPS against that CA (an SSLContext built once).

One round (the default) prints one JSON line: {"type": "summary", "targets", "ok",
"failed", "duration_ms", "failures": {name: error kind}, "latency_ms": {name: ms, for ok
probes}}. With `--interval S --rounds K` it runs like a monitor instead: target i is due
at start + i/N x S + k x S (spread over the whole interval, as Prometheus spreads
scrapes), skipped when its previous probe is still in flight, and prints a line per
probe {"type": "probe", "ts", "target", "ok", "error", "latency_ms"} and per interval
{"type": "round", "ts", "round", "targets", "skipped", "lag_p50_ms", "lag_max_ms"}
(lag: from the due time until the probe held the semaphore), like trio-monitor's lines.

`--blackbox URL --module M` probes through a blackbox_exporter instead: each target is
GET URL/probe?target=...&module=M, its verdict and latency read from the exporter's
`probe_success`, `probe_http_status_code` and `probe_duration_seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import ssl
import statistics
import sys
import time
from urllib.parse import quote

import aiohttp


class Prober:
    """One request per call, its verdict named like trio-monitor's error kinds."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.gate = asyncio.Semaphore(args.concurrency)
        self.seconds = args.timeout
        self.ssl: ssl.SSLContext | bool = True
        if args.ca_file:
            self.ssl = ssl.create_default_context(cafile=args.ca_file)
        self.connector = aiohttp.TCPConnector(
            limit=args.concurrency, limit_per_host=args.per_host, force_close=args.fresh
        )
        self.session = aiohttp.ClientSession(connector=self.connector)
        self.blackbox = (
            f"{args.blackbox}/probe?module={args.module}&target=" if args.blackbox else None
        )

    async def probe(self, url: str) -> tuple[str | None, float, float]:
        """-> (None if ok, else an error kind; latency ms; monotonic time the slot was held)."""
        async with self.gate:
            held = time.monotonic()
            started = time.perf_counter()
            try:
                if self.blackbox:
                    return (*await self._through_blackbox(url), held)
                timeout = aiohttp.ClientTimeout(total=self.seconds)
                async with self.session.get(url, timeout=timeout, ssl=self.ssl) as resp:
                    await resp.read()
                    error = None if 200 <= resp.status < 400 else "status"
            except TimeoutError:
                error = "timeout"
            except aiohttp.ClientConnectionError:
                error = "connect"
            except aiohttp.ClientError:
                error = "protocol"
            return error, (time.perf_counter() - started) * 1000, held

    async def _through_blackbox(self, url: str) -> tuple[str | None, float]:
        timeout = aiohttp.ClientTimeout(total=self.seconds + 5)
        async with self.session.get(self.blackbox + quote(url, safe=""), timeout=timeout) as resp:
            text = await resp.text()
        values = {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in ("probe_success", "probe_http_status_code", "probe_duration_seconds"):
                values[name] = float(value)
        if values.get("probe_success") == 1:
            return None, values["probe_duration_seconds"] * 1000
        return ("status" if values.get("probe_http_status_code") else "connect"), 0.0

    async def close(self) -> None:
        await self.session.close()


async def one_round(targets: list[dict], args: argparse.Namespace) -> dict:
    prober = Prober(args)
    try:
        started = time.perf_counter()
        results = await asyncio.gather(*(prober.probe(t["url"]) for t in targets))
        duration_ms = (time.perf_counter() - started) * 1000
    finally:
        await prober.close()
    named = [(t["name"], error, ms) for t, (error, ms, _) in zip(targets, results, strict=True)]
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


def _emit(record: dict) -> None:
    record["ts"] = datetime.datetime.now(datetime.UTC).isoformat()
    print(json.dumps(record), flush=record["type"] == "round")


async def steady(targets: list[dict], args: argparse.Namespace) -> int:
    """`args.rounds` intervals of `args.interval` s; -> failed probes."""
    prober = Prober(args)
    interval, count = args.interval, len(targets)
    start = time.monotonic() + 0.05
    lags: list[list[float]] = [[] for _ in range(args.rounds)]
    skipped = [0] * args.rounds
    failed = 0

    async def probe(target: dict, due: float, k: int) -> None:
        nonlocal failed
        error, ms, held = await prober.probe(target["url"])
        lags[k].append((held - due) * 1000)
        failed += error is not None
        _emit(
            {
                "type": "probe",
                "target": target["name"],
                "ok": error is None,
                "error": error,
                "latency_ms": round(ms, 3),
            }
        )

    async def schedule(i: int, target: dict) -> None:
        in_flight: asyncio.Task | None = None
        for k in range(args.rounds):
            due = start + i / count * interval + k * interval
            await asyncio.sleep(due - time.monotonic())
            if in_flight is not None and not in_flight.done():
                skipped[k] += 1
                continue
            in_flight = asyncio.create_task(probe(target, due, k))
        if in_flight is not None:
            await in_flight

    async def rounds() -> None:
        for k in range(args.rounds):
            await asyncio.sleep(start + (k + 1) * interval - time.monotonic())
            done = lags[k]
            _emit(
                {
                    "type": "round",
                    "round": k + 1,
                    "targets": len(done),
                    "skipped": skipped[k],
                    "lag_p50_ms": round(statistics.median(done), 3) if done else None,
                    "lag_max_ms": round(max(done), 3) if done else None,
                }
            )

    try:
        await asyncio.gather(rounds(), *(schedule(i, t) for i, t in enumerate(targets)))
    finally:
        await prober.close()
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", required=True, help="JSON list of {name, url}")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--per-host", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument("--fresh", action="store_true", help="a new connection per request")
    parser.add_argument("--ca-file", help="verify HTTPS against this CA (PEM)")
    parser.add_argument("--interval", type=float, help="seconds: run like a monitor")
    parser.add_argument("--rounds", type=int, default=5, help="intervals with --interval")
    parser.add_argument("--blackbox", help="probe through this blackbox_exporter base URL")
    parser.add_argument("--module", default="http_2xx", help="its module (%(default)s)")
    args = parser.parse_args(argv)
    with open(args.targets) as f:
        targets = json.load(f)
    if args.interval:
        return 0 if asyncio.run(steady(targets, args)) == 0 else 1
    summary = asyncio.run(one_round(targets, args))
    print(json.dumps(summary), flush=True)
    return 0 if summary["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
