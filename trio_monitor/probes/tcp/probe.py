"""One probe of a tcp:// or tls:// target: resolve, connect, (upgrade and) handshake,
send, read until `expect` matches.

`probe()` never raises for anything the target or the network does: every outcome,
the deadline included, is a ProbeResult. Only trio.Cancelled propagates.

What an attempt did is kept in a `_Trace` as it goes, so that a deadline in the middle
still reports the phases, the address, the certificate and the text received so far:
a deadline after some text that `expect` did not match is `content` (the text is shown),
a deadline before any text is `timeout`.
"""

from __future__ import annotations

import codecs
import random
import time
from collections.abc import Mapping

import trio
from attrs import frozen

from ..._config import Target
from ..._errors import ErrorKind, ProbeFailure
from ..._records import RECEIVED_SHOWN, ProbeResult
from ...conditions import COMMON, Type, apply, common_facts
from ...net.addr import ip_literal, with_port
from ...net.certs import TlsDetails, tls_details
from ...net.errors import classify, invalid_certificate
from ...net.resolvers import Resolvers
from ...net.sockets import Conn, connect_first
from ..base import phases_ms, retry_after
from .config import TcpSpec
from .starttls import upgrade

RECEIVE_CAP = 64 * 1024  # bytes `expect` is tried on at most
SHOWN_IN_DETAIL = 100  # characters of the received text quoted in error_detail
_RNG = random.Random()  # retry jitter only

# the placeholders of these kinds' conditions (facts() gives their values)
PLACEHOLDERS: Mapping[str, Type] = {**COMMON, "BODY": Type.BODY}
TLS_PLACEHOLDERS: Mapping[str, Type] = {**PLACEHOLDERS, "CERTIFICATE_EXPIRATION": Type.DURATION}


@frozen
class TcpPlan:
    target: Target
    spec: TcpSpec
    limit_key: str  # "tcp://host:port": per_host counts per host and port
    literal: str | None  # the host, if it is an IP address: nothing to resolve


def prepare(target: Target) -> TcpPlan:
    spec: TcpSpec = target.spec
    key = f"{target.kind}://{with_port(spec.host, spec.port)}"
    return TcpPlan(target, spec, key, ip_literal(spec.host))


class _Trace:
    """What one attempt did so far."""

    __slots__ = ("_decoder", "first_byte_at", "received", "remote_addr", "seconds", "text", "tls")

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.remote_addr: str | None = None  # set once connected
        self.tls: TlsDetails | None = None
        self.received = bytearray()  # what `expect` was tried on
        # the same as text, decoded as it comes (each byte once, however it trickles in)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.text = ""
        self.first_byte_at: float | None = None

    def add(self, chunk: bytes) -> None:
        self.received += chunk
        self.text += self._decoder.decode(chunk)


def _shown(text: str) -> str:
    return repr(text if len(text) <= SHOWN_IN_DETAIL else text[: SHOWN_IN_DETAIL - 3] + "...")


def _no_match(spec: TcpSpec, trace: _Trace, why: str) -> ProbeFailure:
    assert spec.expect is not None
    got = f"in {_shown(trace.text)}" if trace.received else "nothing received"
    # the pattern as the config wrote it (a repr would double its backslashes)
    return ProbeFailure(ErrorKind.CONTENT, f"no match for '{spec.expect.pattern}' ({why}): {got}")


async def _handshake(conn: Conn, spec: TcpSpec, trace: _Trace) -> None:
    step = spec.tls
    assert step is not None
    started = trio.current_time()
    if step.starttls is not None:
        await upgrade(conn, step.starttls)
    try:
        await conn.start_tls(step.tls.context, step.server_name or spec.host)
    finally:
        # what the server presented, also when verification failed: the failure says
        # which certificate, and `tls` shows it
        if conn.tls is not None:
            trace.tls = tls_details(conn.tls, time.time())
    trace.seconds["tls"] = trio.current_time() - started


async def _receive(conn: Conn, spec: TcpSpec, trace: _Trace, sent_at: float) -> ProbeFailure | None:
    """Read until `expect` matches, the server closes, or RECEIVE_CAP bytes came.
    `sent_at`: when sending started (or the connection was ready): ttfb counts from it."""
    assert spec.expect is not None
    while True:
        chunk = await conn.recv()
        if not chunk:
            return _no_match(spec, trace, "the server closed the connection")
        now = trio.current_time()
        if trace.first_byte_at is None:
            trace.first_byte_at = now
            trace.seconds["ttfb"] = now - sent_at
        trace.add(chunk[: RECEIVE_CAP - len(trace.received)])
        trace.seconds["transfer"] = now - trace.first_byte_at
        if spec.expect.search(trace.text):
            return None
        if len(trace.received) >= RECEIVE_CAP:
            return _no_match(spec, trace, f"first {RECEIVE_CAP // 1024} KiB")


async def _attempt(plan: TcpPlan, resolvers: Resolvers, trace: _Trace) -> ProbeFailure | None:
    """One attempt; raises what the network raises (classified by the caller)."""
    spec = plan.spec
    if plan.literal is not None:
        addresses: tuple[str, ...] = (plan.literal,)
    else:  # raises ProbeFailure(DNS) itself
        resolution = await resolvers.get(spec.resolver).resolve(spec.host, spec.ip_family)
        addresses = resolution.addresses
        trace.seconds["dns"] = resolution.elapsed
    started = trio.current_time()
    conn = await connect_first(spec.host, addresses, spec.port)
    try:
        trace.seconds["connect"] = trio.current_time() - started
        trace.remote_addr = with_port(*conn.peer)
        if spec.tls is not None:
            await _handshake(conn, spec, trace)
            if (bad := invalid_certificate(trace.tls)) is not None:
                return bad
        sent_at = trio.current_time()
        if spec.send is not None:
            await conn.send_all(spec.send)
        if spec.expect is not None:
            return await _receive(conn, spec, trace, sent_at)
        return None
    finally:
        conn.close()  # no waiting: nothing to shield


async def probe(
    plan: TcpPlan,
    resolvers: Resolvers,
    round_no: int,
    deadlines: set[trio.CancelScope],
    *,
    rng: random.Random = _RNG,
) -> ProbeResult:
    """Probe once, retries included, within the target's timeout, then check the
    target's conditions. Never raises but Cancelled."""
    target, spec = plan.target, plan.spec
    ts, started = time.time(), trio.current_time()
    attempts = 0
    trace = _Trace()
    failure: ProbeFailure | None = None
    with trio.move_on_after(target.timeout) as deadline:
        deadlines.add(deadline)
        try:
            for retry in range(target.retries + 1):
                attempts += 1
                trace = _Trace()  # the last attempt is what is reported
                try:
                    failure = await _attempt(plan, resolvers, trace)
                    break
                except Exception as exc:  # Cancelled is no Exception
                    failure = classify(exc, trace.tls)
                if not await retry_after(failure, retry, target.retries, deadline, rng):
                    break
        finally:
            deadlines.discard(deadline)
    if deadline.cancelled_caught:
        if spec.expect is not None and trace.received:
            failure = _no_match(spec, trace, f"within {target.timeout:g}s")
        else:
            failure = ProbeFailure(ErrorKind.TIMEOUT, _timeout_detail(target, spec, trace))
    latency = round((trio.current_time() - started) * 1000, 3)
    phases = phases_ms(trace.seconds)
    result = ProbeResult(
        ts=ts,
        target=target.name,
        url=target.url,
        ok=failure is None,
        status=None,
        # the whole probe, when it got a connection and came to an end before the deadline
        latency_ms=latency
        if trace.remote_addr is not None and not deadline.cancelled_caught
        else None,
        error=failure.kind if failure else None,
        error_detail=failure.detail if failure else None,
        attempts=attempts,
        round=round_no,
        ttfb_ms=None if phases is None else phases["ttfb"],
        bytes=len(trace.received),
        remote_addr=trace.remote_addr,
        kind=target.kind,
        phases_ms=phases,
        tls=trace.tls,
        received=trace.text[:RECEIVED_SHOWN] if spec.expect is not None else None,
    )
    if target.conditions:
        result = apply(result, target.conditions, facts(result, bytes(trace.received)))
    return result


def _timeout_detail(target: Target, spec: TcpSpec, trace: _Trace) -> str:
    within = f"within {target.timeout:g}s"
    if trace.remote_addr is None:
        return f"no connection to {with_port(spec.host, spec.port)} {within}"
    if spec.tls is not None and trace.tls is None:
        return f"no TLS handshake {within}"
    return f"nothing received {within}"


def facts(result: ProbeResult, body: bytes) -> dict[str, object]:
    """What the conditions of a tcp:// or tls:// target are checked against: BODY is
    every byte received (up to RECEIVE_CAP), CERTIFICATE_EXPIRATION the ms the leaf
    certificate had left at the probe."""
    out = common_facts(result.latency_ms, result.remote_addr, result.phases_ms)
    out["BODY"] = body
    if result.tls is not None:
        out["CERTIFICATE_EXPIRATION"] = (result.tls.not_after - result.ts) * 1000
    return out
