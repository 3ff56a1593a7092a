"""The `ws` probe kind: ws:// and wss:// targets (WebSocket, with trio-websocket).

config.py  its target keys and their resolution into a WsSpec
probe.py   prepare(target) -> WsPlan once; probe(): resolve, connect, TLS, the opening
           handshake, an optional message sent and the first one received, a bounded close
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import trio

from ..._config import Config, Target
from ..._records import ProbeResult
from ...net.resolvers import Resolvers
from ..base import ProbeKind, register
from .config import PLACEHOLDERS, WsSpec, WsTargetSection, ws_resolver

if TYPE_CHECKING:
    from ...net.dns import Resolver
    from .probe import WsPlan

__all__ = ["KIND", "PLACEHOLDERS", "WsProber", "WsSpec", "WsTargetSection"]


class WsProber:
    """Probes WebSocket targets: one resolver per `resolver` value, nothing else shared
    (every probe has its own connection)."""

    def __init__(self) -> None:
        self._resolvers = Resolvers()

    def prepare(self, target: Target) -> WsPlan:
        # trio-websocket is loaded by a config with ws targets only (start-up time)
        from .probe import prepare

        return prepare(target)

    def resolver(self, nameserver: tuple[str, int] | None) -> Resolver:
        return self._resolvers.get(nameserver)

    async def probe(
        self, plan: WsPlan, round_no: int, deadlines: set[trio.CancelScope]
    ) -> ProbeResult:
        from .probe import probe

        return await probe(plan, round_no, deadlines, self.resolver(plan.spec.resolver))

    async def reconfigure(self, old: Config, new: Config) -> None:
        """Forget resolvers no target asks any more."""
        self._resolvers.retain({t.spec.resolver for t in new.targets if t.kind == KIND.name})


@asynccontextmanager
async def open_ws_prober(config: Config) -> AsyncIterator[WsProber]:
    yield WsProber()


def _describe(result: ProbeResult) -> str:
    return f"WebSocket open in {result.latency_ms:g} ms"


KIND = ProbeKind(
    name="ws",
    schemes=frozenset({"ws", "wss"}),
    section=WsTargetSection,
    resolver=ws_resolver,
    open=open_ws_prober,
    describe=_describe,
    placeholders=PLACEHOLDERS,
)
register(KIND)
