"""The notifier seam: what an alert channel is, the registry, and the running set.

A channel is one module that registers a `NotifierKind`: its key under [alerts] (each
`[[alerts.KEY]]` table configures one notifier), the attrs class of that table (with
an `events` field), how ${ENV} and the like resolve in it, and how to make the
`Notifier` that delivers one alert with its own timeout and retries.

Every configured notifier has a bounded queue and a task of its own, so one that is
slow, down or broken delays only its own queue, and what it has to drop is counted
like any other consumer's. The task takes a token of the notifier's `rate_limit`
bucket (`TokenBucket`) before each alert: alerts over the rate wait in the queue, and
what a full queue cannot take is dropped and counted. Every channel delivers through
`deliver_with_retries` (one timeout per attempt, retries with jittered exponential
backoff, the same log lines), so no channel has a copy of that loop. Without the history store the queues are outlets of the
dispatcher (engine/dispatch.py); with it they are fed by the alert outbox
(store/outbox.py) once an alert is committed, and each notifier reports every alert
it delivered or gave up on back to the outbox (`reports`).

A notifier's identity (`identity`) names it across restarts, in the outbox: its
channel key and a hash of its destination (the kind's `destination`: a webhook's URL,
a command's argv), so changing headers, events or timeouts (rotating a secret) keeps
it, and pointing it elsewhere makes it another notifier.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import trio
from attrs import define, frozen

from .._records import AlertEvent
from .._registry import Registry
from . import routing

if TYPE_CHECKING:
    from .._config import AlertsSection, ChannelSection, Config
    from ..engine.dispatch import Dispatcher, Outlet

log = logging.getLogger("trio_monitor")

QUEUE = 1000  # alerts waiting per notifier before new ones are dropped (and counted)
BACKOFF = 1.0  # seconds before the first retry; doubles each time (times 0.5 to 1, jitter)


class Notifier(Protocol):
    def describe(self) -> str:
        """For logs: what it is and where it sends, without secrets."""
        ...

    async def deliver(self, alert: AlertEvent) -> bool:
        """Deliver one alert, retries and timeout included. -> delivered? Never raises
        for what the receiver does; says itself (in the log) why it failed."""
        ...


@frozen
class Attempt:
    """What one attempt to deliver an alert came to."""

    problem: str | None = None  # None: delivered
    final: bool = False  # repeating it cannot help (a 4xx answer, a template error)


DELIVERED = Attempt()


async def deliver_with_retries(
    what: str,
    alert: AlertEvent,
    attempt: Callable[[], Awaitable[Attempt]],
    *,
    retries: int,
    limit: float | None,
    rng: random.Random,
) -> bool:
    """`attempt()` until it delivers, at most 1 + `retries` times, each within `limit` seconds
    (None: the attempt bounds itself), BACKOFF doubling between them. Each failed
    attempt is a warning, giving up one error line naming the alert. -> delivered?"""
    problem = ""
    for number in range(retries + 1):
        if number:
            await trio.sleep(BACKOFF * 2 ** (number - 1) * rng.uniform(0.5, 1.0))
        outcome = None
        with trio.move_on_after(math.inf if limit is None else limit):
            outcome = await attempt()
        if outcome is None:
            problem = f"no answer within {limit:g}s"
        elif outcome.problem is None:
            return True
        else:
            problem = outcome.problem
            if outcome.final:
                break
        log.warning("%s: attempt %d failed: %s", what, number + 1, problem)
    return give_up(what, alert, problem)


def give_up(what: str, alert: AlertEvent, problem: str) -> bool:
    """The one error line for an alert a notifier gives up on. -> False (not delivered)"""
    log.error("%s: giving up on %s alert for %s: %s", what, alert.event, alert.target, problem)
    return False


class TokenBucket:
    """`rate_limit` = (count, per seconds): bursts of up to `count` alerts, then one
    every per/count seconds. `take` waits for a token (on trio's clock)."""

    def __init__(self, count: int, per: float) -> None:
        self._capacity = float(count)
        self._rate = count / per  # tokens a second
        self._tokens = float(count)
        self._stamp: float | None = None

    def _refill(self, now: float) -> None:
        if self._stamp is not None:
            self._tokens = min(self._capacity, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    async def take(self) -> None:
        self._refill(trio.current_time())
        while self._tokens < 1.0:
            await trio.sleep((1.0 - self._tokens) / self._rate)
            self._refill(trio.current_time())
        self._tokens -= 1.0


@frozen
class NotifierKind:
    key: str  # [[alerts.KEY]]
    section: type  # the table's attrs class; it has `events` (and `rate_limit`)
    create: Callable[[Any, httpx.AsyncClient], Notifier]
    # (table, key path, environment, problems) -> the table with ${ENV} and such resolved
    resolve: Callable[[Any, str, Mapping[str, str], list[str]], Any] = lambda t, *_: t
    # the table -> where it delivers (a URL, a command): a notifier's identity across
    # restarts; by default the whole table
    destination: Callable[[Any], str] = repr


_KINDS: Registry[NotifierKind] = Registry(lambda kind: kind.key)
register, unregister, kinds = _KINDS.register, _KINDS.unregister, _KINDS.__iter__
find, get = _KINDS.find, _KINDS.get


def identity(key: str, config: Any) -> str:
    """A notifier's name across restarts: "KEY:" and a hash of its destination."""
    digest = hashlib.sha256(_KINDS.get(key).destination(config).encode()).hexdigest()
    return f"{key}:{digest[:16]}"


def configured(alerts: AlertsSection) -> Iterator[tuple[str, str, Any, str]]:
    """Each configured notifier, in file order: (channel key, name, table, identity).
    Its name is the table's `name`, else "KEY[i]"; the same destination twice gets
    identities told apart by their order ("#2", "#3", ...)."""
    seen: Counter[str] = Counter()
    for key, tables in alerts.notifiers.items():
        for i, table in enumerate(tables):
            base = identity(key, table)
            seen[base] += 1
            ident = base if seen[base] == 1 else f"{base}#{seen[base]}"
            yield key, table.name or f"{key}[{i}]", table, ident


@frozen
class Report:
    """What a notifier did with one alert, for the outbox."""

    notifier: str  # its identity
    key: str  # the alert's
    delivered: bool


@frozen
class Route:
    """Where the outbox sends an alert: a notifier's identity, what it takes
    (alerts/routing.py) and its queue."""

    notifier: str
    accepts: Callable[[AlertEvent], bool]
    queue: Outlet


@define
class Delivery:
    """What one notifier did, for tests, logs and metrics."""

    delivered: int = 0
    given_up: int = 0  # after the notifier's own retries (it logged why)

    @property
    def failed(self) -> int:
        return self.given_up


class _Running:
    __slots__ = ("accepts", "config", "delivery", "identity", "outlet")

    def __init__(self, config: Any, identity: str, outlet: Outlet, delivery: Delivery) -> None:
        self.config = config
        self.identity = identity
        self.outlet = outlet
        self.delivery = delivery
        self.accepts: Callable[[AlertEvent], bool] = lambda _: False  # set by configure

    def route(self, accepts: Callable[[AlertEvent], bool], *, outlet_accepts: bool) -> None:
        """What it takes now (a reload may change targets' labels and `notify`)."""
        self.accepts = accepts
        if outlet_accepts:  # no outbox: the dispatcher offers it every record
            self.outlet.accepts = lambda record: isinstance(record, AlertEvent) and accepts(record)


class _TransportOnFirstUse(httpx.AsyncBaseTransport):
    """httpx's default transport, built for the first request: a run that sends no alert
    never imports httpcore nor loads the CA bundle (a seventh of every start)."""

    def __init__(self) -> None:
        self._transport: httpx.AsyncHTTPTransport | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._transport is None:
            self._transport = httpx.AsyncHTTPTransport()
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()


def notifiers_client() -> httpx.AsyncClient:
    """The client every notifier sends with (a cluster node's too): no timeout of
    its own (each channel sets one), no proxy from the environment."""
    return httpx.AsyncClient(timeout=None, trust_env=False, transport=_TransportOnFirstUse())


class Notifiers:
    """One queue and one task per configured notifier; reconfigurable on reload.

    Without an outbox each queue is a dispatcher outlet for the events the notifier
    wants. With one (`outbox=True`) the queues are fed by the outbox (`routes`) and
    closed by it (`close`), and every outcome comes back on `reports`."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        nursery: trio.Nursery,
        client: httpx.AsyncClient,
        given_up: Counter[str] | None = None,
        *,
        outbox: bool = False,
        sent: Counter[str] | None = None,
    ) -> None:
        self._dispatcher = dispatcher
        # per notifier name, since start (survives reloads): for the round line and metrics
        self.given_up: Counter[str] = Counter() if given_up is None else given_up
        self.sent: Counter[str] = Counter() if sent is None else sent
        self._nursery = nursery
        self._client = client
        self._running: dict[str, list[_Running]] = {}
        self._outbox = outbox
        self._closed = False
        # Unbounded, yet bounded by the queues: one report per alert a queue took.
        # Each notifier's task holds a clone; the channel ends when close() closed this
        # one and every task has ended.
        self._report, self.reports = trio.open_memory_channel[Report](math.inf)

    def configure(self, config: Config) -> None:
        """Start tasks for new notifiers; let removed ones finish their queue and end;
        route each by the config's targets. Once closed (shutting down) there is
        nothing to configure."""
        if self._closed:
            return
        old, running = self._running, dict[str, list[_Running]]()
        targets = {t.name: t for t in config.targets}
        # a list, not a dict: configs hold header tables, so they compare but do not hash
        available = {key: list(rs) for key, rs in old.items()}
        for key, name, table, ident in configured(config.alerts):
            same = next((r for r in available.get(key, ()) if r.config == table), None)
            if same is not None:
                available[key].remove(same)
            else:
                same = self._start(key, name, table, ident)
            same.route(
                routing.accepts(table, same.outlet.name, targets),
                outlet_accepts=not self._outbox,
            )
            running.setdefault(key, []).append(same)
        staying = {id(r) for rs in running.values() for r in rs}
        for r in (r for rs in old.values() for r in rs if id(r) not in staying):
            self._dispatcher.remove_outlet(r.outlet)
        self._running = running

    def _start(self, key: str, name: str, config: Any, identity: str) -> _Running:
        notifier = _KINDS.get(key).create(config, self._client)
        if self._outbox:
            outlet = self._dispatcher.add_downstream(name, QUEUE)
            report = self._report.clone()
        else:
            outlet = self._dispatcher.add_outlet(name, QUEUE)
            report = None
        running = _Running(config, identity, outlet, Delivery())
        counts = _Counts(running.delivery, self.sent, self.given_up)
        self._nursery.start_soon(
            _serve, notifier, outlet, _bucket(config), counts, running.identity, report
        )
        return running

    def routes(self) -> list[Route]:
        """The running notifiers, for the outbox."""
        return [Route(r.identity, r.accepts, r.outlet) for rs in self._running.values() for r in rs]

    def close(self) -> None:
        """(With an outbox, from it:) no more alerts; each notifier drains its queue and
        ends. Synchronous and idempotent."""
        self._closed = True
        self._report.close()
        for r in (r for rs in self._running.values() for r in rs):
            r.outlet.close()

    async def reconfigure(self, old: Config, new: Config) -> None:
        self.configure(new)

    def deliveries(self) -> dict[str, Delivery]:
        return {r.outlet.name: r.delivery for rs in self._running.values() for r in rs}


@frozen
class _Counts:
    """Where a notifier's task counts what it did: its own, and the totals by name."""

    delivery: Delivery
    sent: Counter[str]
    given_up: Counter[str]


def _bucket(config: ChannelSection) -> TokenBucket | None:
    return None if config.rate_limit is None else TokenBucket(*config.rate_limit)


async def _serve(
    notifier: Notifier,
    outlet: Outlet,
    bucket: TokenBucket | None,
    counts: _Counts,
    identity: str,
    report: trio.MemorySendChannel[Report] | None,
) -> None:
    async with outlet.receive, contextlib.AsyncExitStack() as stack:
        if report is not None:
            stack.enter_context(report)
        async for alert in outlet.receive:
            assert isinstance(alert, AlertEvent)  # the outlet accepts alerts only
            if bucket is not None:
                await bucket.take()  # over the rate: the next alerts wait in the queue
            delivered = await notifier.deliver(alert)
            if delivered:
                counts.delivery.delivered += 1
                counts.sent[outlet.name] += 1
            else:
                counts.delivery.given_up += 1
                counts.given_up[outlet.name] += 1
            if report is not None:
                with contextlib.suppress(trio.BrokenResourceError):  # the outbox has ended
                    report.send_nowait(Report(identity, alert.key, delivered))
