"""The `http` probe kind: http:// and https:// targets.

config.py     its target keys and their resolution into an HttpSpec
probe.py      prepare(target) -> HttpPlan once; probe(): deadline, retries,
              redirects, streamed capped hashed body
transport.py  per-origin connection pools behind one httpx transport
network.py    the trio network backend under httpcore's pools
tls.py        SSL contexts, one per distinct TLS setting, built at config load
fallback.py   httpx's own transports, for targets with a proxy or HTTP/2
errors.py     httpx/httpcore/ssl/socket errors -> ErrorKind
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
from .fallback import Fallbacks
from .probe import HttpPlan, prepare, probe, route_of
from .transport import OriginRouter, origin_key

CLOSE_TIMEOUT = 5.0  # seconds closing every pool may take on the way out

__all__ = ["KIND", "HttpPlan", "HttpProber", "HttpSpec", "HttpTargetSection", "prepare", "probe"]


class HttpProber:
    """Probes HTTP(S) targets through per-origin pools shared by all of them, or, for a
    target with a proxy or HTTP/2, through the fallback transport of its route."""

    def __init__(self, router: OriginRouter, fallbacks: Fallbacks | None = None) -> None:
        self._router = router
        self._fallbacks = Fallbacks() if fallbacks is None else fallbacks

    def prepare(self, target: Target) -> HttpPlan:
        return prepare(target)

    async def probe(
        self, plan: HttpPlan, round_no: int, deadlines: set[trio.CancelScope]
    ) -> ProbeResult:
        transport = self._router if plan.route is None else self._fallbacks.transport(plan.route)
        return await probe(transport, plan, round_no, deadlines=deadlines)

    async def reconfigure(self, old: Config, new: Config) -> None:
        """Close the pools and fallback transports no target uses any more (every pool
        if per_host changed)."""
        specs: list[HttpSpec] = [t.spec for t in new.targets if t.kind == KIND.name]
        await self._router.retain(
            {
                origin_key(httpx.URL(s.url), s.tls.context, s.server_name)
                for s in specs
                if route_of(s) is None
            },
            new.monitor.per_host,
        )
        await self._fallbacks.retain({r for s in specs if (r := route_of(s)) is not None})


@asynccontextmanager
async def open_http_prober(config: Config) -> AsyncIterator[HttpProber]:
    router = OriginRouter(config.monitor.per_host)
    fallbacks = Fallbacks()
    try:
        yield HttpProber(router, fallbacks)
    finally:
        # may run after a hard stop cancelled us: shielded, but bounded
        with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
            await router.aclose()
            await fallbacks.aclose()


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
