"""The history store: schema and migrations, the writer (batching, incidents, content
changes, every failure path), maintenance (rollups, retention) and the reader.

Real SQLite files in tmp_path. Faults are real SQLite conditions, made deterministic:

- open fails: the store's directory cannot exist (a regular file is in the way);
  chmod would not do, as the tests run as root, who writes through any mode bits.
- read-only file: the writer's connection opened with `mode=ro`, which is what SQLite
  itself falls back to for a file it may not write; the write then fails with the same
  SQLITE_READONLY ("attempt to write a readonly database") as for a chmod'ed file.
- disk full: `PRAGMA max_page_count` at the file's size, so SQLite raises its real
  SQLITE_FULL ("database or disk is full").
- locked: another process holding `BEGIN EXCLUSIVE` past the busy timeout.
"""

from __future__ import annotations

import logging
import math
import random
import sqlite3
import sys
from contextlib import closing
from functools import partial
from pathlib import Path

import attrs
import pytest
import trio
from factories import alert_event, probe_result, round_summary

from trio_monitor import ErrorKind, TargetRemoved
from trio_monitor._config import StorageSection
from trio_monitor._errors import StoreError
from trio_monitor._records import StreamMark
from trio_monitor.store import HistoryReader, StoreStats, StoreWriter, open_store, serve_store
from trio_monitor.store._sql import ROLLED_THROUGH
from trio_monitor.store.maintenance import StoreMaintenance, serve_store_maintenance
from trio_monitor.store.records import (
    ERROR_BOUND,
    PhaseHistograms,
    Sample,
    bucket_value,
    encode_phases,
    rollup,
)
from trio_monitor.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, migrate

T0 = 1_800_000_000.0  # a whole hour (and day) in unix seconds
DAY = 86400.0
STORAGE = StorageSection(raw_retention=7 * DAY, rollup_retention=9 * DAY)


def probe(
    target="api",
    ts=T0,
    ok=True,
    *,
    latency=12.5,
    status=None,
    content=None,
    changed=False,
    phases=None,
):
    return probe_result(
        target,
        ts=ts,
        ok=ok,
        status=status if status is not None else (200 if ok else None),
        latency_ms=latency if ok else None,
        error=None if ok else ErrorKind.TIMEOUT,
        content_hash=None if content is None else f"sha256:{content}",
        content_changed=changed,
        phases_ms=phases,
    )


def alert(event, target="api", ts=T0, **fields):
    return alert_event(event, target, ts=ts, **fields)


async def store(path, records, *, storage=STORAGE, **options):
    """Run a writer over `records` (its channel closed after them) -> (stats, writer)."""
    stats = StoreStats()
    writer = StoreWriter(str(path), storage, stats, **options)
    send, receive = trio.open_memory_channel(math.inf)
    for record in records:
        send.send_nowait(record)
    send.close()
    await writer.serve(receive)
    return stats, writer


def schema(conn):
    return (
        conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY 1, 2"
        ).fetchall(),
        conn.execute("PRAGMA user_version").fetchone()[0],
        conn.execute("PRAGMA application_id").fetchone()[0],
    )


def count(path, table):
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def contents(path):
    """The file's bytes, None if there is none (sync: tests read files directly)."""
    path = Path(path)
    return path.read_bytes() if path.exists() else None


def remove(path):
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)


class Faults:
    """A connection factory for the writer whose connections can be made read-only or
    size-capped ("disk full") until the fault is cleared."""

    def __init__(self):
        self.read_only = False
        self.full = False
        self.opened = 0

    def __call__(self, path, **options):
        self.opened += 1
        if self.read_only:
            return sqlite3.connect(Path(path).as_uri() + "?mode=ro", uri=True, **options)
        conn = sqlite3.connect(path, **options)
        if self.full:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn


# --- schema ----------------------------------------------------------------------


def test_fresh_file_has_the_schema_in_wal_mode(tmp_path):
    path = str(tmp_path / "sub" / "history.db")  # missing directories are created
    conn = open_store(path)
    try:
        tables, version, app = schema(conn)
        assert version == SCHEMA_VERSION == len(MIGRATIONS)
        assert app == APPLICATION_ID
        names = {name for kind, name, _, _ in tables if kind == "table"}
        assert names == {
            "targets",
            "samples",
            "rollups",
            "incidents",
            "changes",
            "meta",
            "outbox",
            "certs",
            "baselines",
            "warnings",
            "silences",
        }
        sql = {name: text for _, name, _, text in tables}
        for compact in ("samples", "rollups", "changes", "meta", "outbox", "warnings"):
            assert "WITHOUT ROWID" in sql[compact]
        assert "incidents_target_start" in sql
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    finally:
        conn.close()


def test_incidents_closed_before_end_reasons_existed_ended_by_recovery(tmp_path):
    path = str(tmp_path / "v1.db")
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, target=1)
    conn.execute("INSERT INTO targets (name) VALUES ('api')")
    conn.execute("INSERT INTO incidents (target_id, start, \"end\", error) VALUES (1, 1, 2, 'dns')")
    conn.execute("INSERT INTO incidents (target_id, start, error) VALUES (1, 3, 'dns')")
    conn.close()
    open_store(path).close()
    with HistoryReader(path) as reader:
        closed, still_open = reader.incidents(0, math.inf)
    assert (closed.end_reason, still_open.end_reason) == ("up", None)


@pytest.mark.parametrize("version", range(SCHEMA_VERSION))
def test_migrates_from_every_earlier_version(tmp_path, version):
    fresh = open_store(str(tmp_path / "fresh.db"))
    expected = schema(fresh)
    fresh.close()

    old = str(tmp_path / f"v{version}.db")
    conn = sqlite3.connect(old, isolation_level=None)
    migrate(conn, target=version)  # the file as that version of trio-monitor left it
    assert conn.execute("PRAGMA user_version").fetchone()[0] == version
    conn.close()

    conn = open_store(old)
    try:
        assert schema(conn) == expected
    finally:
        conn.close()
    conn = open_store(old)  # opening a current file again changes nothing
    try:
        assert schema(conn) == expected
    finally:
        conn.close()


def newer(path):
    open_store(path).close()
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")


def garbage(path):
    Path(path).write_bytes(b"these are not the bytes you are looking for\n" * 200)


def foreign(path):
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (newer, f"is newer than this trio-monitor supports ({SCHEMA_VERSION})"),
        (garbage, "not a trio-monitor history database (file is not a database)"),
        (foreign, "not a trio-monitor history database (it holds other tables)"),
    ],
)
async def test_unusable_file_is_refused_and_never_written(tmp_path, make, message):
    path = str(tmp_path / "history.db")
    make(path)
    before = contents(path)

    with pytest.raises(StoreError, match="^" + path) as exc:
        open_store(path)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)
    with pytest.raises(StoreError) as exc:
        HistoryReader(path)
    assert message in str(exc.value)

    # the monitor-facing writer: no exception, everything counted as lost, file untouched
    stats, _ = await store(path, [probe(ts=T0 + i) for i in range(5)])
    assert (stats.stored, stats.unstored) == (0, 5)
    assert message in stats.last_error
    assert contents(path) == before


def test_reading_a_missing_file_says_run_the_monitor_first(tmp_path):
    path = str(tmp_path / "history.db")
    with pytest.raises(StoreError) as exc:
        HistoryReader(path)
    assert str(exc.value) == f"no history yet at {path}: run the monitor first"
    assert not Path(path).exists()  # reading never creates it


# --- the writer ---------------------------------------------------------------------


async def test_queued_records_are_written_in_few_transactions(tmp_path, monkeypatch):
    import trio_monitor.store.writer as store_module

    batches = []
    real = store_module._write_batch

    def counting(conn, ops, known, unstored, *marks):
        batches.append(len(ops))
        return real(conn, ops, known, unstored, *marks)

    monkeypatch.setattr(store_module, "_write_batch", counting)
    path = tmp_path / "history.db"
    records = [probe(f"t{i % 7}", T0 + i) for i in range(5000)]
    stats, _ = await store(path, records)
    assert batches == [1000] * 5  # all 5000 were queued: 5 transactions, not 5000
    assert (stats.stored, stats.unstored, stats.pending) == (5000, 0, 0)
    assert count(path, "samples") == 5000


async def test_probe_results_become_samples(tmp_path):
    path = tmp_path / "history.db"
    records = [
        probe("api", T0 + 1, latency=3.25),
        probe("api", T0 + 2, ok=False),
        round_summary(ts=T0, round=1, targets=2, ok=1, failed=1, duration_ms=3.0),  # ignored
        alert("slow", "api", T0 + 3),  # ignored
        probe("web", T0 + 3, status=204, latency=40.0),
        probe("api", T0 + 4, status=503, ok=False),
    ]
    stats, _ = await store(path, records)
    assert stats.stored == 4
    with HistoryReader(str(path)) as reader:
        assert reader.targets() == ["api", "web"]
        assert list(reader.samples("api", T0, T0 + 10)) == [
            Sample("api", T0 + 1, True, 3.25, None, 200),
            Sample("api", T0 + 2, False, None, "timeout", None),
            Sample("api", T0 + 4, False, None, "timeout", 503),
        ]
        assert [s.ts for s in reader.samples("api", T0 + 2, T0 + 4)] == [T0 + 2]  # [since, until)
        assert reader.recent("api", 2) == list(reader.samples("api", T0 + 2, T0 + 5))
        assert list(reader.samples("nobody", 0, math.inf)) == []
        assert reader.recent("nobody", 3) == []
        assert reader.unstored() == 0


async def test_phases_are_kept_in_5_bytes_and_rolled_up(tmp_path):
    path = str(tmp_path / "history.db")
    fresh = {"dns": 0.5, "connect": 1.0, "tls": 8.0, "ttfb": 40.0, "transfer": 3.0}
    reused = {"dns": None, "connect": None, "tls": None, "ttfb": 20.0, "transfer": 0.05}
    records = [
        probe("api", T0 + 1, phases=fresh),
        probe("api", T0 + 2, phases=reused),
        probe("api", T0 + 3, ok=False, phases=None),  # no connection
        probe("api", T0 + 4, ok=False, status=500, phases=fresh),  # a failure: not rolled up
    ]
    await store(path, records)
    with HistoryReader(path) as reader:
        samples = list(reader.samples("api", T0, T0 + 10))
    assert [s.phases for s in samples] == [encode_phases(r.phases_ms) for r in records]
    code = samples[0].phases
    assert len(code) == 5
    for ms, byte in zip(fresh.values(), code, strict=True):  # each within a bucket
        assert bucket_value(byte - 1) == pytest.approx(ms, rel=ERROR_BOUND)
    assert samples[1].phases[:3] == bytes(3)  # did not happen: 0
    assert samples[1].phases[4] == 1  # below 0.1 ms: bucket 0, not "did not happen"

    # rolled up and pruned: the reader has the hour's rollup, no samples
    maintenance = StoreMaintenance(path, STORAGE, StoreStats(), now=lambda: T0 + 8 * DAY)
    assert await maintenance.run_once()
    await maintenance.aclose()
    with HistoryReader(path) as reader:
        (hour,) = reader.rollups("api", T0, T0 + 3600)
    stats = hour.phases.stats()
    assert stats["dns"].count == stats["tls"].count == 1  # the fresh ok probe
    assert stats["ttfb"].count == 2
    assert stats["tls"].p95 == pytest.approx(8.0, rel=ERROR_BOUND)
    assert stats["ttfb"].p50 == pytest.approx(20.0, rel=ERROR_BOUND)


def test_phase_histograms_blob_round_trip():
    # gaps inside a phase's range, counts of 1 to 3 varint bytes, phases missing
    counts = {0 * 256 + 3: 1, 0 * 256 + 9: 127, 2 * 256 + 0: 128, 2 * 256 + 255: 70_000}
    counts |= {4 * 256 + b: b + 1 for b in range(40, 60)}
    h = PhaseHistograms(counts)
    blob = h.to_blob()
    assert PhaseHistograms.from_blob(blob) == h
    assert len(blob) == (3 + 7) + (3 + 254 + 2 + 3) + (3 + 20)  # about a byte a bucket
    assert PhaseHistograms().to_blob() is None
    assert PhaseHistograms.from_blob(None) == PhaseHistograms()


async def test_rollups_without_phases_store_null(tmp_path):
    path = str(tmp_path / "history.db")
    await store(path, [probe("api", T0 + 1)])
    maintenance = StoreMaintenance(path, STORAGE, StoreStats(), now=lambda: T0 + 2 * 3600)
    assert await maintenance.run_once()
    await maintenance.aclose()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT phases FROM samples").fetchall() == [(None,)]
        assert conn.execute("SELECT phases FROM rollups").fetchall() == [(None,)]


async def test_probe_results_of_any_kind_are_stored_with_a_null_status(tmp_path):
    # kinds without an HTTP status (tcp, dns, ...) have status None; nothing else differs
    path = str(tmp_path / "history.db")
    records = [
        attrs.evolve(probe("db", T0 + 1, latency=2.5), kind="tcp", status=None),
        attrs.evolve(probe("db", T0 + 2, ok=False), kind="tcp"),
        attrs.evolve(probe("ns", T0 + 3, latency=0.75), kind="dns", status=None),
    ]
    stats, _ = await store(path, records)
    assert (stats.stored, stats.unstored) == (3, 0)
    with HistoryReader(path) as reader:
        assert list(reader.samples("db", T0, T0 + 10)) == [
            Sample("db", T0 + 1, True, 2.5, None, None),
            Sample("db", T0 + 2, False, None, "timeout", None),
        ]
        assert reader.recent("ns", 5) == [Sample("ns", T0 + 3, True, 0.75, None, None)]
    # rolled up and pruned like any other
    maintenance = StoreMaintenance(path, STORAGE, StoreStats(), now=lambda: T0 + 8 * DAY)
    assert await maintenance.run_once()
    await maintenance.aclose()
    with HistoryReader(path) as reader:
        assert list(reader.samples("db", 0, math.inf)) == []
        (hour,) = reader.rollups("db", 0, math.inf)
        assert (hour.checks, hour.failures, hour.latency_min) == (2, 1, 2.5)


async def test_a_removed_target_ends_its_open_incident(tmp_path):
    path = tmp_path / "history.db"
    await store(
        path,
        [
            alert("down", "api", T0 + 30, since=T0 + 10, reason="connect"),
            probe("api", T0 + 40, ok=False),
            alert("down", "web", T0 + 30, since=T0 + 10, reason="dns"),
            probe("web", T0 + 50, ok=False),
            TargetRemoved(T0 + 60, "api", "http://api.test/", T0 + 10),
            TargetRemoved(T0 + 60, "db"),  # nothing open: nothing to end
        ],
    )
    with HistoryReader(str(path)) as reader:
        api, web = reader.incidents(0, math.inf)
    assert (api.end, api.end_reason, api.last_seen) == (T0 + 60, "removed", None)
    assert (web.end, web.end_reason, web.last_seen) == (None, None, T0 + 50)
    await store(path, [alert("up", "web", T0 + 70)])
    with HistoryReader(str(path)) as reader:
        assert reader.incidents(0, math.inf, target="web")[0].end_reason == "up"


async def test_down_and_up_alerts_open_and_close_incidents(tmp_path):
    path = tmp_path / "history.db"
    await store(
        path,
        [
            alert("down", "api", T0 + 30, since=T0 + 10, reason="connect"),
            alert("down", "api", T0 + 40, since=T0 + 10, reason="connect"),  # already open
            alert("down", "web", T0 + 50, reason="dns"),  # no since: starts at ts
            alert("up", "api", T0 + 100, since=T0 + 10, downtime_s=90.0),
            alert("up", "db", T0 + 100),  # nothing open: nothing to close
        ],
    )
    # a restarted monitor reports a target that is still down again: still one incident
    await store(path, [alert("down", "web", T0 + 500, since=T0 + 490, reason="dns")])

    with HistoryReader(str(path)) as reader:
        everything = reader.incidents(0, math.inf)
        assert [(i.target, i.start, i.end, i.error) for i in everything] == [
            ("api", T0 + 10, T0 + 100, "connect"),
            ("web", T0 + 50, None, "dns"),
        ]
        assert everything[0].duration(T0 + 1000) == 90.0
        assert everything[1].duration(T0 + 1000) == 950.0
        # overlapping the range, open ones included
        assert [i.target for i in reader.incidents(T0 + 99, T0 + 101)] == ["api", "web"]
        assert [i.target for i in reader.incidents(T0 + 100, T0 + 200)] == ["web"]
        assert reader.incidents(T0, T0 + 10) == []
        assert [i.target for i in reader.incidents(0, math.inf, target="api")] == ["api"]

    await store(path, [alert("up", "web", T0 + 600, since=T0 + 50)])
    await store(path, [alert("down", "api", T0 + 700, since=T0 + 650, reason="status")])
    with HistoryReader(str(path)) as reader:
        assert [(i.target, i.start, i.end) for i in reader.incidents(0, math.inf)] == [
            ("api", T0 + 10, T0 + 100),
            ("web", T0 + 50, T0 + 600),
            ("api", T0 + 650, None),
        ]


async def test_content_changes_are_recorded_with_the_previous_hash(tmp_path):
    path = tmp_path / "history.db"
    await store(
        path,
        [
            probe("api", T0 + 1, content="a"),
            probe("api", T0 + 2, content="a"),
            probe("api", T0 + 3, ok=False),  # a failure does not move the previous hash
            probe("api", T0 + 4, content="b", changed=True),
            probe("web", T0 + 5, content="x", changed=True),  # first seen: previous unknown
            probe("api", T0 + 6, content="c", changed=True),
        ],
    )
    with HistoryReader(str(path)) as reader:
        rows = [(c.target, c.ts, c.previous_hash, c.content_hash) for c in reader.changes(0, 1e10)]
        assert rows == [
            ("api", T0 + 4, "sha256:a", "sha256:b"),
            ("web", T0 + 5, None, "sha256:x"),
            ("api", T0 + 6, "sha256:b", "sha256:c"),
        ]
        assert [c.ts for c in reader.changes(T0 + 5, T0 + 10, target="api")] == [T0 + 6]


async def test_a_record_sqlite_cannot_hold_is_skipped_not_blocking_the_rest(tmp_path):
    path = tmp_path / "history.db"
    records = [probe("api", T0 + 1), probe("new", T0 + 2, status=2**70), probe("new", T0 + 3)]
    stats, _ = await store(path, records)
    assert (stats.stored, stats.unstored) == (2, 1)
    with HistoryReader(str(path)) as reader:
        assert [s.ts for s in reader.samples("new", 0, 1e10)] == [T0 + 3]
        assert reader.unstored() == 1  # persisted before the writer ended


async def test_a_batch_of_probe_rows_is_a_few_statements_not_a_few_per_record(tmp_path):
    statements: list[str] = []

    def connect(*args, **kwargs):
        conn = sqlite3.connect(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    path = tmp_path / "history.db"
    writer = StoreWriter(str(path), STORAGE, StoreStats(), connect=connect)
    writer.add(probe("api", T0))
    assert await writer.flush()  # the target is known from now on
    statements.clear()
    for i in range(1, 201):
        writer.add(probe("api", T0 + i, content=str(i // 50), changed=i % 50 == 0))
    writer.add(alert_event("down", "api", ts=T0 + 201))
    assert await writer.flush()
    # one executemany per table (SQLite traces each row it runs), and no savepoint per record
    assert sum(s.startswith("SAVEPOINT") for s in statements) == 1
    with HistoryReader(str(path)) as reader:
        assert len(list(reader.samples("api", 0, 1e10))) == 201
        assert [c.ts for c in reader.changes(0, 1e10, target="api")] == [
            T0 + i for i in (50, 100, 150, 200)
        ]
        assert len(reader.incidents(0, 1e10)) == 1


async def test_writer_state_stays_proportional_to_targets(tmp_path):
    path = tmp_path / "history.db"
    records = [
        probe(f"t{i % 20}", T0 + i, content=str(i // 100), changed=i >= 100 and i % 100 < 20)
        for i in range(30_000)
    ]
    stats, writer = await store(path, records)
    assert stats.stored == 30_000
    assert len(writer._ids) == len(writer._hashes) == 20
    assert len(writer._backlog) == 0

    # and with a file that cannot be written, the backlog stops at its bound
    garbage(tmp_path / "bad.db")
    stats = StoreStats()
    writer = StoreWriter(str(tmp_path / "bad.db"), STORAGE, stats, backlog=1000)
    for i, record in enumerate(records):
        writer.add(record)
        if i % 1000 == 999:
            assert not await writer.flush()
    assert len(writer._backlog) == stats.pending == 1000
    assert stats.unstored == 29_000
    assert len(writer._hashes) == 20


async def test_serve_store_runs_writer_and_maintenance_and_ends_with_the_channel(tmp_path):
    path = str(tmp_path / "history.db")
    stats = StoreStats()
    send, receive = trio.open_memory_channel(100)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_store, receive, path, STORAGE, stats)
        async with send:
            for i in range(10):
                await send.send(probe(ts=T0 + i))
    # the nursery exited: maintenance did not keep it open once the writer was done
    assert stats.stored == 10
    assert count(path, "samples") == 10


# --- failure paths ----------------------------------------------------------------


async def test_unopenable_location_keeps_records_until_it_can_be_created(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the store's directory should be")
    path = str(blocker / "history.db")
    stats = StoreStats()
    writer = StoreWriter(path, STORAGE, stats)
    for i in range(3):
        writer.add(probe(ts=T0 + i))
    assert not await writer.flush()
    assert "FileExistsError" in stats.last_error
    assert (stats.stored, stats.unstored, stats.pending) == (0, 0, 3)

    blocker.unlink()  # the fault is cleared
    writer.add(probe(ts=T0 + 3))
    assert await writer.flush()
    assert (stats.stored, stats.unstored, stats.pending) == (4, 0, 0)
    assert count(path, "samples") == 4


async def test_read_only_file(tmp_path):
    path = str(tmp_path / "history.db")
    await store(path, [probe(ts=T0)])
    faults = Faults()
    faults.read_only = True
    stats = StoreStats()
    writer = StoreWriter(path, STORAGE, stats, backlog=5, connect=faults)
    for i in range(1, 9):
        writer.add(probe(ts=T0 + i))
        assert not await writer.flush()
    assert "attempt to write a readonly database" in stats.last_error
    assert (stats.stored, stats.unstored, stats.pending) == (0, 3, 5)  # the 3 oldest dropped
    assert count(path, "samples") == 1

    faults.read_only = False
    assert await writer.flush()
    assert (stats.stored, stats.unstored, stats.pending) == (5, 3, 0)
    with HistoryReader(path) as reader:
        assert [s.ts for s in reader.samples("api", 0, 1e10)] == [
            T0,
            *(T0 + i for i in (4, 5, 6, 7, 8)),
        ]
        assert reader.unstored() == 3  # persisted with the first batch that could be written


async def test_a_file_replaced_after_an_error_gets_its_targets_again(tmp_path):
    path = str(tmp_path / "history.db")
    stats = StoreStats()
    writer = StoreWriter(path, STORAGE, stats)
    writer.add(probe("api", T0))
    assert await writer.flush()
    writer._db.conn.execute("PRAGMA query_only = ON")  # its connection fails to write
    writer.add(probe("api", T0 + 1))
    assert not await writer.flush()
    remove(path)  # someone starts afresh
    assert await writer.flush()
    with HistoryReader(path) as reader:
        assert [s.ts for s in reader.samples("api", 0, math.inf)] == [T0 + 1]


async def test_disk_full(tmp_path):
    path = str(tmp_path / "history.db")
    await store(path, [probe(ts=T0)])
    faults = Faults()
    faults.full = True
    stats = StoreStats()
    writer = StoreWriter(path, STORAGE, stats, connect=faults)
    for i in range(1, 3001):
        writer.add(probe(f"t{i % 50}", T0 + i))
    assert not await writer.flush()
    assert stats.last_error == "OperationalError: database or disk is full"
    assert (stats.stored, stats.pending) == (0, 3000)
    assert not await writer.flush()  # still full; retried, not lost
    assert faults.opened == 2  # a failed connection is closed and opened afresh
    with closing(
        sqlite3.connect(path, isolation_level=None)
    ) as conn:  # the failed batches left no trace, no damage
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM samples").fetchone()[0] == 1

    faults.full = False
    assert await writer.flush()
    assert (stats.stored, stats.unstored, stats.pending) == (3000, 0, 0)
    assert count(path, "samples") == 3001


HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
"""


async def lock_holder(path):
    """Another process holding an exclusive lock on `path` until its stdin gets a line."""
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-c", HOLD_LOCK, path], stdin=-1, stdout=-1
    )
    seen = b""
    while b"locked\n" not in seen:
        chunk = await proc.stdout.receive_some()
        assert chunk, "lock holder died"
        seen += chunk
    return proc


async def release(proc):
    await proc.stdin.send_all(b"\n")
    assert await proc.wait() == 0


@pytest.mark.subprocess
async def test_database_locked_by_another_process(tmp_path):
    path = str(tmp_path / "history.db")
    await store(path, [probe(ts=T0)])
    proc = await lock_holder(path)
    try:
        stats = StoreStats()
        writer = StoreWriter(path, STORAGE, stats, busy_timeout=0.05)
        for i in range(1, 11):
            writer.add(probe(ts=T0 + i))
        assert not await writer.flush()
        assert stats.last_error == "OperationalError: database is locked"
        assert (stats.stored, stats.pending) == (0, 10)
    finally:
        await release(proc)
    assert await writer.flush()
    assert (stats.stored, stats.unstored) == (10, 0)
    assert count(path, "samples") == 11


@pytest.mark.subprocess
async def test_shutdown_deadline_bounds_the_last_write(tmp_path, autojump_clock):
    """A write stuck behind another process's lock must not hold shutdown past its
    caller's deadline: the writer gives up, counts the records, and returns."""
    path = str(tmp_path / "history.db")
    await store(path, [probe(ts=T0)])
    proc = await lock_holder(path)
    try:
        stats = StoreStats()
        writer = StoreWriter(path, STORAGE, stats, busy_timeout=3600)
        send, receive = trio.open_memory_channel(math.inf)
        for i in range(1, 6):
            send.send_nowait(probe(ts=T0 + i))
        send.close()
        with trio.move_on_after(5) as scope:
            await writer.serve(receive)
        assert scope.cancelled_caught
        assert (stats.stored, stats.unstored, stats.pending) == (0, 5, 0)
    finally:
        await release(proc)


async def test_serve_retries_after_a_backoff_without_new_records(tmp_path, autojump_clock):
    path = str(tmp_path / "history.db")
    await store(path, [probe(ts=T0)])
    faults = Faults()
    faults.read_only = True
    flushes_send, flushes = trio.open_memory_channel(math.inf)
    stats = StoreStats()
    writer = StoreWriter(path, STORAGE, stats, connect=faults, on_flush=flushes_send.send_nowait)
    send, receive = trio.open_memory_channel(100)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.serve, receive)
        for i in range(1, 4):
            send.send_nowait(probe(ts=T0 + i))
        assert await flushes.receive() is False
        faults.read_only = False
        # no new record arrives: the writer retries on its own once the backoff is over
        assert await flushes.receive() is True
        assert (stats.stored, stats.unstored) == (3, 0)
        send.close()
    assert count(path, "samples") == 4


async def test_errors_are_logged_at_most_once_a_minute(tmp_path, mock_clock, caplog):
    caplog.set_level(logging.WARNING, logger="trio_monitor")
    path = tmp_path / "history.db"
    garbage(path)
    stats = StoreStats()
    writer = StoreWriter(str(path), STORAGE, stats)
    for i in range(10):
        writer.add(probe(ts=T0 + i))
        assert not await writer.flush()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "not a trio-monitor history database" in errors[0].getMessage()

    mock_clock.jump(61)
    assert not await writer.flush()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert "(9 more errors since the last report)" in errors[1].getMessage()

    path.unlink()  # cleared: the next write creates a good file
    assert await writer.flush()
    assert "writing again" in caplog.records[-1].getMessage()
    assert stats.stored == 10


# --- maintenance and reading --------------------------------------------------------


def ten_days(targets=("api", "web")):
    """A probe every 10 minutes for 10 days per target; a failure now and then."""
    rng = random.Random(7)
    records = []
    for n, name in enumerate(targets):
        for i in range(10 * 24 * 6):
            ok = rng.random() > 0.1
            latency = round(rng.lognormvariate(3, 1), 3)
            phases = random_phases(rng, latency)
            records.append(
                probe(name, T0 + 37 * n + 600 * i, ok=ok, latency=latency, phases=phases)
            )
    return records


def random_phases(rng, latency):
    """A fresh connection's phases (tls half the time), a reused one's, or none."""
    roll = rng.random()
    if roll < 0.1:
        return None  # no connection
    if roll < 0.3:  # reused
        return {"dns": None, "connect": None, "tls": None, "ttfb": latency, "transfer": 0.2}
    tls = round(rng.lognormvariate(1, 0.5), 3) if roll < 0.65 else None
    connect = round(rng.lognormvariate(0, 0.5), 3)
    return {"dns": 0.05, "connect": connect, "tls": tls, "ttfb": latency, "transfer": 0.3}


def as_sample(r):
    return Sample(
        r.target,
        r.ts,
        r.ok,
        r.latency_ms,
        None if r.ok else str(r.error),
        r.status,
        encode_phases(r.phases_ms),
    )


def expected_rollups(records, target, since, until):
    hours = {}
    for r in records:
        if r.target == target and since <= r.ts < until:
            hours.setdefault(int(r.ts // 3600) * 3600, []).append(as_sample(r))
    return [rollup(target, h, hours[h]) for h in sorted(hours)]


async def test_maintenance_rolls_up_and_prunes_in_small_batches(tmp_path):
    path = str(tmp_path / "history.db")
    records = ten_days()
    await store(
        path,
        [
            *records,
            alert("down", "api", T0 + 3600, reason="timeout"),
            alert("up", "api", T0 + DAY / 2),  # ended before the retention: pruned
            alert("down", "web", T0 + 2 * DAY, reason="dns"),
            alert("up", "web", T0 + 2 * DAY + 600),  # kept
            alert("down", "api", T0 + DAY, reason="connect"),  # still open: kept
            probe("cms", T0 + DAY / 2, content="b", changed=True),  # pruned
            probe("cms", T0 + 5 * DAY, content="c", changed=True),  # kept
        ],
    )
    now = T0 + 10 * DAY
    stats = StoreStats()
    maintenance = StoreMaintenance(
        path, STORAGE, stats, now=lambda: now, hours_per_batch=5, rows_per_batch=7
    )
    assert await maintenance.run_once()
    assert maintenance.batches > 2 * 240 / 5  # one target's 5 hours at a time, at least
    await maintenance.aclose()

    raw_floor = T0 + 3 * DAY  # 7 days of raw samples
    keep_from = T0 + 1 * DAY  # 9 days of rollups
    with HistoryReader(path) as reader:
        for target in ("api", "web"):
            samples = list(reader.samples(target, 0, math.inf))
            assert samples == [
                as_sample(r) for r in records if r.target == target and r.ts >= raw_floor
            ]
            assert reader.raw_floor(target) == raw_floor
            rollups = list(reader.rollups(target, 0, math.inf))
            assert rollups == expected_rollups(records, target, keep_from, raw_floor)
            assert len(rollups) == 48
            assert sum(r.histogram.total for r in rollups) == sum(
                1 for r in records if r.target == target and keep_from <= r.ts < raw_floor and r.ok
            )
        incidents = [(i.target, i.start, i.end) for i in reader.incidents(0, math.inf)]
        assert incidents == [("api", T0 + DAY, None), ("web", T0 + 2 * DAY, T0 + 2 * DAY + 600)]
        assert [c.ts for c in reader.changes(0, math.inf)] == [T0 + 5 * DAY]

    # complete hours that still have raw rows are rolled up too, ahead of pruning
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        rolled = conn.execute("SELECT value FROM meta WHERE key = ?", (ROLLED_THROUGH,)).fetchone()
        assert rolled[0] == now - 2 * 3600  # the last hour ended < 10 minutes ago: not yet
        per_target = conn.execute(
            "SELECT name, count(*) FROM rollups JOIN targets ON id = target_id GROUP BY name"
        ).fetchall()
        # hours from 9 days ago up to the last complete one, one of them "cms"'s
        assert per_target == [("api", 9 * 24 - 1), ("cms", 1), ("web", 9 * 24 - 1)]


async def test_samples_and_rollups_combine_without_double_counting(tmp_path):
    path = str(tmp_path / "history.db")
    records = ten_days()
    await store(path, records)
    maintenance = StoreMaintenance(path, STORAGE, StoreStats(), now=lambda: T0 + 10 * DAY)
    assert await maintenance.run_once()
    await maintenance.aclose()

    def written(target, since, until):
        return [r for r in records if r.target == target and since <= r.ts < until]

    with HistoryReader(path) as reader, reader.snapshot():
        for since, until in [
            (T0 + DAY, T0 + 10 * DAY),  # all that is kept
            (T0 + 2 * DAY + 7200, T0 + 3 * DAY + 7200),  # across the raw floor
            (T0 + 4 * DAY, T0 + 5 * DAY),  # raw only
            (T0 + DAY, T0 + 2 * DAY),  # rollups only
        ]:
            rolled = list(reader.rollups("api", since, until))
            raw = list(reader.samples("api", since, until))
            want = written("api", since, until)
            assert sum(r.checks for r in rolled) + len(raw) == len(want)
            assert sum(r.failures for r in rolled) + sum(not s.ok for s in raw) == sum(
                not r.ok for r in want
            )
            assert not {r.hour for r in rolled} & {int(s.ts // 3600) * 3600 for s in raw}


async def test_late_rows_for_a_pruned_hour_are_added_to_its_rollup(tmp_path):
    path = str(tmp_path / "history.db")
    records = ten_days(("api",))
    await store(path, records)
    now = T0 + 10 * DAY
    maintenance = StoreMaintenance(path, STORAGE, StoreStats(), now=lambda: now)
    assert await maintenance.run_once()
    hour = T0 + 2 * DAY  # rolled up and pruned
    timed = {"dns": None, "connect": 1.0, "tls": 5.0, "ttfb": 990.0, "transfer": 4.0}
    late = probe("api", hour + 1, latency=1000.0, phases=timed)  # a result that arrives long after
    await store(path, [late])
    now += 3600
    assert await maintenance.run_once()
    await maintenance.aclose()
    with HistoryReader(path) as reader:
        assert reader.raw_floor("api") == T0 + 3 * DAY + 3600
        (merged,) = reader.rollups("api", hour, hour + 3600)
        before = expected_rollups(records, "api", hour, hour + 3600)[0]
        assert merged.checks == before.checks + 1
        assert merged.latency_max == 1000.0
        assert merged.latency_sum == pytest.approx(before.latency_sum + 1000.0)
        assert merged.histogram.total == before.histogram.total + 1
        assert merged.phases.histogram("ttfb").total == before.phases.histogram("ttfb").total + 1
        assert merged.phases.histogram("tls").total == before.phases.histogram("tls").total + 1


async def test_maintenance_failures_are_not_raised(tmp_path):
    path = str(tmp_path / "history.db")
    stats = StoreStats()
    maintenance = StoreMaintenance(path, STORAGE, stats)
    assert await maintenance.run_once()  # no file yet: nothing to do, nothing created
    assert contents(path) is None
    garbage(path)
    assert not await maintenance.run_once()
    assert "not a trio-monitor history database" in stats.last_error
    await maintenance.aclose()


async def test_maintenance_service_runs_every_period_until_cancelled(tmp_path, autojump_clock):
    path = str(tmp_path / "history.db")
    records = ten_days(("api",))
    await store(path, records)
    passes = []
    second = trio.Event()

    def now():
        passes.append(trio.current_time())
        if len(passes) == 2:
            second.set()
        return T0 + 10 * DAY

    async with trio.open_nursery() as nursery:
        service = partial(serve_store_maintenance, period=300, now=now)
        await nursery.start(service, path, STORAGE, StoreStats())
        await second.wait()
        nursery.cancel_scope.cancel()
    assert passes[1] - passes[0] >= 300
    with HistoryReader(path) as reader:
        assert reader.raw_floor("api") == T0 + 3 * DAY
        assert len(list(reader.rollups("api", 0, math.inf))) == 48


async def test_bytes_per_target_per_day(tmp_path):
    """1 probe a minute: the raw rows of a target-day, and its 24 rollups."""
    path = str(tmp_path / "history.db")
    targets = 20
    rng = random.Random(3)
    records = [
        probe(
            f"target-{t:03d}", T0 + 60 * i + t + 0.123, latency=round(rng.lognormvariate(4, 0.5), 3)
        )
        for t in range(targets)
        for i in range(1440)
    ]
    await store(path, records)
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("VACUUM")
    per_target_day = len(contents(path)) / targets
    assert per_target_day < 48 * 1024, f"{per_target_day:.0f} bytes per target per day"


async def test_a_flapping_target_that_settles_opens_or_closes_its_incident(tmp_path):
    path = tmp_path / "history.db"
    await store(
        path,
        [
            # up when it started flapping, settled down: the held "down" never came
            alert("flap_end", "api", T0 + 100, since=T0 + 40, state="DOWN", changes=7),
            # down when it started flapping, settled up: its outage ended at `since`
            alert("down", "web", T0 + 10, since=T0 + 10, reason="dns"),
            alert("flap_end", "web", T0 + 100, since=T0 + 40, state="UP", changes=6),
        ],
    )
    with HistoryReader(str(path)) as reader:
        assert [(i.target, i.start, i.end, i.error) for i in reader.incidents(0, math.inf)] == [
            ("web", T0 + 10, T0 + 40, "dns"),
            ("api", T0 + 40, None, "flapping"),
        ]


def stream_mark(path, stream):
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (f"stream:{stream}",)).fetchone()
    return None if row is None else row[0]


async def test_a_stream_mark_is_stored_with_the_records_before_it(tmp_path):
    """Cluster mode folds Redis streams into history: how far it got is committed in
    the same transaction as what it folded, and a failed write keeps both to retry."""
    path = str(tmp_path / "history.db")
    await store(path, [probe(ts=T0)])
    faults = Faults()
    faults.read_only = True
    writer = StoreWriter(path, STORAGE, StoreStats(), connect=faults)
    writer.add(probe("api", T0 + 1))
    writer.add(StreamMark("{tm}:results", "5-0"))
    assert writer.due
    assert not await writer.flush()
    assert stream_mark(path, "{tm}:results") is None
    assert count(path, "samples") == 1
    writer.add(StreamMark("{tm}:results", "7-0"))
    faults.read_only = False
    assert await writer.flush()
    assert stream_mark(path, "{tm}:results") == "7-0"
    assert count(path, "samples") == 2
