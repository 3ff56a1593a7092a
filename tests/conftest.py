"""Shared fixtures: in-loop HTTP(S) test servers (see tests/servers.py)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import pytest
import trio
import trustme
from servers import TestServer, start_test_server


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
