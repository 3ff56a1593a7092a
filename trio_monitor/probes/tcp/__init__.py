"""The `tcp` probe kind: tcp://host:port targets (and what tls:// builds on).

config.py    its target keys (send, expect, resolver, ip_family) and their TcpSpec
probe.py     prepare(target) -> TcpPlan; probe(): resolve, connect, (STARTTLS and TLS
             handshake for tls://), send, read until `expect` matches
starttls.py  the plain-text upgrades of SMTP, IMAP and PostgreSQL
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ..._config import Config, Target
from ..._records import ProbeResult
from ...net.resolvers import Resolvers
from ..base import ProbeKind, register
from .config import TcpSpec, TcpTargetSection, tcp_resolver
from .probe import PLACEHOLDERS, TcpPlan, prepare
from .probe import probe as probe_target

__all__ = ["KIND", "TcpPlan", "TcpProber", "TcpSpec", "TcpTargetSection"]


class TcpProber:
    """Probes tcp:// (or tls://) targets: one connection per probe, nothing pooled."""

    def __init__(self) -> None:
        self._resolvers = Resolvers()

    def prepare(self, target: Target) -> TcpPlan:
        return prepare(target)

    async def probe(
        self, plan: TcpPlan, round_no: int, deadlines: set[trio.CancelScope]
    ) -> ProbeResult:
        return await probe_target(plan, self._resolvers, round_no, deadlines)

    async def reconfigure(self, old: Config, new: Config) -> None:
        """Nothing kept between probes but the resolvers (a few, small)."""


@asynccontextmanager
async def open_tcp_prober(config: Config) -> AsyncIterator[TcpProber]:
    yield TcpProber()


def _describe(result: ProbeResult) -> str:
    return f"connected in {result.latency_ms:g} ms"


KIND = ProbeKind(
    name="tcp",
    schemes=frozenset({"tcp"}),
    section=TcpTargetSection,
    resolver=tcp_resolver,
    open=open_tcp_prober,
    describe=_describe,
    placeholders=PLACEHOLDERS,
)
register(KIND)
