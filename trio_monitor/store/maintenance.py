"""Rollups and retention: `serve_store_maintenance` rolls every complete hour up into
`rollups` and prunes raw samples after `raw_retention` and rollups, incidents,
changes, silences and finished outbox rows (delivered or given up) after `rollup_retention`, a
small batch per worker-thread call.

Raw samples are pruned on whole hours, and an hour's rollup is recomputed from its raw
rows in the transaction that deletes them (see the package docstring for what that
means to readers).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import groupby
from typing import Any

import trio

from .._config import StorageSection
from ._db import Db, ErrorLog, T, Ts, environmental, one_line, reason
from ._sql import (
    HOUR,
    RAW_FLOOR,
    ROLLED_THROUGH,
    ROLLUP_COLUMNS,
    SAMPLE_COLUMNS,
    first_sample,
    get_meta,
    hour_of,
    rollup_from_row,
    sample_from_row,
    set_meta,
    transaction,
)
from .records import Histogram, HourRollup, PhaseHistograms, rollup
from .schema import BUSY_TIMEOUT, Connect
from .writer import StoreStats

ROLLUP_LAG = 600.0  # an hour is rolled up this long after its end (late probe results)
HOURS_PER_BATCH = 24  # hours of one target per maintenance transaction
ROWS_PER_BATCH = 5000  # rows deleted per maintenance transaction


def _merge(a: HourRollup, b: HourRollup) -> HourRollup:
    hist = Histogram(dict(a.histogram.counts))
    hist.merge(b.histogram)
    phases = PhaseHistograms(dict(a.phases.counts))
    phases.merge(b.phases)
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
        phases,
    )


def _put_rollup(conn: sqlite3.Connection, tid: int, r: HourRollup) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO rollups VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            tid,
            r.hour,
            r.checks,
            r.failures,
            r.latency_sum,
            r.latency_min,
            r.latency_max,
            r.histogram.to_blob(),
            r.phases.to_blob(),
        ),
    )


def _hours(name: str, rows: Iterable[tuple]) -> Iterator[HourRollup]:
    """Rows ordered by ts -> one rollup per hour that has any."""
    for hour, group in groupby(rows, key=lambda row: hour_of(row[0])):
        yield rollup(name, hour, (sample_from_row(name, row) for row in group))


def _roll_hours(conn: sqlite3.Connection, tid: int, name: str, start: int, end: int) -> int:
    """(Re)compute the rollups of one target's hours in [start, end). -> rollups written."""
    written = 0
    with transaction(conn):
        rows = conn.execute(
            f"SELECT {SAMPLE_COLUMNS} FROM samples"
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
    with transaction(conn):
        first = first_sample(conn, tid)
        if first is None or first >= cut:
            return False
        end = min(cut, hour_of(first) + hours * HOUR)
        rows = conn.execute(
            f"SELECT {SAMPLE_COLUMNS} FROM samples WHERE target_id = ? AND ts < ? ORDER BY ts",
            (tid, end),
        )
        for r in _hours(name, rows):
            if old_floor is not None and r.hour < old_floor:
                # late rows for an hour already pruned: add them to what it had
                row = conn.execute(
                    f"SELECT {ROLLUP_COLUMNS} FROM rollups WHERE target_id = ? AND hour = ?",
                    (tid, r.hour),
                ).fetchone()
                if row is not None:
                    r = _merge(rollup_from_row(name, row), r)
            _put_rollup(conn, tid, r)
        conn.execute("DELETE FROM samples WHERE target_id = ? AND ts < ?", (tid, end))
        return end < cut


def _delete_some(conn: sqlite3.Connection, sql: str, args: tuple) -> int:
    with transaction(conn):
        return conn.execute(sql, args).rowcount


def _read_meta(conn: sqlite3.Connection) -> tuple[list[tuple[int, str]], Any, Any]:
    targets = conn.execute("SELECT id, name FROM targets ORDER BY id").fetchall()
    return targets, get_meta(conn, ROLLED_THROUGH), get_meta(conn, RAW_FLOOR)


def _write_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    with transaction(conn):
        set_meta(conn, key, value)


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
        self._db = Db(store_path, busy_timeout, connect)
        self._errors = ErrorLog(f"history maintenance {store_path}")

    async def _run(self, fn: Callable[[sqlite3.Connection, *Ts], T], *args: *Ts) -> T:
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
            self.stats.last_error = f"maintenance: {one_line(exc)}"
            self._errors.error(reason(exc, self.path), None if environmental(exc) else exc)
            await self._db.close()
            ok = False
        else:
            self._errors.recovered("working again")
        if self.on_pass is not None:
            self.on_pass(ok)
        return ok

    async def _rollups(self, now: float, targets: list[tuple[int, str]], rolled: Any) -> None:
        end = hour_of(now - ROLLUP_LAG)  # hours before this one are complete
        if rolled is not None and rolled + HOUR >= end:
            return
        for tid, name in targets:
            first = await self._run(first_sample, tid)
            if first is None:
                continue  # nothing kept for this target
            start = hour_of(first) if rolled is None else max(hour_of(first), int(rolled) + HOUR)
            for chunk in range(start, end, self.hours * HOUR):
                await self._run(_roll_hours, tid, name, chunk, min(end, chunk + self.hours * HOUR))
        await self._run(_write_meta, ROLLED_THROUGH, end - HOUR)

    async def _prune(self, now: float, targets: list[tuple[int, str]], floor: Any) -> None:
        cut = hour_of(now - self.storage.raw_retention)
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
                (
                    "DELETE FROM warnings WHERE target_id = ? AND ts IN (SELECT ts FROM warnings"
                    " WHERE target_id = ? AND ts < ? LIMIT ?)",
                    (tid, tid, keep, self.rows),
                ),
            ):
                while await self._run(_delete_some, sql, args) >= self.rows:
                    pass
        sql = 'DELETE FROM incidents WHERE id IN (SELECT id FROM incidents WHERE "end" < ? LIMIT ?)'
        while await self._run(_delete_some, sql, (keep, self.rows)) >= self.rows:
            pass
        # silences over for longer than rollups are kept: no report reaches back to them
        sql = "DELETE FROM silences WHERE id IN (SELECT id FROM silences WHERE until < ? LIMIT ?)"
        while await self._run(_delete_some, sql, (keep, self.rows)) >= self.rows:
            pass
        # alerts delivered or given up (`done` set); pending ones stay, to be sent again
        sql = (
            "DELETE FROM outbox WHERE (key, notifier) IN"
            " (SELECT key, notifier FROM outbox WHERE done < ? LIMIT ?)"
        )
        while await self._run(_delete_some, sql, (keep, self.rows)) >= self.rows:
            pass
        await self._run(_write_meta, RAW_FLOOR, cut)

    async def aclose(self) -> None:
        await self._db.close()


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
