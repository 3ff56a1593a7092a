"""Serving an ASGI app with hypercorn's trio worker, in the monitor's own trio run:
`serve_http` binds `[server] listen`, reports the bound address, and on cancellation
shuts down within a bound, whatever clients do (see `_abort_connections`).

hypercorn's own messages go to the "trio_monitor.http" logger, and its access log (off
by default) to "trio_monitor.access".
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

import trio

from .._errors import ServerError

if TYPE_CHECKING:
    from hypercorn.typing import ASGIFramework
    from starlette.types import ASGIApp

    from .._config import ServerSection

log = logging.getLogger("trio_monitor")
_hypercorn_log = logging.getLogger("trio_monitor.http")  # hypercorn's own messages
_access_log = logging.getLogger("trio_monitor.access")

SHUTDOWN_GRACE = 5.0  # seconds requests in progress get once the server is stopped


def _answered(record: logging.LogRecord) -> bool:
    # hypercorn also logs each HTTP/1.1 request once without a status ("-") as its
    # stream closes, even when it was answered: keep the line with the status
    return not (isinstance(record.args, Mapping) and record.args.get("s") == "-")


_access_log.addFilter(_answered)


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def _address(server: ServerSection) -> str:
    host, port = server.listen
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve_http(
    app: ASGIApp,
    server: ServerSection,
    *,
    grace: float = SHUTDOWN_GRACE,
    access_log: bool = False,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `app` on server.listen until cancelled; started((host, port)) once listening
    (port 0: the port the OS chose).

    Cancelling this task shuts the server down gracefully: it stops accepting, closes
    idle keep-alive connections and gives requests in progress `grace` seconds; then
    they are cancelled. Shutdown takes at most about `grace` + 1 s, whatever clients do
    (see `_abort_connections` for clients that stop reading). A listen failure raises
    ServerError (one line).
    """
    from hypercorn.config import Config as HypercornConfig  # slow to import: only when serving
    from hypercorn.trio import serve

    # The same ASGI 3 callable: Starlette types its scope as a MutableMapping,
    # hypercorn as TypedDicts, and neither type is the other's.
    asgi = cast("ASGIFramework", app)
    host, _ = server.listen
    config = HypercornConfig()
    config.bind = [_address(server)]
    config.graceful_timeout = grace
    config.accesslog = _access_log if access_log else None
    config.access_log_format = '%(h)s "%(m)s %(Uq)s HTTP/%(H)s" %(s)s %(b)s %(L)ss "%(a)s"'
    config.errorlog = _hypercorn_log
    config.include_server_header = False
    if _hypercorn_log.level == logging.NOTSET:
        _hypercorn_log.setLevel(logging.WARNING)  # not "Running on ... (CTRL + C to quit)"

    stop = trio.Event()
    finished = trio.Event()
    hard_stop = trio.CancelScope(shield=True)  # our cancellation reaches hypercorn as `stop`
    bound: tuple[str, int] | None = None

    async def run(task_status: trio.TaskStatus[list[str]]) -> None:
        try:
            with hard_stop:
                await serve(
                    asgi, config, shutdown_trigger=stop.wait, task_status=task_status, mode="asgi"
                )
        finally:
            finished.set()
        if not stop.is_set():
            raise ServerError(f"the HTTP server on {_address(server)} stopped unexpectedly")

    try:
        async with trio.open_nursery() as nursery:
            try:
                binds: list[str] = await nursery.start(run)
                url = urlsplit(binds[0])
                assert url.hostname is not None
                assert url.port is not None
                bound = url.hostname, url.port
                log.info("serving HTTP on %s", binds[0])
                task_status.started((host, url.port))
                await trio.sleep_forever()
            finally:
                stop.set()
                await _finish(finished, hard_stop, bound, grace)
    except BaseException as exc:
        if bound is not None:
            raise
        for leaf in _leaves(exc):
            if isinstance(leaf, OSError):
                reason = leaf.strerror or str(leaf)
                raise ServerError(
                    f"cannot listen on {_address(server)} ([server] listen): {reason}"
                ) from None
        raise


async def _finish(
    finished: trio.Event, hard_stop: trio.CancelScope, bound: tuple[str, int] | None, grace: float
) -> None:
    """Wait (shielded) for hypercorn's graceful shutdown; past `grace`, force it."""
    with trio.CancelScope(shield=True):
        with trio.move_on_after(grace + 0.5):
            await finished.wait()
        if finished.is_set():
            return
        # Requests still in progress were cancelled at `grace`: what is left is blocked
        # writing to a client that does not read.
        hard_stop.cancel()
        aborted = 0 if bound is None else _abort_connections(*bound)
        if aborted:
            log.warning(
                "HTTP server: closed %d connection(s) whose client stopped reading", aborted
            )
        with trio.move_on_after(1.0):
            await finished.wait()
        if not finished.is_set():
            log.warning("HTTP server: connections still open %g s after shutdown", grace + 1.5)


def _abort_connections(host: str, port: int) -> int:
    """Shut down every TCP connection this process accepted on host:port. -> how many.

    hypercorn writes to a connection inside a shielded cancel scope (so a cancelled
    write never leaves half a response), so a client that stops reading a response
    keeps its connection task, and the server's shutdown, waiting forever. Nothing
    outside hypercorn holds those sockets: on Linux they are found among the process's
    open files, and shutting one down makes the blocked write fail at once. Elsewhere
    this finds none.
    """
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return 0
    wildcard = ipaddress.ip_address(host).is_unspecified if _is_ip(host) else True
    aborted = 0
    for fd in fds:
        try:
            dup = os.dup(fd)
        except OSError:
            continue
        try:
            sock = socket.socket(fileno=dup)
        except OSError:  # not a socket
            os.close(dup)
            continue
        with sock:
            try:
                if (
                    sock.type != socket.SOCK_STREAM
                    or sock.family not in (socket.AF_INET, socket.AF_INET6)
                    or sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
                ):
                    continue
                local = sock.getsockname()
                if local[1] != port:
                    continue
                if not wildcard and ipaddress.ip_address(local[0]) != ipaddress.ip_address(host):
                    continue
                sock.getpeername()  # connected (OSError if not)
                sock.shutdown(socket.SHUT_RDWR)
                aborted += 1
            except OSError:
                continue
    return aborted


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
