"""The `icmp` probe kind: icmp://HOST targets, pinged with ICMP or ICMPv6 echo requests.

config.py   its target keys and their resolution into an IcmpSpec; the socket check
packet.py   echo requests and replies as bytes (checksums, identifiers, payload)
sockets.py  which socket kind the process may open; the shared raw sockets' reader
probe.py    plan, deadline, requests and replies -> ProbeResult with `icmp`

No subprocess: the prober opens its sockets itself (see sockets.py for the two kinds).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from ..._config import Config, Target
from ..._records import ProbeResult
from ..base import ProbeKind, register
from . import probe as ping
from . import sockets
from .config import IcmpSpec, IcmpTargetSection, icmp_resolver
from .probe import PLACEHOLDERS, Exchange, IcmpPlan, facts, prepare

if TYPE_CHECKING:
    from ...net.dns import Resolver

__all__ = ["KIND", "PLACEHOLDERS", "IcmpPlan", "IcmpProber", "IcmpSpec", "facts"]


class IcmpProber:
    """Pings icmp:// targets during one run. Owns the raw sockets (one per family,
    opened when a probe first needs it) and their reader tasks, in its nursery."""

    def __init__(self, config: Config, nursery: trio.Nursery) -> None:
        self._mode = config.monitor.icmp_socket
        self._nursery = nursery
        self._kind: sockets.SocketKind | None = None
        self._listeners: dict[bool, sockets.RawListener] = {}  # by "is IPv6"
        self._resolvers: dict[tuple[str, int] | None, Resolver] = {}
        if _has_icmp_targets(config):
            self._decide()

    def _decide(self) -> None:
        """Choose the socket kind now (a run or reload that pings). If the machine
        changed since the config was checked, each probe says why it cannot ping."""
        with contextlib.suppress(sockets.Unavailable):
            self.socket_kind()

    def socket_kind(self) -> sockets.SocketKind:
        """The socket kind of this run: decided once (sockets.choose), when first needed."""
        if self._kind is None:
            self._kind = sockets.choose(self._mode)
        return self._kind

    def prepare(self, target: Target) -> IcmpPlan:
        return prepare(target)

    async def probe(
        self, plan: IcmpPlan, round_no: int, deadlines: set[trio.CancelScope]
    ) -> ProbeResult:
        return await ping.probe(self, plan, round_no, deadlines)

    def resolver(self, nameserver: tuple[str, int] | None) -> Resolver:
        resolver = self._resolvers.get(nameserver)
        if resolver is None:
            from ...net.dns import Resolver  # dnspython is loaded by the first name only

            resolver = self._resolvers[nameserver] = Resolver(nameserver)
        return resolver

    def exchange(self, addr: str, data: bytes, count: int) -> Exchange:
        """A probe's socket: its own datagram socket, or a share of the raw one."""
        ipv6 = ":" in addr
        try:
            kind = self.socket_kind()
        except sockets.Unavailable as exc:
            raise OSError(str(exc)) from None
        if kind == "dgram":
            return sockets.DgramExchange(addr, data, count, ipv6)
        return self._listener(ipv6).exchange(addr, data, count)

    def _listener(self, ipv6: bool) -> sockets.RawListener:
        listener = self._listeners.get(ipv6)
        if listener is None:
            listener = sockets.RawListener(sockets.open_socket("raw", ipv6), ipv6)
            self._listeners[ipv6] = listener
            self._nursery.start_soon(listener.run)
        return listener

    async def reconfigure(self, old: Config, new: Config) -> None:
        """Without icmp targets, close the raw sockets: they would read every ICMP
        packet of the host for nothing. A new `icmp_socket` is chosen anew."""
        if new.monitor.icmp_socket != self._mode:
            self._mode, self._kind = new.monitor.icmp_socket, None
            self.close()
        if not _has_icmp_targets(new):
            self.close()
        elif self._kind is None:
            self._decide()

    def close(self) -> None:
        for listener in self._listeners.values():
            listener.close()
        self._listeners.clear()


def _has_icmp_targets(config: Config) -> bool:
    return any(t.kind == KIND.name for t in config.targets)


@asynccontextmanager
async def open_icmp_prober(config: Config) -> AsyncIterator[IcmpProber]:
    async with trio.open_nursery() as nursery:
        prober = IcmpProber(config, nursery)
        try:
            yield prober
        finally:
            prober.close()  # sockets only: no waiting, safe after a hard stop
            nursery.cancel_scope.cancel()


def _describe(result: ProbeResult) -> str:
    icmp = result.icmp
    if icmp is None:
        return f"ok in {result.latency_ms:g} ms"
    return f"{icmp.received}/{icmp.sent} replies, avg {icmp.rtt_avg_ms:g} ms"


KIND = ProbeKind(
    name="icmp",
    schemes=frozenset({"icmp"}),
    section=IcmpTargetSection,
    resolver=icmp_resolver,
    open=open_icmp_prober,
    describe=_describe,
    placeholders=PLACEHOLDERS,
)
register(KIND)
