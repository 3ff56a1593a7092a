"""Letting a channel's records queue up before taking them as one batch."""

from __future__ import annotations

from typing import Any

import trio


async def linger(receive: trio.MemoryReceiveChannel[Any], until: float, batch: int) -> None:
    """Wait until `until` (trio time) for more records to queue on `receive`, unless
    `batch` are waiting already; then take them with `receive_nowait()`.

    Asleep, not in `receive()`: a task waiting there is woken by every record sent, a
    pass through the scheduler per record, which costs more than handling it. So a
    close of the channel is noticed at `until` at the latest."""
    if receive.statistics().current_buffer_used < batch:
        await trio.sleep_until(until)
