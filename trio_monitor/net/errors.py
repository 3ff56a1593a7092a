"""Socket, ssl and DNS errors -> the most specific ErrorKind: what every kind that opens
connections shares (HTTP's classifier adds httpx's own errors around it)."""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Iterator

from .._errors import ErrorKind, ProbeFailure
from .certs import TlsDetails

# OpenSSL's X509_V_ERR_CERT_NOT_YET_VALID, X509_V_ERR_CERT_HAS_EXPIRED: the dates
_DATES = (9, 10)


def chain(exc: BaseException | None) -> Iterator[BaseException]:
    """An exception and its causes (or contexts), each once."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def detail(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def os_reason(exc: BaseException) -> str | None:
    """The innermost OS-level reason ("Connection refused") in an exception, its group
    members and causes: wrappers repeat it with less precise words around it."""
    for inner in (*getattr(exc, "exceptions", ()), exc.__cause__ or exc.__context__):
        if inner is not None and (reason := os_reason(inner)):
            return reason
    if not isinstance(exc, OSError):
        return None
    if exc.errno and exc.errno > 0 and not isinstance(exc, socket.gaierror):
        return os.strerror(exc.errno)  # trio words strerror as "Error connecting to ...: why"
    return exc.strerror or None


def with_reason(text: str, causes: list[BaseException]) -> str:
    # trio says "all attempts to connect to HOST:PORT failed"; the why is in its cause
    for cause in causes:
        reason = os_reason(cause)
        if reason and reason.lower() not in text.lower():
            return f"{text} ({reason})"
    return text


def tls_failure(exc: ssl.SSLError | ssl.CertificateError, tls: TlsDetails | None) -> ProbeFailure:
    """A failed verification of a certificate that is out of its dates says so first,
    with the date ("certificate expired on ... (10 days ago)"), when the handshake got
    the chain: OpenSSL reports only the first problem it meets (an untrusted issuer
    hides an expiry). OpenSSL's words alone otherwise."""
    if isinstance(exc, ssl.SSLCertVerificationError) and tls is not None:
        reason = tls.chain_reason(time.time())
        if reason:
            why = "" if exc.verify_code in _DATES else f": {exc.verify_message}"
            return ProbeFailure(ErrorKind.TLS, f"{reason} (certificate verify failed{why})")
    return ProbeFailure(ErrorKind.TLS, detail(exc))


def network_failure(exc: BaseException, tls: TlsDetails | None = None) -> ProbeFailure | None:
    """A DNS (getaddrinfo) or TLS failure anywhere in `exc`'s chain, else None.

    `tls`: the certificate details of the failed connection's handshake, when it got any.
    """
    causes = list(chain(exc))
    for cause in causes:
        if isinstance(cause, socket.gaierror):
            return ProbeFailure(ErrorKind.DNS, detail(cause))
    for cause in causes:
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return tls_failure(cause, tls)
    return None


def connect_failure(exc: BaseException) -> ProbeFailure:
    """A connection that failed (refused, reset, unreachable), with the OS's reason."""
    return ProbeFailure(ErrorKind.CONNECT, with_reason(detail(exc), list(chain(exc))))


def invalid_certificate(tls: TlsDetails | None) -> ProbeFailure | None:
    """An expired or not yet valid leaf fails the probe, verified or not (with
    verify_tls = false the handshake accepts it): a visitor's browser would refuse it."""
    reason = tls.invalid_reason(time.time()) if tls is not None else None
    return None if reason is None else ProbeFailure(ErrorKind.TLS, reason)


def classify(exc: Exception, tls: TlsDetails | None = None) -> ProbeFailure:
    """The failure of a probe on a net/sockets.py connection (tcp://, tls://): DNS, TLS,
    or a connection that failed or broke; anything else is our bug (`internal`)."""
    if isinstance(exc, ProbeFailure):
        return exc
    failure = network_failure(exc, tls)
    if failure is not None:
        return failure
    if isinstance(exc, OSError):
        return connect_failure(exc)
    return ProbeFailure(ErrorKind.INTERNAL, f"{type(exc).__name__}: {detail(exc)}")
