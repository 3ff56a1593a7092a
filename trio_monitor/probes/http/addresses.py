"""`addresses = "all"`: every address behind a target's name, probed at once.

Probers that check a name probe one of its addresses (blackbox_exporter documents that
it takes the first), so a dead node behind round-robin DNS, or a broken IPv6 path
beside a working IPv4 one, stays invisible until a visitor's resolver picks it. Here the
name is resolved once (at most MAX_ADDRESSES addresses), then the target's ordinary
probe runs once per address in parallel, each connecting to its address (`pin`) while
SNI, the certificate check and Host stay the name, all within the one deadline. The
target is ok when every address is, or at least `min_addresses_ok` of them.
"""

from __future__ import annotations

import random
import time

import attrs
import trio

from ..._errors import ErrorKind, ProbeFailure
from ..._records import AddressResult, ProbeResult
from ...net.addr import bracketed
from ..base import failed
from .probe import PHASE_NAMES, HttpPlan, probe, timed_out
from .wire import ProbeTransport

MAX_ADDRESSES = 16


def _verdict(
    addresses: tuple[str, ...], results: list[ProbeResult], needed: int, omitted: int
) -> str | None:
    """Why the target fails, or None when enough addresses are ok."""
    failing = [(ip, r) for ip, r in zip(addresses, results, strict=True) if not r.ok]
    ok_count = len(results) - len(failing)
    if ok_count >= needed:
        return None
    total = len(addresses) + omitted
    if not failing:  # all ok, but fewer than asked for
        return f"only {ok_count} addresses behind the name, min_addresses_ok is {needed}"
    listed = ", ".join(f"{bracketed(ip)} {r.error}" for ip, r in failing)
    detail = f"{len(failing)} of {total} addresses fail: {listed}"
    if needed < len(addresses):
        detail += f" ({ok_count} ok, min_addresses_ok {needed})"
    return detail


async def probe_every_address(
    transport: ProbeTransport,
    plan: HttpPlan,
    round_no: int,
    *,
    rng: random.Random | None = None,
    deadlines: set[trio.CancelScope] | None = None,
) -> ProbeResult:
    """Like `probe`, for every address of the target's host. Never raises but Cancelled."""
    target, spec = plan.target, plan.spec
    ts = time.time()
    until = trio.current_time() + target.timeout
    host = plan.url.host
    resolver = transport.resolver(spec.resolver)
    with trio.move_on_at(until) as lookup:
        if deadlines is not None:
            deadlines.add(lookup)
        try:
            resolution = await resolver.resolve(
                host, spec.ip_family, limit=MAX_ADDRESSES, cache=spec.connection == "reuse"
            )
        except ProbeFailure as exc:
            return failed(target, round_no, exc, ts)
        finally:
            if deadlines is not None:
                deadlines.discard(lookup)
    if lookup.cancelled_caught:
        return failed(target, round_no, timed_out(target), ts)
    until = lookup.deadline  # pushed back by the scheduler's lag watch, if it stalled
    addresses = resolution.addresses
    results: list[ProbeResult | None] = [None] * len(addresses)

    async def one(i: int, ip: str) -> None:
        results[i] = await probe(
            transport, plan, round_no, rng=rng, deadlines=deadlines, pin=(host, ip), until=until
        )

    async with trio.open_nursery() as nursery:
        for i, ip in enumerate(addresses):
            nursery.start_soon(one, i, ip)
    done = [r for r in results if r is not None]
    needed = len(addresses) if spec.min_addresses_ok is None else spec.min_addresses_ok
    why = _verdict(addresses, done, needed, resolution.omitted)
    # the line's other fields tell one address's story: the first failing one, else the
    # slowest (the worst a visitor gets)
    failing = [r for r in done if not r.ok]
    base = failing[0] if failing else max(done, key=lambda r: r.latency_ms or 0.0)
    phases = base.phases_ms
    if resolution.source != "literal":  # the one lookup, whether or not it connected
        phases = (phases or dict.fromkeys(PHASE_NAMES)) | {
            "dns": round(resolution.elapsed * 1000, 3)
        }
    return attrs.evolve(
        base,
        ts=ts,
        ok=why is None,
        # every address ok but too few of them: the name's records are what is wrong
        error=None if why is None else (base.error or ErrorKind.DNS),
        error_detail=why,
        attempts=max(r.attempts for r in done),
        slow=base.slow and why is None,
        phases_ms=phases,
        addresses=tuple(
            AddressResult(ip, r.ok, r.error, r.latency_ms)
            for ip, r in zip(addresses, done, strict=True)
        ),
    )
