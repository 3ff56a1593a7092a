"""ProbeTransport: HTTP/1.1 for probes, as an httpx transport, fresh or pooled connections.

httpx stays the interface (`httpx.Request` in, `httpx.Response` out; httpx decodes
gzip/deflate/br and follows nothing: the probe decides about redirects and retries).
Under it, per request: resolve (unless the URL's host is an address), connect, TLS,
write the request, read the response with httptools. What each step took, the
address, and the TLS connection go into the probe's `Exchange` (see exchange.py), so
phase timings and certificate details cost no second pass.

Connection policy, per request (`ConnOptions`, a request extension set by the plan):
"fresh" opens a connection for every request and closes it after the response, as a
new visitor does (and sends `Connection: close`, as blackbox_exporter does, so the
server closes first and keeps the TIME_WAIT); "reuse" keeps idle connections per
origin (at most `per_host` each), checks an idle one is still open before using it,
and retries once on a new connection when a reused one turns out stale (the server
closed it between our check and our request).
"""

from __future__ import annotations

import ssl
import time
import weakref
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Final

import httpx
import trio
from attrs import frozen

from ...._config import IpFamily
from ....net.addr import ip_literal, with_port
from ....net.certs import TlsDetails, tls_details
from ....net.resolvers import Resolvers
from ....net.sockets import Conn, ConnectFailed, connect_first
from ....net.tls import Tls, load_tls
from .exchange import CURRENT_EXCHANGE, Exchange
from .parse import ResponseReader

if TYPE_CHECKING:
    from ....net.dns import Resolver

IDLE_EXPIRY: Final = 90.0  # s an idle pooled connection is kept (nginx keeps them 75 s)
SSL_CONTEXT: Final = "trio_monitor.ssl_context"  # request extension: a net.tls.Tls
CONN: Final = "trio_monitor.conn"  # request extension: ConnOptions

# scheme, host, port, TLS context (None for http), SNI name. The context object itself,
# not its id: a pooled connection keeps it alive, so no new context can take its place
OriginKey = tuple[bytes, bytes, int, ssl.SSLContext | None, str | None]


@frozen
class ConnOptions:
    """How a plan's requests get their connections (one per distinct value, shared)."""

    reuse: bool = False  # connection = "reuse": pooled connections, DNS answers cached (TTL)
    family: IpFamily = "any"
    nameserver: tuple[str, int] | None = None  # the `resolver` key; None: resolv.conf's


_DEFAULT_OPTIONS = ConnOptions()


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.raw_scheme == b"https" else 80)


def _pinned(exchange: Exchange, url: httpx.URL) -> str | None:
    """The address this request must connect to, if the probe pinned its host to one."""
    pin = exchange.connect_to
    return pin[1] if pin is not None and pin[0] == url.host else None


def _details(conn: Conn) -> TlsDetails | None:
    """The certificate details of the connection's TLS (parsed once per certificate)."""
    return None if conn.tls is None else tls_details(conn.tls, time.time())


def _request_head(request: httpx.Request, close: bool) -> bytes:
    url = request.url
    parts = [request.method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
    for name, value in request.headers.raw:
        parts += (name, b": ", value, b"\r\n")
    if close and "connection" not in request.headers:
        parts.append(b"Connection: close\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


class _Sending:
    """What the transport derives from a request before it sends it: the TLS context,
    the pool key, and the bytes on the wire (per connection policy)."""

    __slots__ = ("context", "key", "wire")

    def __init__(self, request: httpx.Request) -> None:
        url = request.url
        scheme = url.raw_scheme
        self.context: ssl.SSLContext | None = None
        if scheme == b"https":
            tls: Tls = request.extensions.get(SSL_CONTEXT) or load_tls(True)
            # (a request not from a plan verifies, with the shared default context)
            self.context = tls.context
        sni = request.extensions.get("sni_hostname")
        self.key: OriginKey = (scheme, url.raw_host, _port(url), self.context, sni)
        self.wire: dict[bool, bytes] = {}  # Connection: close? -> head and body

    async def data(self, request: httpx.Request, close: bool) -> bytes:
        data = self.wire.get(close)
        if data is not None:
            return data
        stream = request.stream
        if isinstance(stream, httpx.ByteStream):
            body = b"".join(stream)  # the common case: bytes built once per target
        else:
            body = b"".join([part async for part in stream])  # type: ignore[union-attr]
        data = _request_head(request, close) + body
        if isinstance(stream, httpx.ByteStream):  # (a streamed body may differ next time)
            self.wire[close] = data
        return data


# A plan's first-hop request is sent by every probe of its target: what sending it
# takes is worked out once, held as long as the request is (httpx.URL's properties are
# computed anew at every access).
_SENDING: weakref.WeakKeyDictionary[httpx.Request, _Sending] = weakref.WeakKeyDictionary()


def _sending(request: httpx.Request) -> _Sending:
    sending = _SENDING.get(request)
    if sending is None:
        sending = _SENDING[request] = _Sending(request)
    return sending


class ProbeBody(httpx.AsyncByteStream):
    """The response body, read from the connection as the probe asks for it. Closing it
    never waits (the connection goes back to the pool or is closed at once)."""

    def __init__(
        self, transport: ProbeTransport, key: OriginKey | None, conn: Conn, reader: ResponseReader
    ) -> None:
        self._transport = transport
        self._key = key
        self._conn = conn
        self._reader = reader
        self._closed = False

    @property
    def encoded(self) -> bool:
        """The body has a Content-Encoding: only httpx's decoding iterators read it."""
        return self._reader.encoded

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise httpx.ReadError("response closed")  # the probe closed it past max_body
        try:
            chunk = await self._reader.next_body_chunk()
        except OSError as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._transport._release(self._key, self._conn, self._reader.reusable)


class ProbeTransport(httpx.AsyncBaseTransport):
    """One per process, shared by every HTTP probe."""

    def __init__(self, per_host: int) -> None:
        self._per_host = per_host
        self._idle: dict[OriginKey, list[tuple[float, Conn]]] = {}
        self._resolvers = Resolvers()

    def resolver(self, nameserver: tuple[str, int] | None) -> Resolver:
        """The resolver asking `nameserver` (None: the system's settings)."""
        return self._resolvers.get(nameserver)

    # --- the pool -------------------------------------------------------------------

    def _take_idle(self, key: OriginKey) -> Conn | None:
        idle = self._idle.get(key)
        now = trio.current_time()
        while idle:
            since, conn = idle.pop()
            if now - since < IDLE_EXPIRY and conn.is_idle_and_open():
                conn.reused = True
                return conn
            conn.close()
        return None

    def _release(self, key: OriginKey | None, conn: Conn, reusable: bool) -> None:
        if key is None or not reusable or conn.closed:
            conn.close()
            return
        idle = self._idle.get(key)
        if idle is None:
            idle = self._idle[key] = []
        if len(idle) >= self._per_host:
            conn.close()
        else:
            idle.append((trio.current_time(), conn))

    @property
    def origins(self) -> frozenset[OriginKey]:
        return frozenset(key for key, idle in self._idle.items() if idle)

    def retain(self, keep: Iterable[tuple[bytes, bytes, int]], per_host: int) -> None:
        """After a reload: close idle connections to origins no target uses any more
        (all of them if per_host changed). `keep`: (scheme, host, port) triples."""
        keep = set(keep) if per_host == self._per_host else set()
        self._per_host = per_host
        for key in [k for k in self._idle if k[:3] not in keep]:
            for _, conn in self._idle.pop(key):
                conn.close()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for _, conn in conns:
                conn.close()

    # --- one request ----------------------------------------------------------------

    async def _open(
        self,
        request: httpx.Request,
        context: ssl.SSLContext | None,
        options: ConnOptions,
        exchange: Exchange,
        pinned: str | None,
    ) -> Conn:
        url = request.url
        host, port = url.host, _port(url)
        if pinned is not None:
            addresses = [pinned]
        elif ip_literal(host) is not None:
            addresses = [host]
        else:  # raises ProbeFailure(DNS) itself
            resolution = await self.resolver(options.nameserver).resolve(
                host, options.family, cache=options.reuse
            )
            addresses = list(resolution.addresses)
            exchange.add("dns", resolution.elapsed)
        started = trio.current_time()
        try:
            conn = await connect_first(host, addresses, port)
        except ConnectFailed as exc:
            raise httpx.ConnectError(str(exc)) from exc
        exchange.add("connect", trio.current_time() - started)
        if context is not None:
            started = trio.current_time()
            sni = request.extensions.get("sni_hostname") or host
            try:
                await conn.start_tls(context, sni)
            except (ssl.SSLError, ssl.CertificateError, OSError) as exc:
                # what it presented, so a failed verification can say which certificate
                exchange.tls = _details(conn)
                conn.close()
                raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
            except BaseException:
                conn.close()
                raise
            exchange.add("tls", trio.current_time() - started)
            conn.details = _details(conn)
        return conn

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        exchange = CURRENT_EXCHANGE.get() or Exchange()
        options: ConnOptions = request.extensions.get(CONN, _DEFAULT_OPTIONS)
        sending = _sending(request)
        context = sending.context
        key: OriginKey | None = None
        conn: Conn | None = None
        pinned = _pinned(exchange, request.url)
        if options.reuse and pinned is None:
            key = sending.key
            conn = self._take_idle(key)
        data = await sending.data(request, close=key is None)
        while True:
            if conn is None:
                conn = await self._open(request, context, options, exchange, pinned)
            exchange.remote_addr = with_port(*conn.peer)
            if conn.tls is not None:
                exchange.tls = conn.details
            try:
                return await self._exchange(request, key, conn, data, exchange)
            except _Stale:
                conn = None  # once: the next one is new, so it cannot be stale

    async def _exchange(
        self,
        request: httpx.Request,
        key: OriginKey | None,
        conn: Conn,
        data: bytes,
        exchange: Exchange,
    ) -> httpx.Response:
        reader = ResponseReader(conn, request.method.encode("ascii"))
        started = trio.current_time()
        try:
            try:
                await conn.send_all(data)
            except OSError as exc:
                raise httpx.WriteError(str(exc) or type(exc).__name__) from exc
            try:
                status, headers = await reader.read_head()
            except OSError as exc:
                raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
        except (httpx.WriteError, httpx.ReadError, httpx.RemoteProtocolError) as exc:
            conn.close()
            if conn.reused and reader.received == 0:
                raise _Stale from exc
            raise
        except BaseException:
            conn.close()
            raise
        now = trio.current_time()
        exchange.add("processing", now - started)
        exchange.head_at = now
        return httpx.Response(
            status,
            headers=headers,
            stream=ProbeBody(self, key, conn, reader),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reader.reason},
        )


class _Stale(Exception):
    """A reused connection failed before any byte of the response: it was stale."""
