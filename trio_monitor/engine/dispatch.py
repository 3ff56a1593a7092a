"""The fan-out of records to consumers, and the JSON-lines writer.

Each consumer has its own bounded memory channel. `publish` never waits: when a
consumer's channel is full the record is dropped for that consumer alone and
counted (reported in round lines and on stderr), so a stuck pipe or a slow
webhook never slows probing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import BinaryIO

import trio

from .._records import Record, to_line

log = logging.getLogger("trio_monitor")

BATCH = 512  # lines handed to one writer-thread call at most


class Outlet:
    def __init__(self, name: str, capacity: int, accepts: Callable[[Record], bool]) -> None:
        self.name = name
        self.accepts = accepts
        self.send, self.receive = trio.open_memory_channel[Record](capacity)
        self.dropped = 0


class Fanout:
    def __init__(self) -> None:
        self._outlets: list[Outlet] = []

    def add(
        self, name: str, capacity: int, accepts: Callable[[Record], bool] = lambda _: True
    ) -> Outlet:
        """A consumer's outlet: it reads `outlet.receive`; `outlet.dropped` counts its losses."""
        outlet = Outlet(name, capacity, accepts)
        self._outlets.append(outlet)
        return outlet

    def publish(self, record: Record) -> None:
        for outlet in self._outlets:
            if not outlet.accepts(record):
                continue
            try:
                outlet.send.send_nowait(record)
            except trio.WouldBlock:
                outlet.dropped += 1
                if outlet.dropped == 1 or outlet.dropped % 1000 == 0:
                    log.warning(
                        "%s is not keeping up: %d records dropped so far",
                        outlet.name,
                        outlet.dropped,
                    )
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # that consumer has finished (its output was closed) or we are closing

    def close(self) -> None:
        """No more records: each consumer drains what it has, then ends."""
        for outlet in self._outlets:
            outlet.send.close()


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
