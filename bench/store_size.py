"""History store size: the disk a fleet of targets costs, per target per day and per year.

From the project root (writes docs/benchmarks-store.md):

    .venv/bin/python bench/store_size.py

runs, side by side, 1,000 targets for 9 simulated days (a week, then two days of
pruning) and 10,000 targets for 1 day, probed every 60 s: about 5 minutes of CPU each
(7.5 minutes of wall time on 2 shared cores). `--run 10000x7` is the full week at 10,000
targets (about 40 minutes of CPU).

Writes go through the writer's own transaction, `_write_batch`, in time order, round by
round: the rows `StoreWriter.add` queues for each probe result and alert (generated as
such directly, without building the records) in FLUSH_EVERY-record transactions, in a
worker thread while the next batch is generated, as the monitor's writer does. After
every simulated hour the real maintenance, `StoreMaintenance.run_once`, rolls up and
prunes with the default retention (raw 7 days, rollups 365 days) and an injected clock
(the hour's end + the rollup lag), its calls made in the calling thread (see InlineDb).

Not through `StoreWriter.serve`: building ~30 M records and passing them through a
channel would add roughly a third to the CPU per record and change nothing on disk.
Neither do the large transactions or the writing connection's big page cache (the
monitor: up to 1,000 records, SQLite's 2 MiB): 300 targets x 1 day in 1,000-record
transactions, and 1,000 targets x 1 day with the default cache, gave b-trees of the same
sizes to the byte.

Sizes: SQLite's dbstat (whole pages of each b-tree) and the main file after a WAL
checkpoint; the -wal file is left out (its size follows transaction sizes, not history).

Data, seeded: per target a log-normal median latency around MEDIAN_MS and a log-normal
spread per probe, FAILURE_RATE isolated failures with error kinds, outages (every probe
failing with one kind for minutes; "down" after 3 failures and "up" at the next ok probe,
as the default alert thresholds decide: incidents) and CHANGES_PER_DAY body changes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import math
import os
import random
import sqlite3
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from procs import workdir_for
from report import machine_lines

from trio_monitor import ErrorKind
from trio_monitor._config import StorageSection
from trio_monitor._records import PHASES
from trio_monitor.store import StoreStats, open_store
from trio_monitor.store._db import Db as _Db
from trio_monitor.store.maintenance import ROLLUP_LAG, StoreMaintenance
from trio_monitor.store.records import encode_phases
from trio_monitor.store.schema import BUSY_TIMEOUT
from trio_monitor.store.writer import _write_batch

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUNS = ("1000x9", "10000x1")
HOUR, DAY = 3600, 86400
T0 = 1_798_761_600  # 2027-01-01 00:00 UTC, a whole hour
FLUSH_EVERY = 50_000  # records per write transaction (the monitor's writer: up to 1,000)
STAGGER = 15.0  # the monitor's default: first probes spread over this long
CACHE_KIB = 256 * 1024  # the bench's writing connection's page cache (see `simulate`)

# the simulated fleet
MEDIAN_MS = 80.0  # median of the targets' median latencies
TARGET_SIGMA = 0.6  # log-normal spread of medians across targets
# where a probe's time goes (dns, connect, tls, ttfb, transfer): a fresh HTTPS connection
PHASE_SHARES = (0.05, 0.1, 0.2, 0.6, 0.05)
PROBE_SIGMA = 0.3  # log-normal spread of one target's probes around its median
FAILURE_RATE = 0.005  # isolated failed probes
FAILURE_KINDS = {  # error kind -> share of failures
    ErrorKind.TIMEOUT: 0.40,
    ErrorKind.CONNECT: 0.30,
    ErrorKind.STATUS: 0.15,
    ErrorKind.DNS: 0.05,
    ErrorKind.TLS: 0.05,
    ErrorKind.PROTOCOL: 0.05,
}
OUTAGES_PER_DAY = 0.05  # per target: one outage in 20 days on average
OUTAGE_MINUTES = (3, 10, 180)  # at least, median (log-normal), at most
CHANGES_PER_DAY = 2.0  # body changes per target per day
FAILURE_THRESHOLD = 3  # the alert default: consecutive failures before "down"


def log(message: str) -> None:
    print(f"[store {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the simulated fleet -------------------------------------------------------------------


class Fleet:
    """Seeded targets and their probes, one round at a time, in time order, as the
    writer's backlog entries (what `StoreWriter.add` makes of records):

        ("s", target, ts, ok, status, latency_ms, error, phases, change)
             phases: encode_phases of a fresh HTTPS connection's (None: no connection,
             or --no-phases); change: (previous, new) | None
        ("d", target, start, error)                                  a "down" alert
        ("u", target, end)                                           an "up" alert
    """

    def __init__(self, count: int, interval: float, seed: int, phases: bool = True) -> None:
        rng = self.rng = random.Random(seed)
        self.interval = interval
        self.phases = phases
        names = [f"target-{i:05d}" for i in range(count)]
        # as the scheduler places them: a fixed offset per name within the stagger window
        offsets = {n: zlib.crc32(n.encode()) / 2**32 * min(STAGGER, interval) for n in names}
        self.names = sorted(names, key=offsets.__getitem__)
        self.offsets = [offsets[n] for n in self.names]
        self.mu = [rng.gauss(math.log(MEDIAN_MS), TARGET_SIGMA) for _ in names]
        self.generation = [0] * count
        self.content = [self._hash(n, 0) for n in self.names]
        self.last_ok_hash: list[str | None] = [None] * count  # as the writer tracks it
        self.outage_left = [0] * count  # failing probes still to come in the current outage
        self.outage_kind = [""] * count
        self.failures = [0] * count  # consecutive
        self.streak_start = [0.0] * count
        self.down = [False] * count
        per_probe = interval / DAY
        self.p_outage = OUTAGES_PER_DAY * per_probe
        self.p_fail = self.p_outage + FAILURE_RATE
        self.p_change = CHANGES_PER_DAY * per_probe
        self.kinds = [str(kind) for kind in FAILURE_KINDS]
        self.weights = list(FAILURE_KINDS.values())
        self.probes = 0

    @staticmethod
    def _hash(name: str, generation: int) -> str:
        return "sha256:" + hashlib.sha256(f"{name}/{generation}".encode()).hexdigest()

    def _phases(self, latency: float) -> bytes | None:
        """A fresh HTTPS connection's phases: the latency split in PHASE_SHARES, each
        share varying by +/-30% (so the buckets vary as real ones do)."""
        if not self.phases:
            return None
        uniform = self.rng.uniform
        return encode_phases(
            {
                phase: latency * share * uniform(0.7, 1.3)
                for phase, share in zip(PHASES, PHASE_SHARES, strict=True)
            }
        )

    def _outage_probes(self) -> int:
        low, median, high = OUTAGE_MINUTES
        minutes = min(high, max(low, self.rng.lognormvariate(math.log(median), 1.0)))
        return max(FAILURE_THRESHOLD, round(minutes * 60 / self.interval))

    def round(self, n: int) -> list[tuple]:
        rng, gauss, exp = self.rng, self.rng.gauss, math.exp
        start = T0 + n * self.interval
        ops: list[tuple] = []
        for i, name in enumerate(self.names):
            ts = start + self.offsets[i] + rng.random() * 0.005  # + a little loop lag
            r = rng.random()
            if self.outage_left[i]:
                self.outage_left[i] -= 1
                kind = self.outage_kind[i]
            elif r < self.p_outage:
                kind = self.outage_kind[i] = rng.choices(self.kinds, self.weights)[0]
                self.outage_left[i] = self._outage_probes() - 1
            elif r < self.p_fail:
                kind = rng.choices(self.kinds, self.weights)[0]
            else:  # ok: 200, a latency, and the body's hash (a new one: a changes row)
                if r > 1 - self.p_change:
                    self.generation[i] += 1
                    self.content[i] = self._hash(name, self.generation[i])
                previous = self.last_ok_hash[i]
                content = self.last_ok_hash[i] = self.content[i]
                change = None if previous is None or previous == content else (previous, content)
                latency = round(exp(gauss(self.mu[i], PROBE_SIGMA)), 3)
                ops.append(("s", name, ts, 1, 200, latency, None, self._phases(latency), change))
                self.failures[i] = 0
                if self.down[i]:
                    self.down[i] = False
                    ops.append(("u", name, ts))
                continue
            if kind == "status":  # the only failure with a status and a latency
                latency = round(exp(gauss(self.mu[i], PROBE_SIGMA)), 3)
                status = rng.choice((500, 502, 503, 404))
                ops.append(("s", name, ts, 0, status, latency, kind, self._phases(latency), None))
            else:
                ops.append(("s", name, ts, 0, None, None, kind, None, None))
            self.failures[i] += 1
            if self.failures[i] == 1:
                self.streak_start[i] = ts
            if self.failures[i] == FAILURE_THRESHOLD and not self.down[i]:
                self.down[i] = True
                ops.append(("d", name, self.streak_start[i], kind))
        self.probes += len(self.names)
        return ops


# --- writing -------------------------------------------------------------------------------


def batch_writer(conn: sqlite3.Connection) -> Callable[[list[tuple]], int]:
    """The writer's own transaction, `_write_batch`: a savepoint per record."""
    known: dict[str, int] = {}  # target ids, as the writer keeps them

    def write(ops: list[tuple]) -> int:
        new, stored, skipped, why = _write_batch(conn, ops, known, 0)
        assert not skipped, why
        known.update(new)
        return stored

    return write


class InlineDb(_Db):
    """The maintenance's connection, used in the calling thread. The simulation has no
    event loop to keep responsive, and a worker-thread hop (~0.1 ms here) for each of the
    ~5 calls per target per pass would be most of the run's time. Same calls, same SQL."""

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.conn is None:
            self.conn = open_store(self.path, busy_timeout=self.busy_timeout, connect=self.connect)
        return fn(self.conn, *args)


# --- measuring the file --------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    bytes: int  # pages of its b-trees (table and indexes), whole
    payload: int  # bytes of row data in them
    rows: int  # leaf cells of its table


PARTS = {  # part of the history -> its b-trees
    "samples": ("samples",),
    "rollups": ("rollups",),
    "incidents": ("incidents", "incidents_target_start"),
    "changes": ("changes",),
}


@dataclass(frozen=True)
class Snapshot:
    day: float  # simulated days since the start
    file: int  # the main database file, after a checkpoint
    free: int  # of which free pages (pruned rows' pages, reused by later writes)
    parts: dict[str, Part]


def snapshot(path: str, day: float) -> Snapshot:
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert not busy, "checkpoint blocked"
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0] * page
        trees = {
            name: (size, payload, rows)
            for name, size, payload, rows in conn.execute(
                "SELECT name, sum(pgsize), sum(payload),"
                " sum(CASE WHEN pagetype = 'leaf' THEN ncell ELSE 0 END)"
                " FROM dbstat GROUP BY name"
            )
        }
    parts = {}
    for part, names in PARTS.items():
        found = [trees.get(name, (0, 0, 0)) for name in names]
        parts[part] = Part(sum(f[0] for f in found), sum(f[1] for f in found), found[0][2])
    return Snapshot(day, os.path.getsize(path), free, parts)


# --- one simulated run ---------------------------------------------------------------------


@dataclass(frozen=True)
class RunSpec:
    targets: int
    days: int

    @classmethod
    def parse(cls, text: str) -> RunSpec:
        targets, sep, days = text.lower().replace("_", "").replace(",", "").partition("x")
        if not (sep and targets.isdigit() and days.isdigit()) or not int(targets) * int(days):
            raise argparse.ArgumentTypeError(f"bad run {text!r}: use TARGETSxDAYS, e.g. 1000x7")
        return cls(int(targets), int(days))

    @property
    def label(self) -> str:
        return f"{self.targets:,} targets x {self.days} day{'s' if self.days > 1 else ''}"


@dataclass
class RunResult:
    spec: RunSpec
    interval: float
    snapshots: list[Snapshot] = field(default_factory=list)
    probes: int = 0
    records: int = 0  # rows-worth of records written: probe results and alerts
    write_cpu_s: float = 0.0  # generating and writing records (both threads)
    maintenance_cpu_s: float = 0.0
    maintenance_calls: int = 0
    wall_s: float = 0.0


class Clock:
    """The simulated wall clock the maintenance reads."""

    def __init__(self) -> None:
        self.now = float(T0)

    def __call__(self) -> float:
        return self.now


async def simulate(
    spec: RunSpec, interval: float, seed: int, path: str, phases: bool = True
) -> RunResult:
    storage = StorageSection()  # the defaults: 7 days raw, 365 days rollups
    stats, clock = StoreStats(), Clock()
    maintenance = StoreMaintenance(path, storage, stats, now=clock)
    maintenance._db = InlineDb(path, BUSY_TIMEOUT, sqlite3.connect)
    fleet = Fleet(spec.targets, interval, seed, phases)
    result = RunResult(spec, interval)
    started = time.perf_counter()
    conn = open_store(path)
    # Bench only: a page cache that holds every target's last leaf page, so a batch
    # does not spill pages to the WAL and read them back. I/O, not content: the
    # b-trees are the same with the default 2 MiB.
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    write = batch_writer(conn)
    verbose = spec.targets * HOUR / interval >= 200_000  # records per hour

    async def write_all(ops: list[tuple], done: trio.Event) -> None:
        result.records += await trio.to_thread.run_sync(write, ops)
        done.set()

    try:
        async with trio.open_nursery() as nursery:
            written = trio.Event()
            written.set()

            async def write_soon(ops: list[tuple]) -> None:
                """After the previous batch: this one, in a worker thread."""
                nonlocal written
                await written.wait()
                written = trio.Event()
                nursery.start_soon(write_all, ops, written)
                await trio.lowlevel.checkpoint()  # it starts; the next batch is generated meanwhile

            n = 0
            for hour in range(spec.days * 24):
                cpu = time.process_time()
                end = T0 + (hour + 1) * HOUR
                ops: list[tuple] = []
                while T0 + n * interval < end:
                    ops += fleet.round(n)
                    n += 1
                    if len(ops) >= FLUSH_EVERY:
                        await write_soon(ops)
                        ops = []
                await write_soon(ops)
                await written.wait()
                result.write_cpu_s += time.process_time() - cpu

                cpu = time.process_time()
                clock.now = end + ROLLUP_LAG
                assert await maintenance.run_once(), stats.last_error
                result.maintenance_cpu_s += time.process_time() - cpu
                if (hour + 1) % 24 == 0:
                    snap = snapshot(path, (hour + 1) / 24)
                    result.snapshots.append(snap)
                    log(
                        f"{spec.label}: day {snap.day:g},"
                        f" file {mib(snap.file)} MiB, {time.perf_counter() - started:,.0f} s"
                    )
                elif verbose and hour % 6 == 5:
                    log(f"{spec.label}: hour {hour + 1}, {time.perf_counter() - started:,.0f} s")
    finally:
        await maintenance.aclose()
        conn.close()
    result.probes = fleet.probes
    result.maintenance_calls = maintenance.batches
    result.wall_s = time.perf_counter() - started
    return result


def run_one(
    spec: RunSpec, interval: float, seed: int, workdir: Path, keep: bool, phases: bool = True
) -> RunResult:
    path = workdir / f"history-{spec.targets}x{spec.days}.db"
    remove(path)
    log(f"{spec.label} at {interval:g} s: {path}")
    try:
        return trio.run(simulate, spec, interval, seed, str(path), phases)
    finally:
        if not keep:
            remove(path)


def remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# --- the report ----------------------------------------------------------------------------


def rates(result: RunResult, snap: Snapshot) -> dict[str, float]:
    """Bytes per target per day of each part, as of `snap`. Raw samples and rollups:
    bytes per row times rows per target-day (right whatever has been pruned); incidents
    and changes, whose rate is the data's: bytes over the simulated target-days."""
    samples, rollups = snap.parts["samples"], snap.parts["rollups"]
    target_days = result.spec.targets * snap.day
    return {
        "samples": samples.bytes / samples.rows * DAY / result.interval,
        "rollups": rollups.bytes / rollups.rows * 24,
        "events": (snap.parts["incidents"].bytes + snap.parts["changes"].bytes) / target_days,
    }


def projection(result: RunResult, targets: int = 1) -> tuple[float, float]:
    """-> (bytes after a week, bytes after a year) for `targets`, from the last day's rates."""
    r = rates(result, result.snapshots[-1])
    kept = r["rollups"] + r["events"]
    return targets * 7 * (r["samples"] + kept), targets * (7 * r["samples"] + 365 * kept)


def mib(n: float) -> str:
    return f"{n / 2**20:,.1f}"


def size(n: float) -> str:
    """A size in the unit that reads best."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.{1 if n < 100 * scale else 0}f} {unit}"
    return f"{n:,.0f} B"


def fill(part: Part) -> str:
    return f"{part.payload / part.bytes * 100:.0f} %" if part.bytes else "n/a"


def per_row(part: Part) -> str:
    return f"{part.bytes / part.rows:.1f}" if part.rows else "n/a"


def us_per_record(cpu_s: float, r: RunResult) -> str:
    return f"{cpu_s / r.records * 1e6:.1f}"


def render(results: list[RunResult], command: str) -> str:
    interval = results[0].interval
    lines = [
        "## History store size",
        "",
        "Disk use of the history store, from `bench/store_size.py`: simulated fleets probed"
        f" every {interval:g} s for simulated days, written in time order by the writer's own"
        f" transaction (`_write_batch`, {FLUSH_EVERY:,} records at a time: the same b-trees as"
        " the monitor's batches of up to 1,000), and the real maintenance"
        " (`StoreMaintenance.run_once`: rollups and pruning, default retention 7 days raw and"
        " 365 days rollups) after every simulated hour, with an injected clock. Seeded data:"
        " log-normal latencies around"
        f" {MEDIAN_MS:g} ms, {FAILURE_RATE:.1%} isolated failures with error kinds, an outage"
        f" in {1 / OUTAGES_PER_DAY:g} target-days ({OUTAGE_MINUTES[1]} min median; `down` and"
        f" `up` → incidents), {CHANGES_PER_DAY:g} body changes per target per day, and the"
        " phase timings of a fresh HTTPS connection (dns, connect, tls, ttfb, transfer:"
        " the latency split"
        f" {' / '.join(f'{share:.0%}' for share in PHASE_SHARES)}, each +/-30%) on every"
        " probe with a connection (none with `--no-phases`). Sizes:"
        " SQLite's `dbstat` (whole pages of each b-tree) and the main file after a WAL"
        " checkpoint (the -wal file is left out). Raw samples and rollups per target-day are"
        " bytes per row times rows per target-day"
        f" ({DAY / interval:,.0f} samples, 24 rollups); fill is row data over page bytes.",
        "",
        "### Machine",
        "",
        *machine_lines(),
        f"- SQLite {sqlite3.sqlite_version}",
        "",
        "### Command",
        "",
        "From the project root (with the venv of bench/run.py):",
        "",
        "```sh",
        ".venv/bin/python bench/store_size.py",
        "```",
        "",
        "This section was produced by:",
        "",
        "```sh",
        command,
        "```",
        "",
        *_bytes_lines(results),
        "",
        *_growth_lines(results),
        "",
        *_projection_lines(results),
        "",
        *_cost_lines(results),
    ]
    return "\n".join(lines) + "\n"


def _bytes_lines(results: list[RunResult]) -> list[str]:
    lines = [
        "### Bytes per target per day",
        "",
        "| run, as of day | raw samples | B per sample (fill) | rollups | B per rollup (fill)"
        " | incidents + changes | incidents, changes (rows) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for snap in [s for s in r.snapshots if s.day in {1, 7, len(r.snapshots)}]:
            rate = rates(r, snap)
            p = snap.parts
            lines.append(
                f"| {r.spec.label}, day {snap.day:g} | {size(rate['samples'])}"
                f" | {per_row(p['samples'])} ({fill(p['samples'])}) | {size(rate['rollups'])}"
                f" | {per_row(p['rollups'])} ({fill(p['rollups'])}) | {size(rate['events'])}"
                f" | {p['incidents'].rows:,}, {p['changes'].rows:,} |"
            )
    return lines


def _growth_lines(results: list[RunResult]) -> list[str]:
    longest = max(results, key=lambda r: (r.spec.days, r.spec.targets))
    lines = [
        f"### File size by day, {longest.spec.label}",
        "",
        "| day | file MiB | growth MiB | raw samples MiB | rollups MiB | incidents + changes MiB"
        " | free pages MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    previous = 0
    for s in longest.snapshots:
        p = s.parts
        lines.append(
            f"| {s.day:g} | {mib(s.file)} | {mib(s.file - previous)} | {mib(p['samples'].bytes)}"
            f" | {mib(p['rollups'].bytes)} | {mib(p['incidents'].bytes + p['changes'].bytes)}"
            f" | {mib(s.free)} |"
        )
        previous = s.file
    return lines


def _projection_lines(results: list[RunResult]) -> list[str]:
    lines = [
        "### Projection",
        "",
        "Kept at steady state: a week of raw samples (`raw_retention`) and a year of rollups,"
        " incidents and changes (`rollup_retention`; hours are rolled up ahead of pruning,"
        " so the rollups cover the raw week too): 7 x raw + 365 x (rollups + incidents +"
        " changes) per target-day, at each run's rates on its last day.",
        "",
        "| from run | per target: 1 week | per target: 1 year | 10,000 targets: 1 week"
        " | 10,000 targets: 1 year |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        week, year = projection(r)
        lines.append(
            f"| {r.spec.label} | {size(week)} | {size(year)} | {size(week * 10_000)}"
            f" | {size(year * 10_000)} |"
        )
    lines.append("")
    lines += _extrapolation_lines(results)
    lines += _week_lines(results)
    lines += _steady_lines(results)
    lines += _changes_lines(results)
    return lines


def _extrapolation_lines(results: list[RunResult]) -> list[str]:
    """Unless it was run: what 10,000 targets for a week would cost, and would take."""
    if any(r.spec.targets >= 10_000 and r.spec.days >= 7 for r in results):
        return []
    biggest = max(results, key=lambda r: r.spec.targets)
    us = (biggest.write_cpu_s + biggest.maintenance_cpu_s) / biggest.records * 1e6
    records = biggest.records / biggest.spec.targets / biggest.spec.days * 10_000 * 7
    observed = [rates(r, s) for r in results for s in r.snapshots if s.day in {1, 7}]
    raw = [o["samples"] for o in observed]
    rollups = [o["rollups"] for o in observed]
    weeks = [projection(r, 10_000)[0] for r in results]
    return [
        "- 10,000 targets x 7 days was not run: at the CPU per record of the"
        f" {biggest.spec.label} run ({us:.0f} µs, writing and maintenance), its"
        f" {records / 1e6:,.0f} M records would take {records * us / 1e6 / 60:,.0f} minutes"
        " of CPU here. It is extrapolated, as bytes per target-day agree across fleet sizes"
        f" and days (raw samples {size(min(raw))} to {size(max(raw))}, rollups"
        f" {size(min(rollups))} to {size(max(rollups))} per target-day on days 1 and 7 of"
        f" every run), so 10,000 targets x 7 days = 10,000 x 7 x (raw + rollups + incidents"
        f" + changes) per target-day = {size(min(weeks))} to {size(max(weeks))}.",
    ]


def _week_lines(results: list[RunResult]) -> list[str]:
    """The measured file after 7 days, against the projection from the rates."""
    lines = []
    for r in results:
        week = next((s for s in r.snapshots if s.day == 7), None)
        if week is not None:
            projected, _ = projection(r)
            lines.append(
                f"- Measured: the {r.spec.label} file after day 7 is {size(week.file)},"
                f" {size(week.file / r.spec.targets)} per target (projected from the rates:"
                f" {size(projected)})."
            )
    return lines


def _steady_lines(results: list[RunResult]) -> list[str]:
    """Days after the raw retention: does pruning make room for the new raw samples?"""
    lines = []
    for r in results:
        later = [s for s in r.snapshots if s.day > 7]
        if not later:
            continue
        before = r.snapshots[r.snapshots.index(later[0]) - 1]
        days = later[-1].day - before.day
        kept = sum(
            later[-1].parts[k].bytes - before.parts[k].bytes
            for k in ("rollups", "incidents", "changes")
        )
        lines.append(
            f"- Days {later[0].day:g}-{later[-1].day:g} of {r.spec.label} (raw samples pruned"
            f" hour by hour): the file grew {mib((later[-1].file - before.file) / days)} MiB"
            f" a day, rollups, incidents and changes {mib(kept / days)} MiB a day; raw samples"
            f" went from {mib(before.parts['samples'].bytes)} to"
            f" {mib(later[-1].parts['samples'].bytes)} MiB, free pages"
            f" {mib(later[-1].free)} MiB. Pruned pages are reused, never given back to the"
            " file system (no VACUUM): the file stays at its largest."
        )
    return lines


def _changes_lines(results: list[RunResult]) -> list[str]:
    """What a body that changes on every probe costs: a changes row per probe, for a year."""
    r = max(results, key=lambda r: r.snapshots[-1].parts["changes"].rows)
    changes = r.snapshots[-1].parts["changes"]
    if not changes.rows:
        return []
    per_row = changes.bytes / changes.rows
    per_day = per_row * DAY / r.interval
    return [
        f"- Every content change is a `changes` row ({per_row:.0f} B, two sha256 hashes as"
        " text), kept for `rollup_retention` whether or not the target has `content_alert`."
        " A body that differs on every probe (a timestamp or token in the page) costs"
        f" {size(per_day)} per target-day, {size(per_day * 365)} per target-year, more than"
        " its raw samples.",
    ]


def _cost_lines(results: list[RunResult]) -> list[str]:
    lines = [
        "### Runs",
        "",
        "CPU s: process time (both threads), generating and writing records, and in the"
        " maintenance; µs per record over all records (probe results and alerts).",
        "",
        "| run | probes | records | write CPU s (µs/record) | maintenance CPU s"
        " (µs/record, calls) | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.spec.label} | {r.probes:,} | {r.records:,}"
            f" | {r.write_cpu_s:,.0f} ({us_per_record(r.write_cpu_s, r)})"
            f" | {r.maintenance_cpu_s:,.0f} ({us_per_record(r.maintenance_cpu_s, r)},"
            f" {r.maintenance_calls:,}) | {r.wall_s:,.0f} |"
        )
    return lines


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--run",
        action="append",
        metavar="TARGETSxDAYS",
        help=f"repeatable (default: {', '.join(DEFAULT_RUNS)})",
    )
    parser.add_argument("--interval", type=float, default=60.0, help="s (%(default)g)")
    parser.add_argument("--seed", type=int, default=1, help="(%(default)s)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="(%(default)s)")
    parser.add_argument(
        "--report", type=Path, default=ROOT / "docs" / "benchmarks-store.md", help="(%(default)s)"
    )
    parser.add_argument("--workdir", type=Path, help="keep the database files here")
    parser.add_argument(
        "--no-phases",
        dest="phases",
        action="store_false",
        help="store no phase timings (as before they existed; for comparison)",
    )
    args = parser.parse_args(argv)
    try:
        args.run = [RunSpec.parse(r) for r in args.run or DEFAULT_RUNS]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.interval <= 0 or HOUR % args.interval:
        parser.error("--interval: a divisor of 3600 s")
    return args


def command_line(argv: list[str]) -> str:
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else None
    return " ".join([python or sys.executable, "bench/store_size.py", *argv])


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    with (
        workdir_for(args.workdir, "trio-monitor-store-") as workdir,
        concurrent.futures.ProcessPoolExecutor(max(1, args.jobs)) as pool,
    ):
        # the biggest first, so two jobs finish about together
        order = sorted(set(args.run), key=lambda s: -s.targets * s.days)
        keep = args.workdir is not None
        futures = {
            s: pool.submit(run_one, s, args.interval, args.seed, workdir, keep, args.phases)
            for s in order
        }
        done = {s: f.result() for s, f in futures.items()}
    results = [done[s] for s in args.run]
    args.report.write_text(render(results, command_line(argv)))
    log(f"wrote {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
