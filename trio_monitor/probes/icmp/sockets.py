"""ICMP sockets: which kind this process may open, and how replies reach their probe.

Two kinds (Linux):
- "dgram": an unprivileged ICMP socket (SOCK_DGRAM, IPPROTO_ICMP / IPPROTO_ICMPV6),
  allowed to the groups in `net.ipv4.ping_group_range` (which also governs ICMPv6). The
  kernel sets the identifier and hands a socket only the replies to it: one socket per
  probe, read by the probe itself (`DgramExchange`).
- "raw": SOCK_RAW, with CAP_NET_RAW. A raw socket receives every ICMP packet the host
  gets, so one per socket would make N probes read N x N packets: the prober shares one
  per family (`RawListener`), whose one reader task gives each echo reply to the probe
  waiting for its identifier (unique among the probes in flight), which checks the
  source address, sequence number and payload (`Pending.deliver`). A kernel filter
  (ICMP_FILTER, ICMP6_FILTER) passes only echo replies up to it.

Which kind is used is decided once (`choose`), at config load (`validate`) and when the
prober first needs it; `open_socket` is the one place sockets are made (tests replace it
to play a machine that refuses one kind).
"""

from __future__ import annotations

import errno
import os
import random
import socket
import struct
from collections.abc import Iterable
from typing import Literal

import trio

from ..._config import IcmpSocket
from .packet import Echo, parse_reply

SocketKind = Literal["dgram", "raw"]

IP_RECVTTL = getattr(socket, "IP_RECVTTL", 12)  # Linux's value; Python does not name it
SOL_RAW = 255  # linux/socket.h
ICMP_FILTER = 1  # linux/icmp.h, at SOL_RAW: a bit set for each type (< 32) to drop
ICMP6_FILTER = 1  # linux/icmpv6.h, at IPPROTO_ICMPV6: 256 bits, one set per type to drop
PING_GROUP_RANGE = "/proc/sys/net/ipv4/ping_group_range"
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux's value
# A raw socket's receive buffer: replies wait there while the reader is busy (probes
# start in bursts, each reply costs ~1 KiB of kernel memory); the default 208 KiB
# overflowed at 300 probes x 3 requests started at once. A bound, not an allocation.
RAW_RECEIVE_BUFFER = 4 << 20
MAX_PACKET = 65536  # the largest IP packet: what one read of a raw socket may hold
BATCH = 64  # packets the raw reader handles before letting other tasks run


def open_socket(kind: SocketKind, ipv6: bool) -> socket.socket:
    """A non-blocking ICMP socket of `kind` that reports the replies' hop limit (raw
    IPv4 reads it from each packet's IP header). OSError if the kernel refuses."""
    family, proto = (
        (socket.AF_INET6, socket.IPPROTO_ICMPV6) if ipv6 else (socket.AF_INET, socket.IPPROTO_ICMP)
    )
    sock = socket.socket(family, socket.SOCK_DGRAM if kind == "dgram" else socket.SOCK_RAW, proto)
    try:
        sock.setblocking(False)
        if ipv6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        elif kind == "dgram":
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
        if kind == "raw" and ipv6:
            blocked = [0xFFFFFFFF] * 8
            blocked[129 >> 5] &= ~(1 << (129 & 31))  # pass echo replies only
            sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *blocked))
        elif kind == "raw":
            sock.setsockopt(SOL_RAW, ICMP_FILTER, struct.pack("=I", 0xFFFFFFFF & ~1))
        if kind == "raw":
            _receive_buffer(sock, RAW_RECEIVE_BUFFER)
    except BaseException:
        sock.close()
        raise
    return sock


def _receive_buffer(sock: socket.socket, size: int) -> None:
    """Beyond net.core.rmem_max where allowed (CAP_NET_ADMIN), else up to it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


class Unavailable(Exception):
    """No socket kind allowed by `icmp_socket` can be opened; the message says why."""


def _can_open(kind: SocketKind) -> bool:
    try:
        open_socket(kind, ipv6=False).close()
    except OSError:
        return False
    return True


def choose(mode: IcmpSocket) -> SocketKind:
    """The socket kind to use: `mode`'s, or for "auto" dgram where the kernel allows
    this process's group, else raw. Unavailable (one line) if it cannot be opened."""
    kinds: tuple[SocketKind, ...] = ("dgram", "raw") if mode == "auto" else (mode,)
    for kind in kinds:
        if _can_open(kind):
            return kind
    raise Unavailable(_why_not(kinds))


def _why_not(kinds: Iterable[SocketKind]) -> str:
    reasons = {
        "dgram": (
            f"unprivileged ICMP sockets are off for group {os.getgid()} (sysctl "
            f'net.ipv4.ping_group_range is "{_group_range()}": make it include the group)'
        ),
        "raw": "raw ICMP sockets need CAP_NET_RAW (e.g. systemd's AmbientCapabilities=CAP_NET_RAW)",
    }
    return "cannot open an ICMP socket: " + "; ".join(reasons[kind] for kind in kinds)


def _group_range() -> str:
    try:
        with open(PING_GROUP_RANGE, encoding="ascii") as file:
            return " ".join(file.read().split())
    except OSError:
        return "unreadable"


def _hop_limit(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """The TTL (IP_TTL) or hop limit (IPV6_HOPLIMIT) control message, if any."""
    for level, kind, data in ancdata:
        if (level, kind) in _HOP_LIMIT_MESSAGES and len(data) >= 4:
            value: int = struct.unpack_from("=i", data)[0]
            return value
    return None


_HOP_LIMIT_MESSAGES = frozenset(
    {(socket.IPPROTO_IP, socket.IP_TTL), (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT)}
)
_ANCILLARY = socket.CMSG_SPACE(4)


class Pending:
    """One probe's echo requests and the replies that matched them.

    Bounded: `count` slots; a reply counts once per sequence number, only after its
    request was sent, only if it echoes the probe's payload from the probe's address.
    """

    __slots__ = ("addr", "count", "data", "done", "hop_limit", "ident", "received", "rtts", "sent")

    def __init__(self, ident: int, addr: str, data: bytes, count: int) -> None:
        self.ident = ident
        self.addr = addr
        self.data = data
        self.count = count
        self.sent: list[float | None] = [None] * count  # when each request left
        self.rtts: list[float | None] = [None] * count  # seconds, per sequence number
        self.received = 0
        self.hop_limit: int | None = None
        self.done = trio.Event()  # every request has its reply

    def deliver(self, echo: Echo, source: str, when: float) -> None:
        seq = echo.seq
        if (
            echo.ident != self.ident
            or source != self.addr
            or seq >= self.count
            or echo.data != self.data
        ):
            return
        sent = self.sent[seq]
        if sent is None or self.rtts[seq] is not None:
            return
        self.rtts[seq] = when - sent
        self.received += 1
        self.hop_limit = echo.hop_limit
        if self.received == self.count:
            self.done.set()


async def _send(sock: socket.socket, packet: bytes, addr: str) -> None:
    while True:
        try:
            sock.sendto(packet, (addr, 0))
            return
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)


class RawListener:
    """One raw ICMP socket of one family, shared by every probe of that family."""

    def __init__(self, sock: socket.socket, ipv6: bool) -> None:
        self._sock = sock
        self._ipv6 = ipv6
        self._waiting: dict[int, Pending] = {}
        self._next_ident = random.getrandbits(16)  # not in step with another monitor's

    def exchange(self, addr: str, data: bytes, count: int) -> RawExchange:
        """A probe's exchange, under an identifier no other probe in flight has."""
        if len(self._waiting) >= 1 << 16:
            raise OSError(errno.EAGAIN, "65536 ICMP probes already in flight")
        while self._next_ident in self._waiting:
            self._next_ident = (self._next_ident + 1) & 0xFFFF
        ident, self._next_ident = self._next_ident, (self._next_ident + 1) & 0xFFFF
        pending = self._waiting[ident] = Pending(ident, addr, data, count)
        return RawExchange(self, pending)

    async def send(self, packet: bytes, addr: str) -> None:
        await _send(self._sock, packet, addr)

    def release(self, pending: Pending) -> None:
        if self._waiting.get(pending.ident) is pending:
            del self._waiting[pending.ident]

    async def run(self) -> None:
        """Read replies until the socket is closed; never raises (but Cancelled)."""
        buffer = bytearray(MAX_PACKET)
        view = memoryview(buffer)
        sock, ipv6 = self._sock, self._ipv6
        while True:
            try:
                await trio.lowlevel.wait_readable(sock)
            except (trio.ClosedResourceError, OSError):
                return
            for _ in range(BATCH):
                try:
                    size, ancdata, _, source = sock.recvmsg_into([buffer], _ANCILLARY)
                except BlockingIOError:
                    break
                except OSError:  # a pending error of the socket: reported once, go on
                    continue
                when = trio.current_time()
                echo = parse_reply(
                    view[:size], ipv6, ip_header=not ipv6, hop_limit=_hop_limit(ancdata)
                )
                if echo is not None and (pending := self._waiting.get(echo.ident)) is not None:
                    pending.deliver(echo, source[0], when)
            else:
                await trio.lowlevel.checkpoint()  # a flood must not starve the probes

    def close(self) -> None:
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()


class RawExchange:
    """A probe's requests over the shared raw socket; its listener collects replies."""

    kind: SocketKind = "raw"

    def __init__(self, listener: RawListener, pending: Pending) -> None:
        self._listener = listener
        self.pending = pending

    async def send(self, packet: bytes) -> None:
        await self._listener.send(packet, self.pending.addr)

    async def collect(self) -> None:
        await self.pending.done.wait()

    def close(self) -> None:
        self._listener.release(self.pending)


class DgramExchange:
    """A probe's requests over its own unprivileged ICMP socket, which it reads itself.

    The kernel picks the identifier (the socket's port) and gives the socket only the
    replies carrying it."""

    kind: SocketKind = "dgram"

    def __init__(self, addr: str, data: bytes, count: int, ipv6: bool) -> None:
        self._sock = sock = open_socket("dgram", ipv6)
        self._ipv6 = ipv6
        try:
            sock.bind(("::", 0) if ipv6 else ("0.0.0.0", 0))
        except BaseException:
            sock.close()
            raise
        self.pending = Pending(sock.getsockname()[1], addr, data, count)
        self._bufsize = len(data) + 64  # an ICMP header and what it echoes, with room

    @property
    def ident(self) -> int:
        return self.pending.ident

    async def send(self, packet: bytes) -> None:
        await _send(self._sock, packet, self.pending.addr)

    async def collect(self) -> None:
        sock, pending = self._sock, self.pending
        while not pending.done.is_set():
            await trio.lowlevel.wait_readable(sock)
            for _ in range(BATCH):
                try:
                    data, ancdata, _, source = sock.recvmsg(self._bufsize, _ANCILLARY)
                except BlockingIOError:
                    break
                except OSError:  # an ICMP error (unreachable) the kernel reports: a loss
                    continue
                echo = parse_reply(data, self._ipv6, hop_limit=_hop_limit(ancdata))
                if echo is not None:
                    pending.deliver(echo, source[0], trio.current_time())

    def close(self) -> None:
        self._sock.close()
