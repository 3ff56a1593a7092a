"""Loopback target farm: plain asyncio servers on many ports of 127.0.0.1.

Run as its own process, so its CPU is not counted against the probers. The behaviour
of a target is encoded in its request path, so every prober sees the same thing:

    /d/<ms>   200 with a small body after <ms> milliseconds
    /e/<ms>   500 with a small body after <ms> milliseconds
    /hang     never answers (the connection stays open until the client gives up)
    /blip/<from_ms>/<until_ms>
              500 while the wall clock (unix ms) is in [from, until), else 200: an
              outage every prober sees at the same moment
    /down/<from_ms>/<until_ms>/<mode>
              while the wall clock (unix ms) is in [from, until): mode `500` answers
              500, mode `hang` never answers; else 200: an outage with a known start
              and end (bench/detection.py)
    /j/<ms>   200 after <ms> milliseconds with log-normal jitter (sigma 0.15) and, one
              request in 100, five times slower: a steady but realistic target
    /ramp/<from_ms>/<until_ms>/<base_ms>/<peak_ms>
              jittered like /j/<base_ms> before `from`; its delay grows geometrically
              to <peak_ms> until `until`; 500 after it: an outage with a slow precursor
    /flaky/<from_ms>/<until_ms>/<base_ms>
              like /j/<base_ms>, but from `from` to `until` a growing share of
              requests (up to 40 %) answers 500; all of them after `until`
              (bench/early_warning.py)

HTTP/1.1 with keep-alive and Content-Length; delays use loop.call_later, never a
blocking sleep. `/d/<ms>` is also the route with a known delay the latency-overhead
scenarios use (measured latency minus <ms>). With `--tls-cert` and `--tls-key` (PEM,
e.g. from a trustme CA) every listening port speaks HTTPS instead. Besides the listening ports, the farm reserves "closed" ports: bound
but never listening, so a connection to them is refused and no other process can take
them meanwhile. All ports are taken below the kernel's ephemeral range, so a client's
own source port can never collide with a closed port (a TCP self-connect).

    python bench/farm.py --ports 200 --closed 20

prints one line `READY {"ports": [...], "closed": [...]}` once listening, and exits on
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import math
import random
import signal
import socket
import ssl
import sys
import time

BACKLOG = 4096
MAX_HEAD = 64 * 1024  # a request head longer than this is garbage: drop the connection


def _response(status: int, reason: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        f"Content-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"\r\n"
    )
    return head.encode() + body


OK = _response(200, "OK", b"ok: trio-monitor benchmark farm\n")
ERROR = _response(500, "Internal Server Error", b"error: designed failure\n")
NOT_FOUND = _response(404, "Not Found", b"unknown path\n")


def route(path: bytes) -> tuple[bytes, float] | None:
    """-> (response, delay in seconds), or None for a request never to be answered."""
    parts = path.split(b"?", 1)[0].split(b"/")
    if len(parts) == 3 and parts[1] in (b"d", b"e") and parts[2].isdigit():
        return (OK if parts[1] == b"d" else ERROR), int(parts[2]) / 1000
    if parts[1:] == [b"hang"]:
        return None
    if len(parts) == 4 and parts[1] == b"blip" and parts[2].isdigit() and parts[3].isdigit():
        down = int(parts[2]) <= time.time() * 1000 < int(parts[3])
        return (ERROR if down else OK), 0.0
    if (
        len(parts) == 5
        and parts[1] == b"down"
        and parts[2].isdigit()
        and parts[3].isdigit()
        and parts[4] in (b"500", b"hang")
    ):
        if not int(parts[2]) <= time.time() * 1000 < int(parts[3]):
            return OK, 0.0
        return None if parts[4] == b"hang" else (ERROR, 0.0)
    timed = _timed(parts)
    if timed is not None:
        return timed
    return NOT_FOUND, 0.0


def _jitter(ms: float) -> float:
    spike = 5.0 if random.random() < 0.01 else 1.0
    return ms * spike * math.exp(random.gauss(0, 0.15)) / 1000


def _timed(parts: list[bytes]) -> tuple[bytes, float] | None:
    """/j, /ramp and /flaky (see the module's docstring); None: not one of them."""
    if not all(p.isdigit() for p in parts[2:]) or len(parts) < 3:
        return None
    n = [int(p) for p in parts[2:]]
    now = time.time() * 1000
    if parts[1] == b"j" and len(n) == 1:
        return OK, _jitter(n[0])
    if parts[1] == b"ramp" and len(n) == 4:
        start, until, base, peak = n
        if now >= until:
            return ERROR, 0.0
        share = min(1.0, max(0.0, (now - start) / max(1, until - start)))
        return OK, _jitter(base * (peak / base) ** share)
    if parts[1] == b"flaky" and len(n) == 3:
        start, until, base = n
        if now >= until:
            return ERROR, 0.0
        share = min(1.0, max(0.0, (now - start) / max(1, until - start)))
        return (ERROR if random.random() < 0.4 * share else OK), _jitter(base)
    return None


class TargetProtocol(asyncio.Protocol):
    """One connection: requests answered in order, one at a time (no pipelining needed)."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._next_request()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._transport = None

    def _next_request(self) -> None:
        if self._busy or self._transport is None:
            return
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD:
                self._transport.close()
            return
        head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
        request_line = head.split(b"\r\n", 1)[0].split(b" ")
        answer = route(request_line[1] if len(request_line) > 1 else b"")
        self._busy = True
        if answer is None:
            return  # /hang: stay busy forever
        response, delay = answer
        close = b"connection: close" in head.lower()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self._respond, response, close)

    def _respond(self, response: bytes, close: bool) -> None:
        self._timer = None
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.write(response)
        if close:
            self._transport.close()
            return
        self._busy = False
        self._next_request()


def ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def reserve_ports(count: int, base: int) -> list[socket.socket]:
    """Bind `count` TCP sockets on 127.0.0.1 at the first free ports from `base` up."""
    limit = ephemeral_low()
    sockets: list[socket.socket] = []
    for port in range(base, limit):
        if len(sockets) == count:
            return sockets
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        sockets.append(sock)
    for sock in sockets:
        sock.close()
    raise SystemExit(f"farm: fewer than {count} free ports between {base} and {limit}")


def server_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if cert is None or key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def serve(
    listening: list[socket.socket], closed: list[socket.socket], tls: ssl.SSLContext | None
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    servers = [
        await loop.create_server(TargetProtocol, sock=sock, backlog=BACKLOG, ssl=tls)
        for sock in listening
    ]
    ready = {
        "ports": [sock.getsockname()[1] for sock in listening],
        "closed": [sock.getsockname()[1] for sock in closed],
    }
    print("READY", json.dumps(ready), flush=True)
    await stop.wait()
    for server in servers:
        server.close()
    for sock in closed:
        sock.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ports", type=int, default=100, help="listening ports")
    parser.add_argument("--closed", type=int, default=10, help="reserved, never listening ports")
    parser.add_argument("--base-port", type=int, default=20000, help="first port to try")
    parser.add_argument("--tls-cert", help="PEM certificate chain: serve HTTPS")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    args = parser.parse_args(argv)
    tls = server_context(args.tls_cert, args.tls_key)
    sockets = reserve_ports(args.ports + args.closed, args.base_port)
    asyncio.run(serve(sockets[: args.ports], sockets[args.ports :], tls))


if __name__ == "__main__":
    sys.exit(main())
