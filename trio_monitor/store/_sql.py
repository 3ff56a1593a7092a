"""The SQL every store connection shares: transactions, the `meta` table, and rows
read back as records (`Sample`, `HourRollup`), so the writer, the maintenance and the
reader agree on one column order."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from typing import Any

from .records import Histogram, HourRollup, PhaseHistograms, Sample

HOUR = 3600

# meta keys
ROLLED_THROUGH = "rolled_through"  # start of the last hour rolled up
RAW_FLOOR = "raw_floor"  # raw samples before this hour have been pruned
UNSTORED = "unstored"  # records that could not be stored, all runs together


def stream_meta_key(stream: str) -> str:
    """Cluster mode: the meta key of how far a Redis stream is folded into history."""
    return f"stream:{stream}"


def hour_of(ts: float) -> int:
    return int(ts // HOUR) * HOUR


def rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error: never a partial write."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        rollback(conn)
        raise


def get_meta(conn: sqlite3.Connection, key: str) -> Any:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def set_meta(conn: sqlite3.Connection, key: str, value: Any) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


SAMPLE_COLUMNS = "ts, ok, status, latency_ms, error, phases"
ROLLUP_COLUMNS = "hour, checks, failures, latency_sum, latency_min, latency_max, histogram, phases"


def sample_from_row(name: str, row: tuple) -> Sample:
    ts, ok, status, latency, error, phases = row
    return Sample(name, ts, bool(ok), latency, error, status, phases)


def rollup_from_row(name: str, row: tuple) -> HourRollup:
    hour, checks, failures, total, low, high, blob, phases = row
    return HourRollup(
        name,
        hour,
        checks,
        failures,
        total,
        low,
        high,
        Histogram.from_blob(blob),
        PhaseHistograms.from_blob(phases),
    )


def first_sample(conn: sqlite3.Connection, tid: int) -> float | None:
    return conn.execute("SELECT min(ts) FROM samples WHERE target_id = ?", (tid,)).fetchone()[0]
