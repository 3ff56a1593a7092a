"""Letting a channel's records queue up before taking them as one batch."""

from __future__ import annotations

from typing import Any

import trio

# the channels whose consumer lingers now -> the scope that ends its wait
_LINGERING: dict[trio.MemoryReceiveChannel[Any], trio.CancelScope] = {}


async def linger(receive: trio.MemoryReceiveChannel[Any], until: float, batch: int) -> None:
    """Wait until `until` (trio time) for more records to queue on `receive`, unless
    `batch` are waiting already, or until `close_channel(send, receive)` ends the
    channel; then take them with `receive_nowait()`.

    Asleep, not in `receive()`: a task waiting there is woken by every record sent, a
    pass through the scheduler per record, which costs more than handling it. A channel
    closed with `send.close()` alone is noticed at `until`."""
    if receive.statistics().current_buffer_used >= batch:
        return
    with trio.move_on_at(until) as scope:
        _LINGERING[receive] = scope
        try:
            await trio.sleep_forever()
        finally:
            _LINGERING.pop(receive, None)


def close_channel(
    send: trio.MemorySendChannel[Any], receive: trio.MemoryReceiveChannel[Any]
) -> None:
    """Close the channel: no more records. Its consumer, if it lingers, takes what is
    queued now rather than at the end of its linger (a stop is not delayed by it)."""
    send.close()
    scope = _LINGERING.get(receive)
    if scope is not None:
        scope.cancel()
