"""Probers running like monitors: a window of intervals, measured from outside.

Two uses: the steady state (2,000 targets every 2 s, intervals 3-5: CPU per probe,
skipped and late probes) and the latency overhead (every target answers after a known
delay; measured latency minus that delay, p50/p99). trio-monitor runs as `trio-monitor
run` on its generated config; the aiohttp prober with `--interval` (its own round and
probe lines, see aiohttp_probe.py).

Both processes' CPU is sampled from /proc every SAMPLE_EVERY s. Afterwards the window
is placed from the output: the anchor is the earliest probe start (line `ts` minus its
`latency_ms`), the window [anchor + first x interval, anchor + last x interval], and the
CPU at its edges interpolated between samples. Probes are the probe lines whose `ts`
falls in the window; skipped and lag come from the round lines in it.
"""

from __future__ import annotations

import bisect
import datetime
import math
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path

from procs import Children, cpu_seconds
from report import RoundsRun, percentile
from scenario import Prepared, aiohttp_argv, read_jsonl, trio_monitor_script

SAMPLE_EVERY = 0.1
START_TIMEOUT = 60.0  # until the first output line
STOP_GRACE = 10.0


@dataclass(frozen=True)
class Window:
    interval_s: float
    first: float  # intervals from the anchor
    last: float
    tail_s: float = 0.0  # extra seconds counted after the last interval (latency runs)


def argv(prober: str, prepared: Prepared, window: Window) -> list[str]:
    if prober == "trio-monitor":
        return [trio_monitor_script(), "run", "-q", "-c", str(prepared.toml)]
    rounds = math.ceil(window.last) + 1
    return [*aiohttp_argv(prepared), f"--interval={window.interval_s:g}", f"--rounds={rounds}"]


def run(
    children: Children, prober: str, prepared: Prepared, window: Window, stem: Path
) -> RoundsRun:
    out, err = stem.with_suffix(".out"), stem.with_suffix(".err")
    samples: list[tuple[float, float]] = []  # (epoch s, CPU s)
    with out.open("wb") as o, err.open("wb") as e:
        proc = children.spawn(
            argv(prober, prepared, window), stdin=subprocess.DEVNULL, stdout=o, stderr=e
        )
        problem = _follow(proc, out, window, samples)
        children.end(proc, STOP_GRACE)
    result = measure(prober, prepared, window, out, samples)
    tail = " | ".join(err.read_text(errors="replace").strip().splitlines()[-3:])
    problem = problem or result.problem or (f"stderr: {tail}" if tail else None)
    return _with_problem(result, problem)


def _follow(
    proc: subprocess.Popen, out: Path, window: Window, samples: list[tuple[float, float]]
) -> str | None:
    """Sample CPU until the window has surely passed (-> None) or something went wrong."""
    started = time.time()
    first_output: float | None = None
    span = window.last * window.interval_s + window.tail_s + 1.0
    while True:
        time.sleep(SAMPLE_EVERY)
        now = time.time()
        if proc.poll() is not None:
            return None if first_output else f"exited (code {proc.returncode}) before any output"
        try:
            samples.append((now, cpu_seconds(proc.pid)))
        except (FileNotFoundError, ProcessLookupError):
            return "exited while sampled"
        if first_output is None and out.stat().st_size:
            first_output = now
        if first_output is None and now - started > START_TIMEOUT:
            return f"no output within {START_TIMEOUT:g} s"
        if first_output is not None and now > first_output + span:
            return None


def _cpu_at(samples: list[tuple[float, float]], t: float) -> float | None:
    times = [s[0] for s in samples]
    i = bisect.bisect_left(times, t)
    if i == 0 or i == len(samples):
        return None
    (t0, c0), (t1, c1) = samples[i - 1], samples[i]
    return c0 + (c1 - c0) * (t - t0) / (t1 - t0)


def _epoch(ts: str) -> float:
    return datetime.datetime.fromisoformat(ts).timestamp()


def measure(
    prober: str, prepared: Prepared, window: Window, out: Path, samples: list[tuple[float, float]]
) -> RoundsRun:
    probes, rounds = [], []
    for rec in read_jsonl(out):
        if rec.get("type") == "probe":
            probes.append(rec)
        elif rec.get("type") == "round":
            rounds.append(rec)
    empty = RoundsRun(prober, 0, None, 0.0, 0, None, 0, {}, None, None, None)
    if not probes:
        return _with_problem(empty, "no probe lines")
    anchor = min(_epoch(p["ts"]) - p["latency_ms"] / 1000 for p in probes)
    start = anchor + window.first * window.interval_s
    end = anchor + window.last * window.interval_s + window.tail_s
    inside = [p for p in probes if start <= _epoch(p["ts"]) <= end]
    rounds_in = [r for r in rounds if start <= _epoch(r["ts"]) <= end]
    cpu_start, cpu_end = _cpu_at(samples, start), _cpu_at(samples, end)
    cpu = None if cpu_start is None or cpu_end is None else cpu_end - cpu_start
    designed = {t.name: t for t in prepared.targets}
    wrong: dict[str, int] = {}
    excess = []
    for p in inside:
        target = designed.get(p["target"])
        if target is None or not target.healthy:
            continue
        if p["ok"]:
            excess.append(p["latency_ms"] - target.latency_ms)
        else:
            kind = p["error"] or "unknown"
            wrong[kind] = wrong.get(kind, 0) + 1
    lags = [r["lag_max_ms"] for r in rounds_in if r.get("lag_max_ms") is not None]
    result = RoundsRun(
        prober=prober,
        probes=len(inside),
        cpu_s=cpu,
        window_s=end - start,
        skipped=sum(r.get("skipped", 0) for r in rounds_in),
        lag_max_ms=max(lags, default=None),
        wrongly_failed=sum(wrong.values()),
        wrong_kinds=wrong,
        excess_p50_ms=percentile(excess, 0.5),
        excess_p99_ms=percentile(excess, 0.99),
        excess_max_ms=max(excess, default=None),
    )
    if cpu is None:
        return _with_problem(result, "the window is not covered by CPU samples")
    return result


def _with_problem(result: RoundsRun, problem: str | None) -> RoundsRun:
    return replace(result, problem=problem) if problem else result
