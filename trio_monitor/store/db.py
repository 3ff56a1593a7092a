"""The embedded history store: probe results, hourly rollups, incidents and content
changes in one SQLite file (stdlib sqlite3, WAL, synchronous=NORMAL).

Three parts, each with its own connection:

- `serve_store_writer` consumes the records a `Fanout` channel hands it and commits
  whatever is queued (up to BATCH records) in one transaction, in a worker thread, so
  probing never waits for the disk. When the file cannot be written (read-only, disk
  full, locked by another process beyond the busy timeout) it keeps consuming, holds
  a bounded backlog (oldest dropped first, counted in `StoreStats.unstored`), logs at
  most once a minute and retries with a backoff. It never raises into the monitor.
- `serve_store_maintenance` rolls every complete hour up into `rollups` and prunes raw
  samples after `raw_retention` and rollups, incidents and changes after
  `rollup_retention`, a small batch per worker-thread call.
- `serve_store` runs both in the services nursery and ends once the writer has
  drained its closed channel.
- `HistoryReader` (sync; run it in a thread) reads over its own read-only connection.

Raw samples are pruned on whole hours, and an hour's rollup is recomputed from its raw
rows in the transaction that deletes them. A target's history is therefore rollups for
the hours before its first raw sample (its "raw floor") and raw samples from there on:
`HistoryReader.rollups` returns only the former, so callers can combine both without
counting an hour twice (inside `HistoryReader.snapshot()` for a consistent view).

Schema changes are migrations: MIGRATIONS[i] takes a file from user_version i to i + 1,
in one transaction. A file with a newer version, or one that is no SQLite database (or
another application's), is refused with a one-line StoreError.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from itertools import groupby
from pathlib import Path
from typing import Any

import trio
from attrs import define

from .._config import StorageSection
from .._errors import StoreError
from .._records import AlertEvent, ProbeResult, Record
from .records import ContentChange, Histogram, HourRollup, Incident, Sample, rollup

log = logging.getLogger("trio_monitor")

HOUR = 3600
BATCH = 1000  # records taken from the channel for one transaction at most
BACKLOG = 50_000  # records held while the file cannot be written; beyond: oldest dropped
BUSY_TIMEOUT = 5.0  # seconds SQLite waits for another connection's lock
RETRY_MIN, RETRY_MAX = 1.0, 30.0  # backoff between write attempts after a failure
LOG_EVERY = 60.0  # seconds between two logged store errors at least
CLOSE_TIMEOUT = 5.0  # seconds closing a connection may take on the way out
ROLLUP_LAG = 600.0  # an hour is rolled up this long after its end (late probe results)
HOURS_PER_BATCH = 24  # hours of one target per maintenance transaction
ROWS_PER_BATCH = 5000  # rows deleted per maintenance transaction

APPLICATION_ID = 0x54524D48  # "TRMH": PRAGMA application_id of trio-monitor history files

# MIGRATIONS[i] takes a database from user_version i to i + 1. Append, never edit.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        f"PRAGMA application_id = {APPLICATION_ID}",
        "CREATE TABLE targets (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)",
        """CREATE TABLE samples (
            target_id INTEGER NOT NULL, ts REAL NOT NULL, ok INTEGER NOT NULL,
            status INTEGER, latency_ms REAL, error TEXT,
            PRIMARY KEY (target_id, ts)) WITHOUT ROWID""",
        """CREATE TABLE rollups (
            target_id INTEGER NOT NULL, hour INTEGER NOT NULL,
            checks INTEGER NOT NULL, failures INTEGER NOT NULL, latency_sum REAL NOT NULL,
            latency_min REAL, latency_max REAL, histogram BLOB NOT NULL,
            PRIMARY KEY (target_id, hour)) WITHOUT ROWID""",
        """CREATE TABLE incidents (
            id INTEGER PRIMARY KEY, target_id INTEGER NOT NULL,
            start REAL NOT NULL, "end" REAL, error TEXT)""",
        "CREATE INDEX incidents_target_start ON incidents (target_id, start)",
        """CREATE TABLE changes (
            target_id INTEGER NOT NULL, ts REAL NOT NULL, previous_hash TEXT, content_hash TEXT,
            PRIMARY KEY (target_id, ts)) WITHOUT ROWID""",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)

# meta keys
ROLLED_THROUGH = "rolled_through"  # start of the last hour rolled up
RAW_FLOOR = "raw_floor"  # raw samples before this hour have been pruned
UNSTORED = "unstored"  # records that could not be stored, all runs together

Connect = Callable[..., sqlite3.Connection]


@define
class StoreStats:
    """The writer's counters, for logs, round lines and (later) a health endpoint."""

    stored: int = 0  # records written (probe results, incident opens/closes)
    unstored: int = 0  # records that could not be stored (this run)
    last_error: str | None = None  # the last write or maintenance error, one line
    pending: int = 0  # records waiting in the backlog for the file to be writable


# --- opening and migrating ---------------------------------------------------------


def _version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def _too_new(path: str, version: int) -> StoreError:
    return StoreError(
        f"{path}: history database version {version} is newer than this trio-monitor "
        f"supports ({SCHEMA_VERSION}); upgrade trio-monitor or use another storage.path"
    )


def _not_ours(path: str, why: str) -> StoreError:
    return StoreError(f"{path}: not a trio-monitor history database ({why})")


def _check(conn: sqlite3.Connection, path: str) -> int:
    """-> the file's schema version; StoreError if it is not ours or too new."""
    try:
        # one statement, so one consistent view while another connection migrates
        version, app, tables = conn.execute(
            "SELECT (SELECT user_version FROM pragma_user_version),"
            " (SELECT application_id FROM pragma_application_id),"
            " (SELECT count(*) FROM sqlite_master)"
        ).fetchone()
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
            raise _not_ours(path, str(exc)) from None
        raise
    if app not in (0, APPLICATION_ID):
        raise _not_ours(path, f"application id {app:#x}")
    if version == 0 and tables:
        raise _not_ours(path, "it holds other tables")
    if version > SCHEMA_VERSION:
        raise _too_new(path, version)
    return version


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> None:
    """Apply MIGRATIONS in order up to version `target`, each in one transaction.

    The version is read again under the write lock, so two connections migrating the
    same file at once apply each step once. `conn` must be in autocommit mode
    (isolation_level=None)."""
    while _version(conn) < target:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = _version(conn)
            if version < target:
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise


def open_store(
    path: str, *, busy_timeout: float = BUSY_TIMEOUT, connect: Connect = sqlite3.connect
) -> sqlite3.Connection:
    """Open (creating or migrating) the history file for writing. Blocking: call it in
    a thread. Raises StoreError (not ours, too new), sqlite3.Error or OSError."""
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    conn = connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    try:
        version = _check(conn, path)
        _use_wal(conn, busy_timeout)
        conn.execute("PRAGMA synchronous = NORMAL")
        if version < SCHEMA_VERSION:
            migrate(conn)
            _check(conn, path)  # another process may have migrated it further meanwhile
    except BaseException:
        conn.close()
        raise
    return conn


def _use_wal(conn: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch to WAL (a no-op once the file is WAL). Switching needs the file to
    itself and SQLite does not wait for that, so a connection opening the new file
    at the same moment is waited for here, up to the busy timeout."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error: never a partial write."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        _rollback(conn)
        raise


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, StoreError) else f"{type(exc).__name__}: {text}"


def _reason(exc: BaseException, path: str) -> str:
    """One line for a log message that already names the file."""
    return _one_line(exc).removeprefix(f"{path}: ")


# Errors of the file or its disk: keep the records and try again later. Anything else
# raised while writing a batch is the data's fault (a value SQLite cannot hold) and is
# isolated record by record.
_ENVIRONMENT = (sqlite3.OperationalError, OSError, StoreError)


def _environmental(exc: BaseException) -> bool:
    # a bare DatabaseError is a damaged file ("malformed", "not a database")
    return isinstance(exc, _ENVIRONMENT) or type(exc) is sqlite3.DatabaseError


class _ErrorLog:
    """Log store errors at most once per LOG_EVERY seconds (trio clock); log the
    recovery once after an error that was logged."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._next = -math.inf
        self._suppressed = 0
        self._owed_recovery = False

    def error(self, message: str, exc: BaseException | None = None) -> None:
        now = trio.current_time()
        if now < self._next:
            self._suppressed += 1
            return
        more = (
            f" ({self._suppressed} more errors since the last report)" if self._suppressed else ""
        )
        log.error("%s: %s%s", self.what, message, more, exc_info=exc)
        self._next, self._suppressed, self._owed_recovery = now + LOG_EVERY, 0, True

    def recovered(self, message: str) -> None:
        if self._owed_recovery:
            self._owed_recovery = False
            log.warning("%s: %s", self.what, message)


async def _close_soon(conn: sqlite3.Connection | None) -> None:
    """Close a connection from a `finally`: shielded, in a thread, bounded in time."""
    if conn is None:
        return
    with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
        await trio.to_thread.run_sync(conn.close, abandon_on_cancel=True)


class _Db:
    """One connection, used by one task at a time, always from a worker thread."""

    def __init__(self, path: str, busy_timeout: float, connect: Connect) -> None:
        self.path, self.busy_timeout, self.connect = path, busy_timeout, connect
        self.conn: sqlite3.Connection | None = None

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(conn, *args) in a worker thread, opening the connection first if needed."""
        try:
            if self.conn is None:
                self.conn = await trio.to_thread.run_sync(
                    lambda: open_store(
                        self.path, busy_timeout=self.busy_timeout, connect=self.connect
                    ),
                    abandon_on_cancel=True,
                )
            return await trio.to_thread.run_sync(fn, self.conn, *args, abandon_on_cancel=True)
        except trio.Cancelled:
            # An abandoned thread may still be using the connection: it is its own now
            # (SQLite ends or rolls back its transaction); we never touch it again.
            self.conn = None
            raise

    async def reset(self) -> None:
        """After an error: close, and open afresh on the next attempt."""
        conn, self.conn = self.conn, None
        await _close_soon(conn)


# --- the writer --------------------------------------------------------------------

# Backlog entries, one per record, as compact tuples:
#   ("s", target, ts, ok, status, latency_ms, error, change)  change: (previous, new) | None
#   ("d", target, start, error)                                  a "down" alert
#   ("u", target, end)                                           an "up" alert
Op = tuple


def _write_batch(
    conn: sqlite3.Connection, ops: Iterable[Op], known: dict[str, int], unstored: int
) -> tuple[dict[str, int], int, int, str]:
    """Write `ops` and add `unstored` to the persisted count, in one transaction.
    -> (new target ids, records stored, records skipped, why the first was). A record SQLite cannot hold
    is skipped (rolled back to its savepoint, and counted as unstored), never allowed
    to block the others; any error of the file rolls everything back."""
    new: dict[str, int] = {}

    def target_id(name: str) -> int:
        tid = known.get(name) or new.get(name)
        if tid is None:
            conn.execute("INSERT OR IGNORE INTO targets (name) VALUES (?)", (name,))
            tid = new[name] = conn.execute(
                "SELECT id FROM targets WHERE name = ?", (name,)
            ).fetchone()[0]
        return tid

    def write(op: Op, tid: int) -> None:
        kind = op[0]
        if kind == "s":
            conn.execute(
                "INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?, ?)", (tid, *op[2:7])
            )
            if op[7] is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO changes VALUES (?, ?, ?, ?)", (tid, op[2], *op[7])
                )
        elif kind == "d":
            open_ = conn.execute(
                'SELECT 1 FROM incidents WHERE target_id = ? AND "end" IS NULL LIMIT 1', (tid,)
            ).fetchone()
            if open_ is None:
                conn.execute(
                    "INSERT INTO incidents (target_id, start, error) VALUES (?, ?, ?)",
                    (tid, op[2], op[3]),
                )
        else:
            conn.execute(
                'UPDATE incidents SET "end" = ? WHERE target_id = ? AND "end" IS NULL',
                (op[2], tid),
            )

    stored = skipped = 0
    why = ""  # why the first skipped record was skipped
    with _transaction(conn):
        for op in ops:
            tid = target_id(op[1])  # outside the savepoint: a skipped record keeps its target
            conn.execute("SAVEPOINT record")
            try:
                write(op, tid)
            except Exception as exc:
                if _environmental(exc):
                    raise
                conn.execute("ROLLBACK TO record")
                skipped += 1
                why = why or f"{_one_line(exc)}: {op!r}"
            else:
                stored += 1
            conn.execute("RELEASE record")
        if unstored + skipped:
            conn.execute(
                "INSERT INTO meta VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                (UNSTORED, unstored + skipped),
            )
    return new, stored, skipped, why


class StoreWriter:
    """The writer's state: O(targets) dicts and the bounded backlog. Driven by
    `serve` (or, in tests, by `add` and `flush`)."""

    def __init__(
        self,
        store_path: str,
        storage: StorageSection,
        stats: StoreStats,
        *,
        batch: int = BATCH,
        backlog: int = BACKLOG,
        busy_timeout: float = BUSY_TIMEOUT,
        retry_min: float = RETRY_MIN,
        retry_max: float = RETRY_MAX,
        connect: Connect = sqlite3.connect,
        on_flush: Callable[[bool], None] | None = None,
    ) -> None:
        self.path, self.storage, self.stats = store_path, storage, stats
        self.batch, self.capacity = batch, backlog
        self.retry_min, self.retry_max = retry_min, retry_max
        self.on_flush = on_flush
        self._db = _Db(store_path, busy_timeout, connect)
        self._ids: dict[str, int] = {}  # target name -> targets.id, once committed
        self._hashes: dict[str, str | None] = {}  # target name -> its last ok content hash
        self._backlog: deque[Op] = deque()
        self._persisted = 0  # of stats.unstored, already added to meta
        self._retry_delay = retry_min
        self._retry_at = -math.inf
        self._errors = _ErrorLog(f"history store {store_path}")
        self._skips = _ErrorLog(f"history store {store_path}: cannot store a record")

    def add(self, record: Record) -> None:
        """Queue the rows for one record (O(1), no I/O)."""
        if isinstance(record, ProbeResult):
            change = None
            if record.ok:
                if record.content_changed:
                    change = (self._hashes.get(record.target), record.content_hash)
                self._hashes[record.target] = record.content_hash
            op: Op = (
                "s",
                record.target,
                record.ts,
                int(record.ok),
                record.status,
                record.latency_ms,
                None if record.error is None else str(record.error),
                change,
            )
        elif isinstance(record, AlertEvent) and record.event == "down":
            start = record.ts if record.since is None else record.since
            op = ("d", record.target, start, record.reason or "unknown")
        elif isinstance(record, AlertEvent) and record.event == "up":
            op = ("u", record.target, record.ts)
        else:
            return
        self._backlog.append(op)
        self._trim()

    def _trim(self) -> None:
        while len(self._backlog) > self.capacity:
            self._backlog.popleft()
            self.stats.unstored += 1
        self.stats.pending = len(self._backlog)

    def _lose_backlog(self, why: str) -> None:
        if self._backlog:
            n = len(self._backlog)
            self._backlog.clear()
            self.stats.unstored += n
            self.stats.pending = 0
            log.error("history: %d records could not be stored (%s)", n, why)

    @property
    def due(self) -> bool:
        """Is there something to write, and is no backoff in force?"""
        dirty = self._backlog or self._persisted != self.stats.unstored
        return bool(dirty) and trio.current_time() >= self._retry_at

    async def flush(self) -> bool:
        """Write the whole backlog in one transaction. -> True when it is stored.
        On failure the backlog stays (bounded), the error is logged (throttled) and
        a backoff starts. Never raises, except trio.Cancelled."""
        ops, self._backlog = self._backlog, deque()
        unstored = self.stats.unstored - self._persisted
        try:
            new, stored, skipped, why = await self._db.run(_write_batch, ops, self._ids, unstored)
        except trio.Cancelled:
            ops.extend(self._backlog)
            self._backlog = ops
            raise
        except Exception as exc:
            ops.extend(self._backlog)
            self._backlog = ops
            self._trim()
            self.stats.last_error = _one_line(exc)
            self._retry_at = trio.current_time() + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, self.retry_max)
            self._errors.error(
                f"cannot write, keeping up to {self.capacity} records to retry "
                f"({self.stats.unstored} lost so far): {_reason(exc, self.path)}",
                None if _environmental(exc) else exc,
            )
            await self._db.reset()
            self._ids.clear()  # the file opened next time may be another one
            ok = False
        else:
            self._ids.update(new)
            self._persisted += unstored + skipped
            self.stats.stored += stored
            self.stats.unstored += skipped
            self.stats.pending = len(self._backlog)
            self._retry_delay, self._retry_at = self.retry_min, -math.inf
            self._errors.recovered(
                f"writing again ({self.stats.unstored} records could not be stored)"
            )
            if skipped:
                self._skips.error(f"{skipped} records skipped, e.g. {why}")
            ok = True
        if self.on_flush is not None:
            self.on_flush(ok)
        return ok

    async def serve(
        self,
        receive: trio.MemoryReceiveChannel[Record],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        try:
            async with receive:
                task_status.started()
                closed = False
                while not closed:
                    # wait for records; with a backlog held back, only until its retry time
                    with trio.move_on_at(self._retry_at if self._backlog else math.inf):
                        try:
                            self.add(await receive.receive())
                            for _ in range(self.batch - 1):
                                self.add(receive.receive_nowait())
                        except trio.WouldBlock:
                            pass
                        except trio.EndOfChannel:
                            closed = True
                    if self.due and not closed:
                        await self.flush()
                # the channel is closed: one last attempt, whatever the backoff
                if (self._backlog or self._persisted != self.stats.unstored) and not (
                    await self.flush()
                ):
                    self._lose_backlog(f"at shutdown: {self.stats.last_error}")
        finally:
            self._lose_backlog("stopped before they could be written")
            conn, self._db.conn = self._db.conn, None
            await _close_soon(conn)


async def serve_store_writer(
    receive: trio.MemoryReceiveChannel[Record],
    store_path: str,
    storage: StorageSection,
    stats: StoreStats,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Store every record from `receive` until the channel is closed and drained.

    Probe results become samples (and content changes); "down"/"up" alerts open and
    close incidents. Never raises because of the file: failures are logged and
    counted in `stats`. Give it a deadline on shutdown (the final write is bounded
    by it)."""
    await StoreWriter(store_path, storage, stats).serve(receive, task_status=task_status)


# --- maintenance: rollups and retention ----------------------------------------------


def _hour(ts: float) -> int:
    return int(ts // HOUR) * HOUR


def _get_meta(conn: sqlite3.Connection, key: str) -> Any:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def _set_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


def _sample(name: str, row: tuple) -> Sample:
    ts, ok, status, latency, error = row
    return Sample(name, ts, bool(ok), latency, error, status)


def _rollup_from_row(name: str, row: tuple) -> HourRollup:
    hour, checks, failures, total, low, high, blob = row
    return HourRollup(name, hour, checks, failures, total, low, high, Histogram.from_blob(blob))


def _merge(a: HourRollup, b: HourRollup) -> HourRollup:
    hist = Histogram(dict(a.histogram.counts))
    hist.merge(b.histogram)
    lows = [v for v in (a.latency_min, b.latency_min) if v is not None]
    highs = [v for v in (a.latency_max, b.latency_max) if v is not None]
    return HourRollup(
        a.target,
        a.hour,
        a.checks + b.checks,
        a.failures + b.failures,
        a.latency_sum + b.latency_sum,
        min(lows) if lows else None,
        max(highs) if highs else None,
        hist,
    )


_SAMPLE_COLUMNS = "ts, ok, status, latency_ms, error"
_ROLLUP_COLUMNS = "hour, checks, failures, latency_sum, latency_min, latency_max, histogram"


def _put_rollup(conn: sqlite3.Connection, tid: int, r: HourRollup) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO rollups VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            tid,
            r.hour,
            r.checks,
            r.failures,
            r.latency_sum,
            r.latency_min,
            r.latency_max,
            r.histogram.to_blob(),
        ),
    )


def _hours(name: str, rows: Iterable[tuple]) -> Iterator[HourRollup]:
    """Rows ordered by ts -> one rollup per hour that has any."""
    for hour, group in groupby(rows, key=lambda row: _hour(row[0])):
        yield rollup(name, hour, (_sample(name, row) for row in group))


def _first_sample(conn: sqlite3.Connection, tid: int) -> float | None:
    return conn.execute("SELECT min(ts) FROM samples WHERE target_id = ?", (tid,)).fetchone()[0]


def _roll_hours(conn: sqlite3.Connection, tid: int, name: str, start: int, end: int) -> int:
    """(Re)compute the rollups of one target's hours in [start, end). -> rollups written."""
    written = 0
    with _transaction(conn):
        rows = conn.execute(
            f"SELECT {_SAMPLE_COLUMNS} FROM samples"
            " WHERE target_id = ? AND ts >= ? AND ts < ? ORDER BY ts",
            (tid, start, end),
        )
        for r in _hours(name, rows):
            _put_rollup(conn, tid, r)
            written += 1
    return written


def _prune_raw(
    conn: sqlite3.Connection, tid: int, name: str, cut: int, old_floor: int | None, hours: int
) -> bool:
    """Fold up to `hours` of one target's raw hours before `cut` into their rollups and
    delete them, in one transaction. -> whether raw rows before `cut` remain."""
    with _transaction(conn):
        first = _first_sample(conn, tid)
        if first is None or first >= cut:
            return False
        end = min(cut, _hour(first) + hours * HOUR)
        rows = conn.execute(
            f"SELECT {_SAMPLE_COLUMNS} FROM samples WHERE target_id = ? AND ts < ? ORDER BY ts",
            (tid, end),
        )
        for r in _hours(name, rows):
            if old_floor is not None and r.hour < old_floor:
                # late rows for an hour already pruned: add them to what it had
                row = conn.execute(
                    f"SELECT {_ROLLUP_COLUMNS} FROM rollups WHERE target_id = ? AND hour = ?",
                    (tid, r.hour),
                ).fetchone()
                if row is not None:
                    r = _merge(_rollup_from_row(name, row), r)
            _put_rollup(conn, tid, r)
        conn.execute("DELETE FROM samples WHERE target_id = ? AND ts < ?", (tid, end))
        return end < cut


def _delete_some(conn: sqlite3.Connection, sql: str, args: tuple) -> int:
    with _transaction(conn):
        return conn.execute(sql, args).rowcount


def _read_meta(conn: sqlite3.Connection) -> tuple[list[tuple[int, str]], Any, Any]:
    targets = conn.execute("SELECT id, name FROM targets ORDER BY id").fetchall()
    return targets, _get_meta(conn, ROLLED_THROUGH), _get_meta(conn, RAW_FLOOR)


def _write_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    with _transaction(conn):
        _set_meta(conn, key, value)


class StoreMaintenance:
    """Rollups and retention, one small transaction per worker-thread call."""

    def __init__(
        self,
        store_path: str,
        storage: StorageSection,
        stats: StoreStats,
        *,
        now: Callable[[], float] = time.time,
        busy_timeout: float = BUSY_TIMEOUT,
        hours_per_batch: int = HOURS_PER_BATCH,
        rows_per_batch: int = ROWS_PER_BATCH,
        connect: Connect = sqlite3.connect,
        on_pass: Callable[[bool], None] | None = None,
    ) -> None:
        self.path, self.storage, self.stats, self.now = store_path, storage, stats, now
        self.hours, self.rows = hours_per_batch, rows_per_batch
        self.on_pass = on_pass
        self.batches = 0  # worker-thread calls (each one transaction at most), all passes
        self._db = _Db(store_path, busy_timeout, connect)
        self._errors = _ErrorLog(f"history maintenance {store_path}")

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.batches += 1
        return await self._db.run(fn, *args)

    async def run_once(self) -> bool:
        """One pass: roll up, then prune. -> False if it failed (logged, throttled)."""
        try:
            if self._db.conn is None and not await trio.to_thread.run_sync(
                os.path.exists, self.path
            ):
                ok = True  # nothing written yet; the writer creates the file
            else:
                now = self.now()
                targets, rolled, floor = await self._run(_read_meta)
                await self._rollups(now, targets, rolled)
                await self._prune(now, targets, floor)
                ok = True
        except Exception as exc:
            self.stats.last_error = f"maintenance: {_one_line(exc)}"
            self._errors.error(_reason(exc, self.path), None if _environmental(exc) else exc)
            await self._db.reset()
            ok = False
        else:
            self._errors.recovered("working again")
        if self.on_pass is not None:
            self.on_pass(ok)
        return ok

    async def _rollups(self, now: float, targets: list[tuple[int, str]], rolled: Any) -> None:
        end = _hour(now - ROLLUP_LAG)  # hours before this one are complete
        if rolled is not None and rolled + HOUR >= end:
            return
        for tid, name in targets:
            first = await self._run(_first_sample, tid)
            if first is None:
                continue  # nothing kept for this target
            start = _hour(first) if rolled is None else max(_hour(first), int(rolled) + HOUR)
            for chunk in range(start, end, self.hours * HOUR):
                await self._run(_roll_hours, tid, name, chunk, min(end, chunk + self.hours * HOUR))
        await self._run(_write_meta, ROLLED_THROUGH, end - HOUR)

    async def _prune(self, now: float, targets: list[tuple[int, str]], floor: Any) -> None:
        cut = _hour(now - self.storage.raw_retention)
        if floor is not None and cut <= floor:
            return  # done for this hour (retention is kept to the hour)
        for tid, name in targets:
            while await self._run(_prune_raw, tid, name, cut, floor, self.hours):
                pass
        keep = now - self.storage.rollup_retention
        last_hour = keep - HOUR  # a rollup goes once all of its hour is older than `keep`
        for tid, _name in targets:
            for sql, args in (
                (
                    "DELETE FROM rollups WHERE target_id = ? AND hour IN (SELECT hour FROM rollups"
                    " WHERE target_id = ? AND hour <= ? LIMIT ?)",
                    (tid, tid, last_hour, self.rows),
                ),
                (
                    "DELETE FROM changes WHERE target_id = ? AND ts IN (SELECT ts FROM changes"
                    " WHERE target_id = ? AND ts < ? LIMIT ?)",
                    (tid, tid, keep, self.rows),
                ),
            ):
                while await self._run(_delete_some, sql, args) >= self.rows:
                    pass
        sql = 'DELETE FROM incidents WHERE id IN (SELECT id FROM incidents WHERE "end" < ? LIMIT ?)'
        while await self._run(_delete_some, sql, (keep, self.rows)) >= self.rows:
            pass
        await self._run(_write_meta, RAW_FLOOR, cut)

    async def aclose(self) -> None:
        conn, self._db.conn = self._db.conn, None
        await _close_soon(conn)


async def serve_store_maintenance(
    store_path: str,
    storage: StorageSection,
    stats: StoreStats,
    *,
    period: float = 300.0,
    now: Callable[[], float] = time.time,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Roll up and prune every `period` seconds (first pass at once) until cancelled.
    Never raises because of the file: failures are logged (throttled) and retried
    on the next pass."""
    maintenance = StoreMaintenance(store_path, storage, stats, now=now)
    task_status.started()
    try:
        while True:
            await maintenance.run_once()
            await trio.sleep(period)
    finally:
        await maintenance.aclose()


async def serve_store(
    receive: trio.MemoryReceiveChannel[Record],
    store_path: str,
    storage: StorageSection,
    stats: StoreStats,
    *,
    period: float = 300.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The writer and the maintenance together: ends when the writer has drained its
    closed channel (maintenance is cancelled then). One call for the services nursery."""
    async with trio.open_nursery() as nursery:
        maintenance = functools.partial(serve_store_maintenance, period=period)
        await nursery.start(maintenance, store_path, storage, stats)
        await serve_store_writer(receive, store_path, storage, stats, task_status=task_status)
        nursery.cancel_scope.cancel()


# --- reads ---------------------------------------------------------------------------


class HistoryReader:
    """Read-only access to a history file, for reports and the API. Blocking: call its
    methods in a worker thread, one call at a time (any thread). Ranges are
    [since, until) in unix seconds; a rollup's time is the start of its hour."""

    def __init__(self, path: str, *, busy_timeout: float = BUSY_TIMEOUT) -> None:
        self.path = path
        if not os.path.exists(path):
            raise StoreError(f"no history yet at {path}: run the monitor first")
        uri = Path(path).absolute().as_uri() + "?mode=ro"
        try:
            conn = sqlite3.connect(
                uri, uri=True, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open: {exc}") from None
        try:
            version = _check(conn, path)
        except sqlite3.Error as exc:
            conn.close()
            raise StoreError(f"{path}: cannot read: {exc}") from None
        except BaseException:
            conn.close()
            raise
        if version < SCHEMA_VERSION:
            conn.close()
            if version == 0:
                raise StoreError(f"no history yet at {path}: run the monitor first")
            raise StoreError(
                f"{path}: history database version {version} is older than this "
                f"trio-monitor's ({SCHEMA_VERSION}): run the monitor once to upgrade it"
            )
        self._conn = conn

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> HistoryReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[HistoryReader]:
        """Every read inside sees the same state of the file (one read transaction),
        so samples and rollups combine exactly even while maintenance prunes."""
        self._conn.execute("BEGIN")
        try:
            yield self
        finally:
            self._conn.execute("COMMIT")

    def _id(self, target: str) -> int | None:
        row = self._conn.execute("SELECT id FROM targets WHERE name = ?", (target,)).fetchone()
        return None if row is None else row[0]

    def targets(self) -> list[str]:
        return [name for (name,) in self._conn.execute("SELECT name FROM targets ORDER BY name")]

    def samples(self, target: str, since: float, until: float) -> Iterator[Sample]:
        """Raw probes in [since, until), oldest first."""
        tid = self._id(target)
        if tid is None:
            return iter(())
        rows = self._conn.execute(
            f"SELECT {_SAMPLE_COLUMNS} FROM samples"
            " WHERE target_id = ? AND ts >= ? AND ts < ? ORDER BY ts",
            (tid, since, until),
        )
        return (_sample(target, row) for row in rows)

    def raw_floor(self, target: str) -> float | None:
        """The hour of the target's oldest raw sample (None: none kept)."""
        tid = self._id(target)
        first = None if tid is None else _first_sample(self._conn, tid)
        return None if first is None else _hour(first)

    def rollups(self, target: str, since: float, until: float) -> Iterator[HourRollup]:
        """Hourly rollups of the hours in [since, until) whose raw samples are gone
        (before the target's raw floor), oldest first: combine with `samples`."""
        tid = self._id(target)
        if tid is None:
            return iter(())
        floor = self.raw_floor(target)
        end = until if floor is None else min(until, floor)
        rows = self._conn.execute(
            f"SELECT {_ROLLUP_COLUMNS} FROM rollups"
            " WHERE target_id = ? AND hour >= ? AND hour < ? ORDER BY hour",
            (tid, since, end),
        )
        return (_rollup_from_row(target, row) for row in rows)

    def incidents(self, since: float, until: float, target: str | None = None) -> list[Incident]:
        """Incidents overlapping [since, until), open ones included, by start."""
        sql = (
            'SELECT t.name, i.start, i."end", i.error FROM incidents i'
            " JOIN targets t ON t.id = i.target_id"
            ' WHERE i.start < ? AND (i."end" IS NULL OR i."end" > ?)'
        )
        args: tuple = (until, since)
        if target is not None:
            sql += " AND t.name = ?"
            args += (target,)
        rows = self._conn.execute(sql + " ORDER BY i.start, i.id", args)
        return [Incident(name, start, end, error) for name, start, end, error in rows]

    def changes(self, since: float, until: float, target: str | None = None) -> list[ContentChange]:
        """Content changes in [since, until), oldest first."""
        sql = (
            "SELECT t.name, c.ts, c.previous_hash, c.content_hash FROM changes c"
            " JOIN targets t ON t.id = c.target_id WHERE c.ts >= ? AND c.ts < ?"
        )
        args: tuple = (since, until)
        if target is not None:
            sql += " AND t.name = ?"
            args += (target,)
        rows = self._conn.execute(sql + " ORDER BY c.ts, t.name", args)
        return [ContentChange(*row) for row in rows]

    def recent(self, target: str, n: int) -> list[Sample]:
        """The target's last `n` raw samples, oldest first."""
        tid = self._id(target)
        if tid is None:
            return []
        rows = self._conn.execute(
            f"SELECT {_SAMPLE_COLUMNS} FROM samples WHERE target_id = ? ORDER BY ts DESC LIMIT ?",
            (tid, n),
        ).fetchall()
        return [_sample(target, row) for row in reversed(rows)]

    def unstored(self) -> int:
        """Records the monitor could not store, all runs together."""
        value = _get_meta(self._conn, UNSTORED)
        return 0 if value is None else int(value)
