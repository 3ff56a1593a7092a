"""The `http` probe kind: http:// and https:// targets.

config.py     its target keys and their resolution into an HttpSpec
probe.py      prepare(target) -> HttpPlan once; probe(): deadline, retries,
              redirects, streamed capped hashed body
wire/         our HTTP/1.1 transport: fresh or pooled connections, phase timings
errors.py     httpx/ssl/socket errors -> ErrorKind
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import trio

from ..._config import Config, Target
from ..._records import ProbeResult
from ...probes.base import ProbeKind, register
from .config import HttpSpec, HttpTargetSection, http_resolver
from .probe import HttpPlan, prepare, probe
from .wire import ProbeTransport

__all__ = ["KIND", "HttpPlan", "HttpProber", "HttpSpec", "HttpTargetSection", "prepare", "probe"]


class HttpProber:
    """Probes HTTP(S) targets through one transport shared by all of them."""

    def __init__(self, transport: ProbeTransport) -> None:
        self._transport = transport

    def prepare(self, target: Target) -> HttpPlan:
        return prepare(target)

    async def probe(
        self, plan: HttpPlan, round_no: int, deadlines: set[trio.CancelScope]
    ) -> ProbeResult:
        return await probe(self._transport, plan, round_no, deadlines=deadlines)

    async def reconfigure(self, old: Config, new: Config) -> None:
        """Close idle connections no target can use any more (all if per_host changed)."""
        self._transport.retain(
            {_origin(t.spec.url) for t in new.targets if t.kind == KIND.name},
            new.monitor.per_host,
        )


def _origin(url: str) -> tuple[bytes, bytes, int]:
    parsed = httpx.URL(url)
    return (
        parsed.raw_scheme,
        parsed.raw_host,
        parsed.port or (443 if parsed.scheme == "https" else 80),
    )


@asynccontextmanager
async def open_http_prober(config: Config) -> AsyncIterator[HttpProber]:
    transport = ProbeTransport(config.monitor.per_host)
    try:
        yield HttpProber(transport)
    finally:
        await transport.aclose()  # closes sockets: no waiting, safe after a hard stop


def _describe(result: ProbeResult) -> str:
    return f"HTTP {result.status} in {result.latency_ms:g} ms"


KIND = ProbeKind(
    name="http",
    schemes=frozenset({"http", "https"}),
    section=HttpTargetSection,
    resolver=http_resolver,
    open=open_http_prober,
    describe=_describe,
)
register(KIND)
