"""The notifier seam: what an alert channel is, the registry, and the running set.

A channel is one module that registers a `NotifierKind`: its key under [alerts] (each
`[[alerts.KEY]]` table configures one notifier), the attrs class of that table (with
an `events` field), how ${ENV} and the like resolve in it, and how to make the
`Notifier` that delivers one alert with its own timeout and retries.

Every configured notifier is an outlet of the dispatcher (engine/dispatch.py): a
bounded channel and a task of its own, so one that is slow, down or broken delays
only its own queue, and what it has to drop is counted like any other consumer's.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import trio
from attrs import define, frozen

from .._records import AlertEvent, Record
from .._registry import Registry

if TYPE_CHECKING:
    from .._config import AlertsSection, Config
    from ..engine.dispatch import Dispatcher, Outlet

log = logging.getLogger("trio_monitor")

QUEUE = 1000  # alerts waiting per notifier before new ones are dropped (and counted)


class Notifier(Protocol):
    def describe(self) -> str:
        """For logs: what it is and where it sends, without secrets."""
        ...

    async def deliver(self, alert: AlertEvent) -> bool:
        """Deliver one alert, retries and timeout included. -> delivered? Never raises
        for what the receiver does; says itself (in the log) why it failed."""
        ...


@frozen
class NotifierKind:
    key: str  # [[alerts.KEY]]
    section: type  # the table's attrs class; it has `events`
    create: Callable[[Any, httpx.AsyncClient], Notifier]
    # (table, key path, environment, problems) -> the table with ${ENV} and such resolved
    resolve: Callable[[Any, str, Mapping[str, str], list[str]], Any] = lambda t, *_: t


_KINDS: Registry[NotifierKind] = Registry(lambda kind: kind.key)
register, unregister, kinds = _KINDS.register, _KINDS.unregister, _KINDS.__iter__
find, get = _KINDS.find, _KINDS.get


@define
class Delivery:
    """What one notifier did, for tests, logs and metrics."""

    delivered: int = 0
    given_up: int = 0  # after the notifier's own retries (it logged why)

    @property
    def failed(self) -> int:
        return self.given_up


class _Running:
    __slots__ = ("config", "delivery", "outlet")

    def __init__(self, config: object, outlet: Outlet, delivery: Delivery) -> None:
        self.config = config
        self.outlet = outlet
        self.delivery = delivery


def _wants(events: tuple[str, ...]) -> Callable[[Record], bool]:
    def accepts(record: Record) -> bool:
        return isinstance(record, AlertEvent) and record.event in events

    return accepts


class Notifiers:
    """One outlet and one task per configured notifier; reconfigurable on reload."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        nursery: trio.Nursery,
        client: httpx.AsyncClient,
        given_up: Counter[str] | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        # per notifier name, since start (survives reloads): for the round line and metrics
        self.given_up: Counter[str] = Counter() if given_up is None else given_up
        self._nursery = nursery
        self._client = client
        self._running: dict[str, list[_Running]] = {}

    def configure(self, alerts: AlertsSection) -> None:
        """Start tasks for new notifiers; let removed ones finish their queue and end."""
        old, running = self._running, {}
        for key, configs in alerts.notifiers.items():
            # a list, not a dict: configs hold header tables, so they compare but do not hash
            available = list(old.get(key, ()))
            kept: list[_Running] = []
            for i, config in enumerate(configs):
                same = next((r for r in available if r.config == config), None)
                if same is not None:
                    available.remove(same)
                    kept.append(same)
                else:
                    kept.append(self._start(key, i, config))
            running[key] = kept
        staying = {id(r) for rs in running.values() for r in rs}
        for r in (r for rs in old.values() for r in rs if id(r) not in staying):
            self._dispatcher.remove_outlet(r.outlet)
        self._running = running

    def _start(self, key: str, index: int, config: Any) -> _Running:
        notifier = _KINDS.get(key).create(config, self._client)
        outlet = self._dispatcher.add_outlet(f"{key}[{index}]", QUEUE, _wants(config.events))
        running = _Running(config, outlet, Delivery())
        self._nursery.start_soon(_serve, notifier, outlet, running.delivery, self.given_up)
        return running

    async def reconfigure(self, old: Config, new: Config) -> None:
        self.configure(new.alerts)

    def deliveries(self) -> dict[str, Delivery]:
        return {r.outlet.name: r.delivery for rs in self._running.values() for r in rs}


async def _serve(
    notifier: Notifier, outlet: Outlet, delivery: Delivery, given_up: Counter[str]
) -> None:
    async with outlet.receive:
        async for alert in outlet.receive:
            assert isinstance(alert, AlertEvent)  # the outlet accepts alerts only
            if await notifier.deliver(alert):
                delivery.delivered += 1
            else:
                delivery.given_up += 1
                given_up[outlet.name] += 1
