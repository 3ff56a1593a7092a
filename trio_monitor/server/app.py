"""The HTTP server's routes and handlers: status page, JSON API, Prometheus metrics,
health check and badges, as one Starlette app (`build_app`).

The app is served by serve.py (hypercorn's trio worker, in the monitor's own trio run);
auth.py checks the token (or a session, or without a token the Host) in front of it
and openapi.py describes it. Handlers
only read: the running monitor through `MonitorView`
(in memory, non-blocking) and history through a `HistoryReader` opened per request in a
worker thread, so a slow disk never stalls the event loop (or probing).

    GET /                                       status page (HTML; it calls the API itself)
    GET /healthz                                200 healthy / 503 with the reason; no token
    GET /metrics                                Prometheus text format
    GET /api/v1/targets                         every target's state and 24 h figures
    GET /api/v1/targets/{name}                  one target, plus its last 50 probes
    GET /api/v1/targets/{name}/history          raw probes in [since, until)
    GET /api/v1/targets/{name}/artifacts/{file} a failed browser probe's PNG or log
    GET /api/v1/incidents                       outages overlapping [since, until)
    GET /api/v1/badges/{name}/status.svg        "up" / "down" / "unknown"
    GET /api/v1/badges/{name}/uptime.svg        24 h availability
    GET, POST /api/v1/push/{token}[/start|/fail|/{exit code}]   a push target's ping;
                                                its own token, never the bearer token
    GET, POST /api/v1/silences; DELETE /api/v1/silences/{id}   runtime silences
                                                (silences.py; writing needs the token)
    GET /api/v1/maintenance                     windows holding now or soon, silences
    GET /api/v1/openapi.json                    OpenAPI 3.1 description of all of these
    GET, POST /login; POST /logout              with a token: the browser login (login.py)

A target name may contain "/" (names default to the URL): percent-encode it as %2F.
Every error is JSON `{"error": "..."}` (never a traceback). With `[server] token`, every
path but /healthz needs `Authorization: Bearer <token>`; with `public_status_page`,
"/" and the badges stay public (the page's own API calls still need the token).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import unquote

import trio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from .._config import LABEL_NAME, ServerSection, parse_when
from .._errors import StoreError
from .._records import AlertEvent, in_rfc3339_range, rfc3339, tls_dict, to_dict
from ..policy._grouping import Group
from ..store import HistoryReader
from ..store.records import Incident, Sample
from .auth import PUSH, guard
from .badges import status_badge, uptime_badge
from .contract import API, DEFAULT_SINCE, JSON, MAX_ROWS, RECENT, JSONObject, error_response
from .login import login_routes
from .openapi import openapi_document
from .page import status_page_csp, status_page_html
from .silences import SILENCES, Desk, SilenceRoutes

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from ..engine.view import MonitorView, TargetStatus
    from .metrics import Metrics

log = logging.getLogger("trio_monitor")

ARTIFACT = "artifacts/*"  # a `_resolve` leaf: any one path segment after "artifacts/"
HISTORY_READERS = 4  # worker threads reading history at once
MAX_PUSH_BODY = 1 << 20  # bytes of a ping's body read (and dropped) at most

PageFn = Callable[[], str]
# (token, event, exit code) -> the ping was for a push target: the monitor's
# `receive_push`
PushFn = Callable[[str, str, "int | None"], bool]
T = TypeVar("T")  # what a history read returns


# --- errors --------------------------------------------------------------------------


class _ApiError(HTTPException):
    """An expected error with a message for the client."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(status, message, headers)


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
    return error_response(exc.status_code, message, dict(exc.headers or {}))


async def _internal_error(request: Request, exc: Exception) -> Response:
    # The exception goes on to _Guard, which logs it with its traceback.
    return error_response(500, "internal error (logged on the server's stderr)")


def _time(ts: float | None) -> str | None:
    return None if ts is None else rfc3339(ts)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


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
    if not in_rfc3339_range(ts):
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


def _label_filter(text: str) -> tuple[str, str]:
    """`?label=team=payments` -> ("team", "payments")."""
    name, equals, value = text.partition("=")
    if not (equals and LABEL_NAME.fullmatch(name)):
        raise _ApiError(
            400, f"invalid label {text!r}: use NAME=VALUE like team=payments (repeatable)"
        )
    return name, value


def _whole_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also says yes to "²", which int() refuses."""
    return text.isascii() and text.isdigit()


def _limit(request: Request) -> int:
    value = request.query_params.get("limit")
    if value is None:
        return MAX_ROWS
    if not (_whole_number(value) and 1 <= int(value) <= MAX_ROWS):
        raise _ApiError(400, f"invalid limit {value!r}: use a whole number from 1 to {MAX_ROWS}")
    return int(value)


# --- JSON shapes (described in openapi_document) ---------------------------------------


def _target_json(t: TargetStatus, held_by: str | None = None) -> JSONObject:
    return {
        "name": t.name,
        "url": t.url,
        "kind": t.kind,
        "group": t.group,
        "labels": dict(t.labels),
        "state": t.state,
        "suppressed_by": list(t.suppressed_by) or None,
        "since": _time(t.since),
        "last": None if t.last is None else to_dict(t.last, t.labels),
        "interval_s": t.interval_s,
        "checks_24h": t.checks_24h,
        "availability_24h_pct": t.availability_24h_pct,
        "p95_24h_ms": t.p95_24h_ms,
        "tls": None if t.tls is None else tls_dict(t.tls),
        "phases_24h_ms": {
            phase: None if p is None else {"p50": p.p50, "p95": p.p95, "count": p.count}
            for phase, p in t.phases_24h.items()
        },
        # what holds its alerts now: "maintenance:NAME" or "silence:ID"
        "maintenance": held_by,
        "degrading": None if t.degrading is None else _warning_json(t.degrading),
    }


def _warning_json(a: AlertEvent) -> JSONObject:
    """An open early warning: the evidence of its `degrading` alert."""
    return {
        "ts": rfc3339(a.ts),
        "since": _time(a.since),
        "signal": a.signal,
        "baseline": a.baseline,
        "current": a.current,
        "score": a.score,
        "detail": a.detail,
    }


def _sample_json(s: Sample) -> JSONObject:
    return {
        "ts": rfc3339(s.ts),
        "ok": s.ok,
        "status": s.status,
        "latency_ms": s.latency_ms,
        "error": s.error,
    }


def _incident_json(i: Incident, now: float, monitored: bool) -> JSONObject:
    """An open incident of a target this monitor probes runs until now; one of a
    target it does not probe (any more) stopped at its last probe: no data since."""
    unobserved = not monitored and i.unobserved(now)
    end = i.observed_end(now) if unobserved else (now if i.end is None else i.end)
    return {
        "target": i.target,
        "start": rfc3339(i.start),
        "end": _time(i.end),
        "duration_s": round(max(0.0, end - i.start), 3),
        "error": i.error,
        "end_reason": i.end_reason,
        "last_seen": _time(i.last_seen),
        "suppressed_by": None if i.suppressed_by is None else list(i.suppressed_by),
        "paged": _time(i.paged),
        "unobserved": unobserved,
    }


def _group_json(group: Group, errors: dict[str, str]) -> JSONObject:
    return {
        "cause": group.cause,
        "detail": group.describe(errors.get(m) for m in group.members),
        "count": len(group.members),
        "members": list(group.members),
    }


# --- the app -------------------------------------------------------------------------


def _read(path: str, fn: Callable[[HistoryReader], T]) -> T:
    with HistoryReader(path) as reader:
        return fn(reader)


class _Api:
    def __init__(
        self,
        view: MonitorView,
        server: ServerSection,
        metrics: Metrics,
        page: PageFn | None,
        push: PushFn | None = None,
        silences: Desk | None = None,
    ) -> None:
        self.view, self.server, self.metrics = view, server, metrics
        self._push = push
        self.desk = silences
        # the real page comes with its CSP; a page given instead (tests) with none
        self.page = page or status_page_html
        self.csp = status_page_csp if page is None else None
        self.openapi = openapi_document(server, silences=silences is not None)
        self._page: tuple[str, dict[str, str]] | None = None
        self._readers = trio.CapacityLimiter(HISTORY_READERS)

    async def history(self, fn: Callable[[HistoryReader], T]) -> T:
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
            name, leaf = unquote(segments[0]), _leaf("/".join(segments[1:]), leaves)
            if leaf is not None and self.view.target(name) is not None:
                return name, leaf
        decoded = path[len(prefix) :]
        for leaf in leaves:
            if leaf.endswith("/*"):  # a name with bare slashes, then the leaf's segment
                head, _, last = decoded.rpartition("/")
                name = head.removesuffix(f"/{leaf[:-2]}") if last else decoded
            else:
                name = decoded.removesuffix(f"/{leaf}") if leaf else decoded
            if (name != decoded or not leaf) and self.view.target(name) is not None:
                return name, leaf
        if segments and segments[0] and _leaf("/".join(segments[1:]), leaves) is not None:
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
            "last_round_age_s": _seconds(h.last_round_age_s),
            "max_age_s": h.max_age_s,
            "start_lag_p50_s": _seconds(h.start_lag_p50_s),
            "start_lag_max_s": _seconds(h.start_lag_max_s),
        }
        return JSON(body, 200 if h.ok else 503)

    async def metrics_text(self, request: Request) -> Response:
        from .metrics import CONTENT_TYPE

        body = await trio.to_thread.run_sync(self.metrics.render, abandon_on_cancel=True)
        return Response(body, headers={"content-type": CONTENT_TYPE, "cache-control": "no-store"})

    def held_by(self, name: str) -> str | None:
        return None if self.desk is None else self.desk.held_by(name)

    async def cluster(self, request: Request) -> Response:
        """The cluster as this node sees it; null when it is none (so the page asks
        every process alike, and a single one answers without an error)."""
        return JSON(self.view.cluster())

    async def targets(self, request: Request) -> Response:
        wanted = [_label_filter(text) for text in request.query_params.getlist("label")]
        return JSON(
            [
                _target_json(t, self.held_by(t.name))
                for t in self.view.targets()
                if all(t.labels.get(name) == value for name, value in wanted)
            ]
        )

    async def target(self, request: Request) -> Response:
        name, leaf = self._resolve(request, f"{API}/targets/", ("", "history", ARTIFACT))
        if leaf == "history":
            return await self._history(request, name)
        if leaf == ARTIFACT:
            return await self._artifact(request, name)
        body = _target_json(self.status(name), self.held_by(name))
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
        return JSON(body)

    async def _artifact(self, request: Request, name: str) -> Response:
        """One of the target's artifacts: only a file name the browser prober writes, in
        that target's own directory (no path of the client's reaches the disk)."""
        from ..probes.browser.artifacts import SUFFIXES, artifact_file

        raw = request.scope.get("raw_path") or request.scope["path"].encode()
        file = unquote(raw.decode("latin-1").split("?", 1)[0].rpartition("/")[2])
        root = self.view.state_dir
        path = None if root is None else artifact_file(root, name, file)
        if path is None:
            raise _ApiError(404, f"no artifact {file!r} of target {name!r}")
        try:
            data = await trio.Path(path).read_bytes()
        except OSError:  # deleted by retention meanwhile
            raise _ApiError(404, f"no artifact {file!r} of target {name!r}") from None
        return Response(
            data,
            headers={
                "content-type": SUFFIXES[path.suffix],
                "cache-control": "private, max-age=86400",  # an artifact never changes
                "x-content-type-options": "nosniff",
                "content-security-policy": "default-src 'none'; sandbox",
            },
        )

    async def _history(self, request: Request, name: str) -> Response:
        since, until = _range(request)
        limit = _limit(request)
        rows = await self.history(
            lambda reader: list(deque(reader.samples(name, since, until), maxlen=limit + 1))
        )
        return JSON(
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
        shown = rows[-limit:]
        monitored = {t.name for t in self.view.targets()} if shown else set()
        groups, _ = self.view.outage_groups()
        errors = {i.target: i.error for i in shown if i.end is None}
        return JSON(
            {
                "since": rfc3339(since),
                "until": rfc3339(until),
                "incidents": [_incident_json(i, now, i.target in monitored) for i in shown],
                "truncated": len(rows) > limit,
                "groups": [_group_json(g, errors) for g in groups],
            }
        )

    async def badges(self, request: Request) -> Response:
        name, leaf = self._resolve(request, f"{API}/badges/", ("status.svg", "uptime.svg"))
        status = self.status(name)
        if leaf == "status.svg":
            svg = status_badge(status.state, label=name)
        else:
            svg = uptime_badge(status.availability_24h_pct, label=name)
        return Response(
            svg,
            headers={
                "content-type": "image/svg+xml; charset=utf-8",
                "cache-control": "no-cache, max-age=0",
                "x-content-type-options": "nosniff",
            },
        )

    async def push(self, request: Request) -> Response:
        """A push target's ping. Its body is read and dropped, chunk by chunk, up to
        MAX_PUSH_BODY (a client answered before it has sent its body sees a broken pipe:
        `curl -f` would call a noted ping a failure); the token is never echoed or
        logged; an unknown one says nothing about which exist."""
        token, _, leaf = request.path_params["rest"].partition("/")
        event, code = _push_event(leaf)
        if not await _body_within(request, MAX_PUSH_BODY):
            raise _ApiError(413, f"a ping's body may have {MAX_PUSH_BODY} bytes at most (ignored)")
        if event is None or self._push is None or not self._push(token, event, code):
            raise _ApiError(404, "no such push URL")
        return Response("OK\n", headers={"content-type": "text/plain", "cache-control": "no-store"})

    async def openapi_json(self, request: Request) -> Response:
        return JSON(self.openapi)


def _leaf(rest: str, leaves: tuple[str, ...]) -> str | None:
    """The leaf of `leaves` that `rest` (what follows the name) is; "x/*" takes one
    non-empty segment after "x/"."""
    for leaf in leaves:
        if leaf.endswith("/*"):
            head, slash, last = rest.partition("/")
            if slash and head == leaf[:-2] and last and "/" not in last:
                return leaf
        elif rest == leaf:
            return leaf
    return None


async def _body_within(request: Request, limit: int) -> bool:
    """Read and drop the request's body. -> it had `limit` bytes at most (the rest of a
    longer one is left unread)."""
    size = 0
    async with contextlib.aclosing(request.stream()) as chunks:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                return False
    return True


def _shown_path(path: object) -> object:
    """A request path as logged: a push token masked."""
    if isinstance(path, str) and path.startswith(PUSH):
        token, slash, leaf = path[len(PUSH) :].partition("/")
        return f"{PUSH}***{slash}{leaf}" if token else path
    return path


def _push_event(leaf: str) -> tuple[str | None, int | None]:
    """ "" -> ping, "start", "fail", "0".."255" -> exit; anything else -> (None, None)."""
    if leaf in ("", "start", "fail"):
        return leaf or "ping", None
    if _whole_number(leaf) and len(leaf) <= 3 and int(leaf) <= 255:
        return "exit", int(leaf)
    return None, None


def build_app(
    view: MonitorView,
    server: ServerSection,
    metrics: Metrics,
    *,
    page: PageFn | None = None,
    push: PushFn | None = None,
    silences: Desk | None = None,
) -> ASGIApp:
    """The ASGI app. `page` (the HTML for "/") defaults to page.status_page_html;
    `push` takes push targets' pings (none: every push URL is a 404); `silences` the
    running monitor's silences and windows (none: no such paths)."""
    api = _Api(view, server, metrics, page, push, silences)
    routes = [
        Route("/", api.index),
        Route("/healthz", api.healthz),
        Route("/metrics", api.metrics_text),
        Route(f"{API}/targets", api.targets),
        Route(API + "/targets/{rest:path}", api.target),
        Route(f"{API}/incidents", api.incidents),
        Route(API + "/badges/{rest:path}", api.badges),
        Route(API + "/push/{rest:path}", api.push, methods=["GET", "POST"]),
        Route(f"{API}/openapi.json", api.openapi_json),
        Route(f"{API}/cluster", api.cluster),
    ]
    if silences is not None:
        desk = SilenceRoutes(silences, server.token is not None)
        routes += [
            Route(SILENCES, desk.collection, methods=["GET", "POST"]),
            Route(SILENCES + "/{id}", desk.one, methods=["DELETE"]),
            Route(f"{API}/maintenance", desk.maintenance),
        ]
    if server.token is not None:
        routes += login_routes(server.token)
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    return _Guard(guard(app, server))


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
                _shown_path(scope.get("path")),
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            if not started:
                await error_response(500, "internal error (logged on the server's stderr)")(
                    scope, receive, send
                )
