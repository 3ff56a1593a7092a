"""A small, real HTTP/1.1 server for tests, running inside the test's trio loop.

It listens on 127.0.0.1 with an OS-chosen port and impersonates both healthy
and hostile sites (see ``TestServer`` for the routes).  Built on trio + h11 and
supports keep-alive, so pooled httpx connections are served correctly.

A misbehaving client can never crash the server: every connection's errors
are caught (and recorded in ``TestServer.errors``); ``trio.Cancelled`` is never
swallowed.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import enum
import gzip
import json
import socket
import ssl
import struct
import time
import urllib.parse
from functools import partial

import h11
import trio

HOST = "127.0.0.1"
CHUNK = 64 * 1024
MAX_RECV = 64 * 1024

GARBAGE = b"\x00\xffNOT HTTP AT ALL\r\n\r\n"
BAD_HEADER = b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n"
GZIP_PLAIN = b"compressed hello"
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class _After(enum.Enum):
    """What the connection loop does once a handler has returned."""

    KEEP = "keep"  # response complete; keep-alive if h11 allows it
    CLOSE = "close"  # close the connection cleanly
    ABORTED = "aborted"  # the socket is already gone (RST); do nothing more


class _Request:
    def __init__(self, method: str, target: str, path: str, headers: dict[str, str], body: bytes):
        self.method = method
        self.target = target
        self.path = path
        self.headers = headers
        self.body = body


class TestServer:
    """HTTP(S) test server. Create it with ``start_test_server``.

    Routes (GET unless said; HEAD gets the same headers without a body):

    - ``/ok`` -> 200 ``hello world`` (text/plain)
    - ``/status/<code>`` -> ``<code>`` with body ``status <code>``
    - ``/slow/<ms>`` -> sleeps ms milliseconds, then 200 ``slow``
    - ``/hang`` -> reads the request, never answers
    - ``/reset`` -> aborts the TCP connection with RST, no answer
    - ``/close`` -> closes the connection cleanly, no response bytes
    - ``/big/<n>`` -> 200 with n bytes of ``x`` (Content-Length n)
    - ``/endless`` -> 200 chunked, 64 KiB chunks forever
    - ``/drip`` -> 200, Content-Length 1000, then one byte every 0.2 s
    - ``/redirect/<n>`` -> 302 to ``/redirect/<n-1>``; ``/redirect/0`` -> 200 ``landed``
    - ``/loop`` -> 302 to ``/loop``
    - ``/garbage`` -> non-HTTP bytes, then close
    - ``/badheader`` -> status line with ``Content-Length: nope``, then close
    - ``/gzip`` -> 200 gzip-encoded ``compressed hello``
    - ``/echo`` -> 200 JSON ``{"method", "path", "headers"}``
    - ``/redirect-with/<code>`` -> ``<code>`` (e.g. 303, 307) to ``/echo``
    - ``/elsewhere/<port>`` -> 302 to ``http://127.0.0.1:<port>/echo`` (another origin)
    - ``/basic/<user>/<password>`` -> 200 ``welcome <user>`` with that user's Basic
      ``Authorization``, else 401 with a ``WWW-Authenticate: Basic`` challenge
    - ``/body/<key>`` -> 200 ``bodies[key]``, 404 if missing
    - ``/page/<key>`` -> 200 ``pages[key]`` as text/html (UTF-8), 404 if missing; while
      ``page_resets > 0`` (decrementing), aborted as ``/reset``
    - ``/gate`` -> waits for ``gate.set()``, then 200 ``gate``
    - ``POST /hook`` -> 500 while ``hook_failures > 0`` (decrementing), else
      200 and the body is appended to ``received``
    - anything else -> 404 ``not found``
    """

    __test__ = False  # not a pytest test class

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.host: str = HOST
        self.port: int = 0
        self.scheme: str = "https" if ssl_context is not None else "http"
        self.ssl_context = ssl_context
        self.hits: collections.Counter[str] = collections.Counter()
        # path -> when each request for it came (wall clock: comparable with the
        # JSON lines of a monitor in another process)
        self.hit_times: collections.defaultdict[str, list[float]] = collections.defaultdict(list)
        self.requests: list[dict] = []
        self.bodies: dict[str, bytes] = {}
        self.pages: dict[str, str] = {}
        self.gate: trio.Event = trio.Event()
        self.in_flight: int = 0
        self.max_in_flight: int = 0
        self.connections: int = 0
        self.hook_failures: int = 0
        self.page_resets: int = 0
        self.received: list[bytes] = []
        self.errors: list[Exception] = []  # per-connection errors (diagnostics)
        self._changed = trio.Event()

    # ------------------------------------------------------------------ API

    def url(self, path: str = "/") -> str:
        if not path.startswith("/"):
            path = "/" + path
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    async def wait_in_flight(self, n: int) -> None:
        """Return once ``in_flight >= n``."""
        await self._wait_until(lambda: self.in_flight >= n)

    async def wait_received(self, n: int) -> None:
        """Return once ``len(received) >= n``."""
        await self._wait_until(lambda: len(self.received) >= n)

    async def wait_hits(self, path: str, n: int) -> None:
        """Return once ``hits[path] >= n``."""
        await self._wait_until(lambda: self.hits[path] >= n)

    # ------------------------------------------------------------ internals

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _wait_until(self, predicate) -> None:
        # No checkpoint between the check and grabbing the current event, so
        # no notification can be missed.
        while not predicate():
            await self._changed.wait()

    async def _handle_connection(self, raw: trio.SocketStream) -> None:
        self.connections += 1
        stream: trio.abc.Stream = raw
        aborted = False
        try:
            if self.ssl_context is not None:
                stream = trio.SSLStream(
                    raw, self.ssl_context, server_side=True, https_compatible=True
                )
                try:
                    await stream.do_handshake()
                except trio.BrokenResourceError:
                    # trio drops the alert OpenSSL prepared (e.g. "certificate required"
                    # when a client certificate is missing): send it, as real servers do
                    with contextlib.suppress(OSError, trio.BrokenResourceError):
                        await raw.send_all(stream._outgoing.read())
                    raise
            conn = h11.Connection(h11.SERVER)
            while True:
                try:
                    request = await _read_request(conn, stream)
                except h11.RemoteProtocolError as exc:
                    self.errors.append(exc)
                    await _send_error(conn, stream, exc.error_status_hint)
                    break
                if request is None:  # client closed the connection
                    break
                self.hits[request.path] += 1
                self.hit_times[request.path].append(time.time())
                self.requests.append(
                    {
                        "method": request.method,
                        "path": request.path,
                        "headers": dict(request.headers),
                        "body": request.body,
                    }
                )
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                self._notify()
                try:
                    after = await self._dispatch(conn, stream, raw, request)
                finally:
                    self.in_flight -= 1
                    self._notify()
                if after is _After.ABORTED:
                    aborted = True
                    break
                if after is _After.CLOSE:
                    break
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                else:
                    break
        except Exception as exc:  # trio.Cancelled is a BaseException: not caught
            self.errors.append(exc)
        finally:
            if not aborted:
                with contextlib.suppress(Exception):
                    await trio.aclose_forcefully(stream)

    async def _dispatch(
        self,
        conn: h11.Connection,
        stream: trio.abc.Stream,
        raw: trio.SocketStream,
        req: _Request,
    ) -> _After:
        parts = req.path.strip("/").split("/")
        head, arg = parts[0], "/".join(parts[1:])
        respond = partial(_respond, conn, stream, req.method)

        if req.path == "/ok":
            await respond(200, b"hello world")
        elif head == "status" and _int(arg) is not None and 200 <= _int(arg) <= 599:
            await respond(_int(arg), f"status {_int(arg)}".encode())
        elif head == "slow" and _int(arg) is not None and _int(arg) >= 0:
            await trio.sleep(_int(arg) / 1000)
            await respond(200, b"slow")
        elif req.path == "/hang":
            await trio.sleep_forever()
        elif req.path == "/reset" or (head == "page" and self.page_resets > 0):
            self.page_resets -= head == "page"
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await raw.aclose()  # linger (1, 0): close sends RST
            return _After.ABORTED
        elif req.path == "/close":
            return _After.CLOSE
        elif head == "big" and _int(arg) is not None and _int(arg) >= 0:
            await self._big(conn, stream, req.method, _int(arg))
        elif req.path == "/endless":
            await _send(
                conn,
                stream,
                h11.Response(
                    status_code=200,
                    headers=[
                        ("Content-Type", "application/octet-stream"),
                        ("Transfer-Encoding", "chunked"),
                    ],
                ),
            )
            if req.method != "HEAD":
                chunk = b"x" * CHUNK
                while True:
                    await _send(conn, stream, h11.Data(data=chunk))
            await _send(conn, stream, h11.EndOfMessage())
        elif req.path == "/drip":
            await _send(
                conn,
                stream,
                h11.Response(
                    status_code=200,
                    headers=[
                        ("Content-Type", "text/plain"),
                        ("Content-Length", "1000"),
                    ],
                ),
            )
            if req.method != "HEAD":
                for _ in range(1000):
                    await _send(conn, stream, h11.Data(data=b"x"))
                    await trio.sleep(0.2)
            await _send(conn, stream, h11.EndOfMessage())
        elif head == "redirect" and _int(arg) is not None and _int(arg) >= 0:
            n = _int(arg)
            if n == 0:
                await respond(200, b"landed")
            else:
                await respond(302, b"redirect", [("Location", f"/redirect/{n - 1}")])
        elif head == "redirect-with" and _int(arg) in _REDIRECTS:
            await respond(_int(arg), b"redirect", [("Location", "/echo")])
        elif head == "elsewhere" and _int(arg) is not None:
            await respond(302, b"redirect", [("Location", f"http://{HOST}:{arg}/echo")])
        elif req.path == "/loop":
            await respond(302, b"loop", [("Location", "/loop")])
        elif req.path == "/garbage":
            await stream.send_all(GARBAGE)
            return _After.CLOSE
        elif req.path == "/badheader":
            await stream.send_all(BAD_HEADER)
            return _After.CLOSE
        elif req.path == "/gzip":
            await respond(200, gzip.compress(GZIP_PLAIN), [("Content-Encoding", "gzip")])
        elif req.path == "/echo":
            payload = {"method": req.method, "path": req.path, "headers": req.headers}
            await respond(200, json.dumps(payload).encode(), content_type="application/json")
        elif head == "basic" and len(parts) == 3:
            user, password = (urllib.parse.unquote(part) for part in parts[1:])
            expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            if req.headers.get("authorization") == expected:
                await respond(200, f"welcome {user}".encode())
            else:
                await respond(401, b"who are you?", [("WWW-Authenticate", 'Basic realm="test"')])
        elif head == "body" and arg:
            if arg in self.bodies:
                await respond(200, self.bodies[arg], content_type="application/octet-stream")
            else:
                await respond(404, b"not found")
        elif head == "page" and arg:
            if arg in self.pages:
                page = self.pages[arg].encode()
                await respond(200, page, content_type="text/html; charset=utf-8")
            else:
                await respond(404, b"not found")
        elif req.path == "/gate":
            await self.gate.wait()
            await respond(200, b"gate")
        elif req.path == "/hook":
            if req.method != "POST":
                await respond(405, b"method not allowed", [("Allow", "POST")])
            elif self.hook_failures > 0:
                self.hook_failures -= 1
                await respond(500, b"hook failure")
            else:
                self.received.append(req.body)
                self._notify()
                await respond(200, b"ok")
        else:
            await respond(404, b"not found")
        return _After.KEEP

    async def _big(
        self, conn: h11.Connection, stream: trio.abc.Stream, method: str, n: int
    ) -> None:
        await _send(
            conn,
            stream,
            h11.Response(
                status_code=200,
                headers=[
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Length", str(n)),
                ],
            ),
        )
        if method != "HEAD":
            chunk = b"x" * CHUNK
            remaining = n
            while remaining > 0:
                piece = chunk if remaining >= CHUNK else chunk[:remaining]
                await _send(conn, stream, h11.Data(data=piece))
                remaining -= len(piece)
        await _send(conn, stream, h11.EndOfMessage())


# ---------------------------------------------------------------- helpers


def _int(text: str) -> int | None:
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text)


async def _send(conn: h11.Connection, stream: trio.abc.Stream, event) -> None:
    data = conn.send(event)
    if data:
        await stream.send_all(data)


async def _next_event(conn: h11.Connection, stream: trio.abc.Stream):
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(MAX_RECV))  # b"" means EOF
            continue
        return event


async def _read_request(conn: h11.Connection, stream: trio.abc.Stream) -> _Request | None:
    """Read one whole request (with body); None if the client closed."""
    event = await _next_event(conn, stream)
    if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
        return None
    assert isinstance(event, h11.Request), event
    target = event.target.decode("latin-1")
    split = urllib.parse.urlsplit(target)
    path = split.path or "/"
    headers: dict[str, str] = {}
    for name, value in event.headers:
        key = name.decode("latin-1").lower()
        val = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {val}" if key in headers else val
    body = bytearray()
    while True:
        part = await _next_event(conn, stream)
        if isinstance(part, h11.Data):
            body += part.data
        elif isinstance(part, h11.EndOfMessage):
            break
        else:  # ConnectionClosed mid-body
            return None
    return _Request(event.method.decode("latin-1"), target, path, headers, bytes(body))


async def _respond(
    conn: h11.Connection,
    stream: trio.abc.Stream,
    method: str,
    status: int,
    body: bytes,
    extra_headers: list[tuple[str, str]] | None = None,
    content_type: str = "text/plain",
) -> None:
    headers = list(extra_headers or [])
    no_body = status in (204, 304) or 100 <= status < 200
    if not no_body:
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers]
    await _send(conn, stream, h11.Response(status_code=status, headers=headers))
    if body and not no_body and method != "HEAD":
        await _send(conn, stream, h11.Data(data=body))
    await _send(conn, stream, h11.EndOfMessage())


async def _send_error(conn: h11.Connection, stream: trio.abc.Stream, status: int) -> None:
    """Best-effort error response to an unparseable request."""
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    body = f"bad request ({status})".encode()
    try:
        await _send(
            conn,
            stream,
            h11.Response(
                status_code=status,
                headers=[
                    ("Content-Type", "text/plain"),
                    ("Content-Length", str(len(body))),
                    ("Connection", "close"),
                ],
            ),
        )
        await _send(conn, stream, h11.Data(data=body))
        await _send(conn, stream, h11.EndOfMessage())
    except (h11.LocalProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
        pass


# ------------------------------------------------------------- public API


async def start_test_server(
    nursery: trio.Nursery, *, ssl_context: ssl.SSLContext | None = None
) -> TestServer:
    """Start a TestServer in ``nursery`` on 127.0.0.1 (OS-chosen port).

    HTTPS when ``ssl_context`` (a server-side context) is given.  The server
    runs until the nursery is cancelled.
    """
    server = TestServer(ssl_context)
    listeners = await nursery.start(
        partial(trio.serve_tcp, server._handle_connection, 0, host=HOST)
    )
    server.port = listeners[0].socket.getsockname()[1]
    return server


def closed_port() -> int:
    """A port on 127.0.0.1 with nothing listening on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class TestProxy:
    """A tiny proxy on 127.0.0.1: HTTP CONNECT tunnels (https:// through it), absolute-form
    requests (http:// through it) and SOCKS5 CONNECT without authentication, each
    forwarded to its 127.0.0.1 origin.

    ``requests`` lists each connection's first request (``"CONNECT 127.0.0.1:443"``,
    ``"GET http://127.0.0.1:80/ok"``, ``"SOCKS5 127.0.0.1:80"``); origins not on
    127.0.0.1 are refused.
    """

    __test__ = False

    def __init__(self) -> None:
        self.port = 0
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    async def _handle(self, client: trio.SocketStream) -> None:
        with contextlib.suppress(OSError, trio.BrokenResourceError, trio.ClosedResourceError):
            await self._forward(client)

    async def _forward(self, client: trio.SocketStream) -> None:
        async with client:
            head = await client.receive_some(MAX_RECV)
            if head[:1] == b"\x05":
                await self._socks5(client, head)
                return
            while head and b"\r\n\r\n" not in head:
                data = await client.receive_some(MAX_RECV)
                if not data:
                    return
                head += data
            if not head:
                return
            method, target = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")[:2]
            self.requests.append(f"{method} {target}")
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                rest = head.partition(b"\r\n\r\n")[2]
                reply = b"HTTP/1.1 200 Connection established\r\n\r\n"
            else:
                split = urllib.parse.urlsplit(target)
                host, port = split.hostname or "", str(split.port or 80)
                rest, reply = head, b""
            if host != HOST:
                await client.send_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                return
            await _tunnel(client, host, int(port), reply, rest)

    async def _socks5(self, client: trio.SocketStream, data: bytes) -> None:
        """RFC 1928, "no authentication" and CONNECT to an IPv4 address or a name only."""
        data = await _at_least(client, data, 2)
        data = await _at_least(client, data, 2 + data[1])
        await client.send_all(b"\x05\x00")  # no authentication
        data = await _at_least(client, data[2 + data[1] :], 5)
        if data[3] == 1:  # IPv4
            data = await _at_least(client, data, 10)
            host, port = socket.inet_ntoa(data[4:8]), int.from_bytes(data[8:10], "big")
        else:  # a name
            end = 5 + data[4]
            data = await _at_least(client, data, end + 2)
            host, port = data[5:end].decode(), int.from_bytes(data[end : end + 2], "big")
        self.requests.append(f"SOCKS5 {host}:{port}")
        if host != HOST:
            await client.send_all(b"\x05\x02\x00\x01" + bytes(6))  # not allowed
            return
        await _tunnel(client, host, port, b"\x05\x00\x00\x01" + bytes(6), b"")


async def _at_least(stream: trio.SocketStream, data: bytes, n: int) -> bytes:
    while len(data) < n:
        more = await stream.receive_some(MAX_RECV)
        if not more:
            raise trio.BrokenResourceError("closed")
        data += more
    return data


async def _tunnel(client: trio.SocketStream, host: str, port: int, reply: bytes, rest: bytes):
    async with await trio.open_tcp_stream(host, port) as upstream:
        if reply:
            await client.send_all(reply)
        if rest:
            await upstream.send_all(rest)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pipe, client, upstream, nursery.cancel_scope)
            nursery.start_soon(_pipe, upstream, client, nursery.cancel_scope)


async def _pipe(src: trio.SocketStream, dst: trio.SocketStream, done: trio.CancelScope) -> None:
    try:
        while data := await src.receive_some(MAX_RECV):
            await dst.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    done.cancel()  # one side is gone: so is the tunnel


async def start_test_proxy(nursery: trio.Nursery) -> TestProxy:
    proxy = TestProxy()
    listeners = await nursery.start(partial(trio.serve_tcp, proxy._handle, 0, host=HOST))
    proxy.port = listeners[0].socket.getsockname()[1]
    return proxy


class H2Server:
    """A hypercorn HTTPS server (HTTP/2 offered by ALPN) answering 200 ``h2 ok`` to every
    request; ``versions`` lists each request's HTTP version ("2", "1.1")."""

    __test__ = False

    def __init__(self) -> None:
        self.port = 0
        self.versions: list[str] = []

    def url(self, path: str = "/") -> str:
        return f"https://{HOST}:{self.port}{path}"

    async def app(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        self.versions.append(scope["http_version"])
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"h2 ok"})


@contextlib.asynccontextmanager
async def serving_h2(certfile: str, keyfile: str):
    """Serve an H2Server with this certificate until the block ends."""
    import logging

    from hypercorn.config import Config
    from hypercorn.trio import serve

    server = H2Server()
    config = Config()
    config.bind = [f"{HOST}:0"]
    config.certfile, config.keyfile = certfile, keyfile
    config.accesslog = None
    config.errorlog = logging.getLogger("tests.h2")
    config.graceful_timeout = 1.0
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(serve, server.app, config, shutdown_trigger=stop.wait, mode="asgi")
        )
        server.port = urllib.parse.urlsplit(binds[0]).port or 0
        try:
            yield server
        finally:
            stop.set()
