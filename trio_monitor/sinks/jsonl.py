"""The JSON-lines writer: one record a line, written in a worker thread to an `Output`.

Probe lines get their target's `labels` here, from the config (`LineLabels`): a probe
result does not carry them, so no prober and no other consumer pays for them.

A reader that goes away (EPIPE) stops the monitor. Any other write error (a full disk,
an I/O error) does not: the lines that could not be written are counted (the round
line's `dropped`), the error is logged at most once a minute, and writing is retried
with a growing pause until it works again.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

import trio

from .._config import Config
from .._errors import UsageError
from .._linger import linger
from .._records import ProbeResult, Record, to_json

log = logging.getLogger("trio_monitor")

BATCH = 512  # lines handed to one writer-thread call at most
LINGER = 0.05  # seconds a batch waits for more lines before going to the thread
RETRY_FIRST, RETRY_MAX = 0.5, 30.0  # seconds between write attempts while the output fails
LOG_EVERY = 60.0  # seconds: a failing output is logged at most this often


class Output:
    """Where JSON lines go: stdout, a file, or a stream the caller owns.

    Lines are written whole and in order, from one worker thread at a time, without
    Python's buffering (nothing is left to fail when it is closed). `lost` counts the
    lines a write error kept out. A file is reopened by its path on `reopen` (SIGHUP,
    after log rotation moved or deleted it); stdout and callers' streams never are.
    """

    def __init__(
        self, stream: BinaryIO, name: str, *, path: Path | None = None, owned: bool = False
    ) -> None:
        self.name = name
        self.lost = 0
        self._stream = stream
        self._path = path
        self._owned = owned
        self._torn = False  # a failed write stopped mid-line: the next line starts afresh
        self._reopen = False  # asked to reopen: the writer's thread does it before writing

    @classmethod
    def file(cls, path: Path) -> Output:
        """Append to the file at `path` (created if missing). OSError if it cannot be opened."""
        return cls(_append(path), str(path), path=path, owned=True)

    @classmethod
    def stdout(cls) -> Output:
        if sys.stdout is None:  # started with file descriptor 1 closed
            raise UsageError("stdout is closed: give an output file (-o FILE or monitor.output)")
        stream = open(sys.stdout.fileno(), "wb", buffering=0, closefd=False)  # noqa: SIM115
        return cls(stream, "stdout", owned=True)

    def reopen(self) -> None:
        """Write the next lines to a file opened anew at the path (if it is a file).

        Done by the writer's thread before its next write, so no write is ever split
        between the two files and none waits for this one."""
        self._reopen = self._path is not None

    def _reopen_now(self) -> None:
        assert self._path is not None
        self._reopen = False
        try:
            stream = _append(self._path)
        except OSError as exc:
            log.error(
                "cannot reopen output %s: %s; still writing to the file open before",
                self.name,
                exc.strerror or exc,
            )
            return
        self._stream.close()
        self._stream, self._torn = stream, False
        log.info("reopened output %s", self.name)

    def write_lines(self, lines: list[bytes]) -> None:
        """Write the lines (each ends in a newline) in order, in one write when the stream
        takes them all (a thread hop and a system call per batch, not per line); at a
        failure, count the lines not wholly written lost and raise."""
        if self._reopen:
            self._reopen_now()
        data = b"".join(lines)
        # the fragment a failed write left becomes a line of its own
        head = b"\n" if self._torn else b""
        buffer = memoryview(head + data)
        offset = 0
        try:
            while offset < len(buffer):
                offset += self._stream.write(buffer[offset:])
            self._stream.flush()  # a caller's buffered stream: the lines go out now
        except (OSError, ValueError):
            written = offset - len(head)  # bytes of `data` that went out
            self.lost += len(lines) - data.count(b"\n", 0, max(written, 0))
            if offset:
                self._torn = written > 0 and data[written - 1 : written] != b"\n"
            raise
        self._torn = False

    def close(self) -> None:
        if self._owned:
            self._stream.close()


class LineLabels:
    """Each labelled target's labels, by name, for its probe lines: the running
    config's (a reload's apply from the lines written after it)."""

    def __init__(self, config: Config | None = None) -> None:
        self._by_name = _labelled(config)

    async def reconfigure(self, old: Config, new: Config) -> None:
        self._by_name = _labelled(new)

    def of(self, record: Record) -> Mapping[str, str] | None:
        return self._by_name.get(record.target) if isinstance(record, ProbeResult) else None


def _labelled(config: Config | None) -> dict[str, dict[str, str]]:
    targets = () if config is None else config.targets
    return {t.name: dict(t.labels) for t in targets if t.labels}


def _append(path: Path) -> BinaryIO:
    return path.open("ab", buffering=0)


def _closing(receive: trio.MemoryReceiveChannel[Record]) -> bool:
    """The monitor is stopping: what is queued is all that will come."""
    return receive.statistics().open_send_channels == 0


async def serve_jsonl(
    receive: trio.MemoryReceiveChannel[Record],
    out: Output,
    on_closed: Callable[[], None],
    labels: LineLabels | None = None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Write every record as one JSON line until the channel closes and is drained.

    Writes happen in a worker thread: a full pipe blocks that thread, never the loop.
    If the reader goes away (EPIPE), `on_closed` asks the monitor to stop. Other write
    errors count the lines lost, and writing is tried again after a pause (none when
    stopping: then each batch is tried once).
    """
    labels = labels or LineLabels()

    def line(record: Record) -> bytes:
        return to_json(record, labels.of(record))

    pause = RETRY_FIRST
    failing = False
    next_log = -math.inf
    async with receive:
        task_status.started()
        written = -math.inf
        async for record in receive:
            lines = [line(record)]
            # at most a thread hop per LINGER (one per record would cost more than
            # encoding it; a line 50 ms later tells a reader no less): gather what comes
            # meanwhile; the first line after a quiet spell goes at once
            await linger(receive, written + LINGER, BATCH - 1)
            while len(lines) < BATCH:
                try:
                    lines.append(line(receive.receive_nowait()))
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            written = trio.current_time()
            try:
                await trio.to_thread.run_sync(out.write_lines, lines, abandon_on_cancel=True)
            except (BrokenPipeError, ValueError):  # ValueError: the file was closed under us
                log.warning("output closed by its reader; stopping")
                on_closed()
                return
            except OSError as exc:
                failing = True
                if trio.current_time() >= next_log:
                    next_log = trio.current_time() + LOG_EVERY
                    log.error(
                        "cannot write output %s: %s; probing goes on (lines lost so far: %d), "
                        "retrying",
                        out.name,
                        exc.strerror or exc,
                        out.lost,
                    )
                if not _closing(receive):
                    await trio.sleep(pause)
                    pause = min(pause * 2, RETRY_MAX)
                continue
            if failing:
                log.warning("output %s written again (%d lines lost so far)", out.name, out.lost)
                failing, pause, next_log = False, RETRY_FIRST, -math.inf
