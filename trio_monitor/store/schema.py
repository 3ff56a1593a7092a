"""The history file's schema and how a file is opened for writing.

Schema changes are migrations: MIGRATIONS[i] takes a file from user_version i to i + 1,
in one transaction. A file with a newer version, or one that is no SQLite database (or
another application's), is refused with a one-line StoreError (`file_version`).
`open_store` creates or migrates the file and puts it in WAL mode, synchronous=NORMAL.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable

from .._errors import StoreError
from ._sql import rollback

BUSY_TIMEOUT = 5.0  # seconds SQLite waits for another connection's lock

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
    (
        # why an incident ended: "up" (the target recovered) or "removed" (no longer
        # monitored); NULL while it is open
        "ALTER TABLE incidents ADD COLUMN end_reason TEXT",
        """UPDATE incidents SET end_reason = 'up' WHERE "end" IS NOT NULL""",
    ),
    (
        # the alert outbox (outbox.py): one row per alert and notifier (its identity),
        # written before the notifier gets the alert; status pending | delivered |
        # given_up, `done` and `reason` once it is not pending
        """CREATE TABLE outbox (
            key TEXT NOT NULL, notifier TEXT NOT NULL, alert TEXT NOT NULL,
            created REAL NOT NULL, status TEXT NOT NULL, done REAL, reason TEXT,
            PRIMARY KEY (key, notifier)) WITHOUT ROWID""",
        "CREATE INDEX outbox_pending ON outbox (created) WHERE status = 'pending'",
        "CREATE INDEX outbox_done ON outbox (done)",
    ),
    (
        # each target's latest TLS certificate (its leaf, and the chain's earliest
        # expiry): written when the certificate a target presents changes, not per probe;
        # `seen` is when the monitor first saw it
        """CREATE TABLE certs (
            target_id INTEGER PRIMARY KEY, seen REAL NOT NULL, subject TEXT NOT NULL,
            issuer TEXT NOT NULL, not_after REAL NOT NULL, earliest_not_after REAL NOT NULL,
            earliest_subject TEXT NOT NULL)""",
    ),
    (
        # phase timings (records.encode_phases: 5 bytes a sample, NULL without phases)
        # and their histograms per hour (PhaseHistograms.to_blob, NULL without any)
        "ALTER TABLE samples ADD COLUMN phases BLOB",
        "ALTER TABLE rollups ADD COLUMN phases BLOB",
    ),
    (
        # early warning's baselines (trio_monitor/early/): one JSON document per target,
        # rewritten periodically and at shutdown, read at start-up
        """CREATE TABLE baselines (
            target_id INTEGER PRIMARY KEY, updated REAL NOT NULL, data TEXT NOT NULL)""",
        # `degrading` warnings, for reports (did an outage follow?)
        """CREATE TABLE warnings (
            target_id INTEGER NOT NULL, ts REAL NOT NULL, signal TEXT NOT NULL,
            baseline REAL, current REAL, score REAL, detail TEXT,
            PRIMARY KEY (target_id, ts, signal)) WITHOUT ROWID""",
    ),
    (
        # the alert policy's marks on an outage (policy/): `suppressed_by`, the parents
        # (depends_on) that were DOWN when its `down` came (a JSON array; NULL: none),
        # and `paged`, when its page went out (the deliverable `down`, or the one sent
        # when its parents recovered; NULL: not yet). Restarts resume reminders and
        # suppressions from them.
        "ALTER TABLE incidents ADD COLUMN suppressed_by TEXT",
        "ALTER TABLE incidents ADD COLUMN paged REAL",
    ),
    (
        # runtime silences (store/silences.py): `until` is set to the moment one is
        # expired early; `match` a JSON object of labels or NULL, `targets` a JSON array
        """CREATE TABLE silences (
            id TEXT PRIMARY KEY, start REAL NOT NULL, until REAL NOT NULL, match TEXT,
            targets TEXT NOT NULL, comment TEXT NOT NULL, author TEXT NOT NULL)""",
    ),
    (
        # storm grouping: the group an outage's `down` was folded into, and its cause
        # ("network 10.1.2.0/24"), so a restart rebuilds the open groups
        "ALTER TABLE incidents ADD COLUMN grp TEXT",
        "ALTER TABLE incidents ADD COLUMN cause TEXT",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)

Connect = Callable[..., sqlite3.Connection]


def _version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def _too_new(path: str, version: int) -> StoreError:
    return StoreError(
        f"{path}: history database version {version} is newer than this trio-monitor "
        f"supports ({SCHEMA_VERSION}); upgrade trio-monitor or use another storage.path"
    )


def _not_ours(path: str, why: str) -> StoreError:
    return StoreError(f"{path}: not a trio-monitor history database ({why})")


def file_version(conn: sqlite3.Connection, path: str) -> int:
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
            rollback(conn)
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
        version = file_version(conn, path)
        _use_wal(conn, busy_timeout)
        conn.execute("PRAGMA synchronous = NORMAL")
        if version < SCHEMA_VERSION:
            migrate(conn)
            file_version(conn, path)  # another process may have migrated it further meanwhile
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
