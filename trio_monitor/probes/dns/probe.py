"""One probe of one dns:// target: one question to one nameserver, on trio; and
`DnsProber`, which probes them.

The question (RD set, EDNS0 with a 1232-byte UDP payload, as dig and the 2020 DNS flag
day advise) goes over UDP; a truncated answer is asked again over TCP (dnspython's
`udp_with_fallback`). Lost datagrams are sent again: with `retries = N` the target's
timeout is cut into N + 1 windows and each window without an answer sends the question
once more, as a stub resolver does (the last one runs to the deadline).

Verdict: without conditions, ok when the rcode is NOERROR and the answer holds a record
of the type asked; else error `dns`. With conditions, any answer is ok until they say
otherwise. No answer at all is `timeout`; ICMP port unreachable (or a refused TCP
connection) is `connect`; an answer dnspython cannot read is `protocol`.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Mapping

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.inet
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import trio
from attrs import frozen

from ..._config import Config, Target
from ..._errors import ErrorKind, ProbeFailure
from ..._records import PHASES, DnsAnswer, ProbeResult
from ...conditions import apply, common_facts
from ...net.addr import with_port
from .config import DnsSpec

EDNS_PAYLOAD = 1232  # bytes of UDP answer we accept before the server truncates


@frozen
class DnsPlan:
    """A target's question, built once."""

    target: Target
    spec: DnsSpec
    limit_key: str  # "dns://ip:port": per_host counts per nameserver
    name: dns.name.Name
    rdtype: dns.rdatatype.RdataType
    server: tuple[str, int]  # (IP, port) asked
    server_text: str  # "ip:port", "[ip]:port": as lines and error details show it


def prepare(target: Target, default_server: tuple[str, int]) -> DnsPlan:
    spec: DnsSpec = target.spec
    server = spec.resolver if spec.resolver is not None else default_server
    server_text = with_port(*server)
    return DnsPlan(
        target=target,
        spec=spec,
        limit_key=f"dns://{server_text}",
        name=dns.name.from_text(spec.name),
        rdtype=dns.rdatatype.from_text(spec.record_type),
        server=server,
        server_text=server_text,
    )


@frozen
class _Exchange:
    """An answer and how it came: `elapsed` seconds from sending the question that
    got it to the answer (the TCP retry included)."""

    response: dns.message.Message
    tcp: bool
    elapsed: float


async def probe(
    plan: DnsPlan,
    round_no: int,
    deadlines: set[trio.CancelScope],
    backend: dns.asyncbackend.Backend,
) -> ProbeResult:
    """Ask once (sending again as `retries` allows) within the target's timeout; never
    raises but Cancelled."""
    target = plan.target
    ts, started = time.time(), trio.current_time()
    exchange: _Exchange | None = None
    failure: ProbeFailure | None = None
    attempts = 1
    with trio.move_on_after(target.timeout) as deadline:
        deadlines.add(deadline)
        try:
            windows = target.retries + 1
            for attempt in range(1, windows + 1):
                attempts = attempt
                # the last window runs to the probe's deadline
                end = (
                    started + target.timeout * attempt / windows if attempt < windows else math.inf
                )
                exchange, failure = await _attempt(plan, backend, end, deadlines)
                if exchange is not None or not _worth_again(failure):
                    break
        finally:
            deadlines.discard(deadline)
    if deadline.cancelled_caught:
        failure = _no_answer(plan)
    latency_ms = _ms(trio.current_time() - started)
    answer = None if exchange is None else _answer(plan, exchange)
    if exchange is not None and not target.conditions:  # else the conditions decide
        failure = _verdict(plan, exchange.response)
    result = ProbeResult(
        ts=ts,
        target=target.name,
        url=target.url,
        ok=failure is None,
        status=None,
        latency_ms=latency_ms,
        error=failure.kind if failure else None,
        error_detail=failure.detail if failure else None,
        attempts=attempts,
        round=round_no,
        ttfb_ms=None if exchange is None else _ms(exchange.elapsed),
        slow=failure is None and target.slow is not None and latency_ms > target.slow * 1000,
        remote_addr=None if exchange is None else plan.server_text,
        kind=target.kind,
        phases_ms=None if exchange is None else _phases(exchange),
        dns=answer,
    )
    if not target.conditions:
        return result
    return apply(result, target.conditions, facts(result))


async def _attempt(
    plan: DnsPlan,
    backend: dns.asyncbackend.Backend,
    window_end: float,
    deadlines: set[trio.CancelScope],
) -> tuple[_Exchange | None, ProbeFailure | None]:
    """Send the question once and wait for its answer until `window_end`."""
    query = dns.message.make_query(plan.name, plan.rdtype, use_edns=0, payload=EDNS_PAYLOAD)
    ip, port = plan.server
    sent = trio.current_time()
    with trio.move_on_at(window_end) as window:
        deadlines.add(window)
        try:
            # a connected socket, so that an ICMP port unreachable is an error here
            # (dnspython's own UDP socket for trio is not connected: it would wait)
            udp = await backend.make_socket(
                dns.inet.af_for_address(ip), socket.SOCK_DGRAM, destination=plan.server
            )
            async with udp:
                # no dnspython timeout: it reads the wall clock, and trio's deadlines
                # (the probe's, the window's) already bound every wait
                response, tcp = await dns.asyncquery.udp_with_fallback(
                    query, ip, port=port, udp_sock=udp, backend=backend
                )
            return _Exchange(response, tcp, trio.current_time() - sent), None
        except OSError as exc:
            return None, ProbeFailure(ErrorKind.CONNECT, _os_error(plan, exc))
        except EOFError:  # dnspython's word for a TCP connection closed before the answer
            detail = f"{plan.server_text} closed the connection before answering"
            return None, ProbeFailure(ErrorKind.CONNECT, detail)
        except dns.exception.DNSException as exc:
            return None, ProbeFailure(ErrorKind.PROTOCOL, _malformed(plan, exc))
        finally:
            deadlines.discard(window)
    assert window.cancelled_caught  # every other way out returned
    return None, _no_answer(plan)


def _worth_again(failure: ProbeFailure | None) -> bool:
    """A datagram lost, or a port closed for a moment: ask again. A malformed answer
    would come back the same."""
    return failure is not None and failure.kind in (ErrorKind.TIMEOUT, ErrorKind.CONNECT)


def _verdict(plan: DnsPlan, response: dns.message.Message) -> ProbeFailure | None:
    """The default verdict: NOERROR with a record of the type asked."""
    rcode = dns.rcode.to_text(response.rcode())
    if rcode != "NOERROR":
        return ProbeFailure(ErrorKind.DNS, f"{rcode} from {plan.server_text}")
    if not any(rrset.rdtype == plan.rdtype for rrset in response.answer):
        return ProbeFailure(ErrorKind.DNS, f"NOERROR but no {plan.spec.record_type} record")
    return None


def _answer(plan: DnsPlan, exchange: _Exchange) -> DnsAnswer:
    response = exchange.response
    return DnsAnswer(
        record_type=plan.spec.record_type,
        rcode=dns.rcode.to_text(response.rcode()),
        answers=tuple(rdata.to_text() for rrset in response.answer for rdata in rrset),
        server=plan.server_text,
        tcp=exchange.tcp,
        authority_rrs=sum(len(rrset) for rrset in response.authority),
        additional_rrs=sum(len(rrset) for rrset in response.additional),
    )


def facts(result: ProbeResult) -> Mapping[str, object]:
    """The values the dns kind's placeholders stand for (conditions/): without an
    answer there is no rcode and no body (a condition on them fails, actual null)."""
    values = common_facts(result.latency_ms, result.remote_addr, result.phases_ms)
    if result.dns is not None:
        values["DNS_RCODE"] = result.dns.rcode
        values["BODY"] = "\n".join(result.dns.answers).encode()
    return values


def _phases(exchange: _Exchange) -> dict[str, float | None]:
    """No name to resolve, no connection to time apart (UDP): the question's time
    from sending to its answer is the time to the first byte."""
    phases: dict[str, float | None] = dict.fromkeys(PHASES)
    phases["ttfb"] = _ms(exchange.elapsed)
    return phases


def _no_answer(plan: DnsPlan) -> ProbeFailure:
    return ProbeFailure(
        ErrorKind.TIMEOUT,
        f"no answer from {plan.server_text} within {plan.target.timeout:g}s",
    )


def _os_error(plan: DnsPlan, exc: OSError) -> str:
    reason = (exc.strerror or str(exc) or type(exc).__name__).lower()
    return f"{plan.server_text}: {reason}"


def _malformed(plan: DnsPlan, exc: Exception) -> str:
    return f"malformed answer from {plan.server_text}: {exc or type(exc).__name__}"


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


class DnsProber:
    """Asks the nameserver of each dns:// target; `default_server`: where targets
    without `resolver` ask (resolv.conf's first nameserver, read once per run)."""

    def __init__(self, default_server: tuple[str, int]) -> None:
        self._default_server = default_server
        # Named, not sniffed (as net/dns.py): dnspython would keep whichever async
        # library it saw first, process-wide
        self._backend = dns.asyncbackend.get_backend("trio")

    def prepare(self, target: Target) -> DnsPlan:
        return prepare(target, self._default_server)

    async def probe(
        self, plan: DnsPlan, round_no: int, deadlines: set[trio.CancelScope]
    ) -> ProbeResult:
        return await probe(plan, round_no, deadlines, self._backend)

    async def reconfigure(self, old: Config, new: Config) -> None:
        """Nothing is kept between probes: no socket outlives its question."""
