"""The one shared httpx client, routed to small per-origin connection pools.

A single httpcore pool shared by hundreds of origins does O(requests x connections)
bookkeeping on every event; a dict lookup per request to a pool of at most
`per_host` connections keeps each pool tiny. Pools share the SSL contexts of tls.py
(one per distinct TLS setting, built when the config loads), carried by each request.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import httpcore
import httpx

from .network import TrioBackend
from .tls import SSL_CONTEXT, load_tls

# PORT: pools were keyed by verify_tls; now by the request's SSL context (one object per
# distinct TLS setting) and its SNI name (a kept connection was verified for that name).
OriginKey = tuple[bytes, bytes, int | None, ssl.SSLContext, str | None]
_BACKEND = TrioBackend()


def origin_key(url: httpx.URL, context: ssl.SSLContext, sni: str | None = None) -> OriginKey:
    return (url.raw_scheme, url.raw_host, url.port, context, sni)


class OriginRouter(httpx.AsyncBaseTransport):
    """Sends each request through the pool of its origin, creating pools on first use."""

    def __init__(self, per_host: int) -> None:
        self._per_host = per_host
        self._pools: dict[OriginKey, httpx.AsyncHTTPTransport] = {}

    def _pool(self, key: OriginKey) -> httpx.AsyncHTTPTransport:
        pool = self._pools.get(key)
        if pool is None:
            limits = httpx.Limits(
                max_connections=self._per_host, max_keepalive_connections=self._per_host
            )
            # retries=0: the probe decides about retrying, inside its own deadline
            context = key[3]  # PORT: the request's context, no longer one per verify_tls
            pool = httpx.AsyncHTTPTransport(verify=context, limits=limits, retries=0)
            # httpx takes no network backend; swap in a pool with ours (see _network).
            # tests/test_http.py checks this still holds for the httpx in use.
            pool._pool = httpcore.AsyncConnectionPool(
                ssl_context=context,
                max_connections=self._per_host,
                max_keepalive_connections=self._per_host,
                keepalive_expiry=limits.keepalive_expiry,
                retries=0,
                network_backend=_BACKEND,
            )
            self._pools[key] = pool
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # PORT: a request without our extension (none is sent so) verifies, as before
        context = request.extensions.get(SSL_CONTEXT) or load_tls(True).context
        key = origin_key(request.url, context, request.extensions.get("sni_hostname"))
        return await self._pool(key).handle_async_request(request)

    @property
    def origins(self) -> frozenset[OriginKey]:
        return frozenset(self._pools)

    async def retain(self, keep: Iterable[OriginKey], per_host: int) -> None:
        """After a reload: close the pools no target uses any more (all, if per_host changed)."""
        keep = set(keep) if per_host == self._per_host else set()
        self._per_host = per_host
        for key in [k for k in self._pools if k not in keep]:
            await self._pools.pop(key).aclose()

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        pass  # Set-Cookie is ignored: parsing it only to drop it costs more than a probe's logic


class _Client(httpx.AsyncClient):
    """A client that never stores cookies: a monitor must not carry one target's
    session into the next probe."""

    _jar = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._jar

    @cookies.setter
    def cookies(self, value: object) -> None:
        pass


@asynccontextmanager
async def open_http_client(per_host: int) -> AsyncIterator[tuple[httpx.AsyncClient, OriginRouter]]:
    """The process's client. Open it outside the nursery whose probes use it."""
    router = OriginRouter(per_host)
    client = _Client(transport=router, timeout=None, follow_redirects=False, trust_env=False)
    async with client:
        yield client, router
