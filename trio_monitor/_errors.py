"""Every error trio-monitor raises on purpose, and the probe error kinds.

    MonitorError
    ├── ConfigError      bad or missing config; carries one line per problem (exit 2)
    ├── UsageError       bad command line or refused action (exit 2)
    ├── StoreError       the history file is not ours, too new, or missing (exit 2)
    ├── ServerError      the HTTP server cannot listen, e.g. its port is in use (exit 2)
    └── ProbeFailure     why one probe attempt failed; never leaves the probe:
                         it is turned into a ProbeResult with `error` = its kind

Each probe kind maps the third-party exceptions it meets to the most specific
`ErrorKind` at its boundary (for HTTP: probes/http/errors.py), the way httpx maps
httpcore's errors to its own.
"""

from __future__ import annotations

import enum


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
    CONDITION = "condition"  # one of the target's `conditions` failed (conditions/)
    MISSED = "missed"  # a push target's ping did not come in time
    JOB_FAILED = "job_failed"  # a push target's job reported failure (/fail, exit code 1-255)
    BROWSER = "browser"  # Chromium itself failed (would not start, hung, crashed, over its memory)
    INTERNAL = "internal"  # a bug in trio-monitor; reported, never fatal


# Kinds worth another attempt inside the same deadline: the network may heal.
RETRYABLE = frozenset({ErrorKind.DNS, ErrorKind.CONNECT, ErrorKind.PROTOCOL})


class ProbeFailure(MonitorError):
    """One probe attempt failed; `kind` is an ErrorKind, `detail` a short human text."""

    def __init__(self, kind: ErrorKind, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
