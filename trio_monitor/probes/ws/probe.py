"""One WebSocket probe: resolve, connect, TLS (wss://), the opening handshake, then
optionally `send` a text message and search the first message received for `expect`.

We make the connection ourselves (our resolver, phase timings, the certificate details)
and hand it to trio-websocket's client wrapper, whose reader task runs in a nursery of
the probe's own: the task ends with the probe, whatever happened. The WebSocket is closed
cleanly (a close frame, the server's answer, then TCP) but boundedly: a server that never
answers the close costs at most CLOSE_TIMEOUT, inside the probe's deadline.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import trio
import trio_websocket
from attrs import frozen

from ..._config import HEADER_ENCODING, Target
from ..._errors import ErrorKind, ProbeFailure
from ..._records import RECEIVED_SHOWN, ProbeResult
from ...conditions import apply, common_facts, needs
from ...net.addr import with_port
from ...net.certs import TlsDetails, tls_details
from ...net.errors import classify, invalid_certificate
from ..base import phases_ms, retry_after
from .config import WsSpec

if TYPE_CHECKING:
    from ...net.dns import Resolver  # dnspython is loaded with the first Resolver only

CLOSE_TIMEOUT = 1.0  # seconds the closing handshake may take after the outcome is known
MAX_MESSAGE = 1 << 20  # a longer message closes the connection (1009) and fails the probe
ABNORMAL_CLOSURE = 1006  # the code trio-websocket reports when TCP ended without a close frame

_RNG = random.Random()  # backoff jitter only
_NOT_AN_ANSWER = "not a WebSocket handshake answer"
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})\b")


@frozen
class WsPlan:
    target: Target
    limit_key: str  # what per_host counts: "ws://host:port"
    spec: WsSpec
    # a message is waited for: `expect` is set, or a condition reads [BODY]
    reads_message: bool
    extra_headers: tuple[tuple[bytes, bytes], ...]  # spec.headers, encoded once


def prepare(target: Target) -> WsPlan:
    spec: WsSpec = target.spec
    scheme = "ws" if spec.tls is None else "wss"
    reads = spec.expect is not None or needs(target.conditions, "BODY")
    headers = tuple((k.encode(HEADER_ENCODING), v.encode(HEADER_ENCODING)) for k, v in spec.headers)
    return WsPlan(target, f"{scheme}://{with_port(spec.host, spec.port)}", spec, reads, headers)


class _Attempt:
    """What one attempt did, filled in as it goes: what is reported if it is the last."""

    __slots__ = (
        "answered",
        "done_at",
        "failure",
        "message",
        "phases",
        "remote_addr",
        "stage",
        "started",
        "status",
        "tls",
    )

    def __init__(self) -> None:
        self.started = trio.current_time()
        self.phases: dict[str, float] = {}  # seconds, the phases that happened
        self.stage = "DNS answer"  # what it waits for: a timeout says so
        self.remote_addr: str | None = None
        self.tls: TlsDetails | None = None
        self.status: int | None = None  # the handshake's HTTP status
        self.answered = False  # the handshake got an HTTP answer (101 or a refusal)
        self.message: bytes | None = None  # the first message received, as bytes
        self.done_at: float | None = None  # when the outcome was known
        self.failure: ProbeFailure | None = None  # the outcome, once known (None: ok)

    def timed(self, phase: str, since: float) -> float:
        now = trio.current_time()
        self.phases[phase] = now - since
        return now

    @property
    def latency_ms(self) -> float | None:
        """Resolve to outcome, once the handshake got an answer; None without one."""
        if not self.answered:
            return None
        end = trio.current_time() if self.done_at is None else self.done_at
        return round((end - self.started) * 1000, 3)


class _Watched(trio.abc.Stream):
    """The connection as trio-websocket sees it, watched until the handshake is answered.

    trio-websocket's client handshake waits for the server's answer until cancelled:
    if the connection ends first (closed, reset, or closed by trio-websocket itself on
    an answer it cannot parse) it would wait for the whole deadline. Here such an end
    cancels `upgrading` and leaves why in `failure`. The answer's first bytes are kept
    for its status line (a refusal whose body never ends is still a refusal).
    """

    def __init__(self, stream: trio.abc.Stream, upgrading: trio.CancelScope) -> None:
        self._stream = stream
        self._upgrading = upgrading
        self.head = b""
        self.failure: ProbeFailure | None = None

    def _ended(self, failure: ProbeFailure) -> None:
        if self.failure is None:
            self.failure = failure
        self._upgrading.cancel()  # a no-op once the handshake is done

    def _ended_early(self, detail: str) -> None:
        status = self.status()
        if status is not None and status != 101:
            self._ended(ProbeFailure(ErrorKind.STATUS, _refused(status, None)))
        else:
            self._ended(ProbeFailure(ErrorKind.CONNECT, detail))

    def status(self) -> int | None:
        match = _STATUS_LINE.match(self.head)
        return None if match is None else int(match[1])

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        try:
            data = await self._stream.receive_some(max_bytes)
        except trio.BrokenResourceError as exc:
            self._ended_early(classify(exc).detail)
            raise
        if not data:
            self._ended_early("connection closed before the handshake was answered")
        elif len(self.head) < 64:
            self.head += data[:64]
        return data

    async def aclose(self) -> None:
        # before the answer, trio-websocket closes only on bytes it cannot parse
        self._ended(ProbeFailure(ErrorKind.PROTOCOL, _NOT_AN_ANSWER))
        await self._stream.aclose()


def _refused(status: int, body: bytes | None) -> str:
    detail = f"HTTP {status} to the WebSocket handshake, not 101"
    text = (body or b"").decode("utf-8", "replace").strip()
    return f"{detail}: {text[:100]}" if text else detail


def _leaves(group: BaseExceptionGroup) -> Iterator[BaseException]:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            yield from _leaves(exc)
        else:
            yield exc


def _failure_in(group: BaseExceptionGroup, attempt: _Attempt) -> ProbeFailure | None:
    """The probe's failure in what the reader task and the probe raised together."""
    for exc in _leaves(group):
        if isinstance(exc, trio_websocket.ConnectionRejected):
            attempt.status, attempt.answered = exc.status_code, True
            return ProbeFailure(ErrorKind.STATUS, _refused(exc.status_code, exc.body))
        if isinstance(exc, ProbeFailure):
            return exc
        if _is_parser_error(exc) and not attempt.answered:
            return ProbeFailure(ErrorKind.PROTOCOL, _NOT_AN_ANSWER)
    return None


def _is_parser_error(exc: BaseException) -> bool:
    """h11's or wsproto's: on an answer that is no HTTP, trio-websocket's reader tries to
    send a refusal as if it were the server, and the HTTP parser raises."""
    return type(exc).__module__.partition(".")[0] in ("h11", "wsproto")


def _closed(exc: trio_websocket.ConnectionClosed, what: str) -> ProbeFailure:
    reason = exc.reason
    if reason is None or reason.code == ABNORMAL_CLOSURE:
        return ProbeFailure(ErrorKind.CONNECT, f"connection lost {what}")
    why = f"{reason.code} {reason.name}" + (f": {reason.reason}" if reason.reason else "")
    return ProbeFailure(ErrorKind.CONTENT, f"closed by the server ({why}) {what}")


async def _converse(
    plan: WsPlan, stream: trio.abc.Stream, attempt: _Attempt, nursery: trio.Nursery
) -> None:
    """The handshake and the message exchange on a connected stream; raises ProbeFailure."""
    spec = plan.spec
    upgrading = trio.CancelScope()
    watched = _Watched(stream, upgrading)
    ws: trio_websocket.WebSocketConnection | None = None
    attempt.stage = "answer to the WebSocket handshake"
    sent = trio.current_time()
    with upgrading:
        ws = await trio_websocket.wrap_client_stream(
            nursery,
            watched,  # type: ignore[arg-type]  # any trio Stream works; its hint names two
            spec.host_header,
            spec.resource,
            subprotocols=spec.subprotocols,
            extra_headers=list(plan.extra_headers),
            message_queue_size=1,
            max_message_size=MAX_MESSAGE,
        )
    if ws is None:
        attempt.status = watched.status()
        attempt.answered = attempt.status is not None
        raise watched.failure or ProbeFailure(ErrorKind.INTERNAL, "handshake interrupted")
    answered = attempt.timed("ttfb", sent)
    attempt.status, attempt.answered = 101, True
    failure = None
    try:
        if spec.send is not None:
            await ws.send_message(spec.send)
        if plan.reads_message:
            attempt.stage = "message"
            message = await ws.get_message()
            attempt.timed("transfer", answered)
            attempt.message = message.encode() if isinstance(message, str) else message
            failure = None if spec.expect is None else _mismatch(spec.expect, attempt.message)
    except trio_websocket.ConnectionClosed as exc:
        failure = _closed(exc, "before a message" if attempt.stage == "message" else "at once")
    attempt.failure, attempt.done_at = failure, trio.current_time()
    attempt.stage = "close"
    with trio.move_on_after(CLOSE_TIMEOUT):
        await ws.aclose()
    if failure is not None:
        raise failure


def received_text(message: bytes) -> str:
    return message.decode("utf-8", "replace")


def _mismatch(expect: re.Pattern[str], message: bytes) -> ProbeFailure | None:
    if expect.search(received_text(message)):
        return None
    return ProbeFailure(ErrorKind.CONTENT, f"the first message does not match {expect.pattern!r}")


def _details(stream: trio.SSLStream[trio.SocketStream]) -> TlsDetails | None:
    # trio forwards getpeercert() but not the chain: net/certs reads its SSLObject
    return tls_details(stream._ssl_object, time.time())


async def _connect(addresses: tuple[str, ...], port: int) -> tuple[trio.SocketStream, str]:
    """The first address that accepts, in the resolver's order (as HTTP targets do)."""
    error: OSError | None = None
    for ip in addresses:
        try:
            return await trio.open_tcp_stream(ip, port), ip
        except OSError as exc:
            error = exc
    assert error is not None  # a resolution has an address
    raise error


async def _attempt(plan: WsPlan, attempt: _Attempt, resolver: Resolver) -> None:
    """One attempt, recorded in `attempt`; raises on failure (ProbeFailure or what
    `classify` maps)."""
    spec = plan.spec
    resolution = await resolver.resolve(spec.host, spec.ip_family)
    if resolution.source != "literal":
        attempt.phases["dns"] = resolution.elapsed
    attempt.stage = "connection"
    started = trio.current_time()
    stream: trio.abc.Stream
    stream, ip = await _connect(resolution.addresses, spec.port)
    attempt.timed("connect", started)
    attempt.remote_addr = with_port(ip, spec.port)
    try:
        if spec.tls is not None:
            attempt.stage = "TLS handshake"
            started = trio.current_time()
            stream = secure = trio.SSLStream(
                stream, spec.tls.context, server_hostname=spec.server_name or spec.host
            )
            try:
                await secure.do_handshake()
            except trio.BrokenResourceError as exc:
                # what it presented, so a failed verification can say which certificate
                attempt.tls = _details(secure)
                raise classify(exc, attempt.tls) from None
            attempt.timed("tls", started)
            attempt.tls = _details(secure)
            # expired or not yet valid fails, verified or not, as for HTTPS targets
            if (invalid := invalid_certificate(attempt.tls)) is not None:
                raise invalid
        try:
            async with trio.open_nursery() as nursery:
                try:
                    await _converse(plan, stream, attempt, nursery)
                finally:
                    nursery.cancel_scope.cancel()  # trio-websocket's reader ends here
        except BaseExceptionGroup as group:
            failure = _failure_in(group, attempt)
            if failure is None:
                raise
            raise failure from None
    finally:
        # closed at once if still open (cancelled before it can wait): bounded
        await trio.aclose_forcefully(stream)


def facts(result: ProbeResult, message: bytes | None, now: float) -> dict[str, object]:
    """What the conditions of a ws/wss target are checked against (PLACEHOLDERS); a
    fact the probe did not get is None (its conditions fail with actual null)."""
    found = common_facts(result.latency_ms, result.remote_addr, result.phases_ms)
    found["CONNECTED"] = result.status == 101  # the WebSocket opened, not just TCP
    found["STATUS"] = result.status
    found["BODY"] = message
    found["CERTIFICATE_EXPIRATION"] = (
        None if result.tls is None else (result.tls.not_after - now) * 1000
    )
    return found


def _timed_out(target: Target, attempt: _Attempt) -> ProbeFailure:
    return ProbeFailure(ErrorKind.TIMEOUT, f"no {attempt.stage} within {target.timeout:g}s")


async def probe(
    plan: WsPlan, round_no: int, deadlines: set[trio.CancelScope], resolver: Resolver
) -> ProbeResult:
    """Probe once, retries included, within the target's timeout. Never raises but Cancelled."""
    target = plan.target
    ts = time.time()
    attempts = 0
    attempt = _Attempt()
    failure: ProbeFailure | None = None
    with trio.move_on_after(target.timeout) as deadline:
        deadlines.add(deadline)
        try:
            for retry in range(target.retries + 1):
                attempts += 1
                attempt = _Attempt()
                try:
                    await _attempt(plan, attempt, resolver)
                    failure = None
                    break
                except Exception as exc:  # every failure is data; Cancelled is no Exception
                    failure = classify(exc, attempt.tls)
                if not await retry_after(failure, retry, target.retries, deadline, _RNG):
                    break
        finally:
            deadlines.discard(deadline)
    if deadline.cancelled_caught:  # known before the close was cut short, or a timeout
        failure = attempt.failure if attempt.done_at is not None else _timed_out(target, attempt)
    latency_ms = attempt.latency_ms
    message = attempt.message
    result = ProbeResult(
        ts=ts,
        target=target.name,
        url=target.url,
        ok=failure is None,
        status=attempt.status,
        latency_ms=latency_ms,
        error=failure.kind if failure else None,
        error_detail=failure.detail if failure else None,
        attempts=attempts,
        round=round_no,
        bytes=0 if message is None else len(message),
        slow=bool(
            failure is None and target.slow and latency_ms and latency_ms > target.slow * 1000
        ),
        remote_addr=attempt.remote_addr,
        kind="ws",
        phases_ms=phases_ms(attempt.phases),
        tls=attempt.tls,
        received=None if message is None else received_text(message)[:RECEIVED_SHOWN],
    )
    if not target.conditions:
        return result
    return apply(result, target.conditions, facts(result, message, time.time()))
