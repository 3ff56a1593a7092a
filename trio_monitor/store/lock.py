"""The history file's lock: one monitor writes a history file at a time.

`<db>.lock` beside the database, held with flock(2) for the monitor's lifetime (the
kernel releases it when the process ends, however it ends, so a stale file never
blocks a start). It holds its holder's pid and host, for the refusal a second monitor
gets. Readers (reports, the API) never take it. The file is left in place: removing
it would let a third process lock a new file while a second still waits on the old.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
from collections.abc import Iterator

from .._errors import StoreError

log = logging.getLogger("trio_monitor")


def lock_path(db: str) -> str:
    return db + ".lock"


def _holder(fd: int) -> str:
    text = os.pread(fd, 256, 0).decode(errors="replace").split()
    return f"pid {text[0]} on {text[1]}" if len(text) == 2 else "pid unknown"


@contextlib.contextmanager
def hold_history_lock(db: str) -> Iterator[None]:
    """Lock the history file `db` until the block ends. StoreError (one line) naming the
    holder if another monitor has it. A lock file that cannot be made (a read-only
    directory) is logged and skipped: the writer copes with such a store on its own."""
    path = lock_path(db)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        log.warning("history lock %s cannot be made (%s); not locking", path, exc.strerror)
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(
                f"{db}: in use by another monitor ({_holder(fd)}, lock {path}); "
                "one history file takes one monitor"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
