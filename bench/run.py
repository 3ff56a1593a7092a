"""Benchmark trio-monitor against a hand-written asyncio + aiohttp prober (and Debian's
blackbox_exporter where it fits), in one command that writes docs/benchmarks.md.

From the project root, one command sets up and runs the whole suite (about 15 minutes on
a 2-core machine; `--quick` about 2; the duration is estimated up front):

    python3 -m venv .venv && .venv/bin/pip install -q -e '.[bench]' && .venv/bin/python bench/run.py

Parts, each with trio-monitor and the aiohttp prober interleaved (the order flips every
repetition) and each ratio the median of those runs:

- `--once` scenarios (`--scenarios`): `N[@C][:mixed][:fresh][:https]`, e.g. `2000`
  (keep-alive HTTP), `2000:fresh` (a new connection per probe; blackbox_exporter too),
  `2000:https:fresh` (the farm serves TLS from a local trustme CA that every prober
  trusts), `10000`, `2000:mixed` (5 % HTTP 500, 2 % hang, 3 % closed port);
- the steady state (`--rounds-scenarios`): `trio-monitor run` every `--rounds-interval`
  s, CPU per probe, skipped and late probes over intervals 3-5 (bench/rounds.py);
- the latency overhead (`--latency`): every target answers after 50 ms, spread over an
  interval of targets / `--latency-rate` s; measured latency minus 50 ms, p50/p99;
- the whole process (`--steady-minutes`, `--steady-targets`): trio-monitor alone at 60 s
  intervals with history on, CPU share and RSS from /proc;
- a profile of one `--once` run (py-spy if installed, else cProfile; `--no-profile`).

`--legacy-config` omits the config keys older trio-monitors reject (`connection`,
`ca_file`: HTTPS is then not verified and connections are always pooled), to compare
with versions before issue 11. Linux only (/proc, os.wait4, pidfd); all traffic goes to
the farm (and the exporter) on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import dataclasses
import datetime
import importlib.util
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import blackbox
import profiling
import rounds
from procs import (
    Children,
    Usage,
    busy_seconds,
    cpu_seconds,
    raise_nofile_limit,
    rss_mb,
    workdir_for,
)
from report import (
    PROBERS,
    Profile,
    RoundsResult,
    Run,
    Sample,
    ScenarioResult,
    SteadyResult,
    Suite,
    percentile,
    render,
)
from scenario import (
    ROOT,
    Farm,
    Prepared,
    Scenario,
    Tls,
    aiohttp_argv,
    check_config_keys,
    log,
    make_tls,
    prepare,
    read_jsonl,
    running_farm,
    trio_monitor_script,
)
from targets import EXPECTED_ERROR, Target

# Hand-written and generated-elsewhere sections, appended in this order.
APPENDICES = (
    ROOT / "docs" / "benchmarks-profile.md",  # what profiling found (written by hand)
    ROOT / "docs" / "benchmarks-store.md",  # bench/store_size.py's
    ROOT / "docs" / "benchmarks-fleet.md",  # bench/fleet.py's figures (written by hand)
    ROOT / "docs" / "benchmarks-week.md",  # bench/week.py's recorded week (by hand)
    ROOT / "docs" / "benchmarks-early.md",  # bench/early_warning.py's figures (by hand)
)
SETUP_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[bench]'"
    " && .venv/bin/python bench/run.py"
)
# The full suite fits about 15 minutes on 2 cores: 5 repetitions of each 2,000-target
# `--once` scenario, 3 of 10,000 and of each steady state, 1 of each latency run.
# HTTPS runs at concurrency 500: 2,000 TLS handshakes at once swamp the single-process
# asyncio farm (every prober waited ~10 s for it; aiohttp timed out on all 2,000).
FULL = {
    "scenarios": "2000,2000:fresh,2000@500:https,2000@500:https:fresh,10000",
    "repeats": 5,
    "big_repeats": 3,  # scenarios of 5,000 targets or more
    "rounds": "2000,2000@500:https",
    "rounds_interval": 2.0,
    "rounds_repeats": 3,
    "latency": "2000,10000",
    "latency_rate": 200.0,
    "minutes": 5,
    "steady": 10_000,
    "profile": "2000",
}
QUICK = {
    "scenarios": "200,200:fresh,200:https,200:https:fresh,500",
    "repeats": 1,
    "big_repeats": 1,
    "rounds": "200,200:https",
    "rounds_interval": 1.0,
    "rounds_repeats": 1,
    "latency": "200,500",
    "latency_rate": 250.0,
    "minutes": 1,
    "steady": 1_000,
    "profile": "200",
}
BIG = 5_000
LATENCY_DELAY_MS = 50
ROUNDS_WINDOW = (2, 5)  # intervals 3-5: after start-up and the first connections
# one interval's length, so every target once, from the middle of the first interval on:
# start-up's and the first connections' transients are over
LATENCY_WINDOW = (0.5, 1.5)
STEADY_INTERVAL = "60s"
SAMPLE_EVERY = 10.0  # seconds between /proc samples in the whole-process run
STOP_EARLY = 5.0  # end the whole-process run this long before its next round is due
STOP_GRACE = 30.0  # SIGTERM to exit, before SIGKILL


# --- one-round (`--once`) scenarios --------------------------------------------------------


@dataclass
class Outcomes:
    """What one prober run reported."""

    round_ms: float | None = None
    errors: dict[str, str | None] = field(default_factory=dict)  # target -> error kind or None
    latency_ms: dict[str, float] = field(default_factory=dict)  # target -> latency, ok probes


def prober_argv(prober: str, prepared: Prepared, exporter: str | None) -> list[str]:
    if prober == "trio-monitor":
        return [trio_monitor_script(), "run", "--once", "-q", "-c", str(prepared.toml)]
    return aiohttp_argv(prepared, exporter if prober == "blackbox" else None)


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


@dataclasses.dataclass(frozen=True)
class Exporter:
    """A running blackbox_exporter: its URL and pid (its CPU is what it costs)."""

    url: str
    pid: int


def measure(
    children: Children,
    prober: str,
    prepared: Prepared,
    farm: Farm,
    stem: Path,
    exporter: Exporter | None = None,
) -> Run:
    setup = prepared.setup
    out, err = stem.with_suffix(".out"), stem.with_suffix(".err")
    timeout = 60 + 3 * setup.timeout_s + setup.targets / 50
    watched = exporter.pid if prober == "blackbox" and exporter else None
    farm_before, busy_before = cpu_seconds(farm.pid), busy_seconds()
    exporter_before = cpu_seconds(watched) if watched else 0.0
    argv = prober_argv(prober, prepared, exporter.url if exporter else None)
    usage = children.run(argv, out, err, timeout)
    farm_cpu = cpu_seconds(farm.pid) - farm_before
    other_cpu = busy_seconds() - busy_before - farm_cpu - usage.cpu_s
    if watched:  # charge the exporter's own CPU and memory, not its driver's
        exporter_cpu = cpu_seconds(watched) - exporter_before
        other_cpu -= exporter_cpu
        usage = dataclasses.replace(usage, cpu_s=exporter_cpu, peak_rss_mb=rss_mb(watched))
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


def repeats_for(scenario: Scenario, args: argparse.Namespace) -> int:
    return args.big_repeats if scenario.targets >= BIG else args.repeats


@contextlib.contextmanager
def maybe_exporter(
    children: Children, scenario: Scenario, args: argparse.Namespace, workdir: Path, tls: Tls
) -> Iterator[Exporter | None]:
    """blackbox_exporter for fresh-connection scenarios, when installed and not disabled."""
    if not (scenario.fresh and args.blackbox):
        yield None
        return
    ca = tls.ca if scenario.https else None
    with blackbox.running_blackbox(children, workdir, args.timeout, ca) as running:
        yield Exporter(running.url, running.pid)


def run_scenario(
    children: Children, scenario: Scenario, args: argparse.Namespace, workdir: Path, tls: Tls
) -> ScenarioResult:
    farm_tls = tls if scenario.https else None
    with (
        running_farm(children, scenario.targets, workdir, farm_tls) as farm,
        maybe_exporter(children, scenario, args, workdir, tls) as exporter,
    ):
        prepared = prepare(scenario, farm, args, workdir / scenario.stem, tls=farm_tls)
        probers = [*PROBERS, *(["blackbox"] if exporter else [])]
        result = ScenarioResult(
            prepared.setup,
            runs={p: [] for p in probers},
            fresh=scenario.fresh,
            https=scenario.https,
            mixed=scenario.mixed,
        )
        for rep in range(repeats_for(scenario, args)):
            order = probers if rep % 2 == 0 else list(reversed(probers))
            for prober in order:
                stem = workdir / f"{scenario.stem}-{prober}-{rep}"
                run = measure(children, prober, prepared, farm, stem, exporter)
                result.runs[prober].append(run)
                log(
                    f"--once {scenario.label} #{rep + 1} {prober}: round {run.round_ms} ms,"
                    f" wall {run.usage.wall_s:.2f} s, CPU {run.usage.cpu_s:.2f} s,"
                    f" RSS {run.usage.peak_rss_mb:.0f} MB, ok {run.ok}, failed {run.failed},"
                    f" wrongly failed {run.wrongly_failed}, mismatched {run.mismatched}"
                    + (f"; {run.problem}" if run.problem else "")
                )
    return result


# --- probers running like monitors: steady state and latency overhead ----------------------


def run_rounds(
    children: Children,
    scenario: Scenario,
    args: argparse.Namespace,
    workdir: Path,
    tls: Tls,
    *,
    latency: bool,
) -> RoundsResult:
    farm_tls = tls if scenario.https else None
    if latency:
        interval = scenario.targets / args.latency_rate
        window = rounds.Window(interval, *LATENCY_WINDOW)
        repeats, delay, kind = 1, LATENCY_DELAY_MS, "latency"
    else:
        interval = args.rounds_interval
        window = rounds.Window(interval, *ROUNDS_WINDOW)
        repeats, delay, kind = args.rounds_repeats, None, "steady"
    stem = f"{kind}-{scenario.stem}"
    with running_farm(children, scenario.targets, workdir, farm_tls) as farm:
        prepared = prepare(
            scenario, farm, args, workdir / stem,
            interval=f"{interval:g}s", tls=farm_tls, delay_ms=delay,
        )  # fmt: skip
        result = RoundsResult(
            prepared.setup, kind, interval, window.first, window.last, delay, https=scenario.https
        )
        for rep in range(repeats):
            order = list(PROBERS) if rep % 2 == 0 else list(reversed(PROBERS))
            for prober in order:
                run = rounds.run(
                    children, prober, prepared, window, workdir / f"{stem}-{prober}-{rep}"
                )
                result.runs[prober].append(run)
                log(
                    f"{kind} {scenario.label} every {interval:g} s #{rep + 1} {prober}:"
                    f" {run.probes} probes, CPU {run.cpu_ms_per_probe or 0:.3f} ms/probe,"
                    f" skipped {run.skipped}, wrongly failed {run.wrongly_failed}, latency"
                    f" excess p50 {run.excess_p50_ms} p99 {run.excess_p99_ms} ms"
                    + (f"; {run.problem}" if run.problem else "")
                )
    return result


# --- the whole process: 10,000 targets at 60 s, history on --------------------------------


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
            log(f"whole process: {samples[-1].t_s:.0f} s, RSS {samples[-1].rss_mb:.0f} MB")
        if at >= duration:
            break
    return samples


def run_steady(children: Children, args: argparse.Namespace, workdir: Path) -> SteadyResult:
    scenario = Scenario(args.steady_targets)
    duration = args.steady_minutes * 60 - STOP_EARLY
    with running_farm(children, scenario.targets, workdir) as farm:
        prepared = prepare(
            scenario, farm, args, workdir / "steady",
            interval=STEADY_INTERVAL, history=True, connection_keys=False,
        )  # fmt: skip
        out, err = workdir / "steady.out", workdir / "steady.err"
        argv = [trio_monitor_script(), "run", "-c", str(prepared.toml)]
        farm_before, busy_before = cpu_seconds(farm.pid), busy_seconds()
        log(f"whole process: {scenario.targets:,} targets for {duration:.0f} s")
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
    parser.add_argument("--quick", action="store_true", help="small and fast (about 2 min)")
    parser.add_argument(
        "--scenarios", help=f"--once: N[@C][:mixed][:fresh][:https],... ({FULL['scenarios']})"
    )
    parser.add_argument("--repeats", type=int, help=f"--once runs per prober ({FULL['repeats']})")
    parser.add_argument(
        "--big-repeats", type=int, help=f"... for {BIG:,}+ targets ({FULL['big_repeats']})"
    )
    parser.add_argument("--rounds-scenarios", help=f"steady state, '' skips ({FULL['rounds']})")
    parser.add_argument("--rounds-interval", type=float, help=f"s ({FULL['rounds_interval']:g})")
    parser.add_argument("--rounds-repeats", type=int, help=f"({FULL['rounds_repeats']})")
    parser.add_argument("--latency", help=f"latency-overhead sizes, '' skips ({FULL['latency']})")
    parser.add_argument("--latency-rate", type=float, help=f"probes/s ({FULL['latency_rate']:g})")
    parser.add_argument(
        "--steady-minutes", type=int, help=f"whole process, 0 skips ({FULL['minutes']})"
    )
    parser.add_argument("--steady-targets", type=int, help=f"({FULL['steady']})")
    parser.add_argument("--profile", help=f"--once scenario to profile ({FULL['profile']})")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--no-blackbox", action="store_true", help="even if installed")
    parser.add_argument(
        "--legacy-config", action="store_true",
        help="omit `connection` and `ca_file` (trio-monitor before issue 11)",
    )  # fmt: skip
    parser.add_argument("--max-concurrency", type=int, default=2000, help="(%(default)s)")
    parser.add_argument("--timeout", type=float, default=10.0, help="probe s (%(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="(%(default)s)")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--workdir", type=Path, help="keep configs and raw outputs here")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL

    def given(name: str, key: str):
        value = getattr(args, name)
        return defaults[key] if value is None else value

    try:
        args.scenarios = Scenario.parse_list(given("scenarios", "scenarios"))
        args.rounds_scenarios = Scenario.parse_list(given("rounds_scenarios", "rounds"))
        args.latency = Scenario.parse_list(given("latency", "latency"))
        args.profile = None if args.no_profile else Scenario.parse(given("profile", "profile"))
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    args.repeats = given("repeats", "repeats")
    args.big_repeats = given("big_repeats", "big_repeats")
    args.rounds_interval = given("rounds_interval", "rounds_interval")
    args.rounds_repeats = given("rounds_repeats", "rounds_repeats")
    args.latency_rate = given("latency_rate", "latency_rate")
    args.steady_minutes = given("steady_minutes", "minutes")
    args.steady_targets = given("steady_targets", "steady")
    if args.steady_minutes < 0:
        parser.error("--steady-minutes: 0 (skip) or more")
    args.blackbox = not args.no_blackbox and blackbox.binary() is not None
    return args


def estimate_s(args: argparse.Namespace) -> float:
    """The suite's expected duration on an idle 2-core machine (calibrated on one)."""

    def pair_s(sc: Scenario) -> float:  # one run of every prober, start-up included
        per_target = 0.003 if sc.https and sc.fresh else 0.002
        probers = 3 if sc.fresh and args.blackbox else 2
        floor = args.timeout if sc.mixed else 0.4
        return probers / 2 * (2 * (1.5 + floor) + sc.targets * per_target)

    total = sum(2 + repeats_for(sc, args) * pair_s(sc) for sc in args.scenarios)
    window = ROUNDS_WINDOW[1] * args.rounds_interval + 3.5
    total += sum(2 + args.rounds_repeats * 2 * window for _ in args.rounds_scenarios)
    latency_span = LATENCY_WINDOW[1] / args.latency_rate
    total += sum(2 + 2 * (sc.targets * latency_span + 4) for sc in args.latency)
    total += args.steady_minutes * 60 + 5 if args.steady_minutes else 0
    total += 3 + args.profile.targets * 0.003 if args.profile else 0
    return total


def notes(args: argparse.Namespace) -> list[str]:
    found = []
    if args.legacy_config:
        found.append(
            "`--legacy-config`: the configs omit `connection` and `ca_file`: trio-monitor"
            " pooled its connections in the fresh-connection scenarios and did not verify"
            " HTTPS (`verify_tls = false`); its figures there are not like for like."
        )
    if not args.blackbox:
        found.append(f"blackbox_exporter not run ({blackbox.version()}).")
    return found


def command_line(argv: list[str]) -> str:
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else None
    return shlex.join([python or sys.executable, "bench/run.py", *argv])


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so the finally blocks end every child


def take_profile(
    children: Children, args: argparse.Namespace, workdir: Path, tls: Tls
) -> Profile | None:
    sc = args.profile
    if sc is None:
        return None
    farm_tls = tls if sc.https else None
    with running_farm(children, sc.targets, workdir, farm_tls) as farm:
        prepared = prepare(sc, farm, args, workdir / f"profile-{sc.stem}", tls=farm_tls)
        log(f"profile: --once {sc.label}")
        return profiling.take(children, prepared, args.report.parent, workdir)


def run_suite(
    args: argparse.Namespace, argv: list[str], children: Children, workdir: Path
) -> Suite:
    tls = make_tls(workdir)
    check_config_keys(workdir, tls, args.legacy_config)
    results = [run_scenario(children, sc, args, workdir, tls) for sc in args.scenarios]
    measured = [
        run_rounds(children, sc, args, workdir, tls, latency=False) for sc in args.rounds_scenarios
    ]
    measured += [run_rounds(children, sc, args, workdir, tls, latency=True) for sc in args.latency]
    steady = run_steady(children, args, workdir) if args.steady_minutes else None
    return Suite(
        command=command_line(argv),
        setup_command=SETUP_COMMAND,
        results=results,
        rounds=measured,
        steady=steady,
        profile=take_profile(children, args, workdir, tls),
        notes=notes(args),
        blackbox=blackbox.version(),
        appendix="\n".join(p.read_text() for p in APPENDICES if p.exists()),
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if importlib.util.find_spec("aiohttp") is None:
        raise SystemExit("aiohttp is not installed: pip install -e '.[bench]'")
    trio_monitor_script()
    # as `pip install` does for a regular install: an editable one under
    # PYTHONDONTWRITEBYTECODE would compile every module from source at each start
    compileall.compile_dir(ROOT / "trio_monitor", quiet=1)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    log(f"RLIMIT_NOFILE soft limit: {raise_nofile_limit()}")
    if not args.blackbox:
        why = "--no-blackbox" if args.no_blackbox else "prometheus-blackbox-exporter not installed"
        log(f"blackbox_exporter skipped: {why}")
    expected = estimate_s(args)
    finish = datetime.datetime.now() + datetime.timedelta(seconds=expected)
    log(f"expected duration: {expected / 60:.1f} min (until about {finish:%H:%M})")
    started = time.monotonic()
    children = Children()
    try:
        with workdir_for(args.workdir, "trio-monitor-bench-") as workdir:
            suite = run_suite(args, argv, children, workdir)
    finally:
        children.end_all()
    args.report.write_text(render(suite))
    log(f"wrote {args.report} after {(time.monotonic() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; every child process ended")
        sys.exit(130)
