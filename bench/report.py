"""Benchmark results and their markdown report (docs/benchmarks.md)."""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from procs import Usage

PROBERS = ("trio-monitor", "aiohttp")


@dataclass(frozen=True)
class Setup:
    """One generated target set and the limits both probers use for it."""

    label: str
    targets: int
    kinds: dict[str, int]  # designed outcome -> count
    ports: int
    closed_ports: int
    concurrency: int
    per_host: int
    timeout_s: float
    floor_ms: float  # no round can be faster (largest designed latency, or the timeout)
    work_bound_ms: float  # sum of designed probe durations / concurrency


@dataclass(frozen=True)
class Run:
    """One prober, one round over one scenario's targets."""

    prober: str
    usage: Usage
    round_ms: float | None
    ok: int
    failed: int
    wrongly_failed: int  # designed healthy, reported not ok
    wrong_kinds: dict[str, int]  # their error kinds
    mismatched: int  # designed failures reported ok or with another error kind, or missing
    excess_p50_ms: float | None  # reported minus designed latency, healthy targets reported ok
    excess_p99_ms: float | None
    farm_cpu_s: float
    other_cpu_s: float  # the rest of the machine meanwhile (other processes: noise)
    problem: str | None = None


@dataclass
class ScenarioResult:
    setup: Setup
    runs: dict[str, list[Run]] = field(default_factory=lambda: {p: [] for p in PROBERS})


@dataclass(frozen=True)
class Sample:
    t_s: float
    cpu_s: float
    rss_mb: float


@dataclass
class SteadyResult:
    setup: Setup
    interval: str
    minutes: int
    samples: list[Sample]
    probes: list[float]  # seconds from the start, of every probe line
    wrong: list[tuple[float, str]]  # seconds from the start and error kind, of wrongly failed
    excess: list[tuple[float, float]]  # seconds from the start, reported - designed latency ms
    rounds: list[dict]  # round lines, with "t_s" (seconds from the start) added
    exit_code: int | None
    stderr: list[str]
    farm_cpu_s: float
    other_cpu_s: float
    problem: str | None = None


# --- numbers ---------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


def median(runs: list[Run], key: Callable[[Run], float | None]) -> float | None:
    values = [v for v in map(key, runs) if v is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    return "n/a" if a is None or not b else f"{a / b:.2f}"


def kinds_text(kinds: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items())) or "none"


def _wall(r: Run) -> float:
    return r.usage.wall_s


def _round(r: Run) -> float | None:
    return r.round_ms


def _wrong(r: Run) -> float:
    return r.wrongly_failed


def _cpu_ms_per_probe(setup: Setup) -> Callable[[Run], float]:
    return lambda r: r.usage.cpu_s * 1000 / setup.targets


# (row label, value of one run, digits, show a trio-monitor / aiohttp ratio)
def _metrics(setup: Setup) -> list[tuple[str, Callable[[Run], float | None], int, bool]]:
    def overhead(r: Run) -> float | None:
        return None if r.round_ms is None else r.round_ms - setup.floor_ms

    def over_floor(r: Run) -> float | None:
        return None if r.round_ms is None else r.round_ms / setup.floor_ms

    return [
        ("wall s (whole process)", _wall, 2, True),
        ("round ms", _round, 0, True),
        ("latency floor ms", lambda r: setup.floor_ms, 0, False),
        ("overhead above floor ms", overhead, 0, True),
        ("round / floor", over_floor, 2, False),
        ("reported - designed latency, p50 ms", lambda r: r.excess_p50_ms, 0, True),
        ("reported - designed latency, p99 ms", lambda r: r.excess_p99_ms, 0, True),
        ("CPU s (user+sys)", lambda r: r.usage.cpu_s, 2, True),
        ("CPU ms per probe", _cpu_ms_per_probe(setup), 3, True),
        ("peak RSS MB", lambda r: r.usage.peak_rss_mb, 1, True),
        ("ok", lambda r: r.ok, 0, False),
        ("failed", lambda r: r.failed, 0, False),
        ("wrongly failed", _wrong, 0, False),
        ("other mismatches", lambda r: r.mismatched, 0, False),
        ("farm CPU s during the run", lambda r: r.farm_cpu_s, 2, False),
        ("other processes' CPU s during the run", lambda r: r.other_cpu_s, 2, False),
    ]


# --- sections --------------------------------------------------------------------------


def machine_lines() -> list[str]:
    cpu = _first_value("/proc/cpuinfo", "model name") or platform.processor() or "unknown"
    mem_kib = _first_value("/proc/meminfo", "MemTotal")
    mem = f"{int(mem_kib.split()[0]) / 1024**2:.1f} GiB" if mem_kib else "unknown"
    versions = ", ".join(
        f"{name} {_version(name)}" for name in ("trio", "httpx", "httpcore", "h11", "aiohttp")
    )
    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores",
        f"- memory: {mem}; kernel: {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()} ({platform.python_implementation()}); {versions}",
        f"- trio-monitor {_version('trio-monitor')}, {code_state()}",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
    ]


def code_state() -> str:
    """The commit benchmarked, and whether trio_monitor/ differed from it."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        commit, dirty = (
            git("rev-parse", "--short", "HEAD"),
            git("status", "--porcelain", "trio_monitor"),
        )
    except (OSError, subprocess.TimeoutExpired):
        commit, dirty = "", ""
    if not commit:
        return "commit unknown (not a git checkout)"
    return f"commit {commit}" + (" with uncommitted changes in trio_monitor/" if dirty else "")


def _first_value(path: str, key: str) -> str | None:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return None
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(key)), None)


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def overview_lines(results: list[ScenarioResult]) -> list[str]:
    lines = [
        "| scenario | round ms trio-monitor / aiohttp | floor ms "
        "| wall ratio | CPU/probe ratio | wrongly failed (all runs) trio-monitor / aiohttp |",
        "|---|---|---|---|---|---|",
    ]
    for res in results:
        t, a = res.runs["trio-monitor"], res.runs["aiohttp"]
        cpu = _cpu_ms_per_probe(res.setup)
        lines.append(
            f"| {res.setup.label} "
            f"| {fmt(median(t, _round))} / {fmt(median(a, _round))} "
            f"| {fmt(res.setup.floor_ms)} "
            f"| {ratio(median(t, _wall), median(a, _wall))} "
            f"| {ratio(median(t, cpu), median(a, cpu))} "
            f"| {sum(map(_wrong, t)):,} / {sum(map(_wrong, a)):,} |"
        )
    return lines


def scenario_lines(res: ScenarioResult) -> list[str]:
    s = res.setup
    lines = [
        f"### {s.label}",
        "",
        f"{s.targets:,} targets ({kinds_text(s.kinds)}) on {s.ports} farm ports"
        f" (+{s.closed_ports} closed); concurrency {s.concurrency:,}, per_host {s.per_host:,},"
        f" timeout {s.timeout_s:g} s, retries 0. Latency floor {fmt(s.floor_ms)} ms"
        + _bound_note(s)
        + f". Medians of {len(res.runs['trio-monitor'])} run(s) each.",
        "",
        "| metric | trio-monitor | aiohttp | trio-monitor / aiohttp |",
        "|---|---|---|---|",
    ]
    t, a = res.runs["trio-monitor"], res.runs["aiohttp"]
    for label, key, digits, with_ratio in _metrics(s):
        mt, ma = median(t, key), median(a, key)
        shown = ratio(mt, ma) if with_ratio else ""
        lines.append(f"| {label} | {fmt(mt, digits)} | {fmt(ma, digits)} | {shown} |")
    lines += ["", _per_run_line(res), *_problem_lines(t + a), ""]
    return lines


def _bound_note(s: Setup) -> str:
    if s.work_bound_ms <= s.floor_ms:
        return ""
    return (
        f" (with concurrency below the target count a round also cannot beat"
        f" Σ designed durations / concurrency = {fmt(s.work_bound_ms)} ms)"
    )


def _per_run_line(res: ScenarioResult) -> str:
    parts = []
    for prober, runs in res.runs.items():
        rounds = ", ".join(fmt(r.round_ms) for r in runs)
        walls = ", ".join(fmt(r.usage.wall_s, 2) for r in runs)
        wrong = "; ".join(kinds_text(r.wrong_kinds) for r in runs if r.wrongly_failed)
        parts.append(
            f"{prober}: round ms {rounds}; wall s {walls};"
            f" wrongly failed {', '.join(str(r.wrongly_failed) for r in runs)}"
            + (f" ({wrong})" if wrong else "")
        )
    return "Per run: " + " — ".join(parts) + "."


def _problem_lines(runs: list[Run]) -> list[str]:
    return [f"- **{r.prober}**: {r.problem}" for r in runs if r.problem]


def steady_lines(res: SteadyResult) -> list[str]:
    s = res.setup
    lines = [
        f"{s.targets:,} healthy targets, interval {res.interval}, timeout {s.timeout_s:g} s,"
        f" concurrency {s.concurrency:,}, per_host {s.per_host:,}, retries 0, other `[monitor]`"
        f" keys (`stagger`, `adaptive`) at trio-monitor's defaults; `trio-monitor run` ran"
        f" {res.minutes:g} min (stopped with SIGTERM 5 s before the next interval),"
        " sampled every ~10 s from /proc (utime+stime, VmRSS).",
        "",
    ]
    if res.problem:
        lines += [f"**Problem**: {res.problem}", ""]
    return [*lines, *_steady_summary(res), "", *_minute_lines(res)]


def _steady_summary(res: SteadyResult) -> list[str]:
    last = res.samples[-1]
    later = [x for x in res.samples if x.t_s >= 60]
    rss_1 = later[0].rss_mb if later else None
    # per interval: the run ends 5 s before the next one, when the process is idle anyway
    whole = last.cpu_s / (res.minutes * 60)
    after = (last.cpu_s - later[0].cpu_s) / ((res.minutes - 1) * 60) if res.minutes > 1 else None
    per_probe = last.cpu_s * 1000 / len(res.probes) if res.probes else None
    wrong_kinds = dict(Counter(kind for _, kind in res.wrong))
    excess = [ms for _, ms in res.excess]
    first_log = res.stderr[0] if res.stderr else "none"
    return [
        "| metric | value |",
        "|---|---|",
        f"| CPU share of one core, whole run (CPU s / run minutes) | {fmt_pct(whole)} |",
        f"| CPU share of one core after the first minute | {fmt_pct(after)} |",
        f"| CPU ms per probe, whole run | {fmt(per_probe, 3)} |",
        f"| RSS MB after 1 min / at the end | {fmt(rss_1, 1)} / {fmt(last.rss_mb, 1)} |",
        f"| probe lines | {len(res.probes):,} |",
        f"| rounds finished | {len(res.rounds):,} |",
        f"| skipped (still in flight when due) | {sum(r['skipped'] for r in res.rounds):,} |",
        f"| dropped lines | {max((r['dropped'] for r in res.rounds), default=0):,} |",
        f"| wrongly failed probes | {len(res.wrong):,} ({kinds_text(wrong_kinds)}) |",
        f"| reported - designed latency, p50 / p99 ms | {fmt(percentile(excess, 0.5))}"
        f" / {fmt(percentile(excess, 0.99))} |",
        f"| stderr: lines, first line | {len(res.stderr):,}, `{first_log}` |",
        f"| exit code after SIGTERM | {res.exit_code} |",
        f"| farm CPU s, whole run | {fmt(res.farm_cpu_s, 1)} |",
        f"| other processes' CPU s, whole run | {fmt(res.other_cpu_s, 1)} |",
    ]


def _share(a: Sample, b: Sample) -> float | None:
    return (b.cpu_s - a.cpu_s) / (b.t_s - a.t_s) if b.t_s > a.t_s else None


def _span(values: Iterable[int]) -> str:
    """'n/a', '200' or '150-200'."""
    distinct = sorted(set(values))
    if len(distinct) < 2:
        return str(distinct[0]) if distinct else "n/a"
    return f"{distinct[0]}-{distinct[-1]}"


def pct(share: float | None) -> float | None:
    return None if share is None else share * 100


def fmt_pct(share: float | None) -> str:
    return "n/a" if share is None else f"{share * 100:.1f} %"


def _minute_lines(res: SteadyResult) -> list[str]:
    lines = [
        "| minute | CPU % of one core | RSS MB at end | max RSS MB | probes | wrongly failed"
        " | p99 reported - designed latency ms | rounds | slowest round ms | skipped"
        " | concurrency in force |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    start = res.samples[0]
    for m in range(math.ceil(res.samples[-1].t_s / 60)):
        inside = [x for x in res.samples if m * 60 < x.t_s <= (m + 1) * 60]
        if not inside:
            continue
        end = inside[-1]

        def within(t: float, m: int = m) -> bool:
            return m * 60 <= t < (m + 1) * 60

        rounds = [r for r in res.rounds if within(r["t_s"])]
        lines.append(
            f"| {m + 1} | {fmt(pct(_share(start, end)), 1)} | {fmt(end.rss_mb, 1)}"
            f" | {fmt(max(x.rss_mb for x in inside), 1)}"
            f" | {sum(map(within, res.probes)):,} | {sum(within(t) for t, _ in res.wrong):,}"
            f" | {fmt(percentile([ms for t, ms in res.excess if within(t)], 0.99))}"
            f" | {len(rounds):,} | {fmt(max((r['duration_ms'] for r in rounds), default=None))}"
            f" | {sum(r['skipped'] for r in rounds):,}"
            f" | {_span(r['concurrency'] for r in rounds)} |"
        )
        start = end
    return lines


def render(
    command: str,
    setup_command: str,
    results: list[ScenarioResult],
    steady: SteadyResult | None,
    appendix: str = "",
) -> str:
    """The report; `appendix` (markdown sections generated elsewhere) goes at its end."""
    lines = [
        "# Benchmarks",
        "",
        "trio-monitor (`trio-monitor run --once`) against the asyncio + aiohttp prober a"
        " user would hand-write (`bench/aiohttp_probe.py`), both probing the same loopback"
        " target farm (`bench/farm.py`, its own process) with the same targets, limits and"
        " timeout. Generated by `bench/run.py`; numbers are from one machine and one run of"
        " the suite: compare ratios, not absolute values across machines.",
        "",
        "## Machine",
        "",
        *machine_lines(),
        "",
        "## Command",
        "",
        "From the project root (setup, then the suite):",
        "",
        "```sh",
        setup_command,
        "```",
        "",
        "This report was produced by:",
        "",
        "```sh",
        command,
        "```",
        "",
        *_method_lines(),
        "",
        "## Results",
        "",
        *overview_lines(results),
        "",
    ]
    for res in results:
        lines += scenario_lines(res)
    lines += ["## Steady state", ""]
    lines += steady_lines(steady) if steady else ["Not run (`--steady-minutes 0`).", ""]
    if appendix.strip():
        lines += [appendix.strip(), ""]
    return "\n".join(lines)


def _method_lines() -> list[str]:
    return [
        "## Method",
        "",
        "- Each scenario starts a fresh farm, generates seeded targets (latency log-uniform"
        " 20-400 ms) and runs the two probers alternately (the order flips every"
        " repetition), each as a subprocess doing one round over all targets.",
        "- wall s: `time.perf_counter()` around the whole subprocess (interpreter start,"
        " imports, config, the round, shutdown). CPU and peak RSS: `os.wait4` resource"
        " usage of that child (user+sys, `ru_maxrss`).",
        "- round ms: trio-monitor's `round` line `duration_ms`; the aiohttp prober's own"
        " timing of its `gather`.",
        "- latency floor: the largest designed latency of a healthy target (in scenarios with"
        " hanging targets, the probe timeout: such a round ends only when they time out); no"
        " round can be faster. Overhead = round - floor.",
        "- wrongly failed: probes of targets designed healthy that were reported not ok."
        " Other mismatches: designed failures reported ok or with an unexpected error kind"
        " (500 → `status`, hang → `timeout`, closed port → `connect`), or missing lines.",
        "- reported - designed latency: for healthy targets reported ok, the latency the"
        " prober reported (trio-monitor's `latency_ms`; aiohttp: request start to body read,"
        " timed the same way) minus the farm's designed delay. Both start the clock once the"
        " probe holds its concurrency slot, so this is lag inside the probe (event loop, CPU),"
        " not queueing for a slot.",
        "- `--once` never staggers (README): each run's round starts every probe at once,"
        " limited by `concurrency`.",
        "- one-round scenarios run trio-monitor with `[storage] enabled = false` (the aiohttp"
        " prober keeps no history either); the steady state keeps history, as by default.",
        "- trio-monitor's `per_host` and aiohttp's `limit_per_host` (both per origin) are set"
        " to the concurrency, so per-origin limiting never holds a probe back.",
        "- other processes' CPU: the machine's busy CPU time (/proc/stat) during the run"
        " minus the prober's and the farm's. Well above zero means something else competed"
        " for the 2 cores and the run is noisy.",
    ]
