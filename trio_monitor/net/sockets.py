"""A connection: a non-blocking socket, optionally TLS, driven by trio's low-level waits;
shared by the probe kinds that open TCP connections (HTTP's transport, tcp://, tls://).

Every operation tries the system call first and waits (`trio.lowlevel.wait_readable` /
`wait_writable`) only when it would block: no cancel scope, lock or stream object per
read or write, and the TLS handshake and record layer run in C (`ssl.SSLSocket` in
non-blocking mode) rather than in `trio.SSLStream`'s Python state machine. A probe's
deadline is one cancel scope around the whole probe; every wait here is a checkpoint it
can cancel, and a read that did not have to wait still checks for cancellation.

Connections are used by one task at a time (the transport hands each to one request;
a tcp:// probe owns its one),
so nothing else can be waiting on a socket when it is closed.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import ssl
from collections.abc import Sequence
from typing import TYPE_CHECKING

import trio
from trio.lowlevel import checkpoint_if_cancelled, wait_readable, wait_writable

from .addr import with_port

if TYPE_CHECKING:
    from .certs import TlsDetails

RECV_SIZE = 64 * 1024


class Conn:
    """One connection to one address. Owns its socket: `close()` it."""

    __slots__ = ("_poll", "_sock", "details", "peer", "reused", "tls")

    def __init__(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        self._sock: socket.socket | ssl.SSLSocket = sock
        self.peer = peer  # (ip, port) as connected
        self.tls: ssl.SSLSocket | None = None
        self.details: TlsDetails | None = None  # of `tls`'s certificates, read once
        self.reused = False
        self._poll: select.poll | None = None  # made at the first idle check, kept

    @property
    def local_ip(self) -> str:
        """Our end's address (an SMTP EHLO names it)."""
        return str(self._sock.getsockname()[0])

    @property
    def closed(self) -> bool:
        return self._sock.fileno() < 0

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str | None) -> None:
        """Handshake; raises ssl.SSLError on failure, leaving the connection open so the
        caller can still read the certificates the server sent (then close it)."""
        sock = self._sock
        assert isinstance(sock, socket.socket)
        try:
            tls = context.wrap_socket(
                sock, server_hostname=server_hostname, do_handshake_on_connect=False
            )
        except BaseException:
            sock.close()
            raise
        # wrap_socket detached `sock`: the SSLSocket owns the descriptor from here on
        self._sock = self.tls = tls
        while True:
            try:
                tls.do_handshake()
                return
            except ssl.SSLWantReadError:
                await wait_readable(tls)
            except ssl.SSLWantWriteError:
                await wait_writable(tls)

    async def send_all(self, data: bytes) -> None:
        sock = self._sock
        view = memoryview(data)
        while view:
            try:
                sent = sock.send(view)
            except (BlockingIOError, ssl.SSLWantWriteError):
                await wait_writable(sock)
                continue
            except ssl.SSLWantReadError:  # TLS may need to read to write (renegotiation)
                await wait_readable(sock)
                continue
            view = view[sent:]
        await checkpoint_if_cancelled()

    async def recv(self, *, wait_first: bool = False) -> bytes:
        """Up to RECV_SIZE bytes; b"" at the end of the stream. `wait_first`: the caller
        expects nothing yet (a request just sent): wait for readability before the
        first system call instead of after one that would almost always fail."""
        sock = self._sock
        if wait_first and not (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            await wait_readable(sock)
        while True:
            try:
                data = sock.recv(RECV_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError):
                await wait_readable(sock)
                continue
            except ssl.SSLWantWriteError:
                await wait_writable(sock)
                continue
            await checkpoint_if_cancelled()
            return data

    def is_idle_and_open(self) -> bool:
        """For a pooled connection: not closed, and nothing to read. Bytes the server sent
        unasked, its FIN or a TLS close_notify all make it unusable."""
        sock = self._sock
        fd = sock.fileno()
        if fd < 0 or (isinstance(sock, ssl.SSLSocket) and sock.pending()):
            return False
        poll = self._poll  # not select(): descriptors above 1023 are common here
        if poll is None:  # a pooled connection is checked at every reuse: once is enough
            poll = self._poll = select.poll()
            poll.register(fd, select.POLLIN)
        return not poll.poll(0)

    def close(self) -> None:
        self._sock.close()


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


async def connect(ip: str, port: int) -> Conn:
    """A TCP connection to `ip` (a literal), TCP_NODELAY on; raises OSError."""
    sock = socket.socket(_family(ip), socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = sock.connect_ex((ip, port))
        if code == errno.EINPROGRESS:
            await wait_writable(sock)
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        else:
            await trio.lowlevel.checkpoint()
        if code:
            raise OSError(code, os.strerror(code))
    except BaseException:
        sock.close()
        raise
    return Conn(sock, (ip, port))


class ConnectFailed(OSError):
    """No address of a host accepted the connection; the last refusal is the cause."""


async def connect_first(host: str, addresses: Sequence[str], port: int) -> Conn:
    """The first address that accepts, in the resolver's order (as curl does)."""
    if not addresses:
        raise ConnectFailed(f"cannot resolve {host}: no address")
    error: OSError | None = None
    for ip in addresses:
        try:
            return await connect(ip, port)
        except OSError as exc:
            error = exc
    raise ConnectFailed(f"cannot connect to {with_port(host, port)}") from error
