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
    fresh: bool = False
    https: bool = False
    mixed: bool = False


@dataclass(frozen=True)
class RoundsRun:
    """One prober running like a monitor, measured over a window of intervals."""

    prober: str
    probes: int  # probe lines in the window
    cpu_s: float | None  # process CPU over the window
    window_s: float
    skipped: int  # due but still in flight (round lines in the window)
    lag_max_ms: float | None  # worst start lag of those rounds
    wrongly_failed: int
    wrong_kinds: dict[str, int]
    excess_p50_ms: float | None  # reported - designed latency, healthy targets reported ok
    excess_p99_ms: float | None
    excess_max_ms: float | None
    problem: str | None = None

    @property
    def cpu_ms_per_probe(self) -> float | None:
        return None if self.cpu_s is None or not self.probes else self.cpu_s * 1000 / self.probes

    @property
    def probes_per_s(self) -> float | None:
        return self.probes / self.window_s if self.window_s else None


@dataclass
class RoundsResult:
    """A steady-state or latency-overhead scenario: every prober's interleaved runs."""

    setup: Setup
    kind: str  # "steady" | "latency"
    interval_s: float
    first: float  # the window, in intervals from the first probe
    last: float
    delay_ms: int | None  # latency runs: every target's known delay
    runs: dict[str, list[RoundsRun]] = field(default_factory=lambda: {p: [] for p in PROBERS})
    https: bool = False


@dataclass(frozen=True)
class Profile:
    """Where a `--once` run's CPU went: `path` (relative to docs/) and its summary."""

    tool: str  # "py-spy" or "cProfile"
    label: str
    path: str
    lines: list[str]  # markdown


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


def _probes_per_s(setup: Setup) -> Callable[[Run], float | None]:
    return lambda r: None if not r.round_ms else setup.targets * 1000 / r.round_ms


def _rounds_median(runs: list[RoundsRun], key: Callable[[RoundsRun], float | None]) -> float | None:
    values = [v for v in map(key, runs) if v is not None]
    return statistics.median(values) if values else None


def _cpu_per_probe(r: RoundsRun) -> float | None:
    return r.cpu_ms_per_probe


def overview_lines(results: list[ScenarioResult], rounds: list[RoundsResult]) -> list[str]:
    """Rows = scenarios and probers; ratios are to aiohttp's medians in the same run."""
    lines = [
        "| scenario | prober | wall / aiohttp | CPU / aiohttp | probes/s | failures"
        " (wrongly failed, all runs) | skipped (all runs) |",
        "|---|---|---|---|---|---|---|",
    ]
    for res in results:
        base = res.runs["aiohttp"]
        rate = _probes_per_s(res.setup)
        for prober, runs in res.runs.items():
            lines.append(
                f"| `--once` {res.setup.label} | {prober}"
                f" | {ratio(median(runs, _wall), median(base, _wall))}"
                f" | {ratio(median(runs, _cpu_s), median(base, _cpu_s))}"
                f" | {fmt(median(runs, rate))} | {sum(map(_wrong, runs)):,} | n/a |"
            )
    for res in rounds:
        base = res.runs["aiohttp"]
        for prober, runs in res.runs.items():
            lines.append(
                f"| {_rounds_title(res)} | {prober} | n/a"
                f" | {ratio(_rounds_median(runs, _cpu_per_probe), _rounds_median(base, _cpu_per_probe))}"
                " per probe"
                f" | {fmt(_rounds_median(runs, lambda r: r.probes_per_s))}"
                f" | {sum(r.wrongly_failed for r in runs):,} | {sum(r.skipped for r in runs):,} |"
            )
    return lines


def _cpu_s(r: Run) -> float:
    return r.usage.cpu_s


def _rounds_title(res: RoundsResult) -> str:
    if res.kind == "latency":
        return f"latency, {res.setup.label}, every {res.interval_s:g} s"
    return (
        f"steady {res.setup.label}, every {res.interval_s:g} s,"
        f" intervals {res.first + 1:g}-{res.last:g}"
    )


def scenario_lines(res: ScenarioResult) -> list[str]:
    s = res.setup
    probers = list(res.runs)
    others = [p for p in probers if p != "aiohttp"]
    lines = [
        f"### `--once` {s.label}",
        "",
        f"{s.targets:,} targets ({kinds_text(s.kinds)}) on {s.ports} farm ports"
        f" (+{s.closed_ports} closed); concurrency {s.concurrency:,}, per_host {s.per_host:,},"
        f" timeout {s.timeout_s:g} s, retries 0. Latency floor {fmt(s.floor_ms)} ms"
        + _bound_note(s)
        + f". Medians of {len(res.runs['trio-monitor'])} run(s) each.",
        "",
        "| metric | "
        + " | ".join(probers)
        + " | "
        + " | ".join(f"{p} / aiohttp" for p in others)
        + " |",
        "|---|" + "---|" * (len(probers) + len(others)),
    ]
    for label, key, digits, with_ratio in _metrics(s):
        values = {p: median(res.runs[p], key) for p in probers}
        shown = [ratio(values[p], values["aiohttp"]) if with_ratio else "" for p in others]
        lines.append(
            f"| {label} | " + " | ".join(fmt(values[p], digits) for p in probers)
            + " | " + " | ".join(shown) + " |"
        )  # fmt: skip
    runs = [r for p in probers for r in res.runs[p]]
    lines += ["", _per_run_line(res), *_problem_lines(runs), ""]
    return lines


def rounds_lines(res: RoundsResult) -> list[str]:
    s = res.setup
    if res.kind == "latency":
        what = (
            f"every target answers after {res.delay_ms} ms (`/d/{res.delay_ms}`), spread over"
            f" the {res.interval_s:g} s interval ({s.targets / res.interval_s:,.0f} probes/s);"
            f" measured over one interval's length from the middle of the first one"
            f" ({res.first:g}-{res.last:g} intervals after the first probe), so every target once"
        )
    else:
        what = (
            f"designed latencies 20-400 ms, interval {res.interval_s:g} s, measured over"
            f" intervals {res.first + 1:g}-{res.last:g} (after start-up and the first connections)"
        )
    lines = [
        f"### {_rounds_title(res)}",
        "",
        f"{s.targets:,} targets; {what}; concurrency {s.concurrency:,}, timeout"
        f" {s.timeout_s:g} s, retries 0, no history. Medians of"
        f" {len(res.runs['trio-monitor'])} run(s) each.",
        "",
        "| prober | CPU ms per probe | CPU / aiohttp | probes in window | probes/s | skipped"
        " | worst start lag ms | wrongly failed | reported - designed p50 / p99 / max ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = _rounds_median(res.runs["aiohttp"], _cpu_per_probe)
    for prober, runs in res.runs.items():
        cpu = _rounds_median(runs, _cpu_per_probe)
        lines.append(
            f"| {prober} | {fmt(cpu, 3)} | {ratio(cpu, base)}"
            f" | {fmt(_rounds_median(runs, lambda r: r.probes))}"
            f" | {fmt(_rounds_median(runs, lambda r: r.probes_per_s))}"
            f" | {fmt(_rounds_median(runs, lambda r: r.skipped))}"
            f" | {fmt(_rounds_median(runs, lambda r: r.lag_max_ms), 1)}"
            f" | {sum(r.wrongly_failed for r in runs):,}"
            f" | {fmt(_rounds_median(runs, lambda r: r.excess_p50_ms), 1)}"
            f" / {fmt(_rounds_median(runs, lambda r: r.excess_p99_ms), 1)}"
            f" / {fmt(_rounds_median(runs, lambda r: r.excess_max_ms), 1)} |"
        )
    problems = [
        f"- **{r.prober}**: {r.problem}" for runs in res.runs.values() for r in runs if r.problem
    ]
    return [*lines, "", *problems, ""]


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
        f" keys (`stagger`, `adaptive`, `connection`) at trio-monitor's defaults; `trio-monitor run` ran"
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


def _once(results: list[ScenarioResult], fresh: bool, https: bool, largest: bool = False):
    """The healthy `--once` scenario of that kind (the smallest, or the largest if larger)."""
    found = sorted(
        (r for r in results if (r.fresh, r.https, r.mixed) == (fresh, https, False)),
        key=lambda r: r.setup.targets,
    )
    if not found or (largest and len(found) < 2):
        return None
    return found[-1] if largest else found[0]


def _goal_once(res: ScenarioResult | None, name: str, wall: float, cpu: float) -> list[str]:
    if res is None:
        return [f"| `--once` {name}: wall ≤ {wall}x, CPU ≤ {cpu}x | not run | n/a |"]
    t, a = res.runs["trio-monitor"], res.runs["aiohttp"]
    w = _quotient(median(t, _wall), median(a, _wall))
    c = _quotient(median(t, _cpu_s), median(a, _cpu_s))
    met = w is not None and c is not None and w <= wall and c <= cpu
    return [
        f"| `--once` {res.setup.targets:,} {name}: wall ≤ {wall}x, CPU ≤ {cpu}x"
        f" | wall {fmt(w, 2)}x, CPU {fmt(c, 2)}x | {_verdict(met)} |"
    ]


def _quotient(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _verdict(met: bool | None) -> str:
    return "not run" if met is None else ("**pass**" if met else "**FAIL**")


def _goal_steady(rounds: list[RoundsResult], https: bool) -> str:
    name = "HTTPS" if https else "keep-alive"
    found = [r for r in rounds if r.kind == "steady" and r.https == https]
    if not found:
        return f"| steady state, {name}: CPU per probe ≤ 0.8x, no probe skipped | not run | n/a |"
    res = found[0]
    t, a = res.runs["trio-monitor"], res.runs["aiohttp"]
    c = _quotient(_rounds_median(t, _cpu_per_probe), _rounds_median(a, _cpu_per_probe))
    skipped = sum(r.skipped for r in t)
    return (
        f"| steady state, {res.setup.targets:,} targets every {res.interval_s:g} s, {name}:"
        f" CPU per probe ≤ 0.8x, no probe skipped | CPU {fmt(c, 2)}x, {skipped:,} skipped"
        f" | {_verdict(c is not None and c <= 0.8 and skipped == 0)} |"
    )


def targets_lines(
    results: list[ScenarioResult], rounds: list[RoundsResult], steady: SteadyResult | None
) -> list[str]:
    """Issue 10's targets (and issue 11's fresh-HTTPS goal), each with pass/fail."""
    lines = ["| target | measured | status |", "|---|---|---|"]
    lines += _goal_once(_once(results, False, False), "keep-alive", 0.9, 1.0)
    lines += _goal_once(_once(results, True, False), "fresh connections", 0.9, 1.0)
    lines += _goal_once(_once(results, False, True), "HTTPS keep-alive", 0.8, 1.0)
    lines += _goal_once(_once(results, True, True), "HTTPS fresh connections", 0.8, 1.0)
    lines += [_goal_steady(rounds, False), _goal_steady(rounds, True)]
    lines += _goal_once(_once(results, False, False, largest=True), "keep-alive", 0.7, 0.7)
    if steady is None:
        lines.append("| whole process at 60 s, history on: < 10 % of one core, RSS < 150 MB"
                     " | not run | n/a |")  # fmt: skip
    else:
        share = steady.samples[-1].cpu_s / (steady.minutes * 60)
        rss = max(x.rss_mb for x in steady.samples)
        lines.append(
            f"| {steady.setup.targets:,} targets at {steady.interval}, history on:"
            f" < 10 % of one core, RSS < 150 MB | {fmt_pct(share)}, max RSS {fmt(rss, 1)} MB"
            f" | {_verdict(share < 0.10 and rss < 150)} |"
        )
    for res in (r for r in rounds if r.kind == "latency"):
        p99 = _rounds_median(res.runs["trio-monitor"], lambda r: r.excess_p99_ms)
        lines.append(
            f"| latency overhead, {res.setup.targets:,} targets: p99 of measured - known"
            f" delay < 10 ms | p99 {fmt(p99, 1)} ms"
            f" | {_verdict(p99 is not None and p99 < 10)} |"
        )
    wrong = sum(r.wrongly_failed for res in results for r in res.runs["trio-monitor"])
    wrong += sum(r.wrongly_failed for res in rounds for r in res.runs["trio-monitor"])
    wrong += len(steady.wrong) if steady else 0
    lines.append(
        f"| no false failures in any scenario (trio-monitor) | {wrong:,} wrongly failed"
        f" | {_verdict(wrong == 0)} |"
    )
    return lines


@dataclass
class Suite:
    """Everything one run of bench/run.py measured."""

    command: str
    setup_command: str
    results: list[ScenarioResult]
    rounds: list[RoundsResult]
    steady: SteadyResult | None
    profile: Profile | None
    notes: list[str]  # what the run left out or changed, one markdown bullet each
    blackbox: str  # its version, or "not installed"
    appendix: str = ""  # markdown sections generated elsewhere, at the end


def render(suite: Suite) -> str:
    lines = [
        "# Benchmarks",
        "",
        "trio-monitor (`trio-monitor run`) against the asyncio + aiohttp prober a"
        " user would hand-write (`bench/aiohttp_probe.py`), and Debian's blackbox_exporter in"
        " the fresh-connection scenarios when installed, all probing the same loopback"
        " target farm (`bench/farm.py`, its own process) with the same targets, limits and"
        " timeout. Generated by `bench/run.py`; numbers are from one machine and one run of"
        " the suite: compare ratios, not absolute values across machines.",
        "",
        "Elsewhere: cluster mode (several nodes and one Redis) in"
        " [benchmarks-cluster.md](benchmarks-cluster.md), by `bench/cluster.py`.",
        "",
        "## Machine",
        "",
        *machine_lines(),
        f"- blackbox_exporter: {suite.blackbox}",
        "",
        "## Command",
        "",
        "From the project root (setup, then the suite):",
        "",
        "```sh",
        suite.setup_command,
        "```",
        "",
        "This report was produced by:",
        "",
        "```sh",
        suite.command,
        "```",
        "",
        *[f"- {note}" for note in suite.notes],
        *([""] if suite.notes else []),
        *_method_lines(),
        "",
        "## Results",
        "",
        *overview_lines(suite.results, suite.rounds),
        "",
        "### Against the targets",
        "",
        "Issue 10's targets (ratios vs aiohttp in the same run; lower is better) and issue"
        " 11's fresh-connection HTTPS goal (at or ahead of aiohttp):",
        "",
        *targets_lines(suite.results, suite.rounds, suite.steady),
        "",
    ]
    for res in suite.results:
        lines += scenario_lines(res)
    lines += ["## Steady state and latency overhead", ""]
    for res in suite.rounds:
        lines += rounds_lines(res)
    if not suite.rounds:
        lines += ["Not run.", ""]
    lines += ["## Whole process", ""]
    lines += steady_lines(suite.steady) if suite.steady else ["Not run (`--steady-minutes 0`).", ""]
    lines += ["## Profile", ""]
    if suite.profile is None:
        lines += ["Not taken (`--no-profile`).", ""]
    else:
        p = suite.profile
        lines += [
            f"{p.tool} over `trio-monitor run --once`, {p.label}: [{p.path}]({p.path}).",
            "",
            *p.lines,
            "",
        ]
    if suite.appendix.strip():
        lines += [suite.appendix.strip(), ""]
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
        " usage of that child (user+sys, `ru_maxrss`). trio-monitor's modules are"
        " byte-compiled first, as `pip install` does (an editable install under"
        " PYTHONDONTWRITEBYTECODE would compile them from source at every start).",
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
        '- connections: keep-alive scenarios set `connection = "reuse"` (aiohttp: one pooled'
        ' `TCPConnector`), fresh ones `connection = "fresh"` (aiohttp:'
        " `TCPConnector(force_close=True)`: a new connection per request). HTTPS: the farm"
        " serves a certificate for 127.0.0.1 from a local trustme CA; trio-monitor trusts it"
        " with `ca_file`, aiohttp with an `SSLContext` on that CA, blackbox_exporter with"
        " `tls_config.ca_file`.",
        "- blackbox_exporter (Debian's package, fresh-connection scenarios only: it opens a new"
        " connection per probe): driven by the aiohttp prober's blackbox mode, one"
        " `GET /probe?target=...&module=...` per target at the same concurrency; its wall is"
        " the driver's whole process, its CPU and RSS the exporter's own process (started"
        " once per scenario), latency its `probe_duration_seconds`.",
        "- steady state: `trio-monitor run` and the aiohttp prober's `--interval` mode (each"
        " target due at i/N of the interval, skipped while its previous probe runs) over the"
        " same targets; CPU sampled from /proc every 0.1 s, the window placed from the"
        " output (anchor: the earliest probe start), CPU per probe = CPU over the window /"
        " probe lines in it; skipped and worst start lag from the round lines in it.",
        "- latency overhead: the same, with every target answering after a known 50 ms"
        " (`/d/50`) and the targets spread over an interval of targets / rate; measured"
        " latency minus 50 ms over one interval's length from the middle of the first"
        " (issue 10 item 5: p99 under 10 ms).",
        "- one-round, steady-state and latency scenarios run trio-monitor with `[storage]"
        " enabled = false` (the aiohttp prober keeps no history either); the whole-process"
        " run keeps history and trio-monitor's default `connection`, as a user gets them.",
        "- trio-monitor's `per_host` and aiohttp's `limit_per_host` (both per origin) are set"
        " to the concurrency, so per-origin limiting never holds a probe back.",
        "- other processes' CPU: the machine's busy CPU time (/proc/stat) during the run"
        " minus the prober's and the farm's. Well above zero means something else competed"
        " for the 2 cores and the run is noisy.",
    ]
