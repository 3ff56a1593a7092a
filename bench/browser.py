"""Browser checks (`kind = "browser"`): what they cost, and that they leave HTTP probing
alone. From the project root (about 4 minutes), Debian's chromium installed:

    .venv/bin/python bench/browser.py                       # writes docs/benchmarks-browser.md
    .venv/bin/python bench/browser.py --seconds 20 --report /tmp/b.md

Part 1, throughput: for each concurrency C (`--concurrency 1,2,4`), one `trio-monitor
run` with `browser_concurrency = C` and 4 x C browser targets due every second (so C
pages are always loading), on the loopback farm's `/d/0` page (bench/farm.py, its own
process), for `--seconds` after a warm-up. Counted: ok browser probe lines whose probe
started in the window (per minute), the CPU the monitor's whole process tree spent in
the window (the monitor, Chromium and every renderer, including the reaped ones'
time: /proc utime + stime + cutime + cstime), so probes per CPU-minute is probes per
minute per core; and the Chromium processes' peak summed PSS (the browser worker).

Part 2, isolation: 2,000 HTTP targets at a 10 s interval over the farm (history off),
once alone and with 20 browser targets (10 s interval, browser_concurrency 2) in the
same process, once with Chromium as an equal (`browser_cpu = "equal"`) and once yielding
the CPU (`"idle"`, the default: SCHED_IDLE in the monitor's own scheduling group,
probes/browser/chromium.py), for `--seconds` each after a warm-up. Compared: the HTTP probes' latency_ms p50 / p99, the rounds' start
lag (lag_max_ms, p50 and max over the window's round lines) and skipped probes. The
browser work runs in Chromium's processes; the monitor's loop only exchanges DevTools
messages, so at SCHED_IDLE the runs should differ by no more than run-to-run
noise. `--concurrency ""` skips part 1.
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
from procs import CLK_TCK, Children, raise_nofile_limit, workdir_for
from scenario import running_farm

ROOT = Path(__file__).resolve().parent.parent
WARMUP = 8.0  # seconds before the window: Chromium started, every target probed once
BROWSER_TARGETS_PER_SLOT = 4
HTTP_TARGETS = 2000
BROWSER_BESIDE_HTTP = 20


def log(message: str) -> None:
    print(f"[browser {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def unix(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def tree(root: int) -> list[int]:
    """`root` and every live descendant, from /proc's parent links."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = [root], [root]
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += children
        frontier = children
    return found


def tree_cpu(root: int) -> float:
    """CPU seconds of the tree: each live process's own and its reaped children's."""
    total = 0
    for pid in tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / CLK_TCK


def chromium_pss_mb(root: int) -> float:
    """Memory of the tree's Chromium processes, PSS (shared pages split between the
    processes sharing them: a sum of RSS would count them once per process)."""
    total = 0.0
    for pid in tree(root):
        try:
            if "chrom" not in Path(f"/proc/{pid}/comm").read_text():
                continue
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) / 1024
    return total


def record(proc: subprocess.Popen, lines: list[dict]) -> None:
    for raw in proc.stdout:
        lines.append(json.loads(raw))


def run_monitor(
    children: Children, workdir: Path, name: str, doc: dict, seconds: float
) -> tuple[list[dict], float, float, float]:
    """Run one monitor for WARMUP + seconds. -> (its lines, window start, CPU s in the
    window, peak Chromium PSS MB)."""
    config = workdir / f"{name}.toml"
    config.write_bytes(tomli_w.dumps(doc).encode())
    argv = [str(ROOT / ".venv/bin/trio-monitor"), "run", "-c", str(config)]
    with (workdir / f"{name}.err").open("wb") as err:
        proc = children.spawn(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
    lines: list[dict] = []
    reader = threading.Thread(target=record, args=(proc, lines), daemon=True)
    reader.start()
    try:
        time.sleep(WARMUP)
        start, cpu0, peak = time.time(), tree_cpu(proc.pid), 0.0
        while time.time() < start + seconds:
            time.sleep(0.5)
            peak = max(peak, chromium_pss_mb(proc.pid))
        cpu = tree_cpu(proc.pid) - cpu0
    finally:
        children.end(proc, grace=15)
        reader.join(15)
    return lines, start, cpu, peak


def in_window(lines: list[dict], kind: str, start: float, seconds: float) -> list[dict]:
    return [r for r in lines if r["type"] == kind and start <= unix(r["ts"]) < start + seconds]


def throughput(children: Children, workdir: Path, ports: list[int], c: int, seconds: float) -> str:
    targets = [
        {
            "name": f"page-{i}",
            "kind": "browser",
            "url": f"http://127.0.0.1:{ports[i % len(ports)]}/d/0",
        }
        for i in range(BROWSER_TARGETS_PER_SLOT * c)
    ]
    doc = {
        "monitor": {"interval": "1s", "timeout": "10s", "retries": 0, "browser_concurrency": c},
        "storage": {"enabled": False},
        "targets": targets,
    }
    lines, start, cpu, rss = run_monitor(children, workdir, f"throughput-{c}", doc, seconds)
    probes = in_window(lines, "probe", start, seconds)
    ok = sum(r["ok"] for r in probes)
    per_min = ok * 60 / seconds
    per_cpu_min = ok * 60 / cpu if cpu else float("nan")
    load = [r["latency_ms"] for r in probes if r["ok"] and r["latency_ms"] is not None]
    p50 = statistics.median(load) if load else float("nan")
    log(f"C={c}: {ok} ok of {len(probes)}, {per_min:.0f}/min, {cpu:.1f} CPU s, {rss:.0f} MB")
    return (
        f"| {c} | {len(probes)} | {ok} | {per_min:,.0f} | {cpu:.1f} | {per_cpu_min:,.0f} |"
        f" {p50:.0f} | {rss:.0f} |"
    )


def isolation(
    children: Children, workdir: Path, ports: list[int], browsers: int, cpu: str, seconds: float
) -> tuple[str, list[float]]:
    targets: list[dict] = [
        {"name": f"http-{i}", "url": f"http://127.0.0.1:{ports[i % len(ports)]}/d/0"}
        for i in range(HTTP_TARGETS)
    ]
    targets += [
        {
            "name": f"page-{i}",
            "kind": "browser",
            "url": f"http://127.0.0.1:{ports[i % len(ports)]}/d/0",
        }
        for i in range(browsers)
    ]
    monitor = {"interval": "10s", "timeout": "10s", "retries": 0, "browser_concurrency": 2}
    doc = {
        "monitor": {**monitor, "browser_cpu": cpu},
        "storage": {"enabled": False},
        "targets": targets,
    }
    name = f"isolation-{browsers}-{cpu}"
    lines, start, cpu_s, _ = run_monitor(children, workdir, name, doc, seconds)
    probes = [r for r in in_window(lines, "probe", start, seconds) if r["kind"] == "http"]
    latency = sorted(r["latency_ms"] for r in probes if r["ok"] and r["latency_ms"] is not None)
    rounds = in_window(lines, "round", start, seconds)
    lags = sorted(r["lag_max_ms"] for r in rounds if r["lag_max_ms"] is not None)
    skipped = sum(r["skipped"] for r in rounds)
    failed = sum(not r["ok"] for r in probes)
    browser_ok = sum(
        r["ok"] for r in in_window(lines, "probe", start, seconds) if r["kind"] == "browser"
    )

    def q(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(p * len(values)))] if values else float("nan")

    log(
        f"{browsers} browser targets: {len(probes)} HTTP probes, {failed} failed, CPU {cpu_s:.1f} s"
    )
    policy = f'"{cpu}"' if browsers else "n/a"
    row = (
        f"| {browsers} | {policy} | {len(probes)} | {failed} | {q(latency, 0.5):.2f} | {q(latency, 0.99):.2f} |"
        f" {q(lags, 0.5):.1f} | {q(lags, 1.0):.1f} | {skipped} | {browser_ok} | {cpu_s:.1f} |"
    )
    return row, latency


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default="1,2,4")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--report", type=Path, default=ROOT / "docs/benchmarks-browser.md")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    raise_nofile_limit()
    children = Children()
    try:
        with (
            workdir_for(args.workdir, "browser-") as workdir,
            running_farm(children, HTTP_TARGETS, workdir) as farm,
        ):
            rows = [
                throughput(children, workdir, farm.ports, int(c), args.seconds)
                for c in args.concurrency.split(",")
                if c
            ]
            isolated = [
                isolation(children, workdir, farm.ports, browsers, cpu, args.seconds)[0]
                for browsers, cpu in (
                    (0, "idle"),
                    (BROWSER_BESIDE_HTTP, "equal"),
                    (BROWSER_BESIDE_HTTP, "idle"),
                )
            ]
    finally:
        children.end_all()
    report = "\n".join(
        [
            "# Browser checks: cost and isolation",
            "",
            f"Generated by `bench/browser.py --concurrency {args.concurrency} --seconds"
            f" {args.seconds:g}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())};"
            " the method is in its docstring. One machine, one run: compare within a table.",
            "",
            "## Throughput (browser targets alone, the farm's `/d/0` page)",
            "",
            "| browser_concurrency | probes | ok | ok probes/min | CPU s (monitor + Chromium)"
            " | ok probes per CPU-minute (per core) | load p50 ms | Chromium peak PSS MB |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"## Isolation ({HTTP_TARGETS:,} HTTP targets at 10 s, with and without"
            f" {BROWSER_BESIDE_HTTP} browser targets)",
            "",
            "| browser targets | browser_cpu | HTTP probes | HTTP failed"
            " | HTTP latency p50 ms | p99 ms | round lag p50 ms | max ms | skipped | browser ok"
            " | CPU s |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *isolated,
            "",
        ]
    )
    args.report.write_text(report)
    log(f"wrote {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
