"""`HistoryReader`: read-only access to a history file, for reports and the API."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .._errors import StoreError
from ._sql import (
    RAW_FLOOR,
    ROLLUP_COLUMNS,
    SAMPLE_COLUMNS,
    UNSTORED,
    first_sample,
    get_meta,
    hour_of,
    rollup_from_row,
    sample_from_row,
)
from .records import Certificate, ContentChange, HourRollup, Incident, Sample, StoredWarning
from .schema import BUSY_TIMEOUT, SCHEMA_VERSION, file_version
from .silences import silences_between

if TYPE_CHECKING:
    from ..policy import Silence


def _names(text: str | None) -> tuple[str, ...] | None:
    """incidents.suppressed_by: a JSON array of names, or NULL."""
    return None if text is None else tuple(json.loads(text))


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
            version = file_version(conn, path)
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
            f"SELECT {SAMPLE_COLUMNS} FROM samples"
            " WHERE target_id = ? AND ts >= ? AND ts < ? ORDER BY ts",
            (tid, since, until),
        )
        return (sample_from_row(target, row) for row in rows)

    def raw_floor(self, target: str) -> float | None:
        """The hour of the target's oldest raw sample (None: none kept)."""
        tid = self._id(target)
        first = None if tid is None else first_sample(self._conn, tid)
        return None if first is None else hour_of(first)

    def pruned_before(self) -> float | None:
        """Raw samples before this hour have been pruned (`raw_retention`); None: none yet."""
        value = get_meta(self._conn, RAW_FLOOR)
        return None if value is None else float(value)

    def rollups(self, target: str, since: float, until: float) -> Iterator[HourRollup]:
        """Hourly rollups of the hours in [since, until) whose raw samples are gone
        (before the target's raw floor), oldest first: combine with `samples`."""
        tid = self._id(target)
        if tid is None:
            return iter(())
        floor = self.raw_floor(target)
        end = until if floor is None else min(until, floor)
        rows = self._conn.execute(
            f"SELECT {ROLLUP_COLUMNS} FROM rollups"
            " WHERE target_id = ? AND hour >= ? AND hour < ? ORDER BY hour",
            (tid, since, end),
        )
        return (rollup_from_row(target, row) for row in rows)

    def incidents(self, since: float, until: float, target: str | None = None) -> list[Incident]:
        """Incidents overlapping [since, until), open ones included, by start. An open
        one has `last_seen`: its target's last stored probe (or its start, without one)."""
        sql = (
            'SELECT t.name, i.start, i."end", i.error, i.end_reason,'
            ' CASE WHEN i."end" IS NULL THEN max(i.start, coalesce('
            "(SELECT max(s.ts) FROM samples s WHERE s.target_id = i.target_id), i.start))"
            " END, i.suppressed_by, i.paged, i.grp, i.cause"
            " FROM incidents i JOIN targets t ON t.id = i.target_id"
            ' WHERE i.start < ? AND (i."end" IS NULL OR i."end" > ?)'
        )
        rows = self._select(sql, (until, since), target, "i.start, i.id")
        return [
            Incident(name, start, end, error, reason, seen, _names(suppressed), paged, grp, cause)
            for name, start, end, error, reason, seen, suppressed, paged, grp, cause in rows
        ]

    def changes(self, since: float, until: float, target: str | None = None) -> list[ContentChange]:
        """Content changes in [since, until), oldest first."""
        sql = (
            "SELECT t.name, c.ts, c.previous_hash, c.content_hash FROM changes c"
            " JOIN targets t ON t.id = c.target_id WHERE c.ts >= ? AND c.ts < ?"
        )
        rows = self._select(sql, (since, until), target, "c.ts, t.name")
        return [ContentChange(*row) for row in rows]

    def warnings(
        self, since: float, until: float, target: str | None = None
    ) -> list[StoredWarning]:
        """`degrading` warnings in [since, until), oldest first."""
        sql = (
            "SELECT t.name, w.ts, w.signal, w.baseline, w.current, w.score, w.detail"
            " FROM warnings w JOIN targets t ON t.id = w.target_id WHERE w.ts >= ? AND w.ts < ?"
        )
        rows = self._select(sql, (since, until), target, "w.ts, t.name")
        return [StoredWarning(*row) for row in rows]

    def baselines(self) -> list[tuple[str, str]]:
        """Early warning's stored baselines: (target, JSON document)."""
        sql = "SELECT t.name, b.data FROM baselines b JOIN targets t ON t.id = b.target_id WHERE 1"
        return [(name, data) for name, data in self._select(sql, (), None, "t.name")]

    def certificates(self, target: str | None = None) -> list[Certificate]:
        """Each target's latest certificate (targets that never had one have none)."""
        sql = (
            "SELECT t.name, c.seen, c.subject, c.issuer, c.not_after, c.earliest_not_after,"
            " c.earliest_subject FROM certs c JOIN targets t ON t.id = c.target_id WHERE 1"
        )
        return [Certificate(*row) for row in self._select(sql, (), target, "t.name")]

    def _select(
        self, sql: str, args: tuple[object, ...], target: str | None, order: str
    ) -> sqlite3.Cursor:
        """`sql` (joined with targets as `t`), for one target if given, in `order`."""
        if target is not None:
            sql += " AND t.name = ?"
            args += (target,)
        return self._conn.execute(f"{sql} ORDER BY {order}", args)

    def outbox(self, since: float, until: float) -> Iterator[tuple[str, str, str]]:
        """The alert outbox's rows created in [since, until), oldest first: (notifier
        identity, alert JSON as store/outbox.py writes it, status)."""
        return self._conn.execute(
            "SELECT notifier, alert, status FROM outbox WHERE created >= ? AND created < ?"
            " ORDER BY created",
            (since, until),
        )

    def recent(self, target: str, n: int) -> list[Sample]:
        """The target's last `n` raw samples, oldest first."""
        tid = self._id(target)
        if tid is None:
            return []
        rows = self._conn.execute(
            f"SELECT {SAMPLE_COLUMNS} FROM samples WHERE target_id = ? ORDER BY ts DESC LIMIT ?",
            (tid, n),
        ).fetchall()
        return [sample_from_row(target, row) for row in reversed(rows)]

    def silences(self, since: float, until: float) -> list[Silence]:
        """Runtime silences that held at some time in [since, until), oldest first."""
        return silences_between(self._conn, since, until)

    def unstored(self) -> int:
        """Records the monitor could not store, all runs together."""
        value = get_meta(self._conn, UNSTORED)
        return 0 if value is None else int(value)
