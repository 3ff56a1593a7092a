"""Memory stays flat: what a long run keeps is O(targets), never O(results).

Thousands of rounds go through the real Scheduler, MemoryStateStore and Dispatcher (and the JSON
line of every record) on trio's autojump clock, with a fake prober whose results vary
(failures that take targets down and up, slow streaks, body changes), and what is alive
after a warm-up is compared with what is alive at the end: objects the garbage collector
tracks, the interpreter's memory blocks and the resident size. The history writer's
state is fed tens of thousands of records for a few targets the same way.

(tracemalloc would see bytes more precisely but makes these runs ~6x slower; the
fakes.FakeProber records every probe's start time, so it is not used here.)
"""

from __future__ import annotations

import gc
import io
import os
import sys
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import attrs
import trio
from factories import alert_event, config_doc, probe_result, write_config
from fakes import FakeProber, make_config, result_for

from trio_monitor import ErrorKind
from trio_monitor._config import StorageSection, load_config
from trio_monitor._lifecycle import Monitor, open_probers
from trio_monitor._records import AlertEvent, ProbeResult, RoundSummary, to_line
from trio_monitor._systemd import SystemdNotifier
from trio_monitor.engine.dispatch import Dispatcher
from trio_monitor.engine.schedule import Scheduler
from trio_monitor.engine.state import MemoryStateStore
from trio_monitor.server.metrics import Metrics
from trio_monitor.sinks.jsonl import Output
from trio_monitor.store import StoreStats, StoreWriter

TARGETS = 20
WARMUP = 200  # rounds (one a second)
ROUNDS = 1500
# What may be left over after the warm-up, whatever the number of rounds: noise of the
# interpreter's and trio's caches, and SQLite's page cache filling up to its 2 MB
# (measured: at most 2 objects, 250 blocks, 0.2 MB resident; 2.1 MB with SQLite). Kept
# per result instead: 24,700 objects (the results), 26,100 blocks and 22 MB (their JSON
# lines); a float kept per round: 1,460 blocks.
MAX_NEW_OBJECTS = 200
MAX_NEW_BLOCKS = 1000
MAX_NEW_RSS = 4 * 2**20
ERRORS = (ErrorKind.CONNECT, ErrorKind.TIMEOUT, ErrorKind.STATUS)


class Footprint(NamedTuple):
    objects: int  # tracked by the garbage collector: containers and instances
    blocks: int  # the interpreter's small blocks (up to 512 B): str, float, int... too
    rss: int  # resident bytes of the process (0 without /proc): anything bigger


def footprint() -> Footprint:
    gc.collect()
    try:
        rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        rss = 0
    return Footprint(len(gc.get_objects()), sys.getallocatedblocks(), rss)


def growth(mark: Footprint) -> Footprint:
    return Footprint(*(now - then for now, then in zip(footprint(), mark, strict=True)))


def assert_flat(grown: Footprint, after: str) -> None:
    assert grown.objects < MAX_NEW_OBJECTS, f"{grown.objects:,} objects more after {after}"
    assert grown.blocks < MAX_NEW_BLOCKS, f"{grown.blocks:,} memory blocks more after {after}"
    assert grown.rss < MAX_NEW_RSS, f"{grown.rss:,} resident bytes more after {after}"


class VaryingProber(FakeProber):
    """Results that vary by target and round, with O(1) state of its own: outages (six
    failed rounds in a row, so `down` then `up`), lone failures, latencies crossing the
    `slow` threshold in streaks, and bodies that change every 20 rounds for a third of
    the targets."""

    def __init__(self) -> None:
        self.probes = 0

    async def probe(self, plan, round_no, deadlines):
        await trio.sleep(0.05)
        self.probes += 1
        target = plan.target
        i = int(target.name[1:])
        outage = (round_no // 30) % 5 == i % 5 and round_no % 30 < 6
        ok = not outage and (round_no * 7 + i) % 97 != 0
        result = result_for(plan, round_no, ok)
        if not ok:
            return attrs.evolve(result, error=ERRORS[(round_no + i) % len(ERRORS)])
        latency = 20.0 + (round_no * 31 + i * 17) % 400 + (300 if round_no % 40 < 5 else 0)
        generation = round_no // 20 if i % 3 == 0 else 0
        return attrs.evolve(
            result,
            latency_ms=latency,
            content_hash=f"sha256:{i:064x}{generation}",
            bytes=1000 + generation % 7,
            slow=bool(target.slow and latency > target.slow * 1000),
        )


async def jsonl(receive: trio.MemoryReceiveChannel, seen: Counter) -> None:
    """The output's consumer without the file: every record as its JSON line, counted."""
    async with receive:
        async for record in receive:
            seen[record.type] += 1
            seen["bytes"] += len(to_line(record))
            if isinstance(record, AlertEvent):
                seen[record.event] += 1


async def test_memory_stays_flat_over_thousands_of_rounds(autojump_clock):
    targets = [
        {"name": f"t{i:02d}", "url": f"http://127.0.0.{i + 1}/"}
        | ({"slow": "0.25s"} if i % 5 == 0 else {})
        | ({"content_alert": True} if i % 3 == 0 else {})
        for i in range(TARGETS)
    ]
    config = make_config(targets, interval="1s", concurrency=20)
    # an outage every 150 rounds is no flapping: every one of them alerts down and up
    alerts_config = attrs.evolve(config.alerts, flap_window=200.0)
    dispatcher = Dispatcher(MemoryStateStore(alerts_config))
    output = dispatcher.add_outlet("output", 1000)
    alerts = dispatcher.add_outlet("alerts", 1000, lambda r: isinstance(r, AlertEvent))
    prober = VaryingProber()
    scheduler = Scheduler(config, {"http": prober}, dispatcher)
    seen, alerted = Counter(), Counter()
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(jsonl, output.receive, seen)
        nursery.start_soon(jsonl, alerts.receive, alerted)
        nursery.start_soon(scheduler.run)
        # measured between rounds: every probe of round n is done by n + 0.05 s
        await trio.sleep_until(start + WARMUP + 0.5)
        assert prober.probes == TARGETS * (WARMUP + 1)
        mark = footprint()
        await trio.sleep_until(start + ROUNDS + 0.5)
        grown = growth(mark)
        scheduler.stop()
        dispatcher.close()

    assert prober.probes == TARGETS * (ROUNDS + 1)
    assert seen[ProbeResult.type] == prober.probes
    assert seen[RoundSummary.type] == ROUNDS + 1
    assert output.dropped == alerts.dropped == 0
    # the alert logic really ran, many times over
    assert alerted[AlertEvent.type] == seen[AlertEvent.type] > 1000
    assert all(alerted[event] > 100 for event in ("down", "up", "slow", "content_changed"))
    assert_flat(grown, f"{ROUNDS - WARMUP:,} more rounds")


STORE_TARGETS = 5
STORAGE = StorageSection()


def records(first: int, last: int):
    """Probe results for STORE_TARGETS targets (a new body every 10th, a failure every
    50th) and an outage's alerts now and then: [first, last) in order."""
    for n in range(first, last):
        i = n % STORE_TARGETS
        name, ts = f"api-{i}", 1_800_000_000.0 + n
        ok = n % 50 != 0
        yield probe_result(
            name,
            ts=ts,
            ok=ok,
            latency_ms=10.0 + n % 90 if ok else None,
            error=None if ok else ErrorKind.TIMEOUT,
            round=n,
            content_hash=f"sha256:{n // 10:064x}" if ok else None,
            content_changed=ok and n % 10 == 0,
        )
        if n % 1000 == 0:
            yield alert_event("down", name, ts=ts, url="", reason="timeout", since=ts)
        elif n % 1000 == 500:
            yield alert_event("up", name, ts=ts, url="", since=ts - 500)


async def test_history_writer_state_is_proportional_to_targets(tmp_path):
    stats = StoreStats()
    writer = StoreWriter(str(tmp_path / "history.db"), STORAGE, stats)

    async def feed(first: int, last: int) -> None:
        for n, record in enumerate(records(first, last), 1):
            writer.add(record)
            if n % 1000 == 0:  # as `serve` does: up to BATCH records per transaction
                assert await writer.flush()
        assert await writer.flush()

    await feed(0, 5_000)
    mark = footprint()
    await feed(5_000, 50_000)
    grown = growth(mark)
    assert stats.stored > 50_000
    assert stats.unstored == stats.pending == 0
    assert len(writer._ids) == len(writer._hashes) == STORE_TARGETS
    assert_flat(grown, "45,000 more records")


def test_history_backlog_without_a_file_is_bounded():
    """Nothing written (no flush: the file is unwritable or gone): the backlog keeps the
    newest `backlog` records and counts the rest, so memory stops growing there."""
    stats = StoreStats()
    writer = StoreWriter("/nonexistent/never-opened.db", STORAGE, stats, backlog=1000)
    for record in records(0, 5_000):
        writer.add(record)
    mark = footprint()
    for record in records(5_000, 50_000):
        writer.add(record)
    grown = growth(mark)
    assert len(writer._backlog) == stats.pending == 1000
    assert stats.unstored > 49_000
    assert len(writer._hashes) == STORE_TARGETS
    assert_flat(grown, "45,000 more records")


FLEET = 2_000
# Bytes a target costs once the monitor is built and has seen one probe of it: config,
# plan, state, recent stats and metrics (tracemalloc, 2,000 targets). Measured: ~2.8 KB;
# 8.6 KB before the per-target metric children, empty deques and per-target copies of
# the HTTP headers and body went (the 50,000 targets of bench/fleet.py: 510 MB RSS).
MAX_BYTES_PER_TARGET = 4_000
# a fresh connection's phases: the recent stats keep their histograms (~0.4 KB more)
PHASES_MS = {"dns": 0.4, "connect": 0.3, "tls": 2.0, "ttfb": 10.0, "transfer": 0.2}


def _null_output() -> Output:
    return Output(io.BytesIO(), "memory")


async def test_a_target_costs_a_few_kilobytes(tmp_path):
    targets = [
        {"name": f"t{i:05d}", "url": f"http://127.0.0.1:{1 + i % 20}/p?t={i}"} for i in range(FLEET)
    ]
    path = write_config(tmp_path, config_doc(*targets, storage={"enabled": False}))
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        config = load_config(str(path))
        async with open_probers(config) as probers:
            monitor = Monitor(
                config, None, SystemdNotifier({}), probers, _null_output(), once=False
            )
            metrics = Metrics()
            now = trio.current_time()
            for i, target in enumerate(config.targets):
                result = probe_result(
                    target.name, url=target.url, ok=i % 2 == 0, kind="http", phases_ms=PHASES_MS
                )
                result, _alerts = monitor.state.observe(target, result, now)
                monitor.recent.observe(result)
                metrics.observe(result)
            per_target = (tracemalloc.get_traced_memory()[0] - base) / FLEET
    finally:
        tracemalloc.stop()
    assert per_target < MAX_BYTES_PER_TARGET, f"{per_target:,.0f} bytes per target"
