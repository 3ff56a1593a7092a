"""The `dns` probe kind: dns://NAME targets ask one nameserver one question.

config.py  its target keys (record_type, resolver) and their resolution into a DnsSpec
probe.py   DnsProber: prepare(target) -> DnsPlan once; probe(): UDP, TCP after
           truncation, datagrams sent again within the timeout, the verdict, the `dns`
           object (imported only when a run opens the prober: it needs dnspython)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ..._config import Config
from ..._records import ProbeResult
from ...conditions import COMMON, Type
from ..base import OnFirstPrepare, ProbeKind, Prober, register
from .config import RECORD_TYPES, DnsSpec, DnsTargetSection, dns_resolver

__all__ = ["KIND", "PLACEHOLDERS", "RECORD_TYPES", "DnsSpec", "open_dns_prober"]

# what the kind's conditions may name (checked at config load; facts in probe.py)
PLACEHOLDERS: Mapping[str, Type] = {
    **COMMON,  # IP: the nameserver, CONNECTED: it answered
    "DNS_RCODE": Type.TEXT,
    "BODY": Type.BODY,  # the answers, one per line
}


@asynccontextmanager
async def open_dns_prober(
    config: Config, resolv_conf: str | Path | None = None
) -> AsyncIterator[Prober[Any]]:
    """The run's DnsProber, built at the first dns:// target it prepares; `resolv_conf`:
    where the default nameserver is read (None: the system's file)."""

    def build() -> Prober[Any]:
        # dnspython is imported when a dns:// target is first prepared: `validate`,
        # `report` and runs without one never pay for it (tests/test_imports.py)
        from ...net.dns import system_nameservers
        from .probe import DnsProber

        servers = system_nameservers() if resolv_conf is None else system_nameservers(resolv_conf)
        return DnsProber(servers[0])

    yield OnFirstPrepare(build)


def _describe(result: ProbeResult) -> str:
    answer = result.dns
    if answer is None:
        return f"ok in {result.latency_ms:g} ms"
    shown = [*answer.answers[:3], *(["..."] if len(answer.answers) > 3 else [])]
    words = [answer.rcode, answer.record_type, ", ".join(shown)] if shown else [answer.rcode]
    return f"{' '.join(words)} in {result.latency_ms:g} ms"


KIND = ProbeKind(
    name="dns",
    schemes=frozenset({"dns"}),
    section=DnsTargetSection,
    resolver=dns_resolver,
    open=open_dns_prober,
    describe=_describe,
    placeholders=PLACEHOLDERS,
)
register(KIND)
