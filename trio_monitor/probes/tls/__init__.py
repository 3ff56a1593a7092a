"""The `tls` probe kind: tls://host:port targets, a tcp:// probe with a TLS handshake
(after a STARTTLS upgrade with `starttls`). Its result has the same `tls` object as an
HTTPS probe's, so certificate alerts and metrics work for it unchanged.

config.py  its keys on top of tcp://'s (TLS files, server_name, starttls)
The probe itself is probes/tcp/'s: the spec's `tls` step says what to add.
"""

from __future__ import annotations

from ..._records import ProbeResult
from ..base import ProbeKind, register
from ..tcp import open_tcp_prober
from ..tcp.probe import TLS_PLACEHOLDERS
from .config import TlsTargetSection, tls_resolver

__all__ = ["KIND", "TlsTargetSection"]


def _describe(result: ProbeResult) -> str:
    days = f", certificate {result.tls.days_left:g} days left" if result.tls else ""
    return f"TLS ok in {result.latency_ms:g} ms{days}"


KIND = ProbeKind(
    name="tls",
    schemes=frozenset({"tls"}),
    section=TlsTargetSection,
    resolver=tls_resolver,
    open=open_tcp_prober,
    describe=_describe,
    placeholders=TLS_PLACEHOLDERS,
)
register(KIND)
