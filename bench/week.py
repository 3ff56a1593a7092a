"""A recorded week for `trio-monitor simulate`: a fleet's probe results, synthesized.

    python bench/week.py OUT_DIR [--targets 200] [--interval 60] [--seed 13]

writes OUT_DIR/week.jsonl (what `trio-monitor run` would have written for that week:
probe lines and the alert lines its alerting made), OUT_DIR/live.toml (the config that
"recorded" it: global thresholds, one pager, no grouping, no dependencies, no
maintenance), OUT_DIR/candidate.toml (the same with dependencies on the routers,
storm grouping and Sunday's maintenance window) and OUT_DIR/schedule.txt (the outages the week
holds).

The fleet: 4 routers (core-a .. core-d, one per site, each site its own /24) with the
other targets spread behind them (labels team and site). The week (from Monday
2026-11-16 00:00Z):
- independent outages: each service about once a week, 4 to 40 minutes, a refused
  connection, a timeout or an HTTP 503, at random times;
- flapping: 3 services fail two probes of three for 90 minutes on Tuesday;
- a shared cause: router core-b dies for 25 minutes on Wednesday at 14:00, and every
  target behind it times out meanwhile;
- a network fault without a router down: on Thursday at 09:30, 30 of site d's targets
  refuse connections on 10.1.4.0/24 for 15 minutes;
- a maintenance: on Sunday 02:00-04:00 site a (its router included) is taken down.

Why synthesized rather than the real monitor against bench/farm.py: the monitor runs on
the wall clock (a recorded week would take a week) and the farm serves from 127.0.0.1
only (no /24 per site to group by, no timeouts from a dead router). The lines are still
the monitor's own: each result is a real `ProbeResult` written by `_records.to_line`,
and the alert lines come from the live monitor's dispatch code (`replay.Replay`: its
Dispatcher, state machine and policy) run on live.toml, so the file is what
`trio-monitor run -o` would have written had the probes gone that way.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Iterator
from pathlib import Path

import tomli_w

from trio_monitor import ErrorKind, parse_config
from trio_monitor._records import ProbeResult, Record, to_line
from trio_monitor.replay import Replay

START = 1_794_787_200.0  # Monday 2026-11-16T00:00:00Z
DAY, HOUR, MINUTE = 86400.0, 3600.0, 60.0
SITES = ("a", "b", "c", "d")
TEAMS = ("payments", "search", "web", "data")
PAGER = {"name": "pager", "url": "http://127.0.0.1:9/alerts"}  # never called: simulated

# (start, end, error, detail, which targets)
Fault = tuple[float, float, ErrorKind, str]


def fleet(n: int) -> list[dict]:
    """n targets: the 4 routers, then services spread over the sites."""
    targets = [
        {
            "name": f"core-{s}",
            "url": f"http://10.1.{i + 1}.1/health",
            "labels": {"site": s, "team": "netops"},
        }
        for i, s in enumerate(SITES)
    ]
    for k in range(n - len(SITES)):
        site = SITES[k % len(SITES)]
        targets.append(
            {
                "name": f"svc-{site}-{k // len(SITES):02d}",
                "url": f"http://10.1.{SITES.index(site) + 1}.{10 + k // len(SITES)}/health",
                "labels": {"site": site, "team": TEAMS[k % 3 + (k // 7) % 2]},
            }
        )
    return targets


def live_config(targets: list[dict], interval: float) -> dict:
    return {
        "monitor": {"interval": f"{interval:g}s"},
        # no storm grouping (on by default since issue 13): the "before" of the comparison
        "alerts": {
            "failure_threshold": 2,
            "flap_window": "30m",
            "group_window": "0s",
            "webhook": [PAGER],
        },
        "storage": {"enabled": False},
        "targets": targets,
    }


def candidate_config(targets: list[dict], interval: float) -> dict:
    """live.toml plus what issue 13 adds: every service depends on its site's router,
    storm grouping over a probe interval (the fleet's probes are spread over it, so a
    shared outage's downs are too), and Sunday's maintenance window."""
    doc = live_config(
        [
            {**t, "depends_on": [f"core-{t['labels']['site']}"]}
            if t["name"].startswith("svc-")
            else t
            for t in targets
        ],
        interval,
    )
    doc["alerts"] |= {"group_window": f"{interval:g}s", "group_min": 3}
    # the work is 02:00-04:00; the window ends 10 minutes later, as an operator would
    # declare it: a target still DOWN when a window ends is paged then, and the fleet's
    # probes are spread over the interval (one ending at 04:00 pages 37 targets)
    doc["maintenance"] = [
        {
            "name": "site-a-upgrade",
            "match": {"site": "a"},
            "start": "2026-11-22T02:00:00Z",
            "end": "2026-11-22T04:10:00Z",
        }
    ]
    return doc


def schedule(targets: list[dict], rng: random.Random) -> dict[str, list[Fault]]:
    faults: dict[str, list[Fault]] = {t["name"]: [] for t in targets}
    services = [t for t in targets if t["name"].startswith("svc-")]
    kinds = [
        (ErrorKind.CONNECT, "connection refused"),
        (ErrorKind.TIMEOUT, "no response within 10s"),
        (ErrorKind.STATUS, "status 503 not in [200]"),
    ]
    for t in services:  # independent outages
        for _ in range(rng.choice((0, 1, 1, 1, 2))):
            start = START + rng.uniform(0.0, 7 * DAY - HOUR)
            kind, detail = rng.choice(kinds)
            faults[t["name"]].append((start, start + rng.uniform(4, 40) * MINUTE, kind, detail))
    for t in rng.sample(services, 3):  # flapping
        start = START + 1 * DAY + 10 * HOUR
        faults[t["name"]].append((start, start + 90 * MINUTE, ErrorKind.STATUS, "flap"))
    # a shared cause: router core-b dies, and everything behind it with it
    start = START + 2 * DAY + 14 * HOUR
    for t in targets:
        if t["labels"]["site"] == "b":
            faults[t["name"]].append(
                (start, start + 25 * MINUTE, ErrorKind.TIMEOUT, "no response within 10s")
            )
    # a network fault on site d's /24, its router fine
    start = START + 3 * DAY + 9.5 * HOUR
    for t in [t for t in services if t["labels"]["site"] == "d"][:30]:
        faults[t["name"]].append(
            (start, start + 15 * MINUTE, ErrorKind.CONNECT, "connection refused")
        )
    # the maintenance: site a, Sunday 02:00-04:00
    start = START + 6 * DAY + 2 * HOUR
    for t in targets:
        if t["labels"]["site"] == "a":
            faults[t["name"]].append(
                (start, start + 2 * HOUR, ErrorKind.CONNECT, "connection refused")
            )
    return faults


def _fault_at(faults: list[Fault], ts: float, n: int) -> Fault | None:
    """The fault in force at `ts` (probe `n`); a flapping one fails two probes of three."""
    for f in faults:
        if f[0] <= ts < f[1] and (f[3] != "flap" or n % 3 != 2):
            return f
    return None


def results(
    targets: list[dict], faults: dict[str, list[Fault]], interval: float, rng: random.Random
) -> Iterator[ProbeResult]:
    """Every target's probes in time order, each at its own offset in the interval."""
    offsets = {t["name"]: rng.uniform(0.0, interval) for t in targets}
    hosts = {t["name"]: t["url"].split("/")[2] for t in targets}
    rounds = int(7 * DAY / interval)
    for n in range(rounds):
        batch = []
        for t in targets:
            name = t["name"]
            ts = round(START + n * interval + offsets[name], 3)
            fault = _fault_at(faults[name], ts, n)
            addr = f"{hosts[name]}:80"
            if fault is None:
                latency = round(rng.lognormvariate(3.0, 0.4), 1)
                batch.append(
                    ProbeResult(
                        ts, name, t["url"], True, 200, latency, None, 1, n + 1, remote_addr=addr
                    )
                )
            else:
                _, _, kind, detail = fault
                status = 503 if kind is ErrorKind.STATUS else None
                detail = "status 503 not in [200]" if detail == "flap" else detail
                batch.append(
                    ProbeResult(
                        ts, name, t["url"], False, status, None, kind, 1, n + 1,
                        error_detail=detail, remote_addr=addr,
                    )
                )  # fmt: skip
        batch.sort(key=lambda r: r.ts)
        yield from batch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--targets", type=int, default=200)
    parser.add_argument("--interval", type=float, default=120.0, help="seconds between probes")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    targets = fleet(args.targets)
    doc = live_config(targets, args.interval)
    (args.out / "live.toml").write_text(tomli_w.dumps(doc), encoding="utf-8")
    candidate = tomli_w.dumps(candidate_config(targets, args.interval))
    (args.out / "candidate.toml").write_text(candidate, encoding="utf-8")
    faults = schedule(targets, rng)
    with open(args.out / "schedule.txt", "w", encoding="utf-8") as f:
        for name, its in faults.items():
            for start, end, kind, detail in sorted(its):
                f.write(f"{name} {start:.0f} {end:.0f} {kind} {detail}\n")
    replay = Replay(parse_config(doc, env={}))
    with open(args.out / "week.jsonl", "w", encoding="utf-8") as out:

        def write(record: Record) -> None:
            out.write(to_line(record) + "\n")

        replay.dispatcher.add_observer(write)
        for result in results(targets, faults, args.interval, rng):
            replay.feed(result)
        replay.finish()
    print(
        f"{args.out / 'week.jsonl'}: {replay.probes} probe lines, "
        f"{sum(replay.made.values())} alert lines, {len(targets)} targets",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
