"""The embedded HTTP server: status page, JSON API, Prometheus metrics and health check.

A Starlette app (`build_app`) served by hypercorn's trio worker (`serve_http`), in the
monitor's own trio run. Handlers only read: the running monitor through `MonitorView`
(in memory, non-blocking) and history through a `HistoryReader` opened per request in a
worker thread, so a slow disk never stalls the event loop (or probing).

    GET /                                       status page (HTML; it calls the API itself)
    GET /healthz                                200 healthy / 503 with the reason; no token
    GET /metrics                                Prometheus text format
    GET /api/v1/targets                         every target's state and 24 h figures
    GET /api/v1/targets/{name}                  one target, plus its last 50 probes
    GET /api/v1/targets/{name}/history          raw probes in [since, until)
    GET /api/v1/incidents                       outages overlapping [since, until)
    GET /api/v1/badges/{name}/status.svg        "up" / "down" / "unknown"
    GET /api/v1/badges/{name}/uptime.svg        24 h availability
    GET /api/v1/openapi.json                    OpenAPI 3.1 description of all of these

A target name may contain "/" (names default to the URL): percent-encode it as %2F.
Every error is JSON `{"error": "..."}` (never a traceback). With `[server] token`, every
path but /healthz needs `Authorization: Bearer <token>`; with `public_status_page`,
"/" and the badges stay public (the page's own API calls still need the token).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import socket
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Mapping
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import httpx
import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .._config import ServerSection, parse_when
from .._errors import ErrorKind, ServerError, StoreError
from .._records import rfc3339, to_dict
from ..store import HistoryReader
from ..store.records import Incident, Sample

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ..engine.view import MonitorView, TargetStatus
    from .metrics import Metrics

log = logging.getLogger("trio_monitor")
_hypercorn_log = logging.getLogger("trio_monitor.http")  # hypercorn's own messages
_access_log = logging.getLogger("trio_monitor.access")


def _answered(record: logging.LogRecord) -> bool:
    # hypercorn also logs each HTTP/1.1 request once without a status ("-") as its
    # stream closes, even when it was answered: keep the line with the status
    return not (isinstance(record.args, Mapping) and record.args.get("s") == "-")


_access_log.addFilter(_answered)

API = "/api/v1"
RECENT = 50  # probes in a target's detail
MAX_ROWS = 10_000  # samples or incidents in one answer at most: the newest (`truncated`)
DEFAULT_SINCE = "24h"
SHUTDOWN_GRACE = 5.0  # seconds requests in progress get once the server is stopped
HEALTH_TIMEOUT = 5.0  # seconds `trio-monitor health` waits for an answer
HISTORY_READERS = 4  # worker threads reading history at once
_MIN_TS, _MAX_TS = -62135596800.0, 253402300799.0  # years 1 to 9999: what RFC 3339 can say

PageFn = Callable[[], str]
BadgeFn = Callable[[str, str, str], str]


# --- errors --------------------------------------------------------------------------


class _ApiError(HTTPException):
    """An expected error with a message for the client."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(status, message, headers)


class _JSON(JSONResponse):
    def __init__(self, content: Any, status_code: int = 200, headers: dict | None = None):
        super().__init__(content, status_code, {"cache-control": "no-store", **(headers or {})})


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> _JSON:
    return _JSON({"error": message}, status, headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if isinstance(exc, _ApiError):
        message = exc.detail
    elif exc.status_code == 404:
        message = f"no such path: {request.scope['path']}"
    elif exc.status_code == 405:
        message = f"method {request.method} not allowed on {request.scope['path']}"
    else:
        message = exc.detail
    return _error(exc.status_code, message, dict(exc.headers or {}))


async def _internal_error(request: Request, exc: Exception) -> Response:
    # The exception goes on to _Guard, which logs it with its traceback.
    return _error(500, "internal error (logged on the server's stderr)")


def _time(ts: float | None) -> str | None:
    return None if ts is None else rfc3339(ts)


def _parse_time(value: str, now: float, name: str) -> float:
    """A duration back from now ("24h", "7d") or an RFC 3339 time -> unix seconds."""
    try:
        ts = parse_when(value, now)
    except ValueError:
        raise _ApiError(
            400,
            f"invalid {name} {value!r}: use a duration back from now like 24h or 7d, "
            "or an RFC 3339 time like 2026-11-27T00:00:00Z",
        ) from None
    if not _MIN_TS <= ts <= _MAX_TS:
        raise _ApiError(400, f"invalid {name} {value!r}: out of range")
    return ts


def _range(request: Request) -> tuple[float, float]:
    now = time.time()
    query = request.query_params
    since = _parse_time(query.get("since", DEFAULT_SINCE), now, "since")
    until = now if "until" not in query else _parse_time(query["until"], now, "until")
    if since >= until:
        raise _ApiError(
            400, f"empty range: since {rfc3339(since)} is not before until {rfc3339(until)}"
        )
    return since, until


def _limit(request: Request) -> int:
    value = request.query_params.get("limit")
    if value is None:
        return MAX_ROWS
    if not (value.isdigit() and 1 <= int(value) <= MAX_ROWS):
        raise _ApiError(400, f"invalid limit {value!r}: use a whole number from 1 to {MAX_ROWS}")
    return int(value)


# --- JSON shapes (described in openapi_document) ---------------------------------------


def _target_json(t: TargetStatus) -> dict[str, Any]:
    return {
        "name": t.name,
        "url": t.url,
        "state": t.state,
        "since": _time(t.since),
        "last": None if t.last is None else to_dict(t.last),
        "interval_s": t.interval_s,
        "checks_24h": t.checks_24h,
        "availability_24h_pct": t.availability_24h_pct,
        "p95_24h_ms": t.p95_24h_ms,
    }


def _sample_json(s: Sample) -> dict[str, Any]:
    return {
        "ts": rfc3339(s.ts),
        "ok": s.ok,
        "status": s.status,
        "latency_ms": s.latency_ms,
        "error": s.error,
    }


def _incident_json(i: Incident, now: float) -> dict[str, Any]:
    return {
        "target": i.target,
        "start": rfc3339(i.start),
        "end": _time(i.end),
        "duration_s": round(max(0.0, i.duration(now)), 3),
        "error": i.error,
    }


# --- badges --------------------------------------------------------------------------

_STATE_BADGE = {
    "UP": ("up", "#4c1"),
    "DOWN": ("down", "#e05d44"),
    "UNKNOWN": ("unknown", "#9f9f9f"),
}


_UPTIME_COLORS = ((99.9, "#4c1"), (99.0, "#97ca00"), (95.0, "#dfb317"), (90.0, "#fe7d37"))


def _uptime_badge(pct: float | None) -> tuple[str, str]:
    if pct is None:
        return "n/a", "#9f9f9f"
    # cut, never rounded up, to two decimals: 99.999 shows "99.99%", never "100%"
    cut = Decimal(repr(min(100.0, max(0.0, pct)))).quantize(Decimal("0.01"), ROUND_DOWN)
    shown = f"{cut.normalize():f}%"
    color = next((c for floor, c in _UPTIME_COLORS if pct >= floor), "#e05d44")
    return shown, color


def _default_page() -> str:
    from .page import status_page_html  # import when first asked for

    return status_page_html()


def _default_csp() -> str:
    from .page import status_page_csp

    return status_page_csp()


def _default_badge(label: str, message: str, color: str) -> str:
    from .page import badge_svg

    return badge_svg(label, message, color)


# --- the app -------------------------------------------------------------------------


def _read(path: str, fn: Callable[[HistoryReader], Any]) -> Any:
    with HistoryReader(path) as reader:
        return fn(reader)


class _Api:
    def __init__(
        self,
        view: MonitorView,
        server: ServerSection,
        metrics: Metrics,
        page: PageFn | None,
        badge: BadgeFn | None,
    ) -> None:
        self.view, self.server, self.metrics = view, server, metrics
        self.page, self.badge = page or _default_page, badge or _default_badge
        self.csp = _default_csp if page is None else None
        self.openapi = openapi_document(server)
        self._page: tuple[str, dict[str, str]] | None = None
        self._readers = trio.CapacityLimiter(HISTORY_READERS)

    async def history(self, fn: Callable[[HistoryReader], Any]) -> Any:
        """Run fn(reader) in a worker thread. A cancelled request abandons the thread,
        which finishes and closes its own reader: nothing blocks shutdown."""
        path = self.view.store_path
        if path is None:
            raise _ApiError(404, "history is disabled ([storage] enabled = false)")
        try:
            return await trio.to_thread.run_sync(
                _read, path, fn, limiter=self._readers, abandon_on_cancel=True
            )
        except (StoreError, sqlite3.Error) as exc:
            raise _ApiError(503, f"history unavailable: {exc}") from None

    def status(self, name: str) -> TargetStatus:
        status = self.view.target(name)
        if status is None:
            raise _ApiError(404, f"unknown target {name!r}")
        return status

    def _resolve(self, request: Request, prefix: str, leaves: tuple[str, ...]) -> tuple[str, str]:
        """`prefix{name}/{leaf}` -> (name, leaf), leaf "" for none. The name is one
        percent-encoded path segment; one sent with bare slashes is found too when it
        names a target exactly."""
        path: str = request.scope["path"]  # decoded (request.url would split it at a "?")
        raw = request.scope.get("raw_path") or path.encode()
        raw_path = raw.decode("latin-1").split("?", 1)[0]
        segments = raw_path[len(prefix) :].split("/") if raw_path.startswith(prefix) else []
        if segments and segments[0]:
            name, leaf = unquote(segments[0]), "/".join(segments[1:])
            if leaf in leaves and self.view.target(name) is not None:
                return name, leaf
        decoded = path[len(prefix) :]
        for leaf in leaves:
            name = decoded.removesuffix(f"/{leaf}") if leaf else decoded
            if (name != decoded or not leaf) and self.view.target(name) is not None:
                return name, leaf
        if segments and segments[0] and "/".join(segments[1:]) in leaves:
            raise _ApiError(404, f"unknown target {unquote(segments[0])!r}")
        raise _ApiError(404, f"no such path: {path}")

    # --- handlers ---

    async def index(self, request: Request) -> Response:
        if self._page is None:
            headers = {"cache-control": "no-cache", "x-content-type-options": "nosniff"}
            csp = None if self.csp is None else self.csp()
            if csp:
                headers["content-security-policy"] = csp
            self._page = self.page(), headers
        text, headers = self._page
        return HTMLResponse(text, headers=headers)

    async def healthz(self, request: Request) -> Response:
        h = self.view.health()
        body = {
            "status": "ok" if h.ok else "unhealthy",
            "reason": h.reason,
            "last_round_age_s": None
            if h.last_round_age_s is None
            else round(h.last_round_age_s, 3),
            "max_age_s": h.max_age_s,
        }
        return _JSON(body, 200 if h.ok else 503)

    async def metrics_text(self, request: Request) -> Response:
        from .metrics import CONTENT_TYPE

        body = await trio.to_thread.run_sync(self.metrics.render, abandon_on_cancel=True)
        return Response(body, headers={"content-type": CONTENT_TYPE, "cache-control": "no-store"})

    async def targets(self, request: Request) -> Response:
        return _JSON([_target_json(t) for t in self.view.targets()])

    async def target(self, request: Request) -> Response:
        name, leaf = self._resolve(request, f"{API}/targets/", ("", "history"))
        if leaf == "history":
            return await self._history(request, name)
        body = _target_json(self.status(name))
        body["recent"] = None
        if self.view.store_path is not None:
            try:
                recent = await self.history(lambda reader: reader.recent(name, RECENT))
            except _ApiError as exc:
                log.warning(
                    "GET %r: recent probes unavailable: %s", request.scope["path"], exc.detail
                )
            else:
                body["recent"] = [_sample_json(s) for s in recent]
        return _JSON(body)

    async def _history(self, request: Request, name: str) -> Response:
        since, until = _range(request)
        limit = _limit(request)
        rows = await self.history(
            lambda reader: list(deque(reader.samples(name, since, until), maxlen=limit + 1))
        )
        return _JSON(
            {
                "target": name,
                "since": rfc3339(since),
                "until": rfc3339(until),
                "samples": [_sample_json(s) for s in rows[-limit:]],
                "truncated": len(rows) > limit,
            }
        )

    async def incidents(self, request: Request) -> Response:
        since, until = _range(request)
        limit = _limit(request)
        target = request.query_params.get("target")
        rows = await self.history(lambda reader: reader.incidents(since, until, target))
        now = time.time()
        return _JSON(
            {
                "since": rfc3339(since),
                "until": rfc3339(until),
                "incidents": [_incident_json(i, now) for i in rows[-limit:]],
                "truncated": len(rows) > limit,
            }
        )

    async def badges(self, request: Request) -> Response:
        name, leaf = self._resolve(request, f"{API}/badges/", ("status.svg", "uptime.svg"))
        status = self.status(name)
        if leaf == "status.svg":
            message, color = _STATE_BADGE.get(status.state, ("unknown", "#9f9f9f"))
        else:
            message, color = _uptime_badge(status.availability_24h_pct)
        return Response(
            self.badge(name, message, color),
            headers={
                "content-type": "image/svg+xml; charset=utf-8",
                "cache-control": "no-cache, max-age=0",
                "x-content-type-options": "nosniff",
            },
        )

    async def openapi_json(self, request: Request) -> Response:
        return _JSON(self.openapi)


def build_app(
    view: MonitorView,
    server: ServerSection,
    metrics: Metrics,
    *,
    page: PageFn | None = None,
    badge: BadgeFn | None = None,
) -> ASGIApp:
    """The ASGI app. `page` and `badge` default to trio_monitor._page's functions."""
    api = _Api(view, server, metrics, page, badge)
    routes = [
        Route("/", api.index),
        Route("/healthz", api.healthz),
        Route("/metrics", api.metrics_text),
        Route(f"{API}/targets", api.targets),
        Route(API + "/targets/{rest:path}", api.target),
        Route(f"{API}/incidents", api.incidents),
        Route(API + "/badges/{rest:path}", api.badges),
        Route(f"{API}/openapi.json", api.openapi_json),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    return _Guard(_Auth(app, server))


class _Auth:
    """Bearer-token check before routing (unknown paths are no hint without it)."""

    def __init__(self, app: ASGIApp, server: ServerSection) -> None:
        self.app = app
        self.token = None if server.token is None else server.token.encode()
        self.public_page = server.public_status_page

    def _public(self, path: str) -> bool:
        if path == "/healthz":
            return True
        return self.public_page and (path == "/" or path.startswith(f"{API}/badges/"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.token is None or scope["type"] != "http" or self._public(scope["path"]):
            await self.app(scope, receive, send)
            return
        given = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    given = credentials.strip()
                break
        if given and hmac.compare_digest(given, self.token):  # an empty token opens nothing
            await self.app(scope, receive, send)
            return
        if given is None:
            message = "authentication required: send 'Authorization: Bearer <token>'"
            challenge = 'Bearer realm="trio-monitor"'
        else:
            message = "invalid bearer token"
            challenge = 'Bearer realm="trio-monitor", error="invalid_token"'
        response = _error(401, message, {"www-authenticate": challenge})
        await response(scope, receive, send)


class _Guard:
    """Outermost: a handler's exception is logged (with its traceback) on the server,
    never sent; the client got a JSON 500 from the app's error handler."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.error(
                "HTTP %s %r failed: %s: %s",
                scope.get("method"),
                scope.get("path"),
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            if not started:
                await _error(500, "internal error (logged on the server's stderr)")(
                    scope, receive, send
                )


# --- serving -------------------------------------------------------------------------


def _leaves(exc: BaseException):
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
                await serve(app, config, shutdown_trigger=stop.wait, task_status=task_status)
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


# --- `trio-monitor health` -----------------------------------------------------------

_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def check_health(server: ServerSection, *, timeout: float = HEALTH_TIMEOUT) -> tuple[bool, str]:
    """GET /healthz of the server a config describes. -> (healthy, one line saying why)."""
    host, port = server.listen
    host = _LOOPBACK.get(host, host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/healthz"
    headers = {} if server.token is None else {"authorization": f"Bearer {server.token}"}
    try:
        with httpx.Client(timeout=timeout, trust_env=False) as client:
            response = client.get(url, headers=headers)
    except httpx.TimeoutException:
        return False, f"{url}: no answer within {timeout:g} s"
    except httpx.ConnectError as exc:
        reason = next(
            (c.strerror for c in _causes(exc) if isinstance(c, OSError) and c.strerror),
            str(exc) or type(exc).__name__,
        )
        return False, f"{url}: cannot connect: {reason}"
    except httpx.HTTPError as exc:
        return False, f"{url}: {str(exc) or type(exc).__name__}"
    try:
        body = response.json()
        reason = body.get("reason") if isinstance(body, dict) else None
    except ValueError:
        reason = None
    if response.status_code == 200:
        return True, f"healthy: {reason or 'ok'}"
    if response.status_code == 503 and reason:
        return False, f"unhealthy: {reason}"
    return False, f"{url}: unexpected HTTP status {response.status_code}"


def _causes(exc: BaseException):
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend((e.__cause__, e.__context__, *getattr(e, "exceptions", ())))


# --- OpenAPI -------------------------------------------------------------------------


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema = {"type": "object", "required": list(properties), "properties": properties}
    return {"description": description, **schema} if description else schema


_TIME = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC"}
_NULLABLE_TIME = _nullable("string", format="date-time", description="RFC 3339, UTC")

_TARGET_PROPERTIES: dict[str, Any] = {
    "name": {"type": "string"},
    "url": {"type": "string"},
    "state": {"enum": ["UP", "DOWN", "UNKNOWN"]},
    "since": {**_NULLABLE_TIME, "description": "when the state began"},
    "last": {"anyOf": [_ref("Probe"), {"type": "null"}], "description": "the latest probe"},
    "interval_s": {"type": "number"},
    "checks_24h": {"type": "integer", "minimum": 0},
    "availability_24h_pct": _nullable("number", minimum=0, maximum=100),
    "p95_24h_ms": _nullable("number", minimum=0),
}

_SCHEMAS: dict[str, Any] = {
    "Error": _object({"error": {"type": "string"}}, "What went wrong, in words."),
    "Health": _object(
        {
            "status": {"enum": ["ok", "unhealthy"]},
            "reason": {"type": "string"},
            "last_round_age_s": _nullable("number"),
            "max_age_s": {"type": "number"},
        }
    ),
    "Probe": _object(
        {
            "schema": {"const": 1},
            "type": {"const": "probe"},
            "ts": _TIME,
            "target": {"type": "string"},
            "url": {"type": "string"},
            "ok": {"type": "boolean"},
            "status": _nullable("integer"),
            "latency_ms": _nullable("number"),
            "error": {"enum": [*map(str, ErrorKind), None]},
            "attempts": {"type": "integer", "minimum": 1},
            "round": {"type": "integer"},
            "error_detail": _nullable("string"),
            "ttfb_ms": _nullable("number"),
            "bytes": {"type": "integer", "minimum": 0},
            "truncated": {"type": "boolean"},
            "content_hash": _nullable("string"),
            "content_changed": {"type": "boolean"},
            "slow": {"type": "boolean"},
            "final_url": _nullable("string"),
            "remote_addr": _nullable("string"),
        },
        "One probe, as in the monitor's JSON lines.",
    ),
    "Target": _object(_TARGET_PROPERTIES),
    "TargetList": {"type": "array", "items": _ref("Target")},
    "TargetDetail": _object(
        {
            **_TARGET_PROPERTIES,
            "recent": {
                "anyOf": [{"type": "array", "items": _ref("Sample")}, {"type": "null"}],
                "description": f"the last {RECENT} probes, oldest first; null when history "
                "is disabled or unavailable",
            },
        }
    ),
    "Sample": _object(
        {
            "ts": _TIME,
            "ok": {"type": "boolean"},
            "status": _nullable("integer"),
            "latency_ms": _nullable("number"),
            "error": _nullable("string"),
        },
        "One probe, as history keeps it.",
    ),
    "History": _object(
        {
            "target": {"type": "string"},
            "since": _TIME,
            "until": _TIME,
            "samples": {"type": "array", "items": _ref("Sample")},
            "truncated": {
                "type": "boolean",
                "description": "older samples in the range were left out (only the newest "
                "`limit` are here): ask again with until = the first sample's ts",
            },
        }
    ),
    "Incident": _object(
        {
            "target": {"type": "string"},
            "start": _TIME,
            "end": {**_NULLABLE_TIME, "description": "null while the outage goes on"},
            "duration_s": {"type": "number", "minimum": 0},
            "error": {"type": "string", "description": "the error kind that took it down"},
        }
    ),
    "IncidentList": _object(
        {
            "since": _TIME,
            "until": _TIME,
            "incidents": {"type": "array", "items": _ref("Incident")},
            "truncated": {
                "type": "boolean",
                "description": "incidents that started earlier were left out",
            },
        }
    ),
}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json_content(_ref("Error"))}


_UNAUTHORIZED = {
    **_error_response("with [server] token set: no or a wrong bearer token"),
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
}
_DEFAULT = _error_response("any other error (405 method not allowed, 500 internal error)")
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "the target's name, percent-encoded (a '/' in it as %2F)",
}
_RANGE = [
    {
        "name": key,
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": f"a duration back from now (24h, 7d) or an RFC 3339 time; default {default}",
    }
    for key, default in (("since", DEFAULT_SINCE), ("until", "now"))
]
_LIMIT = {
    "name": "limit",
    "in": "query",
    "required": False,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_ROWS},
    "description": f"rows at most (default and maximum {MAX_ROWS}): the newest, `truncated` "
    "when there were more",
}
_BAD_INPUT = _error_response("malformed since, until or limit, or since not before until")
_NO_HISTORY = _error_response("unknown target, or history is disabled")
_UNAVAILABLE = _error_response("the history file cannot be read now")


def _get(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"get": {"summary": summary, **extra, "responses": {**responses, "default": _DEFAULT}}}


def openapi_document(server: ServerSection) -> dict[str, Any]:
    """The OpenAPI 3.1 description of the server as configured (auth included)."""
    secured = {"401": _UNAUTHORIZED} if server.token is not None else {}
    public = {} if server.public_status_page else secured
    svg = {
        "description": "an SVG badge",
        "content": {"image/svg+xml": {"schema": {"type": "string"}}},
    }
    paths = {
        "/": _get(
            "Status page",
            {
                "200": {
                    "description": "a self-contained HTML page that calls /api/v1/targets",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                },
                **public,
            },
        ),
        "/healthz": _get(
            "Health check (never needs a token)",
            {
                "200": {"description": "healthy", "content": _json_content(_ref("Health"))},
                "503": {"description": "unhealthy", "content": _json_content(_ref("Health"))},
            },
            security=[],
        ),
        "/metrics": _get(
            "Prometheus metrics",
            {
                "200": {
                    "description": "the Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **secured,
            },
        ),
        f"{API}/targets": _get(
            "Every target's state",
            {"200": {"description": "ok", "content": _json_content(_ref("TargetList"))}, **secured},
        ),
        f"{API}/targets/{{name}}": _get(
            "One target, with its recent probes",
            {
                "200": {"description": "ok", "content": _json_content(_ref("TargetDetail"))},
                "404": _error_response("unknown target"),
                **secured,
            },
            parameters=[_NAME],
        ),
        f"{API}/targets/{{name}}/history": _get(
            "A target's probes in [since, until), oldest first (the newest `limit`)",
            {
                "200": {"description": "ok", "content": _json_content(_ref("History"))},
                "400": _BAD_INPUT,
                "404": _NO_HISTORY,
                "503": _UNAVAILABLE,
                **secured,
            },
            parameters=[_NAME, *_RANGE, _LIMIT],
        ),
        f"{API}/incidents": _get(
            "Outages overlapping [since, until), by start",
            {
                "200": {"description": "ok", "content": _json_content(_ref("IncidentList"))},
                "400": _BAD_INPUT,
                "404": _error_response("history is disabled"),
                "503": _UNAVAILABLE,
                **secured,
            },
            parameters=[
                *_RANGE,
                _LIMIT,
                {
                    "name": "target",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string"},
                    "description": "only this target's incidents",
                },
            ],
        ),
        f"{API}/badges/{{name}}/status.svg": _get(
            'Badge: "up", "down" or "unknown"',
            {"200": svg, "404": _error_response("unknown target"), **public},
            parameters=[_NAME],
        ),
        f"{API}/badges/{{name}}/uptime.svg": _get(
            "Badge: availability over the last 24 hours",
            {"200": svg, "404": _error_response("unknown target"), **public},
            parameters=[_NAME],
        ),
        f"{API}/openapi.json": _get(
            "This document",
            {
                "200": {
                    "description": "OpenAPI 3.1",
                    "content": _json_content({"type": "object"}),
                },
                **secured,
            },
        ),
    }
    if server.public_status_page:
        for path in ("/", f"{API}/badges/{{name}}/status.svg", f"{API}/badges/{{name}}/uptime.svg"):
            paths[path]["get"]["security"] = []
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "trio-monitor",
            "version": "1",
            "description": "The HTTP API of a running trio-monitor. Errors are "
            '{"error": "..."}; fields are only ever added within /api/v1.',
        },
        "paths": paths,
        "components": {"schemas": _SCHEMAS},
    }
    if server.token is not None:
        document["components"]["securitySchemes"] = {
            "bearerAuth": {"type": "http", "scheme": "bearer"}
        }
        document["security"] = [{"bearerAuth": []}]
    return document
