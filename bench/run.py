"""Benchmark trio-monitor against a hand-written asyncio + aiohttp prober.

From the project root, one command sets up and runs the whole suite and writes
docs/benchmarks.md (about 10 minutes; `--quick` about 2), ending with
docs/benchmarks-profile.md (profiling notes) and docs/benchmarks-store.md (the history
store's size, from bench/store_size.py) when present:

    python3 -m venv .venv && .venv/bin/pip install -q -e '.[bench]' && .venv/bin/python bench/run.py

Scenarios are target counts, `N` (all healthy) or `N:mixed` (5 % HTTP 500, 2 % hang,
3 % closed port), with concurrency N (at most --max-concurrency) unless given as `N@C`,
e.g. `--scenarios 500,2000,2000:mixed,10000@10000`. Then a steady-state run
(`--steady-minutes`, 0 skips it). Linux only (/proc, os.wait4, pidfd); all traffic
goes to the farm on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from procs import (
    Children,
    Usage,
    busy_seconds,
    cpu_seconds,
    raise_nofile_limit,
    read_line,
    rss_mb,
    workdir_for,
)
from report import Run, Sample, ScenarioResult, Setup, SteadyResult, percentile, render
from targets import EXPECTED_ERROR, HEALTHY, MIXED, Target, generate, write_json, write_toml

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# Hand-written and generated-elsewhere sections, appended in this order.
APPENDICES = (
    ROOT / "docs" / "benchmarks-profile.md",  # what profiling found (written by hand)
    ROOT / "docs" / "benchmarks-store.md",  # bench/store_size.py's
    ROOT / "docs" / "benchmarks-fleet.md",  # bench/fleet.py's figures (written by hand)
)
SETUP_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[bench]'"
    " && .venv/bin/python bench/run.py"
)
FULL = {
    "scenarios": "500,2000,10000,2000:mixed,10000@10000",
    "repeats": 3,
    "minutes": 5,
    "steady": 10_000,
}
QUICK = {"scenarios": "200,500,500:mixed", "repeats": 1, "minutes": 1, "steady": 1_000}

TARGETS_PER_PORT = 10  # the farm listens on targets / 10 ports, at most MAX_PORTS
MAX_PORTS = 500
FARM_START_TIMEOUT = 30.0
STEADY_INTERVAL = "60s"
SAMPLE_EVERY = 10.0  # seconds between /proc samples in the steady-state run
STOP_EARLY = 5.0  # end the steady-state run this long before its next round is due
STOP_GRACE = 30.0  # SIGTERM to exit, before SIGKILL


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- scenarios and their files -----------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """`N[@C][:mixed]`: N targets, concurrency C (default: N, at most --max-concurrency)."""

    targets: int
    concurrency: int | None = None
    mixed: bool = False

    @classmethod
    def parse(cls, token: str) -> Scenario:
        sizes, _, kind = token.strip().replace("_", "").partition(":")
        count, _, concurrency = sizes.partition("@")
        if not count.isdigit() or not (concurrency or "0").isdigit() or kind not in ("", "mixed"):
            raise argparse.ArgumentTypeError(f"bad scenario {token!r}: use N, N@C, N:mixed")
        return cls(int(count), int(concurrency) if concurrency else None, kind == "mixed")

    def limit(self, max_concurrency: int) -> int:
        return self.concurrency or min(self.targets, max_concurrency)

    @property
    def label(self) -> str:
        label = f"{self.targets:,} targets, " + ("mixed failures" if self.mixed else "healthy")
        return label + (f", concurrency {self.concurrency:,}" if self.concurrency else "")

    @property
    def stem(self) -> str:
        return (
            str(self.targets)
            + (f"c{self.concurrency}" if self.concurrency else "")
            + ("-mixed" if self.mixed else "")
        )


@dataclass(frozen=True)
class Farm:
    pid: int
    ports: list[int]
    closed: list[int]


@dataclass(frozen=True)
class Prepared:
    """A scenario's targets, written as trio-monitor TOML and as the aiohttp JSON list."""

    setup: Setup
    targets: list[Target]
    toml: Path
    json: Path


@contextlib.contextmanager
def running_farm(children: Children, targets: int, workdir: Path) -> Iterator[Farm]:
    ports = min(MAX_PORTS, max(1, targets // TARGETS_PER_PORT))
    argv = [sys.executable, str(BENCH / "farm.py"), "--ports", str(ports)]
    argv += ["--closed", str(max(1, ports // 10))]
    err_path = workdir / "farm.err"
    with err_path.open("ab") as err:
        proc = children.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    try:
        line = read_line(proc, FARM_START_TIMEOUT)
        if not line.startswith("READY "):
            raise RuntimeError(f"the farm did not start (got {line!r}); see {err_path}")
        ready = json.loads(line.removeprefix("READY "))
        yield Farm(proc.pid, ready["ports"], ready["closed"])
    finally:
        children.end(proc)
        proc.stdout.close()


def prepare(
    scenario: Scenario,
    farm: Farm,
    args: argparse.Namespace,
    path: Path,
    interval: str,
    *,
    history: bool = False,
) -> Prepared:
    """One-round scenarios keep no history (the aiohttp prober keeps none either); the
    steady state keeps it, as trio-monitor does by default."""
    concurrency = scenario.limit(args.max_concurrency)
    failures = MIXED if scenario.mixed else HEALTHY
    targets = generate(scenario.targets, farm.ports, farm.closed, failures, args.seed)
    monitor = {
        "interval": interval,
        "timeout": f"{args.timeout:g}s",
        "concurrency": concurrency,
        "per_host": concurrency,  # never the limit (aiohttp's limit_per_host: the same)
        "retries": 0,
    }
    toml, targets_json = path.with_suffix(".toml"), path.with_suffix(".json")
    write_toml(toml, targets, monitor, history)
    write_json(targets_json, targets)
    setup = Setup(
        label=scenario.label,
        targets=len(targets),
        kinds=dict(Counter(t.kind for t in targets)),
        ports=len(farm.ports),
        closed_ports=len(farm.closed),
        concurrency=concurrency,
        per_host=concurrency,
        timeout_s=args.timeout,
        floor_ms=floor_ms(targets, args.timeout),
        work_bound_ms=sum(_designed_ms(t, args.timeout) for t in targets) / concurrency,
    )
    return Prepared(setup, targets, toml, targets_json)


def _designed_ms(target: Target, timeout_s: float) -> float:
    return timeout_s * 1000 if target.kind == "hang" else target.latency_ms


def floor_ms(targets: list[Target], timeout_s: float) -> float:
    """No round is faster: the slowest healthy target, or the timeout if any target hangs."""
    healthy = max((t.latency_ms for t in targets if t.healthy), default=0)
    hangs = any(t.kind == "hang" for t in targets)
    return max(healthy, timeout_s * 1000 if hangs else 0)


# --- the probers -----------------------------------------------------------------------


@dataclass
class Outcomes:
    """What one prober run reported."""

    round_ms: float | None = None
    errors: dict[str, str | None] = field(default_factory=dict)  # target -> error kind or None
    latency_ms: dict[str, float] = field(default_factory=dict)  # target -> latency, ok probes


def trio_monitor_script() -> str:
    script = Path(sys.executable).parent / "trio-monitor"
    found = str(script) if script.exists() else shutil.which("trio-monitor")
    if not found:
        raise SystemExit("trio-monitor is not installed: pip install -e '.[bench]'")
    return found


def prober_argv(prober: str, prepared: Prepared) -> list[str]:
    if prober == "trio-monitor":
        return [trio_monitor_script(), "run", "--once", "-q", "-c", str(prepared.toml)]
    setup = prepared.setup
    return [
        sys.executable,
        str(BENCH / "aiohttp_probe.py"),
        f"--targets={prepared.json}",
        f"--concurrency={setup.concurrency}",
        f"--per-host={setup.per_host}",
        f"--timeout={setup.timeout_s:g}",
    ]


def read_jsonl(path: Path) -> Iterator[dict]:
    with path.open() as f:
        for line in f:
            with contextlib.suppress(ValueError):
                yield json.loads(line)


def parse_output(prober: str, path: Path, targets: list[Target]) -> Outcomes:
    found = Outcomes()
    if prober == "trio-monitor":
        for rec in read_jsonl(path):
            if rec.get("type") == "probe":
                found.errors[rec["target"]] = None if rec["ok"] else rec["error"] or "unknown"
                if rec["ok"]:
                    found.latency_ms[rec["target"]] = rec["latency_ms"]
            elif rec.get("type") == "round":
                found.round_ms = rec["duration_ms"]
        return found
    summary = next((r for r in read_jsonl(path) if r.get("type") == "summary"), None)
    if summary is not None:
        found.round_ms = summary["duration_ms"]
        found.errors = {t.name: summary["failures"].get(t.name) for t in targets}
        found.latency_ms = summary["latency_ms"]
    return found


def score(targets: list[Target], errors: dict[str, str | None]) -> tuple[int, dict[str, int], int]:
    """-> (healthy targets reported failed, their error kinds, other mismatches)."""
    wrong: Counter[str] = Counter()
    mismatched = 0
    for t in targets:
        if t.name not in errors:
            mismatched += 1
        elif t.healthy and errors[t.name] is not None:
            wrong[errors[t.name]] += 1
        elif not t.healthy and errors[t.name] != EXPECTED_ERROR[t.kind]:
            mismatched += 1
    return sum(wrong.values()), dict(wrong), mismatched


def latency_excess(targets: list[Target], latency_ms: dict[str, float]) -> list[float]:
    """Reported minus designed latency of every healthy target reported ok."""
    return [latency_ms[t.name] - t.latency_ms for t in targets if t.name in latency_ms]


def _problem(usage: Usage, failed: int, round_ms: float | None, stderr: Path) -> str | None:
    tail = " | ".join(stderr.read_text(errors="replace").strip().splitlines()[-3:])
    if usage.timed_out:
        return f"killed after the run timeout; stderr: {tail}"
    if usage.exit_code not in (0, 1) or round_ms is None:
        return f"exit code {usage.exit_code}, no round result; stderr: {tail}"
    if usage.exit_code != (1 if failed else 0):
        return f"exit code {usage.exit_code} with {failed} failed probes"
    return f"stderr: {tail}" if tail else None


def measure(children: Children, prober: str, prepared: Prepared, farm: Farm, stem: Path) -> Run:
    setup = prepared.setup
    out, err = stem.with_suffix(".out"), stem.with_suffix(".err")
    timeout = 60 + 3 * setup.timeout_s + setup.targets / 50
    farm_before, busy_before = cpu_seconds(farm.pid), busy_seconds()
    usage = children.run(prober_argv(prober, prepared), out, err, timeout)
    farm_cpu = cpu_seconds(farm.pid) - farm_before
    other_cpu = busy_seconds() - busy_before - farm_cpu - usage.cpu_s
    found = parse_output(prober, out, prepared.targets)
    wrong, kinds, mismatched = score(prepared.targets, found.errors)
    excess = latency_excess(prepared.targets, found.latency_ms)
    failed = sum(e is not None for e in found.errors.values())
    return Run(
        prober=prober,
        usage=usage,
        round_ms=found.round_ms,
        ok=len(found.errors) - failed,
        failed=failed,
        wrongly_failed=wrong,
        wrong_kinds=kinds,
        mismatched=mismatched,
        excess_p50_ms=percentile(excess, 0.5),
        excess_p99_ms=percentile(excess, 0.99),
        farm_cpu_s=farm_cpu,
        other_cpu_s=other_cpu,
        problem=_problem(usage, failed, found.round_ms, err),
    )


def run_scenario(
    children: Children, scenario: Scenario, args: argparse.Namespace, workdir: Path
) -> ScenarioResult:
    with running_farm(children, scenario.targets, workdir) as farm:
        prepared = prepare(scenario, farm, args, workdir / scenario.stem, "60s")  # --once: unused
        result = ScenarioResult(prepared.setup)
        for rep in range(args.repeats):
            order = list(result.runs) if rep % 2 == 0 else list(reversed(result.runs))
            for prober in order:
                stem = workdir / f"{scenario.stem}-{prober}-{rep}"
                run = measure(children, prober, prepared, farm, stem)
                result.runs[prober].append(run)
                log(
                    f"{scenario.label} #{rep + 1} {prober}: round {run.round_ms} ms,"
                    f" wall {run.usage.wall_s:.2f} s, CPU {run.usage.cpu_s:.2f} s,"
                    f" RSS {run.usage.peak_rss_mb:.0f} MB, ok {run.ok}, failed {run.failed},"
                    f" wrongly failed {run.wrongly_failed}, mismatched {run.mismatched}"
                    + (f"; {run.problem}" if run.problem else "")
                )
    return result


# --- steady state ------------------------------------------------------------------------


def sample(proc: subprocess.Popen, duration: float) -> list[Sample]:
    """CPU and RSS every SAMPLE_EVERY s for `duration` s, or until the process exits."""
    start = time.monotonic()
    samples: list[Sample] = []
    for k in range(int(duration // SAMPLE_EVERY) + 2):
        at = min(k * SAMPLE_EVERY, duration)
        time.sleep(max(0.0, start + at - time.monotonic()))
        if proc.poll() is not None:
            break
        try:
            samples.append(
                Sample(time.monotonic() - start, cpu_seconds(proc.pid), rss_mb(proc.pid))
            )
        except (FileNotFoundError, ProcessLookupError):
            break
        if k and k % 6 == 0:
            log(f"steady state: {samples[-1].t_s:.0f} s, RSS {samples[-1].rss_mb:.0f} MB")
        if at >= duration:
            break
    return samples


def run_steady(children: Children, args: argparse.Namespace, workdir: Path) -> SteadyResult:
    scenario = Scenario(args.steady_targets)
    duration = args.steady_minutes * 60 - STOP_EARLY
    with running_farm(children, scenario.targets, workdir) as farm:
        prepared = prepare(scenario, farm, args, workdir / "steady", STEADY_INTERVAL, history=True)
        out, err = workdir / "steady.out", workdir / "steady.err"
        argv = [trio_monitor_script(), "run", "-c", str(prepared.toml)]
        farm_before, busy_before = cpu_seconds(farm.pid), busy_seconds()
        log(f"steady state: {scenario.targets:,} targets for {duration:.0f} s")
        with out.open("wb") as o, err.open("wb") as e:
            started = time.time()
            proc = children.spawn(argv, stdin=subprocess.DEVNULL, stdout=o, stderr=e)
            samples = sample(proc, duration)
            exited_early = proc.returncode is not None
            monitor_cpu = samples[-1].cpu_s if samples else 0.0
            exit_code = children.end(proc, STOP_GRACE)
        farm_cpu = cpu_seconds(farm.pid) - farm_before
        other_cpu = busy_seconds() - busy_before - farm_cpu - monitor_cpu
    result = SteadyResult(
        setup=prepared.setup,
        interval=STEADY_INTERVAL,
        minutes=args.steady_minutes,
        samples=samples or [Sample(0.0, 0.0, 0.0)],
        probes=[],
        wrong=[],
        excess=[],
        rounds=[],
        exit_code=exit_code,
        stderr=err.read_text(errors="replace").splitlines(),
        farm_cpu_s=farm_cpu,
        other_cpu_s=other_cpu,
    )
    read_steady_output(result, prepared.targets, out, started)
    if exited_early or len(samples) < 2:
        tail = " | ".join(result.stderr[-3:])
        result.problem = f"trio-monitor exited early (code {exit_code}); stderr: {tail}"
    return result


def read_steady_output(
    result: SteadyResult, targets: list[Target], out: Path, started: float
) -> None:
    """Fill in probes, wrongly failed probes and rounds, timed from `started` (epoch s)."""
    designed = {t.name: t.latency_ms for t in targets if t.healthy}
    for rec in read_jsonl(out):
        t_s = datetime.datetime.fromisoformat(rec["ts"]).timestamp() - started
        if rec.get("type") == "round":
            result.rounds.append({**rec, "t_s": t_s})
        elif rec.get("type") == "probe":
            result.probes.append(t_s)
            if rec["target"] not in designed:
                continue
            if rec["ok"]:
                result.excess.append((t_s, rec["latency_ms"] - designed[rec["target"]]))
            else:
                result.wrong.append((t_s, rec["error"] or "unknown"))
    result.rounds.sort(key=lambda r: r["t_s"])


# --- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"small and fast: {QUICK}")
    parser.add_argument("--scenarios", help=f"comma list of N[@C][:mixed] ({FULL['scenarios']})")
    parser.add_argument("--repeats", type=int, help=f"runs per prober ({FULL['repeats']})")
    parser.add_argument("--steady-minutes", type=int, help=f"0 skips ({FULL['minutes']})")
    parser.add_argument("--steady-targets", type=int, help=f"({FULL['steady']})")
    parser.add_argument("--max-concurrency", type=int, default=2000, help="(%(default)s)")
    parser.add_argument("--timeout", type=float, default=10.0, help="probe s (%(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="(%(default)s)")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--workdir", type=Path, help="keep configs and raw outputs here")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    scenarios = args.scenarios or defaults["scenarios"]
    try:
        args.scenarios = [Scenario.parse(t) for t in scenarios.split(",") if t.strip()]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    args.repeats = args.repeats or defaults["repeats"]
    if args.steady_minutes is None:
        args.steady_minutes = defaults["minutes"]
    args.steady_targets = args.steady_targets or defaults["steady"]
    if args.steady_minutes < 0:
        parser.error("--steady-minutes: 0 (skip) or more")
    return args


def command_line(argv: list[str]) -> str:
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else None
    return shlex.join([python or sys.executable, "bench/run.py", *argv])


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so the finally blocks end every child


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if importlib.util.find_spec("aiohttp") is None:
        raise SystemExit("aiohttp is not installed: pip install -e '.[bench]'")
    trio_monitor_script()
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    log(f"RLIMIT_NOFILE soft limit: {raise_nofile_limit()}")
    children = Children()
    try:
        with workdir_for(args.workdir, "trio-monitor-bench-") as workdir:
            results = [run_scenario(children, sc, args, workdir) for sc in args.scenarios]
            steady = run_steady(children, args, workdir) if args.steady_minutes else None
    finally:
        children.end_all()
    appendix = "\n".join(p.read_text() for p in APPENDICES if p.exists())
    args.report.write_text(render(command_line(argv), SETUP_COMMAND, results, steady, appendix))
    log(f"wrote {args.report}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; every child process ended")
        sys.exit(130)
