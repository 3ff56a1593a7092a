"""Runtime silences in the history file (table `silences`), so they survive restarts.

Small blocking functions, each on its own short-lived connection: the API's handlers
run them in a worker thread when a silence is added or expired, the monitor once at
start-up (`active_silences`), reports to leave silenced time out (`silences_between`).
Nothing here is on the probe path. The store's maintenance prunes silences over for
longer than `rollup_retention`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from ..policy import Silence
from .schema import open_store

_COLUMNS = "id, start, until, match, targets, comment, author"


def _row(silence: Silence) -> tuple[object, ...]:
    match = None if silence.match is None else json.dumps(dict(silence.match), sort_keys=True)
    return (
        silence.id,
        silence.start,
        silence.until,
        match,
        json.dumps(list(silence.targets)),
        silence.comment,
        silence.author,
    )


def _silence(row: tuple) -> Silence:
    id_, start, until, match, targets, comment, author = row
    return Silence(
        id=id_,
        start=start,
        until=until,
        match=None if match is None else json.loads(match),
        targets=tuple(json.loads(targets)),
        comment=comment,
        author=author,
    )


def save_silence(path: str, silence: Silence) -> None:
    """Add a silence, or write one again as it is now (expired early: its new `until`)."""
    conn = open_store(path)
    try:
        with conn:
            conn.execute(
                f"INSERT OR REPLACE INTO silences ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                _row(silence),
            )
    finally:
        conn.close()


def active_silences(path: str, wall: float) -> list[Silence]:
    """Those not over at `wall`, oldest first (at start-up)."""
    conn = open_store(path)
    try:
        return _select(conn, "until > ?", (wall,))
    finally:
        conn.close()


def silences_between(conn: sqlite3.Connection, since: float, until: float) -> list[Silence]:
    """Silences that held at some time in [since, until), oldest first."""
    return _select(conn, "start < ? AND until > ?", (until, since))


def _select(conn: sqlite3.Connection, where: str, args: Iterable[object]) -> list[Silence]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM silences WHERE {where} ORDER BY start, id", tuple(args)
    )
    return [_silence(row) for row in rows]
