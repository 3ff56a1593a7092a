"""Every error trio-monitor raises on purpose, and the probe error kinds.

    MonitorError
    ├── ConfigError      bad or missing config; carries one line per problem (exit 2)
    ├── UsageError       bad command line or refused action (exit 2)
    ├── StoreError       the history file is not ours, too new, or missing (exit 2)
    ├── ServerError      the HTTP server cannot listen, e.g. its port is in use (exit 2)
    └── ProbeFailure     why one probe attempt failed; never leaves the probe:
                         it is turned into a ProbeResult with `error` = its kind

Third-party exceptions (httpx, httpcore, ssl, socket) are mapped to the most
specific `ErrorKind` at the boundary, in `classify`, the way httpx maps
httpcore's errors to its own.
"""

from __future__ import annotations

import enum
import os
import socket
import ssl

import httpx


class MonitorError(Exception):
    """Base class of the errors trio-monitor raises on purpose."""

    exit_code = 1


class ConfigError(MonitorError):
    """The config could not be read or is invalid. `problems` has one line per problem."""

    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class UsageError(MonitorError):
    """The command line asks for something that cannot be done."""

    exit_code = 2


class StoreError(MonitorError):
    """The history file cannot be used (not a database, too new, missing). One line."""

    exit_code = 2


class ServerError(MonitorError):
    """The HTTP server cannot run (e.g. its port is in use). One line."""

    exit_code = 2


class ErrorKind(enum.StrEnum):
    """The stable one-word reasons a probe fails (the `error` field)."""

    TIMEOUT = "timeout"  # the probe's deadline passed
    DNS = "dns"  # the host name did not resolve
    CONNECT = "connect"  # refused, reset, unreachable, closed mid-response
    TLS = "tls"  # handshake or certificate failure
    STATUS = "status"  # the final HTTP status is not in expect_status
    CONTENT = "content"  # `contains` text not found in the body
    PROTOCOL = "protocol"  # malformed or unsupported HTTP response
    REDIRECTS = "redirects"  # more redirects than max_redirects
    TOO_LARGE = "too_large"  # body larger than max_body with on_too_large = "fail"
    INTERNAL = "internal"  # a bug in trio-monitor; reported, never fatal


# Kinds worth another attempt inside the same deadline: the network may heal.
RETRYABLE = frozenset({ErrorKind.DNS, ErrorKind.CONNECT, ErrorKind.PROTOCOL})


class ProbeFailure(MonitorError):
    """One probe attempt failed; `kind` is an ErrorKind, `detail` a short human text."""

    def __init__(self, kind: ErrorKind, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def _chain(exc: BaseException):
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _detail(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# httpcore and h11 report a connection the server closed before the response was complete
# as a RemoteProtocolError, though nothing malformed was received: that is a "connect" error.
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


def classify(exc: Exception) -> ProbeFailure:
    """Map an exception raised while probing to the most specific ProbeFailure."""
    if isinstance(exc, ProbeFailure):
        return exc
    chain = list(_chain(exc))
    for cause in chain:
        if isinstance(cause, socket.gaierror):
            return ProbeFailure(ErrorKind.DNS, _detail(cause))
    for cause in chain:
        if isinstance(cause, ssl.SSLError | ssl.CertificateError):
            return ProbeFailure(ErrorKind.TLS, _detail(cause))
    if isinstance(exc, httpx.TooManyRedirects):
        return ProbeFailure(ErrorKind.REDIRECTS, _detail(exc))
    if isinstance(exc, httpx.TimeoutException):
        return ProbeFailure(ErrorKind.TIMEOUT, _detail(exc))
    if isinstance(exc, httpx.RemoteProtocolError) and str(exc).lower().startswith(_CLOSED):
        return ProbeFailure(ErrorKind.CONNECT, _detail(exc))
    if isinstance(exc, httpx.ProtocolError | httpx.DecodingError | httpx.UnsupportedProtocol):
        return ProbeFailure(ErrorKind.PROTOCOL, _detail(exc))
    if isinstance(exc, httpx.TransportError | OSError):
        return ProbeFailure(ErrorKind.CONNECT, _with_reason(_detail(exc), chain))
    return ProbeFailure(ErrorKind.INTERNAL, f"{type(exc).__name__}: {_detail(exc)}")
