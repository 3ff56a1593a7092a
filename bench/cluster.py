"""Cluster mode: how probing scales over node processes sharing one Redis, and how long an
outage takes to reach a webhook with 1 and with 3 locations. From the project root, with
Debian's redis-server installed (about 20 minutes at the defaults):

    .venv/bin/pip install -q -e '.[bench,cluster]'
    .venv/bin/python bench/cluster.py                 # writes docs/benchmarks-cluster.md
    .venv/bin/python bench/cluster.py --targets 2000 --interval 10 --nodes 1,2 \\
        --window 30 --locations 1 --report /tmp/cluster.md     # a smoke run (~3 minutes)

One loopback farm (bench/farm.py, its own process) and, per run, one fresh redis-server
(tests/redis_server.py: a free loopback port, append-only file in a temp directory, no
RDB) and N processes of the real console script, `trio-monitor run -c nK.toml`, all
reading the same `[[targets]]` (`--targets`, seeded, healthy, 20-400 ms, at
`--interval` s, every other key at its default) with their own `[cluster] node`, their
own `[storage]` (history on, as a user runs a node) and JSON lines to a file each.

Scaling (`--nodes 1,2,4`): warm-up until `trio-monitor cluster status` lists the N
nodes with one config hash, then one full interval more (a target a node gains is
probed at once, then on its own schedule); then a window of `--window` s (at least one
interval) in which are measured: probes per second (probe lines whose `ts`, the start,
falls in the window), per node and in total; each node's CPU (utime + stime from
/proc/PID/stat over the window, % of one core) and peak RSS (sampled every 5 s);
redis-server's CPU the same way, and its `used_memory` and results stream length (INFO,
XLEN) at the window's end; the share each node owns (`cluster status`); targets missed
(no probe started in the window, from every node's lines) and late (a gap of more than
LATE_FACTOR intervals between consecutive starts, counting from the last start before the
window to its end); the farm's CPU and the whole machine's busy cores in the window
(what else ran: on a shared machine the numbers mean less).

Alert latency (`--locations 1,3`): `--latency-nodes` (3) nodes and a webhook receiver
(a loopback HTTP server in this process, `[[alerts.webhook]]`, `group_window = "0s"`:
detection and delivery, not storm grouping). With 1 location every node is in the
default location and targets have `locations = quorum = 1`; with 3 each node has its
own `[cluster] location` and every target `locations = 3`, `quorum = 2`. `--outages`
of the targets point at the farm's `/down/FROM/UNTIL/500` route instead: target i
answers 500 from T0 + i x interval / outages (spread over one interval, so the time to
the next scheduled probe takes every value) to the end of the run; T0 is one interval
and JOIN_ALLOWANCE s after the nodes start. Measured per target: outage start -> the
webhook's first `down` delivery for it (arrival in this process), and first failed
probe (its `ts`, any node) -> that delivery; p50 / max, against the bound of README's
"Confirmation probes" plus the outbox read: interval + (failure_threshold - 1) x
confirm_interval + timeout + 1 s. Also counted: `down` deliveries of other targets
(false alarms) and repeated `Idempotency-Key`s (alerts paged twice).

Linux only (/proc); all traffic stays on 127.0.0.1. Every process started here (farm,
redis-server, nodes) is ended before it returns.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import tomli_w
from procs import Children, busy_seconds, cpu_seconds, raise_nofile_limit, rss_mb, workdir_for
from report import machine_lines
from scenario import Farm, running_farm, trio_monitor_script
from targets import HEALTHY, Target, generate

ROOT = Path(__file__).resolve().parent.parent
JOIN_TIMEOUT = 180.0  # seconds for N nodes to start and join
JOIN_ALLOWANCE = 60.0  # latency runs: seconds allowed for joining before the warm-up interval
SETTLE = 2.0  # seconds after the warm-up interval, before the window
LATE_FACTOR = 1.5  # a gap longer than this many intervals between two probes is late
RSS_EVERY = 5.0
LOADED_CORES = 0.25  # other processes using more than this in a window: flagged
STOP_GRACE = 30.0
OUTBOX_READ = 1.0  # node.py READ_BLOCK_MS: an alert waits at most this for its consumer
DEFAULTS = {"failure_threshold": 3, "confirm_interval": 5.0, "timeout": 10.0}  # README's
FULL = {"targets": 20_000, "interval": 60.0}  # the benchmark; anything less is a smoke run


def log(message: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def unix(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def redis_server_module() -> ModuleType:
    """tests/redis_server.py (tests/ is not a package): Redis started as the cluster
    tests start it."""
    sys.path.insert(0, str(ROOT / "tests"))
    import redis_server

    return redis_server


def redis_call(port: int, *args: str) -> object:
    """One command over RESP, without a client library: integer, status, error or bulk
    string replies (all this bench asks for)."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(payload.encode())
        reply = sock.makefile("rb")
        head = reply.readline().decode().rstrip("\r\n")
        kind, rest = head[:1], head[1:]
        if kind == "$":
            return None if int(rest) < 0 else reply.read(int(rest)).decode()
        if kind == ":":
            return int(rest)
        if kind == "-":
            raise RuntimeError(f"redis: {rest}")
        return rest


def running(pid: int) -> bool:
    """The process exists and has not exited (a child not yet reaped is a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def ended(pid: int) -> str:
    """How a child that exited ended (it is reaped here)."""
    try:
        _, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return "already reaped"
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.waitstatus_to_exitcode(status)}"


def used_memory_mb(port: int) -> float:
    info = str(redis_call(port, "INFO", "memory"))
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    return int(fields["used_memory"]) / 2**20


def coverage(
    starts: dict[str, list[float]], names: list[str], t0: float, t1: float, interval: float
) -> tuple[int, int]:
    """-> (missed: targets with no probe started in [t0, t1); late: targets with a gap of
    more than LATE_FACTOR intervals between consecutive starts, counting from the last
    start before t0 (none: late) to t1)."""
    missed = late = 0
    for name in names:
        mine = sorted(starts.get(name, ()))
        before = [s for s in mine if s < t0]
        inside = [s for s in mine if t0 <= s < t1]
        missed += not inside
        points = [before[-1] if before else -math.inf, *inside, t1]
        late += any(b - a > LATE_FACTOR * interval for a, b in itertools.pairwise(points))
    return missed, late


@dataclass
class Webhook:
    """A loopback webhook receiver: every delivery with its arrival time."""

    deliveries: list[tuple[float, str, dict]] = field(default_factory=list)  # (t, key, alert)

    @contextmanager
    def serving(self) -> Iterator[str]:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                arrived = time.time()
                key = self.headers.get("Idempotency-Key", "")
                hook.deliveries.append((arrived, key, json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/hook"
        finally:
            server.shutdown()
            server.server_close()

    def downs(self) -> dict[str, float]:
        """target -> the first `down` delivery's arrival."""
        first: dict[str, float] = {}
        for arrived, _, alert in self.deliveries:
            if alert.get("event") == "down":
                first.setdefault(alert["target"], arrived)
        return first

    def repeated_keys(self) -> int:
        keys = [key for _, key, _ in self.deliveries]
        return len(keys) - len(set(keys))


@dataclass
class Cluster:
    """One run's Redis and node processes."""

    redis_port: int
    redis_pid: int
    configs: list[Path]
    procs: list[subprocess.Popen]
    outputs: list[Path]
    names: list[str]
    started: float
    farm_pid: int

    def status(self) -> dict:
        argv = [trio_monitor_script(), "cluster", "status", "-c", str(self.configs[0])]
        done = subprocess.run(
            [*argv, "--format", "json"], capture_output=True, text=True, timeout=60
        )
        return json.loads(done.stdout) if done.returncode == 0 else {}

    def check_alive(self) -> None:
        if not running(self.farm_pid):
            raise SystemExit(f"the farm (pid {self.farm_pid}) is gone ({ended(self.farm_pid)})")
        for name, proc, out in zip(self.names, self.procs, self.outputs, strict=True):
            if proc.poll() is not None:
                err = out.with_suffix(".err").read_text().strip().splitlines()[-3:]
                raise SystemExit(f"node {name} exited with {proc.returncode}: {err}")

    def wait_joined(self) -> float:
        """-> when `cluster status` first listed every node with one config hash."""
        deadline = time.time() + JOIN_TIMEOUT
        while time.time() < deadline:
            self.check_alive()
            members = self.status().get("members", [])
            if len(members) == len(self.procs) and all(m["config_matches"] for m in members):
                joined = time.time()
                log(
                    f"{len(self.procs)} node(s) started and joined in {joined - self.started:.0f} s"
                )
                return joined
            time.sleep(2)
        raise SystemExit(f"the {len(self.procs)} nodes did not join within {JOIN_TIMEOUT:g} s")


@contextmanager
def running_cluster(
    children: Children, workdir: Path, farm: Farm, run: str, docs: list[tuple[str, dict]]
) -> Iterator[Cluster]:
    """A fresh redis-server and one node per (name, config doc: without [cluster] and
    [storage], added here); everything ended on the way out."""
    redis = redis_server_module().RedisServer(workdir / f"{run}-redis")
    redis.start()
    procs: list[subprocess.Popen] = []
    try:
        configs, outputs = [], []
        for name, doc in docs:
            config = workdir / f"{run}-{name}.toml"
            cluster = {"redis": redis.url, "node": name, **doc.get("cluster", {})}
            storage = {"enabled": True, "path": str(workdir / f"{run}-{name}.db")}
            config.write_bytes(
                tomli_w.dumps(doc | {"cluster": cluster, "storage": storage}).encode()
            )
            configs.append(config)
            outputs.append(config.with_suffix(".jsonl"))
        for config, out in zip(configs, outputs, strict=True):
            argv = [trio_monitor_script(), "run", "-c", str(config)]
            with out.open("wb") as stdout, out.with_suffix(".err").open("wb") as stderr:
                procs.append(
                    children.spawn(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr)
                )
        names = [n for n, _ in docs]
        yield Cluster(redis.port, redis.pid, configs, procs, outputs, names, time.time(), farm.pid)
    finally:
        # one SIGTERM each, all at once (each drains and takes its lease back; a second
        # SIGTERM would be the hard stop), then the grace for all of them together
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.0, deadline - time.monotonic()))
            children.end(proc)  # still there: the hard stop, then SIGKILL
        redis.kill()


def probe_starts(paths: list[Path]) -> list[dict[str, list[float]]]:
    """Per node: target -> the starts of its probes (probe lines' `ts`)."""
    nodes = []
    for path in paths:
        starts: dict[str, list[float]] = defaultdict(list)
        with path.open() as lines:
            for line in lines:
                if '"type":"probe"' not in line:
                    continue
                probe = json.loads(line)
                starts[probe["target"]].append(unix(probe["ts"]))
        nodes.append(starts)
    return nodes


def first_failures(paths: list[Path], since: dict[str, float]) -> dict[str, float]:
    """target -> its first failed probe's start at or after since[target], any node."""
    first: dict[str, float] = {}
    for path in paths:
        with path.open() as lines:
            for line in lines:
                if '"type":"probe"' not in line or '"ok":false' not in line:
                    continue
                probe = json.loads(line)
                name, ts = probe["target"], unix(probe["ts"])
                if name in since and ts >= since[name] and ts < first.get(name, math.inf):
                    first[name] = ts
    return first


def base_doc(targets: list[Target], interval: float, per_target: dict) -> dict:
    return {
        "monitor": {"interval": f"{interval:g}s"},
        "targets": [{"name": t.name, "url": t.url, **per_target} for t in targets],
    }


@dataclass(frozen=True)
class Scaling:
    nodes: int
    window_s: float
    probes: list[int]  # per node, in the window
    cpu_pct: list[float]  # per node, % of one core
    rss_mb: list[float]  # per node, peak in the window
    owned: list[int]  # per node
    redis_cpu_pct: float
    redis_mb: float
    results_stream: int
    missed: int
    late: int
    farm_cpu_pct: float
    other_cores: float  # what the rest of the machine used in the window (cores)
    exit_codes: list[int]

    @property
    def rate(self) -> float:
        return sum(self.probes) / self.window_s


def scaling_run(
    children: Children, workdir: Path, farm: Farm, targets: list[Target], n: int, args
) -> Scaling:
    doc = base_doc(targets, args.interval, {})
    docs = [(f"n{i + 1}", doc) for i in range(n)]
    with running_cluster(children, workdir, farm, f"scale{n}", docs) as cluster:
        joined = cluster.wait_joined()
        time.sleep(max(0.0, joined + args.interval + SETTLE - time.time()))
        cluster.check_alive()
        pids = [p.pid for p in cluster.procs]
        t0 = time.time()
        cpu0 = [cpu_seconds(pid) for pid in pids]
        redis0, farm0, busy0 = cpu_seconds(cluster.redis_pid), cpu_seconds(farm.pid), busy_seconds()
        peak = [0.0] * n
        while time.time() < t0 + args.window:
            peak = [max(p, rss_mb(pid)) for p, pid in zip(peak, pids, strict=True)]
            time.sleep(min(RSS_EVERY, max(0.0, t0 + args.window - time.time())))
        t1 = time.time()
        cpu1 = [cpu_seconds(pid) for pid in pids]
        redis1, farm1, busy1 = cpu_seconds(cluster.redis_pid), cpu_seconds(farm.pid), busy_seconds()
        window = t1 - t0
        redis_mb = used_memory_mb(cluster.redis_port)
        stream = int(redis_call(cluster.redis_port, "XLEN", "{tm}:results"))
        shares = {m["node"]: m["targets"] for m in cluster.status().get("members", [])}
        cluster.check_alive()
    per_node = probe_starts(cluster.outputs)
    merged: dict[str, list[float]] = defaultdict(list)
    for starts in per_node:
        for name, ts in starts.items():
            merged[name] += ts
    missed, late = coverage(merged, [t.name for t in targets], t0, t1, args.interval)
    result = Scaling(
        nodes=n,
        window_s=window,
        probes=[sum(t0 <= s < t1 for ts in starts.values() for s in ts) for starts in per_node],
        cpu_pct=[100 * (b - a) / window for a, b in zip(cpu0, cpu1, strict=True)],
        rss_mb=peak,
        owned=[shares.get(name, 0) for name in cluster.names],
        redis_cpu_pct=100 * (redis1 - redis0) / window,
        redis_mb=redis_mb,
        results_stream=stream,
        missed=missed,
        late=late,
        farm_cpu_pct=100 * (farm1 - farm0) / window,
        other_cores=(busy1 - busy0 - (sum(cpu1) - sum(cpu0)) - (redis1 - redis0) - (farm1 - farm0))
        / window,
        exit_codes=[p.returncode for p in cluster.procs],
    )
    log(
        f"{n} node(s): {result.rate:.1f} probes/s, CPU {sum(result.cpu_pct):.1f} %, Redis"
        f" {result.redis_cpu_pct:.1f} %, missed {missed}, late {late}, exits {result.exit_codes}"
    )
    return result


@dataclass(frozen=True)
class Latency:
    locations: int
    quorum: int
    outages: int
    to_down: list[float]  # outage start -> webhook, per target that paged
    fail_to_down: list[float]  # first failed probe -> webhook
    false_downs: int
    repeated: int
    warmup_short: bool  # the nodes joined less than one interval before T0
    busy_cores: float  # the whole machine (nodes, Redis, farm and the rest), T0 to the end


def confirming(interval: float) -> float:
    """First failed probe -> DOWN with 500s (answered at once): the confirmation probes
    (confirm_interval is at most the interval)."""
    return (DEFAULTS["failure_threshold"] - 1) * min(DEFAULTS["confirm_interval"], interval)


def bound(interval: float) -> float:
    """README's "Confirmation probes" bound, outage -> `down`, plus the outbox's read."""
    return interval + confirming(interval) + DEFAULTS["timeout"] + OUTBOX_READ


def expected_p50(interval: float) -> float:
    """Outage -> `down` for a median outage: half an interval to the next scheduled
    probe (outages spread evenly over one), then the confirmation probes."""
    return interval / 2 + confirming(interval)


def latency_run(
    children: Children,
    workdir: Path,
    farm: Farm,
    targets: list[Target],
    locations: int,
    args,
) -> Latency:
    quorum = locations // 2 + 1  # a majority: 1 of 1, 2 of 3
    k = min(args.outages, len(targets))
    t0 = time.time() + JOIN_ALLOWANCE + args.interval
    until = round((t0 + 100 * args.interval) * 1000)
    starts = {targets[i].name: t0 + i * args.interval / k for i in range(k)}
    flipped = [
        Target(t.name, f"http://127.0.0.1:{farm.ports[i % len(farm.ports)]}"
               f"/down/{round(starts[t.name] * 1000)}/{until}/500?t={t.name}", "error", 0)
        if t.name in starts else t
        for i, t in enumerate(targets)
    ]  # fmt: skip
    per_target = {"locations": locations, "quorum": quorum} if locations > 1 else {}
    hook = Webhook()
    with hook.serving() as url:
        doc = base_doc(flipped, args.interval, per_target)
        doc["alerts"] = {"group_window": "0s", "webhook": [{"url": url}]}
        docs = [
            (f"n{i + 1}", doc | {"cluster": {"location": f"loc{i % locations + 1}"}})
            if locations > 1
            else (f"n{i + 1}", doc)
            for i in range(args.latency_nodes)
        ]
        with running_cluster(children, workdir, farm, f"latency{locations}", docs) as cluster:
            joined = cluster.wait_joined()
            short = joined > t0 - args.interval
            if short:
                log(f"joined only {t0 - joined:.0f} s before the first outage (< one interval)")
            end = max(starts.values()) + bound(args.interval) + 5
            log(
                f"{locations} location(s): outages from T0 = +{t0 - time.time():.0f} s, done by +{end - time.time():.0f} s"
            )
            while time.time() < t0:
                cluster.check_alive()
                time.sleep(1)
            busy0 = busy_seconds()
            while time.time() < end:
                cluster.check_alive()
                if set(starts) <= set(hook.downs()):
                    time.sleep(5)  # a repeated delivery would come now
                    break
                time.sleep(1)
            busy = (busy_seconds() - busy0) / (time.time() - t0)
    downs = hook.downs()
    failed = first_failures(cluster.outputs, starts)
    result = Latency(
        locations=locations,
        quorum=quorum,
        outages=k,
        to_down=[downs[n] - s for n, s in starts.items() if n in downs],
        fail_to_down=[downs[n] - failed[n] for n in starts if n in downs and n in failed],
        false_downs=len(set(downs) - set(starts)),
        repeated=hook.repeated_keys(),
        warmup_short=short,
        busy_cores=busy,
    )
    log(
        f"{locations} location(s): {len(result.to_down)}/{k} paged, outage -> down"
        f" {fmt(result.to_down)} s, false {result.false_downs}, repeated {result.repeated},"
        f" machine busy {busy:.2f} cores"
    )
    return result


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} / {max(values):.1f}" if values else "none"


def spread(values: list[float] | list[int], digits: int = 0) -> str:
    return " / ".join(f"{v:,.{digits}f}" for v in values)


def curve(rows: list[Scaling]) -> str:
    """One sentence on how the cost grows with the nodes (from the numbers)."""
    if not rows:
        return ""
    per_probe = [
        (r.nodes, 1000 * sum(r.cpu_pct) / 100 / r.rate if r.rate else math.nan) for r in rows
    ]
    base = per_probe[0][1]
    steps = ", ".join(f"{n} node(s) {ms:.2f} ms ({ms / base:.2f}x)" for n, ms in per_probe)
    redis = ", ".join(f"{r.redis_cpu_pct:.1f} %" for r in rows)
    return (
        f"Node CPU per probe (all nodes together): {steps}; Redis CPU {redis} of one core for"
        f" the same {rows[0].rate:,.0f} probes/s. (Every node also folds all the cluster's"
        " results into its own history: that part of a node's work does not shrink as nodes"
        " are added.)"
    )


def write_report(
    path: Path, args, argv: list[str], scaling: list[Scaling], latency: list[Latency]
) -> None:
    smoke = args.targets != FULL["targets"] or args.interval != FULL["interval"]
    lines = [
        "# Cluster mode: scaling and alert latency",
        "",
        f"Generated by `bench/cluster.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())};"
        " the method is in its docstring and below. One machine, one run.",
        "",
    ]
    if smoke:
        lines += [
            f"**Smoke run** ({args.targets:,} targets at {args.interval:g} s, not the benchmark's"
            f" {FULL['targets']:,} at {FULL['interval']:g} s): it checks the harness, its numbers"
            " are not results. The benchmark is the command below, without flags, on a quiet"
            " machine.",
            "",
        ]
    loaded = max((r.other_cores for r in scaling), default=0.0)
    if loaded > LOADED_CORES:
        lines += [
            f"**Loaded machine**: other processes used up to {loaded:.2f} cores during the"
            " scaling windows; compare only within this report.",
            "",
        ]
    lines += [
        "## Machine",
        "",
        *machine_lines(),
        f"- {redis_version()}",
        "",
        "## Command",
        "",
        "```sh",
        ".venv/bin/pip install -q -e '.[bench,cluster]'",
        ".venv/bin/python bench/cluster.py",
        "```",
        "",
        "This report was produced by:",
        "",
        "```sh",
        shlex.join([".venv/bin/python", "bench/cluster.py", *argv]),
        "```",
        "",
        "## Method",
        "",
        f"- {args.targets:,} healthy targets (seeded, 20-400 ms, `/d/MS` on {len_ports(args.targets)}"
        f' farm ports) at `interval = "{args.interval:g}s"`, every other key at its default'
        ' (`connection = "fresh"`, `concurrency = 200`, `per_host = 4`); each node a real'
        " `trio-monitor run -c FILE` with its own `[cluster] node`, its own `[storage]`"
        " (history on) and its JSON lines in a file; one fresh redis-server per run (AOF on,"
        " `appendfsync everysec`, no RDB, loopback).",
        f"- Scaling: after all nodes joined (`trio-monitor cluster status`), one interval and"
        f" {SETTLE:g} s more, then a {args.window:g} s window. CPU is utime + stime from /proc"
        " over the window, in % of one core; RSS the peak of 5 s samples; probes/s counts probe"
        " lines whose start is in the window. Missed: targets with no probe started in the"
        f" window; late: a gap over {LATE_FACTOR:g} intervals between consecutive starts.",
        f"- Alert latency: {args.latency_nodes} nodes and a loopback webhook receiver in the bench"
        f' process (`group_window = "0s"`); {args.outages} targets answer 500 from a known'
        " moment (the farm's `/down/` route), spread over one interval. Outage -> `down`: the"
        " outage start to the webhook's first `down` for the target; first failed probe ->"
        " `down`: that probe's start (any node) to the same delivery. Bound: interval +"
        " (failure_threshold - 1) x confirm_interval + timeout + 1 s (the outbox consumer's"
        " blocking read), with the defaults 3, 5 s and 10 s.",
        "",
        f"## Scaling ({args.targets:,} targets at {args.interval:g} s)",
        "",
        "| nodes | probes/s total | probes/s per node | CPU % per node | CPU % all nodes"
        " | RSS MB per node | Redis CPU % | Redis MB | results stream | owned per node"
        " | missed | late | farm CPU % | other processes, cores | exit codes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in scaling:
        lines.append(
            f"| {r.nodes} | {r.rate:,.1f} | {spread([p / r.window_s for p in r.probes], 1)}"
            f" | {spread(r.cpu_pct, 1)} | {sum(r.cpu_pct):.1f} | {spread(r.rss_mb)}"
            f" | {r.redis_cpu_pct:.1f} | {r.redis_mb:.1f} | {r.results_stream:,}"
            f" | {spread(r.owned)} | {r.missed} | {r.late} | {r.farm_cpu_pct:.1f}"
            f" | {r.other_cores:.2f} | {spread(r.exit_codes)} |"
        )
    lines += ["", curve(scaling), ""]
    if latency:
        lines += [
            f"## Alert latency ({args.latency_nodes} nodes, {args.targets:,} targets at"
            f" {args.interval:g} s, seconds)",
            "",
            "| locations / quorum | paged | outage → `down` p50 / max | expected p50 | bound"
            " | first failed probe → `down` p50 / max | expected | false `down`s"
            " | repeated keys | warm-up | machine busy, cores |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in latency:
            lines.append(
                f"| {r.locations} / {r.quorum} | {len(r.to_down)}/{r.outages} | {fmt(r.to_down)}"
                f" | {expected_p50(args.interval):g} | {bound(args.interval):g}"
                f" | {fmt(r.fail_to_down)} | {confirming(args.interval):g}"
                f" | {r.false_downs} | {r.repeated}"
                f" | {'SHORT' if r.warmup_short else 'full interval'} | {r.busy_cores:.2f} |"
            )
        lines.append("")
    path.write_text("\n".join(lines))


def len_ports(targets: int) -> int:
    from scenario import MAX_PORTS, TARGETS_PER_PORT

    return min(MAX_PORTS, max(1, targets // TARGETS_PER_PORT))


def redis_version() -> str:
    module = redis_server_module()
    done = subprocess.run(
        [module.REDIS_SERVER, "--version"], capture_output=True, text=True, timeout=10
    )
    return done.stdout.strip() or "redis-server: version unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=FULL["targets"])
    parser.add_argument("--interval", type=float, default=FULL["interval"], help="seconds")
    parser.add_argument("--nodes", default="1,2,4", help="node counts of the scaling runs")
    parser.add_argument("--window", type=float, default=120.0, help="seconds, >= --interval")
    parser.add_argument("--locations", default="1,3", help="latency runs ('' skips them)")
    parser.add_argument("--latency-nodes", type=int, default=3)
    parser.add_argument("--outages", type=int, default=20, help="targets flipped down per run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", type=Path, default=ROOT / "docs/benchmarks-cluster.md")
    parser.add_argument("--workdir", type=Path, help="keep configs, JSON lines and histories")
    raw = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(raw)
    if args.window < args.interval:
        parser.error("--window must be at least one --interval")
    locations = [int(x) for x in args.locations.split(",") if x]
    if any(loc > args.latency_nodes for loc in locations):
        parser.error("--locations: each at most --latency-nodes")
    missing = redis_server_module().missing()
    if missing:
        raise SystemExit(missing)
    raise_nofile_limit()
    children = Children()
    try:
        with (
            workdir_for(args.workdir, "cluster-") as workdir,
            running_farm(children, args.targets, workdir) as farm,
        ):
            targets = generate(args.targets, farm.ports, farm.closed, HEALTHY, args.seed)
            scaling = [
                scaling_run(children, workdir, farm, targets, int(n), args)
                for n in args.nodes.split(",")
                if n
            ]
            latency = [
                latency_run(children, workdir, farm, targets, loc, args) for loc in locations
            ]
    finally:
        children.end_all()
    write_report(args.report, args, raw, scaling, latency)
    log(f"wrote {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
