"""The HTTP layer: per-origin pools on our network backend, shared TLS contexts, retention."""

from __future__ import annotations

import httpcore
import httpx

from trio_monitor.probes.http.network import TrioBackend
from trio_monitor.probes.http.tls import load_tls
from trio_monitor.probes.http.transport import open_http_client, origin_key

VERIFYING = load_tls(True).context


async def test_pools_are_per_origin_on_our_backend(server):
    async with open_http_client(per_host=3) as (client, router):
        for path in ("/ok", "/ok", "/status/204"):
            response = await client.get(server.url(path))
            assert response.status_code in (200, 204)
        assert len(router.origins) == 1
        (pool,) = router._pools.values()
        # httpx takes no network backend, so the router swaps the pool: this pins that
        # the httpx in use still keeps its httpcore pool where the router puts ours.
        assert isinstance(pool._pool, httpcore.AsyncConnectionPool)
        assert isinstance(pool._pool._network_backend, TrioBackend)
        assert pool._pool._max_connections == 3
        assert server.connections == 1  # keep-alive through our streams


async def test_one_tls_context_per_verify_mode(server):
    assert load_tls(True).context is VERIFYING  # one per distinct setting, shared
    async with open_http_client(per_host=2) as (_client, router):
        a = router._pool(origin_key(httpx.URL("https://127.0.0.1:1/"), VERIFYING))
        b = router._pool(origin_key(httpx.URL("https://127.0.0.1:2/"), VERIFYING))
        c = router._pool(origin_key(httpx.URL("https://127.0.0.1:3/"), load_tls(False).context))
        assert a._pool._ssl_context is b._pool._ssl_context
        assert c._pool._ssl_context is not a._pool._ssl_context


async def test_retain_closes_unused_pools(server):
    async with open_http_client(per_host=2) as (client, router):
        await client.get(server.url("/ok"))
        kept = origin_key(httpx.URL(server.url("/")), VERIFYING)
        other = origin_key(httpx.URL("http://127.0.0.1:9/"), VERIFYING)
        router._pool(other)
        await router.retain([kept], per_host=2)
        assert router.origins == {kept}
        await router.retain([kept], per_host=5)  # a new per_host: every pool is rebuilt
        assert router.origins == frozenset()
