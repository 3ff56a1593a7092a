"""The `dns` probe kind: dns://NAME targets ask one nameserver one question.

config.py  its target keys (record_type, resolver) and their resolution into a DnsSpec
probe.py   prepare(target) -> DnsPlan once; probe(): UDP, TCP after truncation,
           datagrams sent again within the timeout, the verdict, the `dns` object
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import dns.asyncbackend
import trio

from ..._config import Config, Target
from ..._records import ProbeResult
from ...net.dns import RESOLV_CONF, system_nameservers
from ..base import ProbeKind, register
from .config import RECORD_TYPES, DnsSpec, DnsTargetSection, dns_resolver
from .probe import DnsPlan, facts, prepare, probe

__all__ = ["KIND", "PLACEHOLDERS", "RECORD_TYPES", "DnsPlan", "DnsProber", "DnsSpec", "facts"]

# what the kind's conditions may name (conditions/ checks them at config load)
PLACEHOLDERS = {
    "DNS_RCODE": "TEXT",
    "BODY": "BODY",  # the answers, one per line
    "RESPONSE_TIME": "DURATION",
    "CONNECTED": "BOOL",
    "IP": "TEXT",  # the nameserver asked
    "PHASE": "FIELDS",
}


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


@asynccontextmanager
async def open_dns_prober(
    config: Config, resolv_conf: str | Path = RESOLV_CONF
) -> AsyncIterator[DnsProber]:
    yield DnsProber(system_nameservers(resolv_conf)[0])


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
)
register(KIND)
