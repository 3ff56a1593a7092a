"""httpx's own transports, for what our transport does not do: proxies and HTTP/2.

A target with `proxy` or `http2 = true` is probed through
`httpx.AsyncHTTPTransport(http2=..., proxy=..., verify=context, retries=0)` (httpcore's
pools on anyio, which runs on trio), one per distinct `Route`, created on first use and
closed with the prober, or after a reload when no target takes its route any more.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable

import httpx
from attrs import field, frozen


@frozen
class Route:
    """Which fallback transport a plan's requests take (the context compared by identity:
    tls.py builds one per distinct setting)."""

    proxy: str | None = field(repr=False)  # may hold credentials
    http2: bool
    context: ssl.SSLContext


class Fallbacks:
    """The fallback transports, one per route, created lazily."""

    def __init__(self) -> None:
        self._transports: dict[Route, httpx.AsyncHTTPTransport] = {}

    def transport(self, route: Route) -> httpx.AsyncHTTPTransport:
        transport = self._transports.get(route)
        if transport is None:
            # retries=0: the probe decides about retrying, inside its own deadline
            transport = httpx.AsyncHTTPTransport(
                verify=route.context, http2=route.http2, proxy=route.proxy, retries=0
            )
            self._transports[route] = transport
        return transport

    @property
    def routes(self) -> frozenset[Route]:
        return frozenset(self._transports)

    async def retain(self, keep: Iterable[Route]) -> None:
        """After a reload: close the transports no target takes any more."""
        keep = set(keep)
        for route in [r for r in self._transports if r not in keep]:
            await self._transports.pop(route).aclose()

    async def aclose(self) -> None:
        transports, self._transports = list(self._transports.values()), {}
        for transport in transports:
            await transport.aclose()
