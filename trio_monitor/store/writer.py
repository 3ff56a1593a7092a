"""The writer: every record a `Fanout` channel hands it, committed in batches.

`serve_store_writer` commits whatever is queued (up to BATCH records) in one
transaction, in a worker thread, so probing never waits for the disk (probe rows by
one `executemany` per table; a record SQLite cannot hold is skipped alone, by a second
pass with a savepoint per record). When the file
cannot be written (read-only, disk full, locked by another process beyond the busy
timeout) it keeps consuming, holds a bounded backlog (oldest dropped first, counted in
`StoreStats.unstored`), logs at most once a minute and retries with a backoff. It never
raises into the monitor.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, TypeGuard

import trio
from attrs import define

from .._config import StorageSection
from .._linger import linger
from .._records import AlertEvent, ProbeResult, Record, StreamMark, TargetRemoved
from ._db import Db, ErrorLog, environmental, log, one_line, reason
from ._sql import UNSTORED, set_meta, stream_meta_key, transaction
from .records import encode_phases
from .schema import BUSY_TIMEOUT, Connect

BATCH = 1000  # records taken from the channel for one transaction at most
# at most one transaction per LINGER seconds: probes spread over their intervals arrive
# one by one, and a transaction (and thread hop) per record would cost more than storing
# it; the first record after a quiet spell is written at once
LINGER = 0.2
BACKLOG = 50_000  # records held while the file cannot be written; beyond: oldest dropped
RETRY_MIN, RETRY_MAX = 1.0, 30.0  # backoff between write attempts after a failure


@define
class StoreStats:
    """The writer's counters, for logs, round lines and (later) a health endpoint."""

    stored: int = 0  # records written (probe results, incident opens/closes)
    unstored: int = 0  # records that could not be stored (this run)
    last_error: str | None = None  # the last write or maintenance error, one line
    pending: int = 0  # records waiting in the backlog for the file to be writable


# Backlog entries, one per record, as compact tuples:
#   ("s", target, ts, ok, status, latency_ms, error, phases, change)
#        phases: records.encode_phases; change: (previous, new) | None
#   ("d", target, start, error, suppressed_by, paged, group, cause)  a "down" alert
#        suppressed_by: a JSON array of the DOWN parents, or None; paged: the alert's
#        ts when it was delivered (not held, suppressed or folded), else None; group and
#        cause: the storm group it was folded into
#   ("u", target, end)                                           an "up" alert
#   ("r", target, end)                                           a removed target
#   ("c", target, seen, subject, issuer, not_after, earliest_not_after, earliest_subject)
#                                                                a new certificate
#   ("w", target, ts, signal, baseline, current, score, detail)  a "degrading" alert
# (status is None for probe kinds without one, and for no answer at all)
SampleOp = tuple[
    Literal["s"],
    str,
    float,
    int,
    int | None,
    float | None,
    str | None,
    bytes | None,
    tuple[str | None, str | None] | None,
]
DownOp = tuple[Literal["d"], str, float, str, str | None, float | None, str | None, str | None]
EndOp = tuple[Literal["u", "r"], str, float]
CertOp = tuple[Literal["c"], str, float, str, str, float, float, str]
WarnOp = tuple[Literal["w"], str, float, str, float | None, float | None, float | None, str | None]
Op = SampleOp | DownOp | EndOp | CertOp | WarnOp

END_REASONS = {"u": "up", "r": "removed"}  # incidents.end_reason, by the op that ends one


def _write_batch(
    conn: sqlite3.Connection,
    ops: Iterable[Op],
    known: dict[str, int],
    unstored: int,
    marks: Mapping[str, str] | None = None,
) -> tuple[dict[str, int], int, int, str]:
    """Write `ops` and add `unstored` to the persisted count, in one transaction, with
    the stream `marks` (cluster mode: how far each stream is folded in).
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
        if op[0] == "s":
            conn.execute(
                "INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)", (tid, *op[2:8])
            )
            if op[8] is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO changes VALUES (?, ?, ?, ?)", (tid, op[2], *op[8])
                )
        elif op[0] == "c":
            conn.execute(
                "INSERT OR REPLACE INTO certs VALUES (?, ?, ?, ?, ?, ?, ?)", (tid, *op[2:])
            )
        elif op[0] == "w":
            conn.execute(
                "INSERT OR REPLACE INTO warnings VALUES (?, ?, ?, ?, ?, ?, ?)", (tid, *op[2:])
            )
        elif op[0] == "d":
            open_ = conn.execute(
                'SELECT 1 FROM incidents WHERE target_id = ? AND "end" IS NULL LIMIT 1', (tid,)
            ).fetchone()
            if open_ is None:
                conn.execute(
                    "INSERT INTO incidents (target_id, start, error, suppressed_by, paged,"
                    " grp, cause) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (tid, *op[2:]),
                )
            elif op[5] is not None:  # the page of an outage whose `down` was not sent
                conn.execute(
                    'UPDATE incidents SET paged = ? WHERE target_id = ? AND "end" IS NULL'
                    " AND paged IS NULL",
                    (op[5], tid),
                )
        else:
            # max(): an incident never ends before it began (a removal found at
            # start-up ends at the last probe, which may precede a restored start)
            conn.execute(
                'UPDATE incidents SET "end" = max(start, ?), end_reason = ?'
                ' WHERE target_id = ? AND "end" IS NULL',
                (op[2], END_REASONS[op[0]], tid),
            )

    def write_all(ops: list[Op], tids: list[int]) -> bool:
        """The whole batch at once, probe rows by `executemany` (the common case: one
        statement per table, not three per record). -> False, having written nothing,
        when a record SQLite cannot hold is among them."""
        samples = [(tid, *op[2:8]) for op, tid in zip(ops, tids, strict=True) if op[0] == "s"]
        changes = [
            (tid, op[2], *op[8])
            for op, tid in zip(ops, tids, strict=True)
            if op[0] == "s" and op[8] is not None
        ]
        conn.execute("SAVEPOINT batch")
        try:
            conn.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?, ?, ?, ?, ?)", samples)
            conn.executemany("INSERT OR REPLACE INTO changes VALUES (?, ?, ?, ?)", changes)
            for op, tid in zip(ops, tids, strict=True):  # incidents, in their order
                if op[0] != "s":
                    write(op, tid)
        except Exception as exc:
            if environmental(exc):
                raise
            conn.execute("ROLLBACK TO batch")
            conn.execute("RELEASE batch")
            return False
        conn.execute("RELEASE batch")
        return True

    stored = skipped = 0
    why = ""  # why the first skipped record was skipped
    with transaction(conn):
        ops = list(ops)
        # outside any savepoint: a skipped record keeps its target
        tids = [target_id(op[1]) for op in ops]
        if write_all(ops, tids):
            stored = len(ops)
        else:  # one savepoint per record, to skip only what cannot be stored
            for op, tid in zip(ops, tids, strict=True):
                conn.execute("SAVEPOINT record")
                try:
                    write(op, tid)
                except Exception as exc:
                    if environmental(exc):
                        raise
                    conn.execute("ROLLBACK TO record")
                    skipped += 1
                    why = why or f"{one_line(exc)}: {op!r}"
                else:
                    stored += 1
                conn.execute("RELEASE record")
        for stream, mark in (marks or {}).items():
            set_meta(conn, stream_meta_key(stream), mark)
        if unstored + skipped:
            conn.execute(
                "INSERT INTO meta VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                (UNSTORED, unstored + skipped),
            )
    return new, stored, skipped, why


def _opens_incident(record: Record) -> TypeGuard[AlertEvent]:
    """A "down", or a flapping target that settled DOWN (its held "down" never came)."""
    return isinstance(record, AlertEvent) and (
        record.event == "down" or (record.event == "flap_end" and record.state == "DOWN")
    )


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
        linger: float = LINGER,
        backlog: int = BACKLOG,
        busy_timeout: float = BUSY_TIMEOUT,
        retry_min: float = RETRY_MIN,
        retry_max: float = RETRY_MAX,
        connect: Connect = sqlite3.connect,
        on_flush: Callable[[bool], None] | None = None,
    ) -> None:
        self.path, self.storage, self.stats = store_path, storage, stats
        self.batch, self.linger, self.capacity = batch, linger, backlog
        self.retry_min, self.retry_max = retry_min, retry_max
        self.on_flush = on_flush
        self._db = Db(store_path, busy_timeout, connect)
        self._ids: dict[str, int] = {}  # target name -> targets.id, once committed
        self._hashes: dict[str, str | None] = {}  # target name -> its last ok content hash
        # target name -> (not_after, subject, earliest_not_after) of the certificate last
        # queued: a row is written when it changes (and once per target and run)
        self._certs: dict[str, tuple[float, str, float]] = {}
        self._backlog: deque[Op] = deque()
        self._marks: dict[str, str] = {}  # stream -> id folded through (StreamMark)
        self._persisted = 0  # of stats.unstored, already added to meta
        self._flushed = -math.inf  # trio time of the last transaction (see LINGER)
        self._retry_delay = retry_min
        self._retry_at = -math.inf
        self._errors = ErrorLog(f"history store {store_path}")
        self._skips = ErrorLog(f"history store {store_path}: cannot store a record")

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
                encode_phases(record.phases_ms),
                change,
            )
            self._certificate(record)
        elif _opens_incident(record):
            start = record.ts if record.since is None else record.since
            op = (
                "d",
                record.target,
                start,
                record.reason or "flapping",
                None if record.suppressed_by is None else json.dumps(record.suppressed_by),
                record.ts if record.deliverable else None,
                record.group,
                record.cause,
            )
        elif isinstance(record, AlertEvent) and record.event == "up":
            op = ("u", record.target, record.ts)
        elif isinstance(record, AlertEvent) and record.event == "flap_end":
            # settled UP: the outage (if one was open) ended when that state began
            op = ("u", record.target, record.ts if record.since is None else record.since)
        elif isinstance(record, TargetRemoved):
            op = ("r", record.target, record.ts)
        elif isinstance(record, AlertEvent) and record.event == "degrading":
            op = (
                "w",
                record.target,
                record.ts,
                record.signal or "",
                record.baseline,
                record.current,
                record.score,
                record.detail,
            )
        elif isinstance(record, StreamMark):
            self._marks[record.stream] = record.id  # with the records before it
            return
        else:
            return
        self._backlog.append(op)
        self._trim()

    def _certificate(self, record: ProbeResult) -> None:
        """Queue the target's certificate when it is not the one queued last."""
        tls = record.tls
        if tls is None:
            return
        key = (tls.not_after, tls.subject, tls.earliest_not_after)
        if self._certs.get(record.target) == key:
            return
        self._certs[record.target] = key
        self._backlog.append(
            (
                "c",
                record.target,
                record.ts,
                tls.subject,
                tls.issuer,
                tls.not_after,
                tls.earliest_not_after,
                tls.earliest_subject,
            )
        )

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
        dirty = self._backlog or self._marks or self._persisted != self.stats.unstored
        return bool(dirty) and trio.current_time() >= self._retry_at

    async def flush(self) -> bool:
        """Write the whole backlog in one transaction. -> True when it is stored.
        On failure the backlog stays (bounded), the error is logged (throttled) and
        a backoff starts. Never raises, except trio.Cancelled."""
        ops, self._backlog = self._backlog, deque()
        marks, self._marks = self._marks, {}
        unstored = self.stats.unstored - self._persisted
        self._flushed = trio.current_time()
        try:
            new, stored, skipped, why = await self._db.run(
                _write_batch, ops, self._ids, unstored, marks
            )
        except trio.Cancelled:
            self._marks = {**marks, **self._marks}
            ops.extend(self._backlog)
            self._backlog = ops
            raise
        except Exception as exc:
            ops.extend(self._backlog)
            self._backlog = ops
            self._marks = {**marks, **self._marks}
            self._trim()
            self.stats.last_error = one_line(exc)
            self._retry_at = trio.current_time() + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, self.retry_max)
            self._errors.error(
                f"cannot write, keeping up to {self.capacity} records to retry "
                f"({self.stats.unstored} lost so far): {reason(exc, self.path)}",
                None if environmental(exc) else exc,
            )
            await self._db.close()
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
                            taken = 1
                            # gather what comes until LINGER after the last transaction
                            await linger(receive, self._flushed + self.linger, self.batch - taken)
                            while taken < self.batch:
                                self.add(receive.receive_nowait())
                                taken += 1
                        except trio.WouldBlock:
                            pass
                        except trio.EndOfChannel:
                            closed = True
                    if self.due and not closed:
                        await self.flush()
                # the channel is closed: one last attempt, whatever the backoff
                if (
                    self._backlog or self._marks or self._persisted != self.stats.unstored
                ) and not (await self.flush()):
                    self._lose_backlog(f"at shutdown: {self.stats.last_error}")
        finally:
            self._lose_backlog("stopped before they could be written")
            await self._db.close()


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
    close incidents; "degrading" alerts become warnings; a removed target's open incident ends with reason "removed". Never raises because of the file: failures are logged and
    counted in `stats`. Give it a deadline on shutdown (the final write is bounded
    by it)."""
    await StoreWriter(store_path, storage, stats).serve(receive, task_status=task_status)
