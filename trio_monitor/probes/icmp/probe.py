"""One icmp:// probe: resolve the host, send `count` echo requests `spacing` apart,
collect replies until each request has its own or the deadline passes.

The result: `icmp` (sent, received, loss, min/avg/max round-trip time, the address,
the socket kind), `latency_ms` = the average round-trip time, `phases_ms.dns`. No reply
at all is error `timeout`; a partial loss is still ok (conditions can say otherwise:
`[PACKET_LOSS] < 50`). Every request carries a random token in its payload, so that a
reply echoing another pinger's data never counts.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

import trio
from attrs import frozen

from ..._config import Target, format_duration
from ..._errors import ErrorKind, ProbeFailure
from ..._records import PHASES, IcmpDetails, ProbeResult
from ...conditions import COMMON, Type, apply, common_facts
from .config import IcmpSpec
from .packet import echo_request, payload
from .sockets import Pending, SocketKind

if TYPE_CHECKING:
    from ...net.dns import Resolver

# What icmp targets' conditions may read: the common ones (RESPONSE_TIME the average
# round trip, CONNECTED any reply at all, IP the address pinged, PHASE), and these
PLACEHOLDERS: Mapping[str, Type] = {
    **COMMON,
    "PACKET_LOSS": Type.NUMBER,  # percent
    "RTT_MAX": Type.DURATION,
}


@frozen
class IcmpPlan:
    target: Target
    limit_key: str  # "icmp://HOST": per_host counts pings of one host
    spec: IcmpSpec


def prepare(target: Target) -> IcmpPlan:
    return IcmpPlan(target, f"icmp://{target.spec.host}", target.spec)


class Exchange(Protocol):
    """One probe's requests and replies over a socket (sockets.py)."""

    kind: SocketKind
    pending: Pending

    async def send(self, packet: bytes) -> None: ...

    async def collect(self) -> None:
        """Take replies in until every request has one (cancel to stop sooner)."""
        ...

    def close(self) -> None: ...


class Network(Protocol):
    """What a probe needs from its prober."""

    def resolver(self, nameserver: tuple[str, int] | None) -> Resolver: ...

    def exchange(self, addr: str, data: bytes, count: int) -> Exchange: ...


async def probe(
    network: Network, plan: IcmpPlan, round_no: int, deadlines: set[trio.CancelScope]
) -> ProbeResult:
    """Ping once within the target's timeout; never raises (but Cancelled)."""
    target, spec = plan.target, plan.spec
    ts = time.time()
    data = payload(random.getrandbits(64).to_bytes(8, "big"), spec.size)
    failure: ProbeFailure | None = None
    exchange: Exchange | None = None
    addr, dns_ms, setup_ms = None, None, None
    with trio.move_on_after(target.timeout) as deadline:
        deadlines.add(deadline)
        try:
            resolution = await network.resolver(spec.resolver).resolve(
                spec.host, spec.ip_family, limit=1
            )
            addr = resolution.addresses[0]
            if resolution.source != "literal":
                dns_ms = _ms(resolution.elapsed)
            setup = trio.current_time()
            exchange = network.exchange(addr, data, spec.count)
            setup_ms = _ms(trio.current_time() - setup)
            await _ping(exchange, spec, data)
        except ProbeFailure as exc:
            failure = exc
        except OSError as exc:
            failure = ProbeFailure(ErrorKind.CONNECT, f"{addr}: {exc.strerror or exc}")
        finally:
            deadlines.discard(deadline)
            if exchange is not None:
                exchange.close()
    details = None
    if exchange is None or addr is None:
        failure = failure or ProbeFailure(
            ErrorKind.TIMEOUT,
            f"no address for {spec.host} within {format_duration(target.timeout)}",
        )
    else:
        details = _details(exchange, addr, setup_ms)
        if failure is None and not details.received:
            failure = ProbeFailure(
                ErrorKind.TIMEOUT,
                f"no reply to {details.sent} echo requests within {format_duration(target.timeout)}",
            )
    result = _result(target, round_no, ts, failure, details, dns_ms)
    return apply(result, target.conditions, facts(result)) if target.conditions else result


async def _ping(exchange: Exchange, spec: IcmpSpec, data: bytes) -> None:
    pending, ipv6 = exchange.pending, ":" in exchange.pending.addr
    first = trio.current_time()
    for seq in range(spec.count):
        packet = echo_request(ipv6, pending.ident, seq, data)
        await exchange.send(packet)
        # no checkpoint since the send returned: no reply can have been taken in yet
        pending.sent[seq] = trio.current_time()
        if seq + 1 < spec.count:
            with trio.move_on_at(first + (seq + 1) * spec.spacing):
                await exchange.collect()
    await exchange.collect()


def _details(exchange: Exchange, addr: str, setup_ms: float | None) -> IcmpDetails:
    pending = exchange.pending
    sent = sum(when is not None for when in pending.sent)
    rtts = [_ms(rtt) for rtt in pending.rtts if rtt is not None]
    return IcmpDetails(
        sent=sent,
        received=len(rtts),
        loss_pct=round(100 * (sent - len(rtts)) / sent, 1) if sent else 100.0,
        rtt_min_ms=min(rtts) if rtts else None,
        rtt_avg_ms=round(sum(rtts) / len(rtts), 3) if rtts else None,
        rtt_max_ms=max(rtts) if rtts else None,
        addr=addr,
        socket=exchange.kind,
        hop_limit=pending.hop_limit,
        setup_ms=setup_ms,
    )


def _result(
    target: Target,
    round_no: int,
    ts: float,
    failure: ProbeFailure | None,
    details: IcmpDetails | None,
    dns_ms: float | None,
) -> ProbeResult:
    latency = None if details is None else details.rtt_avg_ms
    return ProbeResult(
        ts=ts,
        target=target.name,
        url=target.url,
        ok=failure is None,
        status=None,
        latency_ms=latency,
        error=None if failure is None else failure.kind,
        error_detail=None if failure is None else failure.detail,
        attempts=1,
        round=round_no,
        slow=bool(failure is None and latency and target.slow and latency > target.slow * 1000),
        remote_addr=None if details is None else details.addr,
        kind="icmp",
        phases_ms=None if details is None else _phases(dns_ms),
        icmp=details,
    )


def _phases(dns_ms: float | None) -> dict[str, float | None]:
    """phases_ms: only the name lookup is a phase of a ping (null for an IP address)."""
    phases: dict[str, float | None] = dict.fromkeys(PHASES)
    phases["dns"] = dns_ms
    return phases


def facts(result: ProbeResult) -> dict[str, object]:
    """The values of PLACEHOLDERS for `result` (None: the fact does not exist, and a
    condition reading it fails)."""
    details = result.icmp
    values = common_facts(result.latency_ms, result.remote_addr, result.phases_ms)
    values["CONNECTED"] = details is not None and details.received > 0
    values["PACKET_LOSS"] = None if details is None else details.loss_pct
    values["RTT_MAX"] = None if details is None else details.rtt_max_ms
    return values


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
