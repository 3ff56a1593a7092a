"""Our HTTP/1.1 transport for probes (issue 10): one family member of httpx transports.

parse.py      one response off a connection, httptools as the parser, a client's rules
exchange.py   what an attempt's connections did (phases, address, TLS), for the probe
transport.py  ProbeTransport: fresh or pooled connections, httpx.Request -> Response

A connection (non-blocking socket + ssl.SSLSocket, trio's waits) is net/sockets.py's,
shared with the tcp:// and tls:// kinds.

Targets that need HTTP/2 or a proxy use httpx's own transport instead.
"""

from .exchange import CURRENT_EXCHANGE, PHASES, Exchange
from .transport import (
    CONN,
    SSL_CONTEXT,
    ConnOptions,
    OriginKey,
    ProbeBody,
    ProbeTransport,
)

__all__ = [
    "CONN",
    "CURRENT_EXCHANGE",
    "PHASES",
    "SSL_CONTEXT",
    "ConnOptions",
    "Exchange",
    "OriginKey",
    "ProbeBody",
    "ProbeTransport",
]
