"""httpx, httpcore, ssl and socket errors -> the most specific ErrorKind, at the boundary."""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Iterator

import httpx

from ..._errors import ErrorKind, ProbeFailure
from ...net.certs import tls_details
from .network import Exchange

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


# httpcore and h11 report a connection the server closed before the response was complete
# as a RemoteProtocolError, though nothing malformed was received: that is a "connect"
# error. "Server disconnected" (no complete response head) is said also when bytes came
# that are no HTTP response at all: what was received decides (see `classify`).
_NO_HEAD = "server disconnected"
_MID_BODY = "peer closed connection"


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


def _closed(exc: Exception, exchange: Exchange | None) -> ProbeFailure | None:
    """The failure for a connection closed before a complete response, if `exc` is one.

    Closed before any byte, or inside something that starts like an HTTP response:
    "connect". Closed after bytes that are not HTTP: "protocol", however many came.
    """
    if not isinstance(exc, httpx.RemoteProtocolError):
        return None
    text = str(exc).lower()
    if text.startswith(_MID_BODY):
        return ProbeFailure(ErrorKind.CONNECT, _detail(exc))
    if not text.startswith(_NO_HEAD):
        return None
    if exchange is None or not exchange.is_not_http():
        return ProbeFailure(ErrorKind.CONNECT, _detail(exc))
    return ProbeFailure(
        ErrorKind.PROTOCOL,
        f"not an HTTP response: received {exchange.received} bytes starting "
        f"{exchange.head!r}, then the server closed the connection",
    )


def _tls_failure(
    exc: ssl.SSLError | ssl.CertificateError, exchange: Exchange | None
) -> ProbeFailure:
    """A failed verification of a certificate that is out of its dates says so first,
    with the date ("certificate expired on ... (10 days ago)"), when the handshake got
    the chain: OpenSSL reports only the first problem it meets (an untrusted issuer
    hides an expiry). OpenSSL's words alone otherwise."""
    tls_object = exchange.tls_object if exchange is not None else None
    if isinstance(exc, ssl.SSLCertVerificationError) and tls_object is not None:
        now = time.time()
        details = tls_details(tls_object, now)
        reason = details.chain_reason(now) if details is not None else None
        if reason:
            why = "" if exc.verify_code in _DATES else f": {exc.verify_message}"
            return ProbeFailure(ErrorKind.TLS, f"{reason} (certificate verify failed{why})")
    return ProbeFailure(ErrorKind.TLS, _detail(exc))


def classify(exc: Exception, exchange: Exchange | None = None) -> ProbeFailure:
    """Map an exception raised while probing to the most specific ProbeFailure.

    `exchange`: what the failed request's connection received, when known.
    """
    if isinstance(exc, ProbeFailure):
        return exc
    chain = list(_chain(exc))
    for cause in chain:
        if isinstance(cause, socket.gaierror):
            return ProbeFailure(ErrorKind.DNS, _detail(cause))
    for cause in chain:
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return _tls_failure(cause, exchange)
    if isinstance(exc, httpx.TooManyRedirects):
        return ProbeFailure(ErrorKind.REDIRECTS, _detail(exc))
    if isinstance(exc, httpx.TimeoutException):
        return ProbeFailure(ErrorKind.TIMEOUT, _detail(exc))
    if (closed := _closed(exc, exchange)) is not None:
        return closed
    if isinstance(exc, httpx.ProtocolError | httpx.DecodingError | httpx.UnsupportedProtocol):
        return ProbeFailure(ErrorKind.PROTOCOL, _detail(exc))
    if isinstance(exc, httpx.TransportError | OSError):
        return ProbeFailure(ErrorKind.CONNECT, _with_reason(_detail(exc), chain))
    return ProbeFailure(ErrorKind.INTERNAL, f"{type(exc).__name__}: {_detail(exc)}")
