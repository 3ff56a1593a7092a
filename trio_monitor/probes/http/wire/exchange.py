"""What one probe attempt's connections did: phase times, the address, the TLS connection.

The probe sets a fresh `Exchange` in CURRENT_EXCHANGE before each attempt (a context
variable: the transport runs in the probe's task, and a parallel per-address probe in
its own child task gets its own); the transport fills it in. Redirect hops add up, as
blackbox_exporter's phase durations do.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ....net.certs import TlsDetails

PHASES = ("dns", "connect", "tls", "processing", "transfer")


class Exchange:
    __slots__ = ("connect_to", "head_at", "remote_addr", "seconds", "tls")

    def __init__(self, connect_to: tuple[str, str] | None = None) -> None:
        # (host, ip): requests to `host` connect to `ip` instead of resolving it (one
        # address of many: addresses = "all"); a redirect elsewhere resolves as usual
        self.connect_to = connect_to
        self.seconds: dict[str, float] = {}  # phase -> seconds, for the phases that happened
        self.remote_addr: str | None = None  # "ip:port" / "[ip]:port" of the last hop
        # the certificate details of the last TLS handshake, also of one that failed
        self.tls: TlsDetails | None = None
        self.head_at: float | None = None  # trio time the last response head was read

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + seconds


CURRENT_EXCHANGE: ContextVar[Exchange | None] = ContextVar("exchange", default=None)
