"""httpx and httpcore errors -> the most specific ErrorKind, at the boundary; socket, ssl
and DNS errors as net/errors.py says for every kind."""

from __future__ import annotations

import httpx

from ..._errors import ErrorKind, ProbeFailure
from ...net.certs import TlsDetails
from ...net.errors import connect_failure, detail, network_failure

# A connection the server closed before the response was complete is a "connect" error,
# though the parser words it as a protocol error: nothing malformed was received (our
# transport and httpcore's say so in the same words). Bytes that are no HTTP response at
# all are reported as such ("not an HTTP response"): a protocol error.
_CLOSED = ("server disconnected", "peer closed connection")


def _is_closed_early(exc: Exception) -> bool:
    return isinstance(exc, httpx.RemoteProtocolError) and str(exc).lower().startswith(_CLOSED)


def classify(exc: Exception, tls: TlsDetails | None = None) -> ProbeFailure:
    """Map an exception raised while probing to the most specific ProbeFailure.

    `tls`: the certificate details of the failed connection's handshake, when it got any.
    """
    if isinstance(exc, ProbeFailure):
        return exc
    failure = network_failure(exc, tls)
    if failure is not None:
        return failure
    if isinstance(exc, httpx.TooManyRedirects):
        return ProbeFailure(ErrorKind.REDIRECTS, detail(exc))
    if isinstance(exc, httpx.TimeoutException):
        return ProbeFailure(ErrorKind.TIMEOUT, detail(exc))
    if _is_closed_early(exc):
        return ProbeFailure(ErrorKind.CONNECT, detail(exc))
    if isinstance(exc, httpx.ProtocolError | httpx.DecodingError | httpx.UnsupportedProtocol):
        return ProbeFailure(ErrorKind.PROTOCOL, detail(exc))
    if isinstance(exc, httpx.TransportError | OSError):
        return connect_failure(exc)
    return ProbeFailure(ErrorKind.INTERNAL, f"{type(exc).__name__}: {detail(exc)}")
