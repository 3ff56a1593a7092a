"""An alert channel that exists only in the tests: `[[alerts.memory]]` keeps each alert
in a list (`DELIVERED[name]`), or refuses it when `fail = true`, or never finishes
delivering when `hang = true` (`DELIVERING[name]` is set once it began). One module plus one
registration (`register(KIND)`), as a new channel in trio_monitor/alerts/ would be."""

from __future__ import annotations

from collections import defaultdict

import trio
from attrs import frozen

from trio_monitor._config import ChannelSection
from trio_monitor.alerts.base import NotifierKind

DELIVERED: defaultdict[str, list] = defaultdict(list)
DELIVERING: dict[str, trio.Event] = {}


@frozen
class MemoryConfig(ChannelSection):
    name: str  # the notifier's name, and where its alerts go (`DELIVERED[name]`)
    fail: bool = False
    hang: bool = False


class Memory:
    def __init__(self, config: MemoryConfig, client) -> None:
        self.config = config

    def describe(self) -> str:
        return f"memory {self.config.name}"

    async def deliver(self, alert) -> bool:
        if self.config.fail:
            return False
        if self.config.hang:
            DELIVERING.setdefault(self.config.name, trio.Event()).set()
            await trio.sleep_forever()
        _delivered(self.config.name, alert)
        return True


KIND = NotifierKind(key="memory", section=MemoryConfig, create=Memory)


_arrived: dict[str, trio.Event] = {}


def _delivered(name: str, alert) -> None:
    DELIVERED[name].append(alert)
    event = _arrived.pop(name, None)
    if event is not None:
        event.set()


async def wait_delivered(name: str, count: int, within: float = 10) -> list:
    """The alerts `name` has delivered, once there are at least `count` of them."""
    with trio.fail_after(within):
        while len(DELIVERED[name]) < count:
            event = _arrived[name] = trio.Event()
            await event.wait()
    return DELIVERED[name]
