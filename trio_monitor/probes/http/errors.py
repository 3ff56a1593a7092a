"""httpx, httpcore, ssl and socket errors -> the most specific ErrorKind, at the boundary."""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Iterator

import httpx

from ..._errors import ErrorKind, ProbeFailure
from ...net.certs import TlsDetails

# OpenSSL's X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED: the dates
_DATES = (9, 10)


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _detail(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# A connection the server closed before the response was complete is a "connect" error,
# though the parser words it as a protocol error: nothing malformed was received (our
# transport and httpcore's say so in the same words). Bytes that are no HTTP response at
# all are reported as such ("not an HTTP response"): a protocol error.
_CLOSED = ("server disconnected", "peer closed connection")


def _os_reason(exc: BaseException) -> str | None:
    """The innermost OS-level reason ("Connection refused") in an exception, its group
    members and causes: wrappers repeat it with less precise words around it."""
    for inner in (*getattr(exc, "exceptions", ()), exc.__cause__ or exc.__context__):
        if inner is not None and (reason := _os_reason(inner)):
            return reason
    if not isinstance(exc, OSError):
        return None
    if exc.errno and exc.errno > 0 and not isinstance(exc, socket.gaierror):
        return os.strerror(exc.errno)  # trio words strerror as "Error connecting to ...: why"
    return exc.strerror or None


def _with_reason(detail: str, chain: list[BaseException]) -> str:
    # trio says "all attempts to connect to HOST:PORT failed"; the why is in its cause
    for cause in chain:
        reason = _os_reason(cause)
        if reason and reason.lower() not in detail.lower():
            return f"{detail} ({reason})"
    return detail


def _is_closed_early(exc: Exception) -> bool:
    return isinstance(exc, httpx.RemoteProtocolError) and str(exc).lower().startswith(_CLOSED)


def _tls_failure(exc: ssl.SSLError | ssl.CertificateError, tls: TlsDetails | None) -> ProbeFailure:
    """A failed verification of a certificate that is out of its dates says so first,
    with the date ("certificate expired on ... (10 days ago)"), when the handshake got
    the chain: OpenSSL reports only the first problem it meets (an untrusted issuer
    hides an expiry). OpenSSL's words alone otherwise."""
    if isinstance(exc, ssl.SSLCertVerificationError) and tls is not None:
        reason = tls.chain_reason(time.time())
        if reason:
            why = "" if exc.verify_code in _DATES else f": {exc.verify_message}"
            return ProbeFailure(ErrorKind.TLS, f"{reason} (certificate verify failed{why})")
    return ProbeFailure(ErrorKind.TLS, _detail(exc))


def classify(exc: Exception, tls: TlsDetails | None = None) -> ProbeFailure:
    """Map an exception raised while probing to the most specific ProbeFailure.

    `tls`: the certificate details of the failed connection's handshake, when it got any.
    """
    if isinstance(exc, ProbeFailure):
        return exc
    chain = list(_chain(exc))
    for cause in chain:
        if isinstance(cause, socket.gaierror):
            return ProbeFailure(ErrorKind.DNS, _detail(cause))
    for cause in chain:
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return _tls_failure(cause, tls)
    if isinstance(exc, httpx.TooManyRedirects):
        return ProbeFailure(ErrorKind.REDIRECTS, _detail(exc))
    if isinstance(exc, httpx.TimeoutException):
        return ProbeFailure(ErrorKind.TIMEOUT, _detail(exc))
    if _is_closed_early(exc):
        return ProbeFailure(ErrorKind.CONNECT, _detail(exc))
    if isinstance(exc, httpx.ProtocolError | httpx.DecodingError | httpx.UnsupportedProtocol):
        return ProbeFailure(ErrorKind.PROTOCOL, _detail(exc))
    if isinstance(exc, httpx.TransportError | OSError):
        return ProbeFailure(ErrorKind.CONNECT, _with_reason(_detail(exc), chain))
    return ProbeFailure(ErrorKind.INTERNAL, f"{type(exc).__name__}: {_detail(exc)}")
