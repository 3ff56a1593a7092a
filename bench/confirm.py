"""Confirmation probes under a mass failure: a blip fails `--failing` targets at once
while `--healthy` targets stay up.

From the project root:

    .venv/bin/python bench/confirm.py                  # 2,000 failing, 200 healthy
    .venv/bin/python bench/confirm.py --failing 5000

The real console script (`trio-monitor run`, history off) probes the loopback farm
(bench/farm.py) with interval 30 s, stagger 15 s (`--stagger`), confirm_interval 2 s,
timeout 1 s, concurrency 200 (so a confirmation share of 100),
failure_threshold 3, success_threshold 1. From `--blip-at` seconds after start, for
`--blip` seconds, every failing target answers 500 (the farm's /blip/ route, on the
wall clock). Measured from the JSON lines: per failing target, its first failed probe
to its `down` alert and its first good probe to its `up` alert (median, worst, and the
formula's bound: (3 - 1) x 2 s + 1 s = 5 s, and 0 s + the probe's latency); the
confirmation probes started; and how late the healthy targets' probes started (their
rounds' lag_max_ms) before and during the blip.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import tomli_w
from procs import Children, raise_nofile_limit, workdir_for
from run import running_farm

ROOT = Path(__file__).resolve().parent.parent
MONITOR = {
    "interval": "30s",
    "stagger": "15s",
    "confirm_interval": "2s",
    "timeout": "1s",
    "retries": 0,
    "concurrency": 200,
}
DOWN_BOUND = (3 - 1) * 2.0 + 1.0  # (failure_threshold - 1) x confirm_interval + timeout


def log(message: str) -> None:
    print(f"[confirm {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def unix(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def write_config(
    path: Path, ports: list[int], failing: int, healthy: int, blip: tuple, monitor: dict
) -> None:
    start_ms, end_ms = (round(t * 1000) for t in blip)
    targets = [
        {
            "name": f"fail-{i}",
            "url": f"http://127.0.0.1:{ports[i % len(ports)]}/blip/{start_ms}/{end_ms}?{i}",
        }
        for i in range(failing)
    ] + [
        {"name": f"ok-{i}", "url": f"http://127.0.0.1:{ports[i % len(ports)]}/d/0?{i}"}
        for i in range(healthy)
    ]
    doc = {
        "monitor": monitor,
        "alerts": {"failure_threshold": 3, "success_threshold": 1},
        "storage": {"enabled": False},
        "targets": targets,
    }
    path.write_bytes(tomli_w.dumps(doc).encode())


def spread(values: list[float]) -> str:
    if not values:
        return "none"
    return f"median {statistics.median(values):.2f} s, worst {max(values):.2f} s (n={len(values)})"


def analyse(lines: list[tuple[float, dict]], blip: tuple[float, float]) -> None:
    """`lines`: (when the line arrived, the line)."""
    first_fail: dict[str, float] = {}
    first_good: dict[str, float] = {}
    latency: dict[str, float] = {}
    down, up = {}, {}
    round_lag: dict[int, float] = {}
    healthy_rounds: list[tuple[float, int]] = []
    confirm = 0
    for arrived, line in lines:
        kind, ts = line["type"], unix(line["ts"])
        if kind == "probe":
            name = line["target"]
            if name.startswith("ok-"):
                healthy_rounds.append((ts, line["round"]))
            elif not line["ok"]:
                first_fail.setdefault(name, ts)
            elif name in first_fail and name not in first_good:
                first_good[name] = ts
                latency[name] = (line["latency_ms"] or 0.0) / 1000
        elif kind == "alert" and line["event"] == "down":
            down.setdefault(line["target"], arrived)
        elif kind == "alert" and line["event"] == "up":
            up.setdefault(line["target"], arrived)
        elif kind == "round":
            round_lag[line["round"]] = (line["lag_max_ms"] or 0.0) / 1000
            confirm += line["confirm"]
    # from the failed (good) probe's start to the alert line's arrival on our side
    to_down = [down[n] - first_fail[n] for n in down if n in first_fail]
    to_up = [up[n] - first_good[n] for n in up if n in first_good]
    print(f"failing targets: {len(first_fail)} failed, {len(down)} down, {len(up)} up again")
    print(f"first failed probe -> down: {spread(to_down)}; bound {DOWN_BOUND:g} s")
    print(f"first good probe -> up:     {spread(to_up)}; bound 0 s + latency")
    print(f"confirmation probes: {confirm}")
    before = [round_lag[r] for ts, r in healthy_rounds if ts < blip[0] and r in round_lag]
    during = [
        round_lag[r] for ts, r in healthy_rounds if blip[0] <= ts < blip[1] + 10 and r in round_lag
    ]
    print(f"healthy probes' start lag before the blip: {spread(before)}")
    print(f"healthy probes' start lag during it:       {spread(during)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--failing", type=int, default=2000)
    parser.add_argument("--healthy", type=int, default=200)
    parser.add_argument("--blip-at", type=float, default=20.0, help="seconds after start")
    parser.add_argument("--blip", type=float, default=30.0, help="seconds the blip lasts")
    parser.add_argument("--stagger", default="15s", help='"0s": every target at once')
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    raise_nofile_limit()
    children = Children()
    try:
        with (
            workdir_for(args.workdir, "confirm-") as workdir,
            running_farm(children, args.failing + args.healthy, workdir) as farm,
        ):
            start = time.time()
            blip = (start + args.blip_at, start + args.blip_at + args.blip)
            config = workdir / "confirm.toml"
            monitor = {**MONITOR, "stagger": args.stagger}
            write_config(config, farm.ports, args.failing, args.healthy, blip, monitor)
            argv_ = [str(ROOT / ".venv/bin/trio-monitor"), "run", "-c", str(config)]
            err = (workdir / "monitor.err").open("wb")
            proc = children.spawn(
                argv_, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err
            )
            lines: list[tuple[float, dict]] = []
            reader = threading.Thread(
                target=lambda: lines.extend((time.time(), json.loads(x)) for x in proc.stdout)
            )
            reader.start()
            log(
                f"blip from +{args.blip_at:g} s for {args.blip:g} s; running until +{args.blip_at + args.blip + 15:g} s"
            )
            time.sleep(max(0.0, blip[1] + 15 - time.time()))
            children.end(proc, grace=10)
            reader.join()
            err.close()
            analyse(lines, blip)
    finally:
        children.end_all()


if __name__ == "__main__":
    main()
