"""One probe of one target: deadline, retries with backoff, streamed and capped body.

`probe()` never raises for anything the target or the network does: every outcome,
our own deadline included, comes back as a ProbeResult. Only trio.Cancelled (the
monitor shutting down) propagates, as it must.
"""

from __future__ import annotations

import functools
import hashlib
import random
import time
from collections.abc import AsyncIterable
from typing import Any

import httpx
import trio
from attrs import frozen

from ..._config import HEADER_ENCODING, Target, normal_origin
from ..._errors import ErrorKind, ProbeFailure
from ..._records import ProbeResult
from ..._secrets import redact_url
from ...conditions import apply, common_facts, needs
from ...net.certs import TlsDetails
from ...net.errors import invalid_certificate
from ...net.tls import Tls
from ..base import retry_after
from .config import SCHEMES, HttpSpec, _fallback
from .errors import classify
from .fallback import Route
from .wire import CONN, CURRENT_EXCHANGE, SSL_CONTEXT, ConnOptions, Exchange, ProbeBody

CLOSE_TIMEOUT = 1.0  # closing a response is local work; never let it hang shutdown

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_RNG = random.Random()  # jitter only; seeding one per probe costs more than the probe's logic


@frozen
class HttpPlan:
    """Everything about a target's request that can be built once, not once per probe.

    One is kept per target for the whole run, so what targets have in common is shared:
    the configured headers (one `httpx.Headers` per distinct set, never changed: a
    redirect copies it), the extensions and the empty body. A body is built once, here.
    `route`: the fallback transport (proxy, HTTP/2) its requests take; None: our own."""

    target: Target
    spec: HttpSpec
    request: httpx.Request  # the first hop's request, reused by every probe (no body)
    limit_key: str  # "scheme://host:port": per_host counts per origin, like the pools
    headers: httpx.Headers
    extensions: dict[str, object]
    needle: bytes | None
    # the statuses that are ok; None: any, when the target's conditions check [STATUS]
    # and it sets no expect_status of its own (a pasted "[STATUS] == 404" must work)
    expect_status: frozenset[int] | None
    route: Route | None = None
    keep_body: bool = False  # a condition reads [BODY]: the body read is kept for it
    keep_headers: bool = False  # a condition reads [HEADER]

    @property
    def url(self) -> httpx.URL:
        return self.request.url


_NO_BODY = httpx.ByteStream(b"")  # stateless: every first hop can send this one
_BODYLESS_NEEDS_LENGTH = frozenset({"POST", "PUT", "PATCH"})  # as httpx sends them
_BODY_HEADERS = ("content-type", "content-length")  # dropped with the body on a redirect


@functools.lru_cache(maxsize=256)
def _extensions(tls: Tls, server_name: str | None, options: ConnOptions) -> dict[str, object]:
    """One extensions dict per distinct (TLS setting, SNI name, options), shared by the
    plans."""
    extensions: dict[str, object] = {SSL_CONTEXT: tls, CONN: options}
    if server_name is not None:
        extensions["sni_hostname"] = server_name  # httpcore's name; our transport's too
    return extensions


@functools.lru_cache(maxsize=256)
def _shared_headers(configured: tuple[tuple[str, str], ...]) -> httpx.Headers:
    return httpx.Headers(
        {"accept": "*/*", "accept-encoding": "gzip, deflate"} | dict(configured),
        encoding=HEADER_ENCODING,  # config checked every value fits (httpx would use ASCII)
    )


@functools.lru_cache(maxsize=4096)
def _parsed_origin(origin: str) -> Any:
    return httpx.URL(origin)._uri_reference


def parsed_url(text: str) -> httpx.URL:
    """`httpx.URL(text)`, without parsing a URL the config found in httpx's own form
    (most are; parsing was half the cost of a plan): its origin's parse, cached, with
    its path and query. httpx keeps a URL as a private `ParseResult`: tests/test_fuzz.py
    pins that this one is the one httpx makes."""
    origin = normal_origin(text, SCHEMES)
    if origin is None:
        return httpx.URL(text)
    path, mark, query = text[len(origin) :].partition("?")
    url = httpx.URL.__new__(httpx.URL)
    url._uri_reference = _parsed_origin(origin)._replace(path=path, query=query if mark else None)
    return url


@functools.lru_cache(maxsize=256)
def _has_host(configured: tuple[tuple[str, str], ...]) -> bool:
    return "host" in _shared_headers(configured)


def _first_hop(
    method: str, url: str, configured: tuple[tuple[str, str], ...], body: bytes | None
) -> httpx.Request:
    """The request `httpx.Request(method, url, headers=headers, content=body)` builds
    (its automatic `Host` first, and `Content-Length`, `0` for a bodiless POST, PUT or
    PATCH), but holding the header entries of the shared `headers` and the empty body,
    not a copy of each per target, and with the URL parsed once at most."""
    request = httpx.Request(
        method, parsed_url(url), stream=_NO_BODY if body is None else httpx.ByteStream(body)
    )
    auto = []
    if not _has_host(configured):
        auto.append((b"Host", request.url.netloc))
    if body is not None:  # the config refuses Content-Length in `headers`
        auto.append((b"Content-Length", str(len(body)).encode()))
    elif method in _BODYLESS_NEEDS_LENGTH:
        auto.append((b"Content-Length", b"0"))
    request.headers = httpx.Headers(auto, encoding=HEADER_ENCODING)
    # what `update(headers)` does when no key of `auto` is among them (the config sees
    # to that), without its lookups: a few µs a target, at every start
    request.headers._list += _shared_headers(configured)._list
    return request


def prepare(target: Target) -> HttpPlan:
    spec: HttpSpec = target.spec
    headers = _shared_headers(spec.headers)
    options = ConnOptions(spec.connection == "reuse", spec.ip_family, spec.resolver)
    extensions = _extensions(spec.tls, spec.server_name, options)
    request = _first_hop(spec.method, spec.url, spec.headers, spec.body)
    request.extensions = extensions  # shared: nothing writes to a request's extensions
    url = request.url
    return HttpPlan(
        target=target,
        spec=spec,
        request=request,
        limit_key=f"{url.scheme}://{url.host}:{url.port or (443 if url.scheme == 'https' else 80)}",
        headers=headers,
        extensions=extensions,
        needle=spec.contains.encode() if spec.contains else None,
        route=route_of(spec),
        expect_status=None if _status_by_conditions(target) else spec.expect_status,
        keep_body=needs(target.conditions, "BODY"),
        keep_headers=needs(target.conditions, "HEADER"),
    )


def _status_by_conditions(target: Target) -> bool:
    """The target's conditions check [STATUS] and it sets no expect_status of its own."""
    return not target.spec.own_status and needs(target.conditions, "STATUS")


def route_of(spec: HttpSpec) -> Route | None:
    """The fallback transport's route for a target with a proxy or HTTP/2; else None."""
    if not _fallback(spec.proxy, spec.http2):
        return None
    return Route(spec.proxy, spec.http2, spec.tls.context)


def timed_out(target: Target) -> ProbeFailure:
    """The failure of a probe its deadline ended."""
    return ProbeFailure(ErrorKind.TIMEOUT, f"no complete response within {target.timeout:g}s")


Body = bytes  # (a name: in _Response, `bytes` is a field)


@frozen
class _Response:
    status: int
    latency_ms: float
    ttfb_ms: float
    bytes: int
    truncated: bool
    content_hash: str
    final_url: str | None
    remote_addr: str | None
    tls: TlsDetails | None
    failure: ProbeFailure | None  # set when a response came but is not acceptable
    body: Body | None = None  # what was read, when a condition reads [BODY]
    headers: dict[str, str] | None = None  # lower-case names, when one reads [HEADER]


# phases_ms's names -> the transport's (blackbox_exporter's "processing" is our "ttfb")
_PHASES = {
    "dns": "dns",
    "connect": "connect",
    "tls": "tls",
    "ttfb": "processing",
    "transfer": "transfer",
}
PHASE_NAMES = tuple(_PHASES)


def _phases_ms(exchange: Exchange) -> dict[str, float | None] | None:
    """The attempt's phase times in ms (`processing` is shown as `ttfb`), None if it
    never had a connection."""
    seconds = exchange.seconds
    if not seconds:
        return None
    return {name: _ms(seconds.get(phase)) for name, phase in _PHASES.items()}


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


async def _close(response: httpx.Response) -> None:
    stream = response.stream
    if isinstance(stream, ProbeBody):
        # no checkpoint inside: nothing to cancel, nothing to shield; and no need for
        # httpx's error-context wrapper around it (it raises nothing)
        response.is_closed = True
        await stream.aclose()
        return
    # Another transport's close may wait, and this runs in `finally`, possibly after our
    # deadline cancelled us: shield it, but bound it.
    with trio.move_on_after(CLOSE_TIMEOUT) as scope:
        scope.shield = True
        await response.aclose()


def _redirect_headers(plan: HttpPlan, url: httpx.URL) -> httpx.Headers:
    """The target's headers, less its credentials when a redirect leaves its origin.

    As httpx does: Authorization (and Cookie) go to the target's origin only, or to its
    https upgrade; Host, if configured, is left for httpx to derive from the new URL.
    """
    target = plan.url
    if (url.scheme, url.host, url.port) == (target.scheme, target.host, target.port):
        return plan.headers
    headers = plan.headers.copy()
    headers.pop("host", None)
    upgrade = (  # http://host -> https://host on default ports (httpx.URL.port is None then)
        url.host == target.host
        and (target.scheme, url.scheme) == ("http", "https")
        and target.port is None
        and url.port is None
    )
    if not upgrade:
        headers.pop("authorization", None)
        headers.pop("cookie", None)
    return headers


def _next_request(plan: HttpPlan, response: httpx.Response, method: str) -> httpx.Request:
    location = response.headers["location"]
    try:
        url = response.url.join(location)
    except httpx.InvalidURL as exc:
        raise ProbeFailure(ErrorKind.PROTOCOL, f"invalid URL in Location header: {exc}") from None
    # as browsers do: 303 always, and 301/302 after a POST, turn into a GET without body
    body = plan.spec.body
    if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
        method = "GET"
        body = None
    headers = _redirect_headers(plan, url)
    if body is None and any(name in headers for name in _BODY_HEADERS):
        headers = headers.copy()
        for name in _BODY_HEADERS:
            headers.pop(name, None)
    extensions = plan.extensions
    if "sni_hostname" in extensions and url.host != plan.url.host:
        # server_name names the target's host: another host is verified as itself
        extensions = {k: v for k, v in extensions.items() if k != "sni_hostname"}
    return httpx.Request(method, url, headers=headers, content=body, extensions=extensions)


async def _read_body(
    plan: HttpPlan, response: httpx.Response
) -> tuple[int, bool, str, bool, bytes | None]:
    """Stream the body, hashing as it comes; stop at max_body.
    -> (bytes, truncated, hash, found, the body if plan.keep_body).

    Past max_body the response is closed, which drops the connection, and the loop runs on
    (ignoring what httpx had buffered already) until the read on the closed connection
    fails. That ends every one of the nested async generators behind `aiter_bytes()`.
    Breaking out of the loop would leave them suspended, for the garbage collector to
    finalize with a ResourceWarning from trio for each; `aclosing()` would close only
    the outermost one.
    """
    limit = plan.spec.max_body
    digest = hashlib.sha256()
    needle = plan.needle
    found = needle is None
    tail = b""
    total = 0
    truncated = False
    kept: list[bytes] | None = [] if plan.keep_body else None
    # nothing to decode: straight from our transport, without httpx's generator layers
    stream = response.stream
    chunks: AsyncIterable[bytes] = (
        stream if isinstance(stream, ProbeBody) and not stream.encoded else response.aiter_bytes()
    )
    try:
        async for chunk in chunks:
            if truncated:
                continue
            if total + len(chunk) > limit:
                chunk = chunk[: limit - total]
                truncated = True
                await _close(response)
            total += len(chunk)
            digest.update(chunk)
            if kept is not None:
                kept.append(chunk)
            if needle is not None and not found:
                window = tail + chunk
                found = needle in window
                tail = window[-(len(needle) - 1) :] if len(needle) > 1 else b""
    except httpx.TransportError:
        if not truncated:
            raise
    body = None if kept is None else b"".join(kept)
    return total, truncated, "sha256:" + digest.hexdigest(), found, body


async def _attempt(
    transport: httpx.AsyncBaseTransport, plan: HttpPlan, exchange: Exchange
) -> _Response:
    spec = plan.spec
    started = trio.current_time()
    method = spec.method
    request = plan.request
    redirects = 0
    while True:
        # Straight to the transport: the client's per-request auth, cookie and event-hook
        # machinery is nothing a probe wants, and costs more than the probe's own logic.
        response = await transport.handle_async_request(request)
        response.request = request
        try:
            # the last HTTPS hop's certificate (an http:// hop keeps the one that led there)
            bad_certificate = invalid_certificate(exchange.tls)
            if (
                bad_certificate is None
                and spec.follow_redirects
                and response.status_code in _REDIRECT_STATUSES
                and "location" in response.headers
            ):
                redirects += 1
                if redirects > spec.max_redirects:
                    raise ProbeFailure(
                        ErrorKind.REDIRECTS, f"more than {spec.max_redirects} redirects"
                    )
                request = _next_request(plan, response, method)
                method = request.method
                continue
            ttfb = trio.current_time() - started
            size, truncated, content_hash, found, body = await _read_body(plan, response)
            ended = trio.current_time()
            latency = ended - started
            if exchange.head_at is not None:
                exchange.add("transfer", ended - exchange.head_at)
            failure = None
            if bad_certificate is not None:
                failure = bad_certificate
            elif truncated and spec.on_too_large == "fail":
                failure = ProbeFailure(
                    ErrorKind.TOO_LARGE, f"body larger than max_body ({spec.max_body} bytes)"
                )
            elif plan.expect_status is not None and response.status_code not in plan.expect_status:
                failure = ProbeFailure(ErrorKind.STATUS, f"HTTP {response.status_code}")
            elif not found:
                failure = ProbeFailure(
                    ErrorKind.CONTENT, f"body does not contain {spec.contains!r}"
                )
            return _Response(
                status=response.status_code,
                latency_ms=round(latency * 1000, 3),
                ttfb_ms=round(ttfb * 1000, 3),
                bytes=size,
                truncated=truncated,
                content_hash=content_hash,
                final_url=redact_url(str(response.url)) if redirects else None,
                remote_addr=exchange.remote_addr,
                tls=exchange.tls,
                failure=failure,
                body=body,
                headers=_headers(response) if plan.keep_headers else None,
            )
        finally:
            await _close(response)


async def probe(
    transport: httpx.AsyncBaseTransport,
    plan: HttpPlan,
    round_no: int,
    *,
    rng: random.Random | None = None,
    deadlines: set[trio.CancelScope] | None = None,
    pin: tuple[str, str] | None = None,
    until: float | None = None,
) -> ProbeResult:
    """Probe once, retries included, within the target's timeout. Never raises but Cancelled.

    `deadlines`, if given, holds the probe's deadline scope while it runs, so that the
    scheduler can push it back by time the event loop was stalled (see Scheduler).
    `pin` (host, ip): connect to that address of the host (see addresses.py); `until`:
    the deadline (trio time) when the probe's timeout started earlier.
    """
    target = plan.target
    rng = rng or _RNG
    ts = time.time()
    attempts = 0
    response: _Response | None = None
    failure: ProbeFailure | None = None
    exchange = Exchange(pin)
    exchange_token = CURRENT_EXCHANGE.set(exchange)
    if until is None:
        until = trio.current_time() + target.timeout
    with trio.move_on_at(until) as deadline:
        if deadlines is not None:
            deadlines.add(deadline)
        try:
            for retry in range(target.retries + 1):
                attempts += 1
                if retry:
                    exchange = Exchange(pin)  # what the last attempt did is what is reported
                    CURRENT_EXCHANGE.set(exchange)
                try:
                    response = await _attempt(transport, plan, exchange)
                    failure = response.failure
                    break
                except Exception as exc:  # every failure is data; Cancelled is no Exception
                    failure = classify(exc, exchange.tls)
                if not await retry_after(failure, retry, target.retries, deadline, rng):
                    break
        finally:
            if deadlines is not None:
                deadlines.discard(deadline)
            CURRENT_EXCHANGE.reset(exchange_token)
    if deadline.cancelled_caught:
        response = None
        failure = timed_out(target)
    result = ProbeResult(
        ts=ts,
        target=target.name,
        url=target.url,
        ok=failure is None,
        status=response.status if response else None,
        latency_ms=response.latency_ms if response else None,
        error=failure.kind if failure else None,
        error_detail=failure.detail if failure else None,
        attempts=attempts,
        round=round_no,
        ttfb_ms=response.ttfb_ms if response else None,
        bytes=response.bytes if response else 0,
        truncated=response.truncated if response else False,
        content_hash=response.content_hash if response else None,
        slow=bool(
            failure is None
            and response
            and target.slow
            and response.latency_ms > target.slow * 1000
        ),
        final_url=response.final_url if response else None,
        remote_addr=response.remote_addr if response else None,
        phases_ms=_phases_ms(exchange),
        # without a response: the certificate of a handshake that failed, if it got one
        tls=response.tls if response else exchange.tls,
    )
    if not target.conditions:
        return result
    return apply(result, target.conditions, _facts(result, response, exchange))


def _headers(response: httpx.Response) -> dict[str, str]:
    """The response's headers by lower-case name; a repeated one joined with ", "."""
    headers: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _facts(
    result: ProbeResult, response: _Response | None, exchange: Exchange
) -> dict[str, object]:
    """What the http kind's placeholders read (KIND.placeholders), for `apply`."""
    facts = common_facts(result.latency_ms, exchange.remote_addr, result.phases_ms)
    tls = result.tls
    facts["CERTIFICATE_EXPIRATION"] = (
        None if tls is None else round((tls.not_after - time.time()) * 1000, 3)
    )
    if response is not None:
        facts["STATUS"] = response.status
        facts["BODY"] = response.body
        facts["HEADER"] = response.headers
    return facts
