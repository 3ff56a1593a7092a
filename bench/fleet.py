"""Big fleets: memory, start-up and shutdown of `trio-monitor run` at 50,000 targets, and
the memory of `trio-monitor report` over a long history.

From the project root:

    .venv/bin/python bench/fleet.py                       # the run: 50,000 targets
    .venv/bin/python bench/fleet.py --report-db FILE ...  # report over a history file

The run: a config of `--targets` targets on a handful of loopback ports that are bound
but never listen (every probe is a refused connection: cheap, so the figures are the
monitor's own memory, not its sockets'), history on, `[server]` on a free loopback
port, started as `trio-monitor run -c big.toml` (the real console script). Measured:
time to the first stdout line, VmRSS at that moment and every few seconds, VmHWM, then
SIGTERM and the time until the process has exited (and its exit code).

In-process (`--footprint N`): tracemalloc over loading a config of N targets, preparing
every target's plan (Scheduler.stage), and one state and one recent-stats entry per
target, in bytes per target.

Report (`--report-db FILE`, repeatable; generate files with bench/store_size.py
--workdir): `trio-monitor report` over the whole simulated range of each file, with its
wall time and peak RSS (os.wait4's ru_maxrss).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w
from procs import Children, raise_nofile_limit, workdir_for

PORTS = 20  # targets spread over this many refused ports
SAMPLE_EVERY = 2.0


def log(message: str) -> None:
    print(f"[fleet {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def status_kib(pid: int) -> dict[str, int]:
    found = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused_ports(count: int) -> list[socket.socket]:
    """Bound, never listening: a connection is refused, and no one else can take the port."""
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    return socks


def fleet_doc(targets: int, ports: list[int], workdir: Path, interval: str) -> dict:
    return {
        "monitor": {"interval": interval, "timeout": "5s", "retries": 0, "grace": "5s"},
        "storage": {"enabled": True, "path": str(workdir / "history.db")},
        "server": {"listen": f"127.0.0.1:{free_port()}"},
        "targets": [
            {"name": f"t{i:05d}", "url": f"http://127.0.0.1:{ports[i % len(ports)]}/p?t={i}"}
            for i in range(targets)
        ],
    }


@dataclass
class RunFigures:
    targets: int
    first_line_s: float | None = None
    rss_first_mb: float | None = None
    rss_end_mb: float = 0.0
    hwm_mb: float = 0.0
    lines: int = 0
    sigterm_s: float = 0.0
    exit_code: int | None = None
    samples: list[tuple[float, float]] = field(default_factory=list)
    load: str = ""


def run_fleet(args: argparse.Namespace, workdir: Path) -> RunFigures:
    raise_nofile_limit()
    socks = refused_ports(PORTS)
    ports = [s.getsockname()[1] for s in socks]
    config = workdir / "big.toml"
    config.write_bytes(
        tomli_w.dumps(fleet_doc(args.targets, ports, workdir, args.interval)).encode()
    )
    for suffix in ("", "-wal", "-shm"):
        Path(f"{workdir / 'history.db'}{suffix}").unlink(missing_ok=True)
    script = shutil.which("trio-monitor", path=str(Path(sys.executable).parent))
    if script is None:
        raise SystemExit("trio-monitor is not installed: pip install -e '.[bench]'")
    fig = RunFigures(args.targets)
    children = Children()
    first = threading.Event()
    started = time.perf_counter()
    with (workdir / "run.err").open("wb") as err:
        proc = children.spawn(
            [script, "run", "-c", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
        )

    def read() -> None:
        assert proc.stdout is not None
        for _ in proc.stdout:
            if not first.is_set():
                fig.first_line_s = time.perf_counter() - started
                fig.rss_first_mb = status_kib(proc.pid)["VmRSS"] / 1024
                first.set()
            fig.lines += 1

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        end = started + args.duration
        while time.perf_counter() < end and proc.poll() is None:
            time.sleep(SAMPLE_EVERY)
            kib = status_kib(proc.pid)
            fig.samples.append((time.perf_counter() - started, kib["VmRSS"] / 1024))
        kib = status_kib(proc.pid)
        fig.rss_end_mb, fig.hwm_mb = kib["VmRSS"] / 1024, kib["VmHWM"] / 1024
        fig.load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        term = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        try:
            fig.exit_code = proc.wait(60)
        except subprocess.TimeoutExpired:
            fig.exit_code = None
        fig.sigterm_s = time.perf_counter() - term
    finally:
        children.end_all()
        for s in socks:
            s.close()
    reader.join(5)
    return fig


def footprint(count: int, workdir: Path) -> tuple[float, float]:
    """In-process bytes per target: (config loaded, + the Monitor built: plans, pools)."""
    import trio

    from trio_monitor._config import load_config
    from trio_monitor._lifecycle import Monitor, open_probers
    from trio_monitor._systemd import SystemdNotifier
    from trio_monitor.sinks.jsonl import Output

    def _null_output() -> Output:
        return Output(open(os.devnull, "wb"), "devnull", owned=True)

    path = workdir / "footprint.toml"
    path.write_bytes(tomli_w.dumps(fleet_doc(count, [9], workdir, "60s")).encode())
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    config = load_config(str(path))
    loaded = tracemalloc.get_traced_memory()[0]

    async def build() -> tuple[object, int]:
        async with open_probers(config) as probers:
            monitor = Monitor(
                config, None, SystemdNotifier({}), probers, _null_output(), once=False
            )
            return monitor, tracemalloc.get_traced_memory()[0]

    _monitor, built = trio.run(build)
    tracemalloc.stop()
    return (loaded - base) / count, (built - base) / count


def report_figures(db: Path, workdir: Path, days: float | None) -> tuple[float, float, int, int]:
    """-> (wall s, peak RSS MB, targets, probes) of `trio-monitor report` over the whole
    file, or its first `days`."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        low, high = conn.execute("SELECT min(ts), max(ts) FROM samples").fetchone()
        if days is not None:
            high = min(high, low + days * 86400 - 1)
        rows = conn.execute(
            "SELECT count(*) FROM samples WHERE ts >= ? AND ts <= ?", (low, high)
        ).fetchone()[0]
        targets = conn.execute("SELECT count(*) FROM targets").fetchone()[0]
    config = workdir / f"report-{db.stem}.toml"
    doc = {"storage": {"path": str(db)}, "targets": [{"url": "http://127.0.0.1:9/"}]}
    config.write_bytes(tomli_w.dumps(doc).encode())
    script = shutil.which("trio-monitor", path=str(Path(sys.executable).parent))
    assert script is not None
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(low))
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(high + 1))
    argv = [script, "report", "-c", str(config), "--since", since, "--until", until]
    usage = Children().run(argv, workdir / "report.out", workdir / "report.err", timeout=1800)
    if usage.exit_code != 0:
        raise SystemExit(f"report failed: {(workdir / 'report.err').read_text()[-500:]}")
    return usage.wall_s, usage.peak_rss_mb, targets, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=50_000, help="(%(default)s)")
    parser.add_argument("--duration", type=float, default=150.0, help="s of running (%(default)s)")
    parser.add_argument("--interval", default="60s", help="(%(default)s)")
    parser.add_argument("--footprint", type=int, default=2_000, help="targets in-process; 0: skip")
    parser.add_argument("--report-db", type=Path, action="append", default=[])
    parser.add_argument("--report-days", type=float, help="only the first days of each file")
    parser.add_argument("--no-run", action="store_true", help="skip the run")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    with workdir_for(args.workdir, "trio-monitor-fleet-") as workdir:
        if args.footprint:
            loaded, prepared = footprint(args.footprint, workdir)
            print(
                f"footprint {args.footprint} targets: config {loaded:,.0f} B/target, "
                f"config+plans+state+recent {prepared:,.0f} B/target"
            )
        if not args.no_run:
            fig = run_fleet(args, workdir)
            print(
                f"run {fig.targets:,} targets: first line {fig.first_line_s} s, "
                f"RSS at first line {fig.rss_first_mb} MB, at {args.duration:g} s "
                f"{fig.rss_end_mb:.0f} MB, VmHWM {fig.hwm_mb:.0f} MB, lines {fig.lines:,}, "
                f"SIGTERM -> exit {fig.sigterm_s:.2f} s (code {fig.exit_code}), load {fig.load}"
            )
            print("RSS samples: " + ", ".join(f"{t:.0f}s {m:.0f}" for t, m in fig.samples))
        for db in args.report_db:
            wall, peak, targets, rows = report_figures(db, workdir, args.report_days)
            print(
                f"report {db.name}: {targets:,} targets, {rows:,} probes: "
                f"{wall:.1f} s, peak RSS {peak:.0f} MB"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
