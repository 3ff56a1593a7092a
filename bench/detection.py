"""Detection latency: how long after an outage starts (ends) the `down` (`up`) alert line
comes, for the shipped defaults and a few settings, with and without confirmation probes.

From the project root (about 6 minutes, bounded by the 60 s-interval settings):

    .venv/bin/python bench/detection.py
    .venv/bin/python bench/detection.py --workdir /tmp/detection   # keep the JSON lines

One loopback farm (bench/farm.py, its own process); one real `trio-monitor run` process
per setting (history off, no [server], stagger "0s"; its JSON lines are read from its
stdout and written to setting-<n>.jsonl, each after its arrival time), all at the same
time. Each process probes 20 targets per failure mode, each on its own farm
port (so `per_host` never queues them): target i's outage starts at a known wall-clock
moment, T0 + i x interval / 20 (spread over one interval, so the time to the next
scheduled probe takes every value), and lasts 3.5 intervals (long enough for
failure_threshold 3 without confirmation), then the target answers 200 again. Modes:
`500` (answers 500 at once) and `hang` (never answers: the probe times out), the farm's
/down/ route. A closed port is not a mode here: a farm route cannot close its port, and
a refused connection fails at once, like a 500, so it would time the same as `500`.

Measured per target: outage start -> `down` alert line, first failed probe (its `ts`,
the probe's start) -> `down`, recovery -> `up` line, the alert lines timed by their
arrival on this side of the pipe (an alert's `ts` is its deciding probe's start);
median and max per setting and mode, against the bounds (README, "Confirmation
probes"), with step = max(confirm_interval, timeout) for `hang` (a probe that hangs
holds the next one back until its timeout), confirm_interval for `500`:
    outage -> down  <= interval + (failure_threshold - 1) x step + timeout
    first failed probe -> down <= (failure_threshold - 1) x step + timeout
    recovery -> up  <= recover_interval (`hang`: max(recover_interval, timeout)) + latency
With confirmation off (confirm_interval = interval: a confirmation probe never comes
before the next due time, so none is run) this is the fixed cadence.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import tomli_w
from procs import Children, raise_nofile_limit, workdir_for
from run import running_farm

ROOT = Path(__file__).resolve().parent.parent
PER_MODE = 20
MODES = ("500", "hang")
WARMUP = 15.0  # seconds from start to T0: every monitor has started and probed once
OUTAGE_INTERVALS = 3.5
AFTER = 10.0  # seconds after the last bound, so every `up` line has come
SLACK = 0.5  # seconds of latency and scheduling allowed over a bound


@dataclass(frozen=True)
class Setting:
    name: str
    interval: float
    failure_threshold: int
    confirm: float  # confirm_interval (= interval: off)
    timeout: float
    shipped: bool = False  # the shipped defaults: no keys but interval

    def monitor(self) -> dict:
        if self.shipped:
            return {"interval": f"{self.interval:g}s", "timeout": "10s", "stagger": "0s"}
        return {
            "interval": f"{self.interval:g}s",
            "timeout": f"{self.timeout:g}s",
            "confirm_interval": f"{self.confirm:g}s",
            "retries": 0,
            "stagger": "0s",
        }

    def step(self, mode: str) -> float:
        return max(self.confirm, self.timeout) if mode == "hang" else self.confirm

    def first_fail_bound(self, mode: str) -> float:
        return (self.failure_threshold - 1) * self.step(mode) + self.timeout

    def down_bound(self, mode: str) -> float:
        return self.interval + self.first_fail_bound(mode)

    def up_bound(self, mode: str) -> float:
        return max(self.confirm, self.timeout) if mode == "hang" else self.confirm


SETTINGS = [Setting("shipped defaults", 30, 3, 5, 10, shipped=True)] + [
    Setting(
        f"{interval}s, threshold {threshold}, confirm {'2s' if on else 'off'}",
        interval,
        threshold,
        2.0 if on else float(interval),
        5.0,
    )
    for interval in (30, 60)
    for threshold in (2, 3)
    for on in (True, False)
]


def log(message: str) -> None:
    print(f"[detection {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def unix(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def is_alert(line: dict, event: str) -> bool:
    return line["type"] == "alert" and line["event"] == event


def outages(setting: Setting, t0: float) -> list[tuple[float, float]]:
    length = OUTAGE_INTERVALS * setting.interval
    starts = [t0 + i * setting.interval / PER_MODE for i in range(PER_MODE)]
    return [(s, s + length) for s in starts]


def write_config(path: Path, setting: Setting, ports: list[int], t0: float) -> None:
    targets = []
    for m, mode in enumerate(MODES):
        for i, (start, end) in enumerate(outages(setting, t0)):
            port = ports[m * PER_MODE + i]
            url = f"http://127.0.0.1:{port}/down/{round(start * 1000)}/{round(end * 1000)}/{mode}"
            targets.append({"name": f"{mode}-{i}", "url": url})
    doc = {
        "monitor": setting.monitor(),
        "alerts": {"failure_threshold": setting.failure_threshold, "success_threshold": 1},
        "storage": {"enabled": False},
        "targets": targets,
    }
    path.write_bytes(tomli_w.dumps(doc).encode())


def record(proc: subprocess.Popen, path: Path) -> None:
    """Each stdout line of a monitor, prefixed with the unix time it arrived here: an
    alert line's `ts` is its deciding probe's start, the arrival is when it was told."""
    with path.open("w") as out:
        for line in proc.stdout:
            out.write(f"{time.time():.3f} {line.decode()}")
            out.flush()


def fmt(values: list[float]) -> str:
    if not values:
        return "none"
    return f"{statistics.median(values):.1f} / {max(values):.1f}"


def analyse(setting: Setting, path: Path, t0: float) -> list[str]:
    """-> one markdown table row per mode."""
    windows = outages(setting, t0)
    lines = []
    for row in path.read_text().splitlines():
        arrived, _, text = row.partition(" ")
        if text.startswith("{"):
            lines.append((float(arrived), json.loads(text)))
    rows = []
    for mode in MODES:
        to_down, fail_to_down, to_up = [], [], []
        for i, (start, end) in enumerate(windows):
            name = f"{mode}-{i}"
            mine = [(a, unix(x["ts"]), x) for a, x in lines if x.get("target") == name]
            failed = [t for _, t, x in mine if x["type"] == "probe" and not x["ok"] and t >= start]
            down = [a for a, t, x in mine if is_alert(x, "down") and t >= start]
            up = [a for a, t, x in mine if is_alert(x, "up") and t >= end]
            if down:
                to_down.append(down[0] - start)
                if failed:
                    fail_to_down.append(down[0] - failed[0])
            if up:
                to_up.append(up[0] - end)
        bounds = (
            setting.down_bound(mode),
            setting.first_fail_bound(mode),
            setting.up_bound(mode),
        )
        within = all(
            max(v, default=0.0) <= b + SLACK
            for v, b in zip((to_down, fail_to_down, to_up), bounds, strict=True)
        )
        counts = f"{len(to_down)}/{len(to_up)}"
        rows.append(
            f"| {setting.name} | {mode} | {counts} | {fmt(to_down)} | {bounds[0]:g} |"
            f" {fmt(fail_to_down)} | {bounds[1]:g} | {fmt(to_up)} | {bounds[2]:g} |"
            f" {'yes' if within and len(to_down) == len(to_up) == PER_MODE else 'NO'} |"
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    raise_nofile_limit()
    children = Children()
    try:
        with (
            workdir_for(args.workdir, "detection-") as workdir,
            # running_farm listens on targets / 10 ports: one port per target and mode
            running_farm(children, 10 * PER_MODE * len(MODES), workdir) as farm,
        ):
            t0 = time.time() + WARMUP
            procs, readers = [], []
            for n, setting in enumerate(SETTINGS):
                config = workdir / f"setting-{n}.toml"
                write_config(config, setting, farm.ports, t0)
                argv_ = [str(ROOT / ".venv/bin/trio-monitor"), "run", "-c", str(config)]
                with (workdir / f"setting-{n}.err").open("wb") as err:
                    proc = children.spawn(
                        argv_, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err
                    )
                procs.append(proc)
                out = workdir / f"setting-{n}.jsonl"
                readers.append(threading.Thread(target=record, args=(proc, out), daemon=True))
                readers[-1].start()
            end = max(
                outages(s, t0)[-1][1] + s.up_bound(m) + SLACK for s in SETTINGS for m in MODES
            )
            end += AFTER
            log(
                f"{len(SETTINGS)} monitors; outages from T0 = +{WARMUP:g} s; done at +{end - time.time():.0f} s"
            )
            time.sleep(max(0.0, end - time.time()))
            for proc in procs:
                children.end(proc, grace=10)
            for reader in readers:
                reader.join(10)  # the pipe is at EOF once its monitor has exited
            print(
                "| setting | mode | down/up alerts | outage → `down` median / max (s) | bound |"
                " first failed probe → `down` median / max | bound | recovery → `up`"
                " median / max | bound | all within |"
            )
            print("|---|---|---|---|---|---|---|---|---|---|")
            for n, setting in enumerate(SETTINGS):
                for row in analyse(setting, workdir / f"setting-{n}.jsonl", t0):
                    print(row)
    finally:
        children.end_all()


if __name__ == "__main__":
    main()
