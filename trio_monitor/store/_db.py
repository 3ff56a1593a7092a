"""What the writer and the maintenance share: one connection driven from worker
threads (`Db`), how a store error is classified and put in one line, and logging that
says so at most once a minute so a broken disk does not flood the log."""

from __future__ import annotations

import logging
import math
import sqlite3
from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

import trio

from .._errors import StoreError
from .schema import Connect, open_store

log = logging.getLogger("trio_monitor")

LOG_EVERY = 60.0  # seconds between two logged store errors at least
CLOSE_TIMEOUT = 5.0  # seconds closing a connection may take on the way out

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, StoreError) else f"{type(exc).__name__}: {text}"


def reason(exc: BaseException, path: str) -> str:
    """One line for a log message that already names the file."""
    return one_line(exc).removeprefix(f"{path}: ")


# Errors of the file or its disk: keep the records and try again later. Anything else
# raised while writing a batch is the data's fault (a value SQLite cannot hold) and is
# isolated record by record.
_ENVIRONMENT = (sqlite3.OperationalError, OSError, StoreError)


def environmental(exc: BaseException) -> bool:
    # a bare DatabaseError is a damaged file ("malformed", "not a database")
    return isinstance(exc, _ENVIRONMENT) or type(exc) is sqlite3.DatabaseError


class ErrorLog:
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


async def close_soon(conn: sqlite3.Connection | None) -> None:
    """Close a connection from a `finally`: shielded, in a thread, bounded in time."""
    if conn is None:
        return
    with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
        await trio.to_thread.run_sync(conn.close, abandon_on_cancel=True)


class Db:
    """One connection, used by one task at a time, always from a worker thread."""

    def __init__(self, path: str, busy_timeout: float, connect: Connect) -> None:
        self.path, self.busy_timeout, self.connect = path, busy_timeout, connect
        self.conn: sqlite3.Connection | None = None

    async def run(self, fn: Callable[[sqlite3.Connection, *Ts], T], *args: *Ts) -> T:
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

    async def close(self) -> None:
        """After an error or on the way out; the next `run` opens afresh."""
        conn, self.conn = self.conn, None
        await close_soon(conn)
