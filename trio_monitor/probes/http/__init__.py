"""The `http` probe kind: http:// and https:// targets.

config.py     its target keys and their resolution into an HttpSpec
probe.py      prepare(target) -> HttpPlan once; probe(): deadline, retries,
              redirects, streamed capped hashed body
wire/         our HTTP/1.1 transport: fresh or pooled connections, phase timings
addresses.py  addresses = "all": every address behind the name, probed at once
fallback.py   httpx's own transports, for targets with a proxy or HTTP/2
errors.py     httpx/httpcore errors -> ErrorKind (socket, ssl and DNS ones: net/errors.py)
SSL contexts (one per distinct TLS setting, built at config load) are net/tls.py's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import trio

from ..._config import Config, Target
from ..._records import ProbeResult
from ...conditions import COMMON, Type
from ...probes.base import ProbeKind, register
from .addresses import probe_every_address
from .config import HttpSpec, HttpTargetSection, http_resolver
from .fallback import Fallbacks
from .probe import HttpPlan, prepare, probe, route_of
from .wire import ProbeTransport

CLOSE_TIMEOUT = 5.0  # seconds closing the fallback transports may take on the way out

__all__ = ["KIND", "HttpPlan", "HttpProber", "HttpSpec", "HttpTargetSection", "prepare", "probe"]


class HttpProber:
    """Probes HTTP(S) targets through our transport shared by all of them, or, for a
    target with a proxy or HTTP/2, through the fallback transport of its route."""

    def __init__(self, transport: ProbeTransport, fallbacks: Fallbacks | None = None) -> None:
        self._transport = transport
        self._fallbacks = Fallbacks() if fallbacks is None else fallbacks

    def prepare(self, target: Target) -> HttpPlan:
        return prepare(target)

    async def probe(
        self, plan: HttpPlan, round_no: int, deadlines: set[trio.CancelScope]
    ) -> ProbeResult:
        if plan.route is not None:
            transport = self._fallbacks.transport(plan.route)
            return await probe(transport, plan, round_no, deadlines=deadlines)
        if plan.spec.addresses == "all":
            return await probe_every_address(self._transport, plan, round_no, deadlines=deadlines)
        return await probe(self._transport, plan, round_no, deadlines=deadlines)

    async def reconfigure(self, old: Config, new: Config) -> None:
        """Close idle connections and fallback transports no target uses any more (every
        idle connection if per_host changed)."""
        specs: list[HttpSpec] = [t.spec for t in new.targets if t.kind == KIND.name]
        self._transport.retain(
            {_origin(s.url) for s in specs if route_of(s) is None},
            new.monitor.per_host,
        )
        await self._fallbacks.retain({r for s in specs if (r := route_of(s)) is not None})


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
    fallbacks = Fallbacks()
    try:
        yield HttpProber(transport, fallbacks)
    finally:
        await transport.aclose()  # closes sockets: no waiting, safe after a hard stop
        # httpx's transports wait to close, and this may run after a hard stop
        # cancelled us: shielded, but bounded
        with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
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
    spec_url="url",  # config.py http_resolver: `url` is the URL's text when it is normal
    placeholders={
        **COMMON,
        "STATUS": Type.NUMBER,
        "BODY": Type.BODY,  # the body read (up to max_body, decoded)
        "HEADER": Type.FIELDS,  # the final response's headers
        "CERTIFICATE_EXPIRATION": Type.DURATION,  # the leaf's time left (https)
    },
)
register(KIND)
