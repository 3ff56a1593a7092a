"""Early warning's baselines in the history file (table `baselines`, schema.py).

`load_models` (blocking: a worker thread at start-up) reads each configured target's
stored baselines; a target without any but with samples in history (a file written
before early warning existed) warms up from its last `warmup` samples instead.
`serve_baselines` writes every target's baselines every SAVE_EVERY seconds and once
more when the monitor stops, copying them in the event loop (cheap) and encoding and
writing them in a worker thread, in one transaction.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterable
from typing import Any

import trio

from .._config import EarlyWarningSection
from .._errors import ErrorKind, StoreError
from .._records import ProbeResult
from ..store import HistoryReader
from ..store._db import Db, ErrorLog, environmental, reason
from ..store._sql import transaction
from ..store.schema import BUSY_TIMEOUT
from . import EarlyWarning
from .detectors import TargetModel, encode

SAVE_EVERY = 300.0  # seconds between two writes of every baseline


def load_models(
    path: str, names: Iterable[str], params: EarlyWarningSection
) -> dict[str, TargetModel]:
    """The stored baselines of these targets (blocking). A document that does not read
    is skipped: that target learns again."""
    wanted = set(names)
    models: dict[str, TargetModel] = {}
    try:
        reader = HistoryReader(path)
    except StoreError:
        return models  # no history yet
    with reader:
        for name, text in reader.baselines():
            if name not in wanted:
                continue
            model = TargetModel()
            try:
                model.load(json.loads(text))
            except (KeyError, IndexError, TypeError, ValueError):
                continue
            models[name] = model
        for name in wanted - models.keys():
            samples = reader.recent(name, params.warmup)
            if samples:
                model = models[name] = TargetModel()
                for s in samples:
                    model.observe(_result(s.target, s.ts, s.ok, s.latency_ms, s.error), params)
                model.reset()  # what history held was learned from, not warned about
    return models


def _result(
    name: str, ts: float, ok: bool, latency_ms: float | None, error: str | None
) -> ProbeResult:
    """A stored sample as the detectors read it (what history keeps of a probe)."""
    kinds = {str(k): k for k in ErrorKind}
    return ProbeResult(
        ts=ts,
        target=name,
        url="",
        ok=ok,
        status=None,
        latency_ms=latency_ms,
        error=None if ok else kinds.get(error or "", ErrorKind.INTERNAL),
        attempts=1,
        round=0,
    )


def _write(conn: sqlite3.Connection, rows: list[tuple[str, tuple[Any, ...]]], now: float) -> None:
    with transaction(conn):
        for name, state in rows:
            conn.execute("INSERT OR IGNORE INTO targets (name) VALUES (?)", (name,))
            (tid,) = conn.execute("SELECT id FROM targets WHERE name = ?", (name,)).fetchone()
            conn.execute(
                "INSERT OR REPLACE INTO baselines VALUES (?, ?, ?)",
                (tid, now, json.dumps(encode(state), separators=(",", ":"))),
            )


async def save(early: EarlyWarning, db: Db, errors: ErrorLog) -> bool:
    """Write every baseline now. -> written? Errors are logged (throttled), never raised."""
    rows = await early.snapshot()
    if not rows:
        return True
    try:
        await db.run(_write, rows, time.time())
    except Exception as exc:
        errors.error(
            f"cannot save baselines: {reason(exc, db.path)}", None if environmental(exc) else exc
        )
        await db.close()
        return False
    errors.recovered("saving baselines again")
    return True


async def serve_baselines(
    early: EarlyWarning,
    store_path: str,
    stopped: trio.Event,
    *,
    period: float = SAVE_EVERY,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Save the baselines every `period` seconds, and once more when `stopped` is set;
    then return."""
    db = Db(store_path, BUSY_TIMEOUT, sqlite3.connect)
    errors = ErrorLog(f"history store {store_path}")
    task_status.started()
    try:
        while True:
            with trio.move_on_after(period if period > 0 else math.inf):
                await stopped.wait()
            last = stopped.is_set()  # (set during a save: one more save follows)
            await save(early, db, errors)
            if last:
                return
    finally:
        await db.close()
