"""`serve_store`: the writer and the maintenance as one task for the services nursery."""

from __future__ import annotations

import functools

import trio

from .._config import StorageSection
from .._records import Record
from .maintenance import serve_store_maintenance
from .writer import StoreStats, serve_store_writer


async def serve_store(
    receive: trio.MemoryReceiveChannel[Record],
    store_path: str,
    storage: StorageSection,
    stats: StoreStats,
    *,
    period: float = 300.0,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The writer and the maintenance together: ends when the writer has drained its
    closed channel (maintenance is cancelled then). One call for the services nursery."""
    async with trio.open_nursery() as nursery:
        maintenance = functools.partial(serve_store_maintenance, period=period)
        await nursery.start(maintenance, store_path, storage, stats)
        await serve_store_writer(receive, store_path, storage, stats, task_status=task_status)
        nursery.cancel_scope.cancel()
