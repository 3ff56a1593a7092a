"""Shared fixtures: in-loop HTTP(S) test servers (see tests/servers.py), a DNS server
(tests/dns_server.py), one headless Chromium per session (see tests/chromium.py) and a
real redis-server per test (see tests/redis_server.py)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import line_kind
import memory_notifier
import pytest
import trio
import trustme
from chromium import missing, start_chromium
from dns_server import DnsServer, start_dns_server
from redis_server import RedisServer, start_redis
from redis_server import missing as redis_missing
from servers import TestServer, start_test_server

from trio_monitor.alerts import base as alert_kinds
from trio_monitor.probes import base as probe_kinds


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    """A started plain-HTTP TestServer on 127.0.0.1 (stopped after the test)."""
    async with trio.open_nursery() as nursery:
        yield await start_test_server(nursery)
        nursery.cancel_scope.cancel()


@pytest.fixture
def ca() -> trustme.CA:
    """A throwaway certificate authority; trust it with ``ca.configure_trust(ctx)``."""
    return trustme.CA()


@pytest.fixture
async def tls_server(ca: trustme.CA) -> AsyncIterator[TestServer]:
    """An HTTPS TestServer whose certificate (for 127.0.0.1 and localhost) is signed by ``ca``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
    async with trio.open_nursery() as nursery:
        yield await start_test_server(nursery, ssl_context=ctx)
        nursery.cancel_scope.cancel()


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium (a selenium driver) for the whole session; tests that use it
    are skipped, with the reason, where chromium or chromedriver is missing."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    with start_chromium(tmp_path_factory.mktemp("chromium-home")) as driver:
        yield driver


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that asks for the `browser` fixture is a `browser` test, marked or not, so
    `-m "not browser"` never starts Chromium; one that asks for `redis_server` is a
    `redis` test the same way."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        for fixture, marker in (("browser", "browser"), ("redis_server", "redis")):
            if fixture in fixtures and not item.get_closest_marker(marker):
                item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture
def line_kind_registered() -> Iterator[None]:
    """The test-only probe kind (tests/line_kind.py), registered for one test."""
    probe_kinds.register(line_kind.KIND)
    yield
    probe_kinds.unregister(line_kind.KIND.name)


@pytest.fixture
def memory_channel() -> Iterator[ModuleType]:
    """The test-only alert channel (tests/memory_notifier.py), registered for one test."""
    alert_kinds.register(memory_notifier.KIND)
    memory_notifier.DELIVERED.clear()
    yield memory_notifier
    alert_kinds.unregister(memory_notifier.KIND.key)


@pytest.fixture
async def dns_server() -> AsyncIterator[DnsServer]:
    """A started DnsServer (tests/dns_server.py) on 127.0.0.1, UDP and TCP on one port."""
    async with trio.open_nursery() as nursery:
        yield await start_dns_server(nursery)
        nursery.cancel_scope.cancel()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started redis-server (tests/redis_server.py) on a free 127.0.0.1 port, AOF in
    a temp directory; skipped, with the reason, where redis-server is missing."""
    reason = redis_missing()
    if reason:
        pytest.skip(reason)
    with start_redis(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def fast_backoff(monkeypatch):
    """Notifiers retry after a millisecond, not a second (alerts/base.py BACKOFF)."""
    monkeypatch.setattr("trio_monitor.alerts.base.BACKOFF", 0.001)


@pytest.fixture
async def client():
    """An httpx client like the notifiers' own (timeouts are theirs)."""
    async with httpx.AsyncClient(timeout=None) as client:
        yield client
