"""A probe kind that exists only in the tests: `line://host:port` connects over TCP,
reads one line and checks it contains `expect`. One module plus one registration
(`register(KIND)`), as a new kind in trio_monitor/probes/ would be; its conditions
read the common placeholders and [BODY] (the line)."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager

import trio
from attrs import frozen

from trio_monitor import ErrorKind, ProbeResult
from trio_monitor._config import TargetSection
from trio_monitor.conditions import COMMON, Type, apply, common_facts
from trio_monitor.probes.base import ProbeKind


@frozen
class LineSection(TargetSection):
    expect: str = ""


@frozen
class LineSpec:
    expect: str


@frozen
class LinePlan:
    target: object
    limit_key: str
    host: str
    port: int
    expect: bytes


def resolver(monitor, env, problems):
    def resolve(section: LineSection, where: str, problems: list[str]) -> LineSpec:
        if "\n" in section.expect:
            problems.append(f"{where}.expect: must be one line")
        return LineSpec(expect=section.expect)

    return resolve


class LineProber:
    def __init__(self) -> None:
        self.reconfigured = 0

    def prepare(self, target) -> LinePlan:
        host, _, port = target.url.removeprefix("line://").rstrip("/").rpartition(":")
        return LinePlan(
            target, f"line://{host}:{port}", host, int(port), target.spec.expect.encode()
        )

    async def probe(self, plan: LinePlan, round_no: int, deadlines) -> ProbeResult:
        target = plan.target
        ts, started = time.time(), trio.current_time()
        error = detail = None
        line = remote = None
        with trio.move_on_after(target.timeout) as deadline:
            deadlines.add(deadline)
            try:
                stream = await trio.open_tcp_stream(plan.host, plan.port)
                remote = "{}:{}".format(*stream.socket.getpeername()[:2])
                async with stream:
                    line = await stream.receive_some(1024)
                if plan.expect not in line:
                    error, detail = ErrorKind.CONTENT, f"no {plan.expect!r} in {line!r}"
            except OSError as exc:
                error, detail = ErrorKind.CONNECT, str(exc)
            finally:
                deadlines.discard(deadline)
        if deadline.cancelled_caught:
            error, detail = ErrorKind.TIMEOUT, "no line in time"
        result = ProbeResult(
            ts=ts,
            target=target.name,
            url=target.url,
            ok=error is None,
            status=None,
            latency_ms=round((trio.current_time() - started) * 1000, 3),
            error=error,
            error_detail=detail,
            attempts=1,
            round=round_no,
            kind="line",
            remote_addr=remote,
        )
        facts = common_facts(result.latency_ms, remote, None) | {"BODY": line}
        return apply(result, target.conditions, facts)

    async def reconfigure(self, old, new) -> None:
        self.reconfigured += 1


@asynccontextmanager
async def open_line_prober(config):
    yield LineProber()


KIND = ProbeKind(
    name="line",
    schemes=frozenset({"line"}),
    section=LineSection,
    resolver=resolver,
    open=open_line_prober,
    describe=lambda r: f"line ok in {r.latency_ms:g} ms",
    placeholders={**COMMON, "BODY": Type.BODY},
)
