"""Our HTTP/1.1 transport (probes/http/wire/): edge-case responses from raw loopback
servers, the connection policies, the pool, phase timings, IPv6."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from functools import partial

import pytest
import trio
from test_probe import assert_failed, make_plan, run, sha256

from trio_monitor._errors import ErrorKind
from trio_monitor.probes.http.probe import probe
from trio_monitor.probes.http.wire import ProbeTransport

Reply = bytes | Callable[[int, int], bytes]  # (connection no, request no on it) -> bytes


class RawServer:
    """Reads request heads and answers each with `reply` verbatim; `close_after`: close
    the connection after that many replies on it (None: keep it open for more)."""

    def __init__(self, reply: Reply, close_after: int | None = 1) -> None:
        self.reply = reply
        self.close_after = close_after
        self.connections = 0
        self.requests: list[bytes] = []  # request heads as received
        self.url = ""

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        conn_no = self.connections
        async with stream:
            buffered = b""
            for request_no in range(1, 1_000):
                while b"\r\n\r\n" not in buffered:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buffered += data
                head, buffered = buffered.split(b"\r\n\r\n", 1)
                self.requests.append(head)
                reply = self.reply(conn_no, request_no) if callable(self.reply) else self.reply
                await stream.send_all(reply)
                if self.close_after is not None and request_no >= self.close_after:
                    return


async def serve(nursery: trio.Nursery, reply: Reply, close_after: int | None = 1, host="127.0.0.1"):
    server = RawServer(reply, close_after)
    listeners = await nursery.start(partial(trio.serve_tcp, server.handle, 0, host=host))
    port = listeners[0].socket.getsockname()[1]
    server.url = f"http://{'[::1]' if host == '::1' else host}:{port}/"
    return server


@pytest.fixture
async def transport():
    async with ProbeTransport(per_host=4) as transport:
        yield transport


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
CASES = {
    "content-length": (OK, 200, b"hello"),
    "chunked with extension and trailer": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nhel\r\n2\r\nlo\r\n0\r\nX-Trailer: yes\r\n\r\n",
        200,
        b"hello",
    ),
    "100 continue first": (b"HTTP/1.1 100 Continue\r\n\r\n" + OK, 200, b"hello"),
    "103 early hints first": (
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + OK,
        200,
        b"hello",
    ),
    "no length: until close": (b"HTTP/1.1 200 OK\r\n\r\nhello", 200, b"hello"),
    "HTTP/1.0": (b"HTTP/1.0 200 OK\r\n\r\nhello", 200, b"hello"),
    "204 ignores a body": (b"HTTP/1.1 204 No Content\r\n\r\nstray", 204, b""),
    "304 ignores a body": (
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
        304,
        b"",
    ),
    "gzip": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
        % (len(gzip.compress(b"hello")), gzip.compress(b"hello")),
        200,
        b"hello",
    ),
    "deflate": (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\nContent-Length: %d\r\n\r\n%s"
        % (len(zlib.compress(b"hello")), zlib.compress(b"hello")),
        200,
        b"hello",
    ),
    "empty reason phrase": (b"HTTP/1.1 200 \r\nContent-Length: 5\r\n\r\nhello", 200, b"hello"),
}


@pytest.mark.parametrize("case", CASES)
async def test_edge_case_responses(nursery, transport, case):
    reply, status, body = CASES[case]
    server = await serve(nursery, reply)
    result = await run(transport, server.url, retries=0)

    assert (result.ok, result.status, result.error_detail) == (True, status, None)
    assert result.content_hash == sha256(body)


FAILURES = {
    "header flood": (
        b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 300 + b"\r\n",
        ErrorKind.PROTOCOL,
        "more than 256 header fields",
    ),
    "huge header": (
        b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n",
        ErrorKind.PROTOCOL,
        "larger than 64 KiB",
    ),
    "bad chunk size": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        ErrorKind.PROTOCOL,
        "invalid response body",
    ),
    "short body": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
        ErrorKind.CONNECT,
        "peer closed connection",
    ),
    "bad status code": (b"HTTP/1.1 2x0 OK\r\n\r\n", ErrorKind.PROTOCOL, "invalid response head"),
    "space in header name": (
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
        ErrorKind.PROTOCOL,
        "invalid response head",
    ),
}


@pytest.mark.parametrize("case", FAILURES)
async def test_malformed_responses(nursery, transport, case):
    reply, kind, detail = FAILURES[case]
    server = await serve(nursery, reply)
    result = await run(transport, server.url, retries=0)

    assert_failed(result, kind, detail)


async def test_head_ends_with_the_head(nursery, transport):
    # a HEAD response announces a length it does not send: no waiting for it
    server = await serve(nursery, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", None)
    result = await run(transport, server.url, method="HEAD", timeout="5s")

    assert (result.ok, result.status, result.bytes) == (True, 200, 0)


async def test_a_half_closed_server_still_answers(nursery, transport):
    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some(65536)
            await stream.send_all(b"HTTP/1.1 200 OK\r\n\r\nbye")
            await stream.send_eof()  # FIN on its side; it would still read
            await stream.receive_some(65536)

    listeners = await nursery.start(partial(trio.serve_tcp, handle, 0, host="127.0.0.1"))
    result = await run(transport, f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/")

    assert (result.ok, result.bytes) == (True, 3)


# --- connection policy -------------------------------------------------------------


async def test_fresh_opens_a_connection_per_probe(server, transport):
    results = [await run(transport, server.url("/ok")) for _ in range(4)]

    assert all(r.ok for r in results)
    assert server.connections == 4  # the default: every probe connects, like a new visitor
    assert all(r["headers"].get("connection") == "close" for r in server.requests)
    assert transport.origins == frozenset()  # nothing kept


async def test_reuse_keeps_one_connection(server, transport):
    results = [await run(transport, server.url("/ok"), connection="reuse") for _ in range(4)]

    assert all(r.ok for r in results)
    assert server.connections == 1
    assert "connection" not in server.requests[0]["headers"]
    # the first probe connected; the others did only the request
    assert results[0].phases_ms["connect"] is not None
    assert [r.phases_ms["connect"] for r in results[1:]] == [None] * 3
    assert all(r.phases_ms["ttfb"] is not None for r in results)


async def test_reuse_retries_once_on_a_stale_connection(nursery, transport):
    def reply(conn_no: int, request_no: int) -> bytes:
        return OK if request_no == 1 else b""  # the 2nd request on a connection: dropped

    def stale_handler(server: RawServer):
        async def handle(stream: trio.SocketStream) -> None:
            # answers the first request, then closes on reading the next one (as a server
            # whose keep-alive timer fired just as the request came)
            server.connections += 1
            async with stream:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += await stream.receive_some(65536)
                await stream.send_all(OK)
                await stream.receive_some(65536)

        return handle

    server = RawServer(reply)
    listeners = await nursery.start(
        partial(trio.serve_tcp, stale_handler(server), 0, host="127.0.0.1")
    )
    url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/"
    first = await run(transport, url, connection="reuse", retries=0)
    second = await run(transport, url, connection="reuse", retries=0)

    assert (first.ok, second.ok, second.attempts) == (True, True, 1)
    assert server.connections == 2


async def test_reuse_never_reuses_what_the_server_closes(nursery, transport):
    server = await serve(
        nursery, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello", None
    )
    for _ in range(3):
        assert (await run(transport, server.url, connection="reuse")).ok
    assert server.connections == 3


async def test_reuse_drops_a_connection_with_bytes_after_the_response(nursery, transport):
    # a response followed by bytes nobody asked for: that connection cannot be trusted
    server = await serve(nursery, OK + b"HTTP/1.1 200 OK\r\n", None)
    for _ in range(3):
        assert (await run(transport, server.url, connection="reuse")).ok
    assert server.connections == 3


async def test_the_pool_keeps_at_most_per_host_idle_connections(server):
    async with ProbeTransport(per_host=2) as transport:
        plan = make_plan(server.url("/ok"), connection="reuse")
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(probe, transport, plan, 1)
        assert server.connections == 5
        (idle,) = transport._idle.values()
        assert len(idle) == 2


async def test_retain_closes_idle_connections_no_target_uses(server, nursery):
    other = await serve(nursery, OK, None)
    async with ProbeTransport(per_host=2) as transport:
        for url in (server.url("/ok"), other.url):
            await run(transport, url, connection="reuse")
        assert len(transport.origins) == 2
        kept = (b"http", b"127.0.0.1", server.port)
        transport.retain([kept], per_host=2)
        assert {key[:3] for key in transport.origins} == {kept}
        transport.retain([kept], per_host=5)  # a new per_host: start over
        assert transport.origins == frozenset()


# --- phases --------------------------------------------------------------------------


def _phase_sum(phases: dict[str, float | None]) -> float:
    return sum(v for v in phases.values() if v is not None)


async def test_phases_over_http(server, transport):
    result = await run(transport, server.url("/slow/30"))
    phases = result.phases_ms

    assert set(phases) == {"dns", "connect", "tls", "ttfb", "transfer"}
    assert (phases["dns"], phases["tls"]) == (None, None)  # an address; no TLS
    assert phases["connect"] > 0
    assert phases["ttfb"] >= 30  # the server's 30 ms are processing
    assert phases["transfer"] >= 0
    assert _phase_sum(phases) <= result.latency_ms + 1
    assert _phase_sum(phases) >= 0.9 * result.latency_ms - 1


async def test_phases_over_https_with_a_name(tls_server, transport):
    url = tls_server.url("/ok").replace("127.0.0.1", "localhost")
    result = await run(transport, url, verify_tls=False)
    phases = result.phases_ms

    assert result.ok, result
    assert phases["dns"] is not None  # "localhost" was resolved
    assert phases["tls"] > 0
    assert _phase_sum(phases) <= result.latency_ms + 1


async def test_no_connection_no_phases(transport):
    from servers import closed_port

    result = await run(transport, f"http://127.0.0.1:{closed_port()}/", retries=0)
    assert result.phases_ms is None


# --- addresses -----------------------------------------------------------------------


async def test_ipv6_loopback(nursery, transport):
    server = await serve(nursery, OK, host="::1")
    result = await run(transport, server.url)

    assert result.ok, result
    assert result.remote_addr.startswith("[::1]:")


async def test_a_name_tries_its_addresses_in_order(nursery, transport, dns_server):
    server = await serve(nursery, OK)
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    dns_server.set("multi.test", a=["127.0.0.9", "127.0.0.1"])  # nothing listens on the first
    resolver = "{}:{}".format(*dns_server.address)
    result = await run(transport, f"http://multi.test:{port}/", resolver=resolver)

    assert result.ok, result
    assert result.remote_addr == f"127.0.0.1:{port}"
    assert result.phases_ms["dns"] > 0
    assert dns_server.count("multi.test") == 2  # A and AAAA, asked at once


async def test_fresh_resolves_every_probe_reuse_honours_the_ttl(nursery, dns_server):
    server = await serve(nursery, OK, None)
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    dns_server.set("cached.test", a=["127.0.0.1"], ttl=300)
    resolver = "{}:{}".format(*dns_server.address)
    url = f"http://cached.test:{port}/"
    async with ProbeTransport(per_host=1) as transport:
        for _ in range(3):
            assert (await run(transport, url, resolver=resolver)).ok
        assert dns_server.count("cached.test", "A") == 3
        for _ in range(3):  # a new connection each time (per_host 1, one at a time: reused)
            assert (await run(transport, url, resolver=resolver, connection="reuse")).ok
        assert dns_server.count("cached.test", "A") == 4
