"""The `http` probe kind: http:// and https:// targets.

config.py     its target keys and their resolution into an HttpSpec
probe.py      prepare(target) -> HttpPlan once; probe(): deadline, retries,
              redirects, streamed capped hashed body
transport.py  per-origin connection pools behind one httpx transport
network.py    the trio network backend under httpcore's pools
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
from .probe import HttpPlan, prepare, probe
from .transport import OriginRouter, origin_key

CLOSE_TIMEOUT = 5.0  # seconds closing every pool may take on the way out

__all__ = ["KIND", "HttpPlan", "HttpProber", "HttpSpec", "HttpTargetSection", "prepare", "probe"]


class HttpProber:
    """Probes HTTP(S) targets through per-origin pools shared by all of them."""

    def __init__(self, router: OriginRouter) -> None:
        self._router = router

    def prepare(self, target: Target) -> HttpPlan:
        return prepare(target)

    async def probe(
        self, plan: HttpPlan, round_no: int, deadlines: set[trio.CancelScope]
    ) -> ProbeResult:
        return await probe(self._router, plan, round_no, deadlines=deadlines)

    async def reconfigure(self, old: Config, new: Config) -> None:
        """Close the pools no target uses any more (all of them if per_host changed)."""
        await self._router.retain(
            {
                origin_key(httpx.URL(t.spec.url), t.spec.verify_tls)
                for t in new.targets
                if t.kind == KIND.name
            },
            new.monitor.per_host,
        )


@asynccontextmanager
async def open_http_prober(config: Config) -> AsyncIterator[HttpProber]:
    router = OriginRouter(config.monitor.per_host)
    try:
        yield HttpProber(router)
    finally:
        # may run after a hard stop cancelled us: shielded, but bounded
        with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
            await router.aclose()


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
