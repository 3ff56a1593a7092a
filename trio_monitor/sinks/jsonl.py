"""The JSON-lines writer: one record a line, written in a worker thread."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import BinaryIO

import trio

from .._records import Record, to_line

log = logging.getLogger("trio_monitor")

BATCH = 512  # lines handed to one writer-thread call at most


def _write_lines(out: BinaryIO, lines: list[str]) -> None:
    for line in lines:
        out.write(line.encode() + b"\n")
        out.flush()  # one line at a time reaches the pipe whole and at once


async def serve_jsonl(
    receive: trio.MemoryReceiveChannel[Record],
    out: BinaryIO,
    on_closed: Callable[[], None],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Write every record as one JSON line until the channel closes and is drained.

    Writes happen in a worker thread: a full pipe blocks that thread, never the loop.
    If the reader goes away (EPIPE), `on_closed` asks the monitor to stop.
    """
    async with receive:
        task_status.started()
        async for record in receive:
            lines = [to_line(record)]
            while len(lines) < BATCH:
                try:
                    lines.append(to_line(receive.receive_nowait()))
                except (trio.WouldBlock, trio.EndOfChannel):
                    break
            try:
                await trio.to_thread.run_sync(_write_lines, out, lines, abandon_on_cancel=True)
            except (BrokenPipeError, ValueError):  # ValueError: the file was closed under us
                log.warning("output closed by its reader; stopping")
                on_closed()
                return
            except OSError as exc:
                log.error("cannot write output: %s; stopping", exc)
                on_closed()
                return
