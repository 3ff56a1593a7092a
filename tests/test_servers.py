"""Self-tests for the in-loop test server (tests/servers.py)."""

from __future__ import annotations

import gzip
import ssl

import httpx
import pytest
import trio
from servers import closed_port


async def test_ok(server):
    async with httpx.AsyncClient() as client:
        resp = await client.get(server.url("/ok"))
    assert resp.status_code == 200
    assert resp.text == "hello world"
    assert resp.headers["content-type"] == "text/plain"
    assert resp.headers["content-length"] == "11"
    assert server.hits["/ok"] == 1
    assert server.requests[0]["method"] == "GET"
    assert server.requests[0]["path"] == "/ok"


async def test_keep_alive_reuses_one_connection(server):
    async with httpx.AsyncClient() as client:
        for path in ("/ok", "/status/503", "/echo?x=1"):
            await client.get(server.url(path))
    assert server.connections == 1
    assert server.hits == {"/ok": 1, "/status/503": 1, "/echo": 1}
    assert server.errors == []


async def test_reset(server):
    async with httpx.AsyncClient() as client:
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            await client.get(server.url("/reset"))
        # the server survives
        assert (await client.get(server.url("/ok"))).status_code == 200


async def test_hang_is_pending_when_client_times_out(server):
    async with httpx.AsyncClient() as client:
        with trio.move_on_after(0.2) as scope:
            await client.get(server.url("/hang"))
    assert scope.cancelled_caught
    assert server.hits["/hang"] == 1


async def test_closed_port_refuses():
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{closed_port()}/")


async def test_tls_server(tls_server, ca):
    assert tls_server.url("/ok").startswith("https://127.0.0.1:")
    # a client that does not trust the CA fails; the server must survive that
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(tls_server.url("/ok"))
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    async with httpx.AsyncClient(verify=ctx) as client:
        for _ in range(2):
            resp = await client.get(tls_server.url("/ok"))
            assert resp.status_code == 200
            assert resp.text == "hello world"
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            await client.get(tls_server.url("/reset"))
    # the failed handshake, then one keep-alive connection (/reset reused it)
    assert tls_server.connections == 2


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [
        ("/status/418", 418, b"status 418"),
        ("/slow/10", 200, b"slow"),
        ("/big/200000", 200, b"x" * 200000),
        ("/redirect/0", 200, b"landed"),
        ("/nope", 404, b"not found"),
        ("/body/missing", 404, b"not found"),
    ],
)
async def test_simple_routes(server, path, status, body):
    async with httpx.AsyncClient() as client:
        resp = await client.get(server.url(path))
    assert (resp.status_code, resp.content) == (status, body)


async def test_redirects(server):
    async with httpx.AsyncClient(follow_redirects=True) as client:
        resp = await client.get(server.url("/redirect/3"))
        assert resp.text == "landed"
        assert len(resp.history) == 3
        with pytest.raises(httpx.TooManyRedirects):
            await client.get(server.url("/loop"))


async def test_gzip_echo_body(server):
    server.bodies["k"] = b"custom"
    async with httpx.AsyncClient() as client:
        resp = await client.get(server.url("/gzip"))
        assert resp.headers["content-encoding"] == "gzip"
        assert resp.content == b"compressed hello"
        assert int(resp.headers["content-length"]) == len(gzip.compress(b"compressed hello"))
        resp = await client.get(server.url("/echo"), headers={"X-Probe": "yes"})
        data = resp.json()
        assert data["method"] == "GET"
        assert data["path"] == "/echo"
        assert data["headers"]["x-probe"] == "yes"
        assert (await client.get(server.url("/body/k"))).content == b"custom"


@pytest.mark.parametrize("path", ["/garbage", "/badheader", "/close"])
async def test_hostile_responses(server, path):
    async with httpx.AsyncClient() as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await client.get(server.url(path))
        assert (await client.get(server.url("/ok"))).status_code == 200


async def _raw_get(server, path: str, want: int) -> bytes:
    """GET over a bare socket, read at least ``want`` bytes, then hang up.

    (A bare socket, because breaking out of httpx's async iterators under trio
    leaves abandoned async generators behind: a ResourceWarning.)
    """
    stream = await trio.open_tcp_stream(server.host, server.port)
    async with stream:
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        data = b""
        while len(data) < want:
            data += await stream.receive_some()
    return data


async def test_streams_can_be_abandoned(server):
    data = await _raw_get(server, "/endless", 300_000)
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    assert body.startswith(b"10000\r\n" + b"x" * 100)  # 64 KiB chunks
    data = await _raw_get(server, "/drip", 1)
    assert b"content-length: 1000" in data.lower()
    async with httpx.AsyncClient() as client:
        assert (await client.get(server.url("/ok"))).status_code == 200


async def test_gate_and_in_flight(server):
    results = []

    async def fetch(client):
        results.append((await client.get(server.url("/gate"))).text)

    async with httpx.AsyncClient() as client, trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(fetch, client)
        await server.wait_in_flight(3)
        assert results == []
        server.gate.set()
    assert results == ["gate"] * 3
    assert server.max_in_flight == 3
    assert server.in_flight == 0
    assert server.errors == []


async def test_hook(server):
    server.hook_failures = 2
    async with httpx.AsyncClient() as client:
        statuses = [
            (await client.post(server.url("/hook"), content=b"event %d" % i)).status_code
            for i in range(3)
        ]
        await server.wait_received(1)
    assert statuses == [500, 500, 200]
    assert server.received == [b"event 2"]
    assert server.hook_failures == 0
    assert server.requests[-1]["body"] == b"event 2"
