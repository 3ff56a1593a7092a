"""The config file: attrs classes as written in TOML, their validation, and the resolved targets.

Loading goes file -> tomllib -> cattrs (structure, strict scalar types, unknown keys
forbidden) -> semantic checks (unique names, ${ENV} values) -> `Config` with a tuple
of fully resolved `Target`s. Every problem becomes one line
`FILE: key.path: message`; all of them are collected before ConfigError is raised,
so a user fixes a file in one pass.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import ipaddress
import json
import os
import re
import shlex
import socket
import tomllib
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, NewType, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import cattrs
import httpx
from attrs import field, frozen
from cattrs.cols import homogenous_tuple_structure_factory
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)
from cattrs.gen import make_dict_structure_fn
from cronsim import CronSim, CronSimError

from ._errors import ConfigError
from ._secrets import redact_url
from ._version import __version__
from .alerts import base as alert_kinds
from .conditions import Condition, ConditionError, compile_condition
from .probes import base as probe_kinds

# Every duration and number has a range (README "Ranges"): a value outside it is one
# problem line, never a busy loop, a NaN deadline or a monitor that cannot stop.
Duration = NewType("Duration", float)  # seconds, 1ms-1h; written "500ms", "10s", "5m", "1h30m"
Interval = NewType("Interval", float)  # a probe interval, 100ms-7d
Retention = NewType("Retention", float)  # how long history is kept, 1h-100 years
ByteSize = NewType("ByteSize", int)  # bytes, up to 1GiB; written 1048576 or "512KiB", "1MB"
MemorySize = NewType("MemorySize", int)  # a memory cap in bytes, 64MiB to 64GiB; written "1GiB"
Url = NewType("Url", str)  # absolute http(s) URL
TargetUrl = NewType("TargetUrl", str)  # absolute URL of a registered kind's scheme
Positive = NewType("Positive", int)  # 1 to 100000
Count = NewType("Count", int)  # 0 to 100
Retries = NewType("Retries", int)  # 0 to 10
Delay = NewType("Delay", float)  # a duration that may be "0s", up to 1d
CertWindow = NewType("CertWindow", float)  # days before a certificate expires; "0s" (off) to 1y
Listen = NewType("Listen", tuple)  # (host, port) from "127.0.0.1:9180" or "[::1]:9180"
Argv = NewType("Argv", tuple)  # ["cmd", "arg"] or "cmd arg" (split like a shell, never run by one)
HostName = NewType("HostName", str)  # "status.example.com", "10.0.0.5", "::1": no scheme, no port
Repeat = NewType("Repeat", float)  # a reminder's interval: 1s up to 30d
LabelPatterns = NewType("LabelPatterns", tuple)  # ((label, compiled regex), ...)
NotifierName = NewType("NotifierName", str)  # `name` of an [[alerts.KEY]] table
Nameserver = NewType("Nameserver", tuple)  # (IP, port) from "10.0.0.53", "[::1]:5353"; port 53
WallTime = NewType("WallTime", float)  # unix seconds, from a TOML datetime or RFC 3339 text
WindowLength = NewType("WindowLength", float)  # a maintenance window's duration: 1s up to 31d
RateLimit = NewType("RateLimit", tuple)  # (alerts, per seconds) from "20/min", "5/10s"; 1s-1d
GroupWindow = NewType("GroupWindow", float)  # storm grouping's window: "0s" (off) to 10m
GroupMin = NewType("GroupMin", int)  # targets that make a group: 2 to 100000
GroupCause = NewType("GroupCause", str)  # a `group_by` item: "address", ..., "label:NAME"
GroupBy = NewType("GroupBy", tuple)  # `group_by`: GroupCauses, each once
Factor = NewType("Factor", float)  # a positive number, 0.01 to 1000 (early warning's thresholds)
Share = NewType("Share", float)  # a fraction, 0.0001 to 0.5
DEFAULT_CERT_EXPIRY = 14 * 86400.0
DEFAULT_CERT_STEPS = (7 * 86400.0, 86400.0)  # those shorter than cert_expiry
DEFAULT_CONFIRM_INTERVAL = 5.0  # seconds; capped at each target's interval
Event = Literal[
    "down", "up", "slow", "content_changed", "flapping", "flap_end", "cert_expiring",
    "cert_renewed", "reminder", "group_down", "group_up", "degrading",
]  # fmt: skip
TooLargePolicy = Literal["truncate", "fail"]
ConnectionPolicy = Literal["fresh", "reuse"]
IpFamily = Literal["any", "ipv4", "ipv6"]  # the records a name resolves to (net/dns.py)
AddressPolicy = Literal["first", "all"]  # which addresses behind a name a probe checks
IcmpSocket = Literal["auto", "dgram", "raw"]  # the ICMP socket kind (probes/icmp/)
# Chromium's scheduling policy (probes/browser/chromium.py): SCHED_IDLE, or the normal one
BrowserCpu = Literal["idle", "equal"]
# cluster mode without Redis: alerts wait for it (fail-safe) or go out locally (fail-open)
RedisDownPolicy = Literal["wait", "local"]

EVENTS: tuple[Event, ...] = get_args(Event)
USER_AGENT = f"trio-monitor/{__version__} (+https://github.com/trio-monitor/trio-monitor)"


class _Invalid(ValueError):
    """A value problem whose message is already user-facing."""


# --- scalar types ----------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_DURATION = 36500 * 86400.0  # 100 years: anything longer is a typo (or infinity)
MAX_SIZE = 1 << 30  # 1GiB
MAX_WINDOW = 31 * 86400.0  # a maintenance window longer than a month is a typo
MAX_ONE_OFF = 366 * 86400.0  # ... a one-off one, longer than a year


def parse_duration(text: object, *, allow_zero: bool = False) -> float:
    """'1h30m' -> 5400.0. Strings only: a bare number would be ambiguous."""
    if not isinstance(text, str) or not text.strip():
        raise _Invalid(f'expected a duration string like "500ms", "10s", "5m", got {text!r}')
    s = text.strip().replace(" ", "")
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(s) or pos == 0:
        raise _Invalid(f'invalid duration {text!r} (use e.g. "500ms", "10s", "5m", "1h30m")')
    if total <= 0 and not allow_zero:
        raise _Invalid(f"duration must be greater than 0, got {text!r}")
    return total


def _duration_in(low: float, high: float):
    """A hook for durations from `low` to `high` seconds (0: "0s" is allowed)."""

    def structure(value: object, _type: object) -> float:
        seconds = parse_duration(value, allow_zero=low == 0)
        if not low <= seconds <= high:
            span = f"from {format_duration(low)} to {format_duration(high)}"
            raise _Invalid(f"must be {span}, got {value!r}")
        return seconds

    return structure


def parse_when(text: str, now: float) -> float:
    """A duration back from `now` ("24h", "7d", "1h30m") or an RFC 3339 time -> unix
    seconds; a time without an offset is UTC. ValueError if it is neither."""
    try:
        return now - parse_duration(text, allow_zero=True)
    except ValueError:
        pass
    when = datetime.fromisoformat(text.strip())
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return when.timestamp()
    except OverflowError as exc:
        raise ValueError(str(exc)) from None


def human_duration(seconds: float) -> str:
    """For people, to the minute or second: 12 -> '12s', 130 -> '2m10s', 7260 -> '2h01m',
    93600 -> '1d02h' (reports, reminders)."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def format_duration(seconds: float) -> str:
    """The shortest exact string parse_duration reads back."""
    ms = round(seconds * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0 and ms:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


_SIZE = re.compile(r"(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 10**6,
    "mib": 2**20,
    "gb": 10**9,
    "gib": 2**30,
}


def parse_size(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise _Invalid(f"size must be 0 or more, got {value}")
        return value
    if isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]
    raise _Invalid(f'expected a size in bytes like 1048576 or "1MiB", got {value!r}')


def _byte_size(value: object, _type: object) -> int:
    size = parse_size(value)
    if size > MAX_SIZE:
        raise _Invalid(f"size must be at most 1GiB, got {value!r}")
    return size


def _memory_size(value: object, _type: object) -> int:
    size = parse_size(value)
    if not 64 << 20 <= size <= 64 << 30:
        raise _Invalid(f"must be from 64MiB to 64GiB, got {value!r}")
    return size


# A URL in the form httpx writes back unchanged, without userinfo: an origin (checked
# once per distinct origin by httpx itself), then a path and query of characters httpx
# never escapes, percent escapes complete, no dot segments, no fragment. Most configured
# URLs are such: they skip httpx's parser (about 10 us each, twice per target), which
# would dominate loading a config of 50,000 targets. Anything else takes the full way.
_PCHAR = r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})"
_NORMAL_URL = re.compile(
    rf"(?P<origin>[a-z][a-z0-9+.\-]*://(?:[a-z0-9\-.]+|\[[0-9a-f:.]+\])(?::[1-9][0-9]*)?)"
    rf"(?:/(?!\.\.?(?:[/?]|\Z)){_PCHAR}*)*(?:\?(?:{_PCHAR}|[/?])*)?"
)


@functools.lru_cache(maxsize=4096)
def _normal_origin(origin: str, schemes: frozenset[str]) -> bool:
    """`origin` ("scheme://host[:port]") is valid for `schemes` and as httpx writes it."""
    try:
        return _checked_url(origin, schemes) == str(httpx.URL(origin))
    except (_Invalid, httpx.InvalidURL):
        return False


def is_normal_url(value: str, schemes: frozenset[str]) -> bool:
    """A valid URL of one of `schemes`, without userinfo, that httpx writes back as it is
    (so it needs no parsing: `str(httpx.URL(value)) == value`), told cheaply."""
    return normal_origin(value, schemes) is not None


def normal_origin(value: str, schemes: frozenset[str]) -> str | None:
    """The origin ("scheme://host[:port]") of a normal URL (is_normal_url), else None;
    what follows it is the path and the query, as httpx would keep them."""
    match = _NORMAL_URL.fullmatch(value)
    if match is None or not _normal_origin(match["origin"], schemes):
        return None
    return match["origin"]


def parse_url(value: object, schemes: Iterable[str] = ("http", "https")) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a URL string, got {value!r}")
    if is_normal_url(value, frozenset(schemes)):
        return value  # the common case, without httpx's parser
    return _checked_url(value, schemes)


def _checked_url(value: str, schemes: Iterable[str]) -> str:
    """`value` checked by httpx's parser: what parse_url says of any URL."""
    shown = redact_url(value)
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise _Invalid(f"invalid URL {shown!r}: {redact_url(str(exc))}") from None
    known = sorted(schemes)
    if url.scheme not in known or not url.host:
        *others, last = [f"{s}://" for s in known]
        expected = f"{', '.join(others)} or {last}" if others else last
        raise _Invalid(f"invalid URL {shown!r}: expected {expected} with a host")
    if _has_control_character(value):  # httpx would percent-encode them, unseen
        raise _Invalid(f"invalid URL {shown!r}: control characters are not allowed")
    if b"%" in url.raw_host:  # httpx percent-encodes what no host name may contain (spaces)
        raise _Invalid(f"invalid URL {shown!r}: invalid host name")
    if url.port is not None and not 0 < url.port < 65536:
        raise _Invalid(f"invalid URL {shown!r}: port must be 1-65535")
    return value


def _integer(minimum: int, maximum: int):
    def structure(value: object, _type: object) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _Invalid(f"expected an integer, got {value!r}")
        if value < minimum:
            raise _Invalid(f"must be {minimum} or more, got {value}")
        if value > maximum:
            raise _Invalid(f"must be {maximum} or less, got {value}")
        return value

    return structure


def _number_in(minimum: float, maximum: float):
    def structure(value: object, _type: object) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise _Invalid(f"expected a number, got {value!r}")
        if not minimum <= value <= maximum:
            raise _Invalid(f"must be between {minimum:g} and {maximum:g}, got {value!r}")
        return float(value)

    return structure


def parse_listen(value: object) -> tuple[str, int]:
    if isinstance(value, str):
        host, sep, port = value.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if sep and host and port.isdigit() and int(port) < 65536:  # 0: any free port
            return host, int(port)
    raise _Invalid(f'expected "host:port" like "127.0.0.1:9180" or "[::1]:9180", got {value!r}')


def parse_host_name(value: object) -> str:
    """A host name or address as a Host header names it, lower-cased; "[::1]" -> "::1"."""
    if isinstance(value, str):
        host = value.strip().lower()
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            if host and _HOST_NAME.fullmatch(host):
                return host
        else:
            return str(ip)
    raise _Invalid(f"expected a host name or address (no scheme, no port), got {value!r}")


_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?")
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def parse_cluster_name(value: object) -> str:
    """A node or location name: letters, digits, "_", "." and "-", 1 to 64 of them
    (a member is `location/node`: no "/")."""
    if isinstance(value, str) and _CLUSTER_NAME.fullmatch(value):
        return value
    raise _Invalid(f"expected 1-64 letters, digits, '_', '.' or '-', got {value!r}")


_PORT = re.compile(r"[0-9]{1,5}")


def parse_nameserver(value: object) -> tuple[str, int]:
    """ "10.0.0.53", "10.0.0.53:5353", "::1", "[::1]:5353" -> (IP, port), port 53 unless
    given. An IPv6 address with a port needs brackets: a bare one is all address."""
    expected = f'expected "IP" or "IP:PORT" like "10.0.0.53", "127.0.0.1:5353" or "[::1]:5353", got {value!r}'
    if not isinstance(value, str):
        raise _Invalid(expected)
    text = value.strip()
    host, port = text, "53"
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise _Invalid(expected)
        port = rest[1:] if rest else port
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise _Invalid(f"{expected} (an IP address: a name would need a resolver itself)") from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        raise _Invalid(f"a zone index (%{ip.scope_id}) is not supported, got {value!r}")
    if not _PORT.fullmatch(port) or not 0 < int(port) < 65536:
        raise _Invalid(f"port must be 1-65535, got {value!r}")
    return str(ip), int(port)


def parse_argv(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:  # an unterminated quote or a trailing backslash
            raise _Invalid(f"cannot split {value!r} like a shell: {str(exc).lower()}") from None
    elif isinstance(value, list) and all(isinstance(a, str) for a in value):
        argv = value
    else:
        raise _Invalid(f'expected a command like ["notify", "--urgent"], got {value!r}')
    if not argv:
        raise _Invalid("command must not be empty")
    return tuple(argv)


_RATE_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "m": 60.0,
    "min": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}


def parse_rate_limit(value: object) -> tuple[int, float]:
    """ "20/min" -> (20, 60.0); "5/10s" -> (5, 10.0): at most that many alerts per period."""
    example = 'like "20/min", "1/s", "100/h" or "5/10s"'
    if not isinstance(value, str):
        raise _Invalid(f"expected a rate {example}, got {value!r}")
    count, slash, per = value.replace(" ", "").partition("/")
    if not slash or not count.isdigit():
        raise _Invalid(f"invalid rate {value!r} (write it {example})")
    seconds = _RATE_UNITS.get(per)
    if seconds is None:
        try:
            seconds = parse_duration(per)
        except _Invalid:
            raise _Invalid(f"invalid rate {value!r} (write it {example})") from None
    if not 1 <= int(count) <= 100_000:
        raise _Invalid(f"the count in {value!r} must be 1 to 100000")
    if not 1.0 <= seconds <= 86400.0:
        raise _Invalid(f"the period in {value!r} must be 1s to 1d")
    return int(count), seconds


class Labels(Mapping[str, str]):
    """Labels (`team = "payments"`): read-only and hashable, like the Targets holding them."""

    __slots__ = ("_hash", "_items")

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._items = dict(items)
        self._hash = hash(frozenset(self._items.items()))

    def __getitem__(self, key: str) -> str:
        return self._items[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"Labels({self._items!r})"


NO_LABELS = Labels()
LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # what Prometheus takes, bounded
MAX_LABELS = 32
MAX_LABEL_VALUE = 200


def _label_name(name: object) -> str:
    if not isinstance(name, str) or not LABEL_NAME.fullmatch(name):
        raise _Invalid(
            f"label name {name!r}: letters, digits and _ (not a digit first), at most 64"
        )
    return name


def parse_labels(value: object) -> Labels:
    if not isinstance(value, Mapping):
        raise _Invalid(f'expected a table like {{ team = "payments" }}, got {value!r}')
    if len(value) > MAX_LABELS:
        raise _Invalid(f"at most {MAX_LABELS} labels, got {len(value)}")
    for name, text in value.items():
        _label_name(name)
        if not isinstance(text, str):
            raise _Invalid(f"label {name}: expected text, got {text!r}")
        if _has_control_character(text) or len(text) > MAX_LABEL_VALUE:
            raise _Invalid(
                f"label {name}: at most {MAX_LABEL_VALUE} characters, no control characters"
            )
    return Labels(value)


def parse_label_patterns(value: object) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """`match_re = { env = "prod|staging" }`: each pattern must match a whole value."""
    if not isinstance(value, Mapping):
        raise _Invalid(f'expected a table like {{ env = "prod|staging" }}, got {value!r}')
    patterns = []
    for name, text in value.items():
        _label_name(name)
        if not isinstance(text, str):
            raise _Invalid(f"label {name}: expected a regular expression, got {text!r}")
        try:
            patterns.append((name, probe_kinds.compile_regex(text)))
        except ValueError as exc:
            raise _Invalid(f"label {name}: bad regular expression {text!r}: {exc}") from None
    return tuple(patterns)


MAX_NOTIFIER_NAME = 64


def parse_notifier_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid(f"expected a non-empty name, got {value!r}")
    if _has_control_character(value) or len(value) > MAX_NOTIFIER_NAME:
        raise _Invalid(f"at most {MAX_NOTIFIER_NAME} characters, no control characters")
    return value.strip()


def parse_wall_time(value: object) -> float:
    """A TOML offset datetime (`2026-12-01T02:00:00+01:00`) or the same as RFC 3339
    text -> unix seconds. A local time without an offset is refused: which zone?"""
    when = value
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Invalid(
                f"expected a date and time like 2026-12-01T02:00:00+01:00, got {value!r}"
            ) from None
    if not isinstance(when, datetime):
        raise _Invalid(f"expected a date and time like 2026-12-01T02:00:00+01:00, got {value!r}")
    if when.tzinfo is None:
        raise _Invalid(f"{when.isoformat()} has no offset: add one, like +01:00 or Z")
    return when.timestamp()


def _literal(value: object, type_: object) -> object:
    allowed = get_args(type_)
    if value not in allowed:
        choices = ", ".join(f'"{a}"' for a in allowed)
        raise _Invalid(f"must be one of {choices}, got {value!r}")
    return value


def _strict(kind: type, name: str):
    def structure(value: object, _type: object) -> object:
        # bool is an int subclass, and cattrs would happily turn "no" into True
        if isinstance(value, bool) and kind is not bool:
            raise _Invalid(f"expected {name}, got {value!r}")
        if kind is float and isinstance(value, int):
            return float(value)
        if not isinstance(value, kind):
            raise _Invalid(f"expected {name}, got {value!r}")
        return value

    return structure


def _shaped(kind: type | tuple[type, ...], name: str, make):
    """cattrs' own hook, but a value of the wrong shape is one clear problem: a string
    is no array of characters, and `[targets]` (a table) is no `[[targets]]` (an array)."""

    def factory(type_: object, conv: cattrs.Converter):
        inner = make(type_, conv)

        def structure(value: object, t: object) -> object:
            if not isinstance(value, kind):
                got = "a table" if isinstance(value, Mapping) else repr(value)
                raise _Invalid(f"expected {name}, got {got}")
            return inner(value, t)

        return structure

    return factory


# --- the file's shape ------------------------------------------------------------


@frozen
class MonitorSection:
    """[monitor]: process-wide settings and the defaults every target inherits."""

    interval: Interval = Interval(30.0)
    timeout: Duration = Duration(10.0)
    concurrency: Positive = Positive(200)
    adaptive: bool = False  # steer concurrency between adaptive_min and concurrency
    adaptive_min: Positive = Positive(10)
    per_host: Positive = Positive(4)
    # each target's offset falls within this much of its interval; unset: all of it
    stagger: Delay | None = None
    # after a failure (or while DOWN), probe this often until the state is decided;
    # unset: DEFAULT_CONFIRM_INTERVAL, at most each target's interval
    confirm_interval: Interval | None = None
    recover_interval: Interval | None = None  # unset: confirm_interval
    retries: Retries = Retries(1)
    method: str = "GET"
    headers: dict[str, str] = field(factory=dict)
    expect_status: tuple[int | str, ...] = ("200-399",)
    follow_redirects: bool = True
    max_redirects: Count = Count(10)
    max_body: ByteSize = ByteSize(1 << 20)
    on_too_large: TooLargePolicy = "truncate"
    connection: ConnectionPolicy = "fresh"
    verify_tls: bool = True
    resolver: Nameserver | None = None  # "IP[:PORT]": asked instead of resolv.conf's nameservers
    ip_family: IpFamily = "any"
    addresses: AddressPolicy = "first"
    min_addresses_ok: Positive | None = None  # with addresses = "all"; unset: every address
    # HTTP targets' TLS files, proxy and HTTP/2 (probes/http/config.py): their defaults
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    proxy: str | None = None
    http2: bool = False
    # icmp:// targets' sockets: "dgram" (net.ipv4.ping_group_range), "raw" (CAP_NET_RAW),
    # "auto": dgram where the kernel allows it, else raw
    icmp_socket: IcmpSocket = "auto"
    # browser targets (probes/browser/): pages loaded at once, the Chromium process
    # tree's memory (PSS) above which it is restarted, and the executable (unset: PATH's)
    browser_concurrency: Positive = Positive(2)
    browser_memory: MemorySize = MemorySize(1 << 30)
    # "idle": Chromium runs under SCHED_IDLE, any monitor thread that wakes preempts it
    # (probes/browser/chromium.py); "equal": the normal policy, as the monitor's
    browser_cpu: BrowserCpu = "idle"
    chromium: str | None = None
    # a failed browser probe's screenshot and console log: how many probes' worth are
    # kept per target in the state directory (0: none; probes/browser/artifacts.py)
    browser_artifacts_keep: Count = Count(20)
    slow: Duration | None = None
    # a `cert_expiring` alert when a certificate has less than this left ("0s": never),
    # and again below each step
    cert_expiry: CertWindow = CertWindow(DEFAULT_CERT_EXPIRY)
    cert_expiry_steps: tuple[CertWindow, ...] | None = None  # unset: DEFAULT_CERT_STEPS
    user_agent: str = USER_AGENT
    grace: Delay = Delay(5.0)
    output: str = "-"
    # a reload may remove more than half of the running targets (else it is refused:
    # a file read while an editor or `cp` was writing it must not stop the monitoring)
    allow_shrink: bool = False
    labels: Labels = NO_LABELS  # every target's, under its own


# what storm grouping may take as a shared cause, most specific first (the default order
# of preference); "label:NAME" adds a label's value
GROUP_CAUSES = ("address", "certificate", "resolver", "network", "error")
GROUP_BY = GroupBy(tuple(GroupCause(c) for c in GROUP_CAUSES))


def parse_group_cause(value: object) -> str:
    if isinstance(value, str) and value.startswith("label:"):
        _label_name(value.removeprefix("label:"))
        return value
    if value not in GROUP_CAUSES:
        raise _Invalid(f"expected one of {', '.join(GROUP_CAUSES)} or label:NAME, got {value!r}")
    return str(value)


def _group_by(value: object, _type: object) -> tuple[str, ...]:
    causes = converter.structure(value, tuple[GroupCause, ...])
    if not causes:  # would group nothing, silently
        raise _Invalid('at least one cause (group_window = "0s" turns grouping off)')
    twice = sorted({c for c in causes if causes.count(c) > 1})
    if twice:
        raise _Invalid(f"each cause once, got {', '.join(twice)} twice")
    return causes


@frozen
class _AlertSettings:
    failure_threshold: Positive = Positive(3)
    success_threshold: Positive = Positive(1)
    flap_threshold: Count = Count(5)
    flap_window: Duration = Duration(600.0)
    group_window: GroupWindow = GroupWindow(10.0)
    group_min: GroupMin = GroupMin(3)
    group_by: GroupBy = GROUP_BY


@frozen(kw_only=True)
class ChannelSection:
    """What every `[[alerts.KEY]]` table has besides its channel's own keys: which
    alerts it takes (alerts/routing.py), how often it repeats an ongoing outage, and how
    many alerts it may send a period (alerts/base.py TokenBucket)."""

    name: NotifierName | None = None  # default "KEY[i]": its place in the file
    events: tuple[Event, ...] = EVENTS
    match: Labels = NO_LABELS  # every label must have this value
    match_re: LabelPatterns = LabelPatterns(())  # every label must match (whole value)
    repeat: Repeat | None = None  # a `reminder` this often while DOWN; unset: the target's
    rate_limit: RateLimit | None = None  # at most this many alerts a period (a token bucket)


@frozen
class TargetAlerts:
    """[targets.alerts]: the target's own alert policy over [alerts]'."""

    failure_threshold: Positive | None = None
    success_threshold: Positive | None = None
    notify: tuple[NotifierName, ...] | None = None  # only these notifiers; [] none at all
    repeat: Repeat | None = None  # a `reminder` this often while DOWN


@frozen
class AlertsSection:
    """[alerts]: thresholds, and one `[[alerts.KEY]]` table per notifier (alerts/)."""

    failure_threshold: Positive = Positive(3)
    success_threshold: Positive = Positive(1)
    # this many UP/DOWN changes within flap_window: flapping (0: never)
    flap_threshold: Count = Count(5)
    flap_window: Duration = Duration(600.0)
    # storm grouping (policy/_grouping.py): downs within group_window that share a
    # cause (group_by, in order of preference) become one `group_down`; "0s": off
    group_window: GroupWindow = GroupWindow(10.0)
    group_min: GroupMin = GroupMin(3)
    group_by: GroupBy = GROUP_BY
    # per channel key ("webhook", "exec", ...): its tables, in file order
    notifiers: Mapping[str, tuple[Any, ...]] = field(factory=dict)

    def channels(self, key: str) -> tuple[Any, ...]:
        return tuple(self.notifiers.get(key, ()))


@frozen
class TargetSection:
    """[[targets]]: one endpoint; every unset key inherits from [monitor].

    The keys every kind has. A probe kind subclasses it with its own keys (probes/):
    the `kind` key, or else the URL's scheme, picks the subclass a table is read as.
    """

    url: TargetUrl | None = None  # required but for kinds that take none (push)
    name: str | None = None
    group: str | None = None  # a heading on the status page; no group: listed last
    kind: str | None = None  # default: chosen by the URL's scheme
    interval: Interval | None = None
    confirm_interval: Interval | None = None
    recover_interval: Interval | None = None
    timeout: Duration | None = None
    retries: Retries | None = None
    slow: Duration | None = None
    content_alert: bool = False
    early_warning: bool | None = None  # unset: [early_warning] enabled
    cert_expiry: CertWindow | None = None
    cert_expiry_steps: tuple[CertWindow, ...] | None = None
    # Gatus-style assertions ("[STATUS] == 200"), compiled at load (conditions/)
    conditions: tuple[str, ...] = ()
    labels: Labels = NO_LABELS  # over [monitor] labels; routing, filters, metrics
    depends_on: tuple[str, ...] = ()  # names of targets: while one is DOWN, no `down` page
    alerts: TargetAlerts = TargetAlerts()
    # cluster mode: probed from this many locations, DOWN when `quorum` of them see it
    # down (each 1 by default; quorum at most locations)
    locations: Positive | None = None
    quorum: Positive | None = None


@frozen
class ClusterSection:
    """[cluster]: run as one node of a cluster sharing targets and state in Redis."""

    redis: str  # redis:// or rediss:// URL; ${ENV} expanded (a password)
    node: str | None = None  # default: the host name; ${ENV} expanded (one file, many nodes)
    location: str = "default"  # ${ENV} expanded
    redis_down: RedisDownPolicy = "wait"


@frozen
class ClusterSettings:
    """[cluster] resolved: `redis` holds the password (never shown: `redis_shown`)."""

    redis: str = field(repr=False)
    node: str
    location: str
    redis_down: RedisDownPolicy = "wait"
    # of [[targets]] and [alerts] as written (${ENV} unexpanded): what every node must
    # share; node, storage and server settings may differ
    config_hash: str = ""

    @property
    def redis_shown(self) -> str:
        return redact_url(self.redis)

    @property
    def member(self) -> str:
        """This node in the cluster's member set: `location/node`."""
        return f"{self.location}/{self.node}"


@frozen
class EarlyWarningSection:
    """[early_warning]: `degrading` warnings from learned baselines (trio_monitor/early/;
    docs/early-warning.md has the math; defaults chosen by bench/early_warning.py)."""

    enabled: bool = True  # every target's default (a target's `early_warning` overrides it)
    warmup: Positive = Positive(200)  # probes a signal learns from before it may warn
    baseline_probes: Positive = Positive(120)  # the baselines' memory (EW rate 1 / this)
    season_probes: Positive = Positive(50)  # an hour-of-week slot's memory
    latency_slack: Factor = Factor(1.5)  # CUSUM k, in baseline scales
    latency_threshold: Factor = Factor(30.0)  # CUSUM h
    errors_threshold: Factor = Factor(6.0)  # Bernoulli CUSUM h (nats)
    errors_ratio: Factor = Factor(5.0)  # the failure rate warned about, times the baseline
    errors_floor: Share = Share(0.003)  # the baseline failure rate is at least this
    errors_probes: Positive = Positive(2000)  # the failure rate's memory
    size_threshold: Factor = Factor(10.0)
    churn_threshold: Factor = Factor(6.0)
    cert_margin: CertWindow = CertWindow(2 * 86400.0)  # renewal overdue by this much: warn


@frozen
class StorageSection:
    """[storage]: the embedded history store (SQLite)."""

    enabled: bool = True
    # default: $STATE_DIRECTORY/trio-monitor.db under systemd, else <config name>.db beside it
    path: str | None = None
    raw_retention: Retention = Retention(7 * 86400.0)  # raw probe rows
    rollup_retention: Retention = Retention(365 * 86400.0)  # hourly rollups, incidents, changes


@frozen
class ServerSection:
    """[server]: the embedded HTTP server (status page, API, metrics, health)."""

    listen: Listen = Listen(("127.0.0.1", 9180))  # written "127.0.0.1:9180", "[::1]:9180"
    token: str | None = None  # with ${ENV}: every path but /healthz needs a Bearer token
    public_status_page: bool = False  # with a token: "/" and badges stay public
    # without a token: Host names answered besides IP addresses, localhost and the listen host
    allowed_hosts: tuple[HostName, ...] = ()


@frozen
class MaintenanceSection:
    """A [[maintenance]] window: a one-off (`start`, `end`) or a recurring one (`cron`,
    `duration`, `timezone`); it holds the alerts of the targets it matches."""

    name: str
    match: Labels | None = None  # targets with all these labels ({}: every target)
    targets: tuple[str, ...] = ()  # and these targets by name
    start: WallTime | None = None
    end: WallTime | None = None
    cron: str | None = None  # when each window starts, in `timezone` (cronsim)
    duration: WindowLength | None = None
    timezone: str = "UTC"  # an IANA name


@frozen
class _Sibling:
    """A [[targets]] table like an earlier one, `first`, but for its name and URL (of
    the same kind, in httpx's own form): nothing to structure, and it resolves like
    `first` (_Alike). Most tables of a config of thousands of targets are such."""

    first: TargetSection
    name: str | None
    url: TargetUrl

    def section(self) -> TargetSection:
        """The section its table structures into (for a sibling resolved on its own)."""
        return attrs.evolve(self.first, name=self.name, url=self.url)


TargetTable = TargetSection | _Sibling


@frozen
class ConfigFile:
    monitor: MonitorSection = MonitorSection()
    alerts: AlertsSection = AlertsSection()
    storage: StorageSection = StorageSection()
    server: ServerSection | None = None  # no [server] section: no server
    early_warning: EarlyWarningSection = EarlyWarningSection()
    cluster: ClusterSection | None = None  # no [cluster] section: one process alone
    targets: tuple[TargetTable, ...] = ()
    maintenance: tuple[MaintenanceSection, ...] = ()


# --- what the engine runs --------------------------------------------------------


@frozen
class Target:
    """One target with every setting resolved; equal Targets probe identically."""

    name: str
    url: str  # as shown: userinfo redacted (_secrets.py)
    kind: str
    interval: float
    confirm_interval: float  # probe cadence while a failure is being confirmed
    recover_interval: float  # probe cadence while DOWN
    timeout: float
    retries: int
    slow: float | None
    content_alert: bool
    spec: Any  # the kind's own resolved settings (e.g. probes.http.HttpSpec)
    # seconds before a certificate's expiry that raise `cert_expiring`, longest first:
    # cert_expiry, then the shorter steps; () when cert_expiry is "0s"
    cert_alerts: tuple[float, ...] = (DEFAULT_CERT_EXPIRY, *DEFAULT_CERT_STEPS)
    # `conditions`, compiled against the kind's placeholders (conditions/)
    conditions: tuple[Condition, ...] = ()
    group: str | None = None  # the status page's heading for it (stripped, never empty)
    labels: Labels = NO_LABELS  # [monitor] labels, then its own
    depends_on: tuple[str, ...] = ()  # parent targets (configured, no cycles)
    failure_threshold: int = 3  # [targets.alerts], else [alerts]
    success_threshold: int = 1
    notify: tuple[str, ...] | None = None  # notifier names; None: every notifier
    repeat: float | None = None  # reminder interval while DOWN; None: notifiers' own only
    early_warning: bool = True  # `degrading` warnings (trio_monitor/early/)
    locations: int = 1  # cluster mode: probed from this many locations
    quorum: int = 1  # locations that must see it down for DOWN


@frozen
class Maintenance:
    """A checked [[maintenance]] window (policy/_maintenance.py says when it holds)."""

    name: str
    match: Labels | None  # None: by name only
    targets: frozenset[str]
    start: float | None = None  # a one-off: [start, end) in unix seconds
    end: float | None = None
    cron: str | None = None  # a recurring one: starts in `timezone`, lasts `duration`
    duration: float | None = None
    timezone: str = "UTC"

    def matches(self, name: str, labels: Mapping[str, str] | None) -> bool:
        """It holds this target: named in `targets`, or carrying every `match` label."""
        if name in self.targets:
            return True
        return self.match is not None and labels_match(self.match, labels)


def labels_match(match: Mapping[str, str], labels: Mapping[str, str] | None) -> bool:
    """Every label of `match` has that value in `labels` (an empty match: anything)."""
    have = labels or {}
    return all(have.get(k) == v for k, v in match.items())


@frozen
class Config:
    monitor: MonitorSection
    alerts: AlertsSection
    targets: tuple[Target, ...]
    path: str = "<memory>"
    storage: StorageSection = StorageSection()
    store_path: str | None = None  # resolved; None: no history kept
    server: ServerSection | None = None  # token resolved from ${ENV}
    maintenance: tuple[Maintenance, ...] = ()  # [[maintenance]] windows
    early_warning: EarlyWarningSection = EarlyWarningSection()
    cluster: ClusterSettings | None = None  # None: not a cluster node


# --- converter -------------------------------------------------------------------

converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
converter.register_structure_hook(Duration, _duration_in(0.001, 3600.0))
converter.register_structure_hook(Interval, _duration_in(0.1, 7 * 86400.0))
converter.register_structure_hook(Retention, _duration_in(3600.0, MAX_DURATION))
converter.register_structure_hook(ByteSize, _byte_size)
converter.register_structure_hook(MemorySize, _memory_size)
converter.register_structure_hook(Url, lambda v, _: Url(parse_url(v)))
converter.register_structure_hook(
    TargetUrl,
    lambda v, _: TargetUrl(parse_url(v, probe_kinds.schemes())),
)
converter.register_structure_hook(Delay, _duration_in(0.0, 86400.0))
converter.register_structure_hook(CertWindow, _duration_in(0.0, 365 * 86400.0))
converter.register_structure_hook(Positive, _integer(1, 100_000))
converter.register_structure_hook(Count, _integer(0, 100))
converter.register_structure_hook(Factor, _number_in(0.01, 1000.0))
converter.register_structure_hook(Share, _number_in(0.0001, 0.5))
converter.register_structure_hook(Retries, _integer(0, 10))
converter.register_structure_hook(Argv, lambda v, _: parse_argv(v))
converter.register_structure_hook(Repeat, _duration_in(1.0, 30 * 86400.0))
converter.register_structure_hook(Labels, lambda v, _: parse_labels(v))
converter.register_structure_hook(LabelPatterns, lambda v, _: parse_label_patterns(v))
converter.register_structure_hook(NotifierName, lambda v, _: parse_notifier_name(v))
converter.register_structure_hook(RateLimit, lambda v, _: RateLimit(parse_rate_limit(v)))
converter.register_structure_hook(Listen, lambda v, _: Listen(parse_listen(v)))
converter.register_structure_hook(HostName, lambda v, _: HostName(parse_host_name(v)))
converter.register_structure_hook(Nameserver, lambda v, _: Nameserver(parse_nameserver(v)))
converter.register_structure_hook(WallTime, lambda v, _: WallTime(parse_wall_time(v)))
converter.register_structure_hook(WindowLength, _duration_in(1.0, MAX_WINDOW))
converter.register_structure_hook(GroupWindow, _duration_in(0.0, 600.0))
converter.register_structure_hook(GroupMin, _integer(2, 100_000))
converter.register_structure_hook(GroupCause, lambda v, _: parse_group_cause(v))
converter.register_structure_hook(GroupBy, _group_by)
converter.register_structure_hook_func(lambda t: get_origin(t) is Literal, _literal)
converter.register_structure_hook_factory(
    attrs.has, _shaped(Mapping, "a table", make_dict_structure_fn)
)
converter.register_structure_hook_factory(
    lambda t: get_origin(t) is tuple,
    _shaped((list, tuple), "an array", homogenous_tuple_structure_factory),
)
for _duration in (Duration, Interval, Retention, Delay, CertWindow, GroupWindow):
    converter.register_unstructure_hook(_duration, format_duration)
converter.register_structure_hook(int | str, lambda v, _: _status_item(v))
for _kind, _name in (
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (bool, "true or false"),
):
    converter.register_structure_hook(_kind, _strict(_kind, _name))


_UNKNOWN = "\0unknown\0"  # marks a ForbiddenExtraKeysError for _structure_problems
DEFAULT_KIND = "http"  # for a table whose URL is too broken to name a kind


def _at_key(exc: Exception, key: str) -> Exception:
    """`exc` as a problem of one key of the table being structured (its path ends there)."""
    exc.__notes__ = [
        *getattr(exc, "__notes__", ()),
        AttributeValidationNote(f"Structuring @ attribute {key}", key, object),
    ]
    return exc


def _key_problem(key: str, message: str) -> ClassValidationError:
    return ClassValidationError(message, [_at_key(_Invalid(message), key)], TargetSection)


def _kind_of(table: Mapping[str, object]) -> probe_kinds.ProbeKind:
    """The tag of a [[targets]] table: its `kind`, else its URL's scheme."""
    kind = table.get("kind")
    if kind is not None:
        found = probe_kinds.find(kind) if isinstance(kind, str) else None
        if found is None:
            known = ", ".join(sorted(f'"{k.name}"' for k in probe_kinds.kinds()))
            raise _key_problem("kind", f"must be one of {known}, got {kind!r}")
        return found
    url = table.get("url")
    scheme = url.partition("://")[0].lower() if isinstance(url, str) else ""
    return probe_kinds.for_scheme(scheme) or probe_kinds.get(DEFAULT_KIND)


# Structured tables by what their siblings share: kind and every key but name and url
# (structuring through cattrs cost more than resolving; a config of 50,000 targets has
# a handful of these). Filled while a document is structured; parse_config empties it.
_FIRSTS: dict[tuple[object, ...], TargetSection] = {}
MAX_FIRSTS = 1024
_OWN_KEYS = frozenset({"name", "url"})  # what siblings differ in


class _Unshared(Exception):
    """A value `_shared` does not key (a date, a time): its table is structured alone."""


def _shared(value: object) -> object:
    """`value` as a key that tells apart every two values cattrs may structure apart:
    the type with each scalar (True is 1, and 1 is 1.0, to `==`), a float by its repr
    (-0.0 is 0.0), arrays and tables in their order (headers are sent in it)."""
    if isinstance(value, dict):
        return (dict, tuple((k, _shared(v)) for k, v in value.items()))
    if isinstance(value, list):
        return (list, tuple(_shared(v) for v in value))
    if type(value) in (str, int, bool):
        return (type(value), value)
    if type(value) is float:
        return (float, repr(value))
    raise _Unshared


def _alike_key(table: Mapping[str, object], kind: probe_kinds.ProbeKind) -> tuple | None:
    """What `table` shares with its siblings, if it may have any: its kind resolves
    look-alike targets once (`spec_url`), its URL is of that kind in httpx's own form
    (its spec depends on nothing else of it), and its name is a string if set."""
    url, name = table.get("url"), table.get("name", "")
    if kind.spec_url is None or not isinstance(url, str) or not isinstance(name, str):
        return None
    if not is_normal_url(url, kind.url_schemes):
        return None
    try:
        rest = [(k, _shared(v)) for k, v in table.items() if k not in _OWN_KEYS]
    except (_Unshared, RecursionError):  # arrays nested past the stack: as the generic path
        return None
    return (kind.name, kind.section, *rest)


def _structure_target(value: object, _type: object) -> TargetTable:
    if not isinstance(value, Mapping):
        raise _Invalid(f"expected a table, got {value!r}")
    kind = _kind_of(value)
    key = _alike_key(value, kind)
    if key is not None and (first := _FIRSTS.get(key)) is not None:
        return _Sibling(first, value.get("name"), value["url"])
    section = converter.structure(value, kind.section)
    if section.url is None:
        if kind.url_schemes:
            raise _key_problem("url", "required key missing")
        return section
    if not kind.url_schemes:
        raise _key_problem("url", f"kind {kind.name!r} takes no url: remove it")
    if section.url.partition("://")[0].lower() not in kind.url_schemes:
        schemes = " or ".join(f"{s}://" for s in sorted(kind.url_schemes))
        got = redact_url(section.url)
        raise _key_problem("url", f"kind {kind.name!r} takes {schemes} URLs, got {got!r}")
    if key is not None:
        if len(_FIRSTS) >= MAX_FIRSTS:
            _FIRSTS.clear()  # a bound: a config has few distinct tables, some have many
        _FIRSTS[key] = section
    return section


converter.register_structure_hook_func(lambda t: t == TargetTable, _structure_target)


def _structure_alerts(value: object, _type: object) -> AlertsSection:
    """The thresholds, then each `[[alerts.KEY]]` array as its channel's tables."""
    if not isinstance(value, Mapping):
        raise _Invalid(f"expected a table, got {value!r}")
    settings = {k: v for k, v in value.items() if k in attrs.fields_dict(_AlertSettings)}
    problems: list[Exception] = []
    try:
        base = converter.structure(settings, _AlertSettings)
    except ClassValidationError as exc:
        problems.extend(exc.exceptions)
        base = _AlertSettings()
    notifiers: dict[str, tuple[Any, ...]] = {}
    unknown = set()
    for key, tables in value.items():
        if key in settings:
            continue
        kind = alert_kinds.find(key)
        if kind is None:
            unknown.add(key)
            continue
        try:
            # a type built at run time, from the registry: mypy cannot follow it
            array = tuple[kind.section, ...]  # type: ignore[name-defined]
            notifiers[key] = converter.structure(tables, array)
        except Exception as exc:
            problems.append(_at_key(exc, key))
    if unknown:
        problems.append(ForbiddenExtraKeysError("", AlertsSection, unknown))
    if problems:
        raise ClassValidationError("while structuring AlertsSection", problems, AlertsSection)
    return AlertsSection(**attrs.asdict(base, recurse=False), notifiers=notifiers)


converter.register_structure_hook_func(lambda t: t is AlertsSection, _structure_alerts)


def _status_item(value: object) -> int | str:
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise _Invalid(f'expected a status like 200, "2xx" or "200-299", got {value!r}')


def _format_exception(exc: BaseException, type_: object) -> str:
    if isinstance(exc, _Invalid):
        return str(exc)
    if isinstance(exc, ForbiddenExtraKeysError):
        return _UNKNOWN + "\0".join(sorted(exc.extra_fields))
    if isinstance(exc, KeyError):
        return "required key missing"
    return cattrs.v.format_exception(exc, type_ if isinstance(type_, type) else None)


def _key_path(cattrs_path: str) -> str:
    path = re.sub(r"\['([^']*)'\]", r".\1", cattrs_path.removeprefix("$"))
    return path.lstrip(".") or "(top level)"


# keys that were replaced (by key path): what to write instead, not just "unknown key"
_REPLACED = {"monitor.browser_cpu_weight": 'replaced by browser_cpu = "idle" | "equal"'}


def _structure_problems(exc: BaseException) -> list[str]:
    lines = []
    for line in cattrs.transform_error(exc, "$", _format_exception):
        message, _, path = line.rpartition(" @ ")
        if message.startswith(_UNKNOWN):
            for key in message.removeprefix(_UNKNOWN).split("\0"):
                key_path = _key_path(f"{path}.{key}")
                lines.append(f"{key_path}: {_REPLACED.get(key_path, 'unknown key')}")
        else:
            lines.append(f"{_key_path(path)}: {message}")
    return lines


# --- resolution ------------------------------------------------------------------

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: str, env: Mapping[str, str]) -> str:
    """Replace ${NAME} with the environment variable; raise _Invalid if one is unset."""
    missing = [n for n in _ENV.findall(value) if n not in env]
    if missing:
        raise _Invalid(f"environment variable {missing[0]} is not set")
    return _ENV.sub(lambda m: env[m.group(1)], value)


def expand_path(path: str, key: str, env: Mapping[str, str], problems: list[str]) -> str:
    """A file path with ${ENV} expanded (e.g. systemd's ${CREDENTIALS_DIRECTORY}); a
    problem is collected, naming `key`."""
    try:
        return expand_env(path, env)
    except _Invalid as exc:
        problems.append(f"{key}: {exc}")
        return path


def parse_status_spec(items: tuple[int | str, ...]) -> frozenset[int]:
    """200, "2xx", "200-299" -> the set of accepted status codes."""
    codes: set[int] = set()
    for item in items:
        if isinstance(item, int):
            lo = hi = item
        elif m := re.fullmatch(r"([1-5])xx", item.strip(), re.IGNORECASE):
            lo, hi = int(m.group(1)) * 100, int(m.group(1)) * 100 + 99
        elif m := re.fullmatch(r"(\d{3})\s*-\s*(\d{3})", item.strip()):
            lo, hi = int(m.group(1)), int(m.group(2))
        else:
            raise _Invalid(f'invalid status {item!r} (use 200, "2xx" or "200-299")')
        if not 100 <= lo <= hi <= 599:
            raise _Invalid(f"invalid status range {item!r} (codes are 100-599)")
        codes.update(range(lo, hi + 1))
    if not codes:
        raise _Invalid("expect_status must list at least one status")
    return frozenset(codes)


# RFC 9110 5.1: a field name is a token; 5.5: a value is visible ASCII, spaces and tabs,
# and obs-text (0x80-0xFF), which we send as Latin-1 bytes. Anything else (a control
# character, CR/LF, a character above U+00FF) no HTTP/1.1 request can carry.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
HEADER_ENCODING = "latin-1"  # how header values go on the wire (see _FIELD_VALUE)
# what the request itself sets from its body: a configured value would contradict it
MANAGED_HEADERS = frozenset({"content-length", "transfer-encoding"})


def check_token(value: str, what: str) -> str:
    """A method or header name: an RFC 9110 token, else _Invalid."""
    if not _TOKEN.fullmatch(value):
        raise _Invalid(f"invalid {what} {value!r}: use letters, digits and !#$%&'*+-.^_`|~ only")
    return value


def check_header_value(value: str) -> str:
    bad = next((c for c in value if not _FIELD_VALUE.fullmatch(c)), None)
    if bad is not None:
        raise _Invalid(
            f"header value cannot carry {bad!r} (U+{ord(bad):04X}): use printable characters"
            " up to U+00FF (sent as Latin-1), no control characters; percent-encode the rest"
        )
    return value


def expand_headers(
    table: Mapping[str, str] | None, where: str, env: Mapping[str, str], problems: list[str]
) -> dict[str, str]:
    """Header names lower-cased, ${ENV} expanded in values, both checked against what
    HTTP can carry; problems collected."""
    out = {}
    for key, value in (table or {}).items():
        try:
            name = check_token(key, "header name").lower()
            if name in MANAGED_HEADERS:
                raise _Invalid(f"{key} is set by the request itself; remove it")
            out[name] = check_header_value(expand_env(value, env))
        except _Invalid as exc:
            problems.append(f"{where}.{key}: {exc}")
    return out


def inherit(own: Any, default: Any) -> Any:
    return default if own is None else own


def _resolve(
    file: ConfigFile, env: Mapping[str, str]
) -> tuple[AlertsSection, tuple[Target, ...], list[str]]:
    m, server = file.monitor, file.server
    problems: list[str] = []
    # each kind reads its [monitor] defaults once: their problems are reported once
    resolvers = {kind.name: kind.resolver(m, env, problems) for kind in probe_kinds.kinds()}
    alerts = attrs.evolve(
        file.alerts,
        notifiers={
            key: tuple(
                alert_kinds.get(key).resolve(table, f"alerts.{key}[{i}]", env, problems)
                for i, table in enumerate(tables)
            )
            for key, tables in file.alerts.notifiers.items()
        },
    )

    targets: list[Target] = []
    names = _Names()
    conditions = _Conditions()
    # by id of a table's section, when it resolved without a problem: its siblings
    # (the same table at other names and URLs) resolve alike
    resolved: dict[int, _Alike] = {}
    for i, entry in enumerate(file.targets):
        if isinstance(entry, _Sibling) and (alike := resolved.get(id(entry.first))) is not None:
            # a URL in httpx's own form has no userinfo: it is shown as it is
            name = names.check(i, entry.name, entry.url, alike.kind, problems)
            targets.append(alike.at(name, entry.url))
            continue
        where = f"targets[{i}]"
        t = entry.section() if isinstance(entry, _Sibling) else entry
        kind = _kind_of({"kind": t.kind, "url": t.url})
        # what is shown (the kind's spec keeps what it sends); a kind without URLs
        # (push) shows "KIND:NAME"
        url = None if t.url is None else redact_url(t.url)
        name = names.check(i, t.name, url, kind, problems)
        known = len(problems)  # those of the table's other keys follow
        group = _group(t.group, f"{where}.group", problems)
        if kind.needs_server and server is None:
            problems.append(
                f"{where}.kind: a {kind.name} target needs a [server] section: {kind.needs_server}"
            )
        interval = inherit(t.interval, m.interval)
        confirm = _pacing(t.confirm_interval, m.confirm_interval, DEFAULT_CONFIRM_INTERVAL)
        recover = _pacing(t.recover_interval, m.recover_interval, confirm)
        for key, own in (
            ("confirm_interval", t.confirm_interval),
            ("recover_interval", t.recover_interval),
        ):
            if own is not None and own > interval:
                problems.append(f"{where}.{key}: {_longer_than_interval(own, interval)}")
        target = Target(
            name=name,
            url=f"{kind.name}:{name}" if url is None else url,
            kind=kind.name,
            interval=interval,
            confirm_interval=min(confirm, interval),
            recover_interval=min(recover, interval),
            timeout=inherit(t.timeout, m.timeout),
            retries=inherit(t.retries, m.retries),
            slow=inherit(t.slow, m.slow),
            content_alert=t.content_alert,
            spec=resolvers[kind.name](t, where, problems),
            cert_alerts=_cert_alerts(t, m, where, problems),
            conditions=conditions.compile(t.conditions, kind, where, problems),
            group=group,
            labels=Labels({**m.labels, **t.labels}),
            depends_on=t.depends_on,
            failure_threshold=inherit(t.alerts.failure_threshold, file.alerts.failure_threshold),
            success_threshold=inherit(t.alerts.success_threshold, file.alerts.success_threshold),
            notify=t.alerts.notify,
            repeat=t.alerts.repeat,
            early_warning=inherit(t.early_warning, file.early_warning.enabled),
            **_spread(t, file.cluster, where, problems),
        )
        targets.append(target)
        if len(problems) == known and kind.spec_url is not None:
            section = entry.first if isinstance(entry, _Sibling) else entry
            resolved[id(section)] = _Alike(target, kind)
    problems += _routing_problems(alerts, targets)
    return alerts, tuple(targets), problems


class _Names:
    """Checks targets' names, in file order: each one set (or a URL to stand for it),
    printable and unique."""

    def __init__(self) -> None:
        self._first_seen: dict[str, int] = {}

    def check(
        self,
        i: int,
        own: str | None,
        url: str | None,
        kind: probe_kinds.ProbeKind,
        problems: list[str],
    ) -> str:
        """The name of targets[i]: `own`, stripped, or its URL as shown."""
        name = (url or "") if own is None else own.strip()
        where = f"targets[{i}]"
        if url is None and own is None:
            problems.append(f"{where}.name: required key missing (a {kind.name} target has no url)")
        elif not name:
            problems.append(f"{where}.name: must not be empty")
        elif _has_control_character(name):
            # a newline, NUL or ESC would break log lines, terminals and API paths
            problems.append(f"{where}.name: must not contain control characters, got {name!r}")
        elif name in self._first_seen:
            first = self._first_seen[name]
            problems.append(
                f"{where}.name: duplicate target name {name!r} (first used by targets[{first}])"
            )
        self._first_seen.setdefault(name, i)
        return name


class _Alike:
    """The Targets of a table's siblings: the table's own at their names and URLs (the
    kind's `spec_url` names the field of its spec that holds the URL). Built by position
    from its values read once: attrs.evolve reads every field and passes each by name at
    every copy (2.2 us a Target and its spec, against 6 us)."""

    def __init__(self, like: Target, kind: probe_kinds.ProbeKind) -> None:
        assert kind.spec_url is not None  # only such kinds' tables have siblings
        self.kind = kind
        self._like = like

    @functools.cached_property
    def _layout(self) -> tuple[list[Any], list[int], list[Any], int]:
        """Made at the first sibling: most tables have none."""
        assert self.kind.spec_url is not None
        target, at = _by_position(self._like, "name", "url", "spec")
        spec, (url_at,) = _by_position(self._like.spec, self.kind.spec_url)
        return target, at, spec, url_at

    def at(self, name: str, url: str) -> Target:
        target, (name_at, url_at, spec_at), spec, spec_url_at = self._layout
        spec_args = spec.copy()
        spec_args[spec_url_at] = url
        args = target.copy()
        args[name_at], args[url_at] = name, url
        args[spec_at] = type(self._like.spec)(*spec_args)
        return Target(*args)


def _by_position(instance: Any, *names: str) -> tuple[list[Any], list[int]]:
    """An attrs instance's values, in the order its class takes them, and where the
    fields `names` are among them."""
    fields = attrs.fields(type(instance))
    assert all(f.init and not f.kw_only for f in fields)  # each taken by position
    order = [f.name for f in fields]
    return [getattr(instance, name) for name in order], [order.index(name) for name in names]


def notifier_names(alerts: AlertsSection) -> dict[str, str]:
    """Each notifier's name -> where it is configured ("alerts.webhook[0]")."""
    return {
        table.name or f"{key}[{i}]": f"alerts.{key}[{i}]"
        for key, tables in alerts.notifiers.items()
        for i, table in enumerate(tables)
    }


def _maintenance_problems(
    file: ConfigFile, targets: tuple[Target, ...]
) -> tuple[tuple[Maintenance, ...], list[str]]:
    """[[maintenance]] windows checked: unique names, what they match, one-off or
    recurring (a cron expression cronsim takes, a zone zoneinfo knows). -> the windows."""
    problems: list[str] = []
    windows = []
    names = {t.name for t in targets}
    seen: dict[str, int] = {}
    for i, w in enumerate(file.maintenance):
        where = f"maintenance[{i}]"
        name = w.name.strip()
        if not name or _has_control_character(name) or len(name) > MAX_NOTIFIER_NAME:
            problems.append(
                f"{where}.name: 1 to {MAX_NOTIFIER_NAME} characters, no control characters"
            )
        elif name in seen:
            problems.append(
                f"{where}.name: duplicate window name {name!r} (first used by maintenance[{seen[name]}])"
            )
        seen.setdefault(name, i)
        if w.match is None and not w.targets:
            problems.append(
                f"{where}.match: set match (labels; {{}} for every target) or targets (names)"
            )
        for j, target in enumerate(w.targets):
            if target not in names:
                problems.append(f"{where}.targets[{j}]: no target named {target!r}")
        one_off = w.start is not None or w.end is not None
        if one_off and (w.cron is not None or w.duration is not None):
            problems.append(
                f"{where}.cron: a window is one-off (start, end) or recurring (cron, duration), not both"
            )
        elif one_off:
            if w.start is None or w.end is None:
                key = "start" if w.start is None else "end"
                problems.append(f"{where}.{key}: a one-off window needs both start and end")
            elif w.end <= w.start:
                problems.append(f"{where}.end: must be after start")
            elif w.end - w.start > MAX_ONE_OFF:
                problems.append(f"{where}.end: a one-off window lasts a year at most")
        elif w.cron is None or w.duration is None:
            key = "cron" if w.cron is None else "duration"
            problems.append(
                f"{where}.{key}: set start and end (a one-off window) or cron and duration"
                " (a recurring one)"
            )
        try:
            zone = ZoneInfo(w.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(
                f'{where}.timezone: unknown time zone {w.timezone!r} (use an IANA name like "Europe/Berlin" or "UTC")'
            )
            zone = ZoneInfo("UTC")  # the cron expression is still checked: one pass finds both
        cron = None if w.cron is None else " ".join(w.cron.split())
        if cron is not None:
            try:
                CronSim(cron, datetime.now(UTC).astimezone(zone))
            except CronSimError as exc:
                problems.append(f"{where}.cron: invalid cron expression {cron!r}: {exc}")
        windows.append(
            Maintenance(
                name=name,
                match=w.match,
                targets=frozenset(w.targets),
                start=w.start,
                end=w.end,
                cron=cron,
                duration=w.duration,
                timezone=w.timezone,
            )
        )
    return tuple(windows), problems


def _routing_problems(alerts: AlertsSection, targets: list[Target]) -> list[str]:
    """Names that must exist and be unique: notifiers', `notify`'s and `depends_on`'s;
    and dependencies without cycles."""
    problems = []
    seen: dict[str, str] = {}
    for key, tables in alerts.notifiers.items():
        for i, table in enumerate(tables):
            name = table.name or f"{key}[{i}]"
            if name in seen:
                problems.append(
                    f"alerts.{key}[{i}].name: duplicate notifier name {name!r} (first used by {seen[name]})"
                )
            seen.setdefault(name, f"alerts.{key}[{i}]")
    names = {t.name for t in targets}
    for i, target in enumerate(targets):
        for j, notifier in enumerate(target.notify or ()):
            if notifier not in seen:
                known = ", ".join(sorted(seen)) or "none configured"
                problems.append(
                    f"targets[{i}].alerts.notify[{j}]: no notifier named {notifier!r} ({known})"
                )
        for j, parent in enumerate(target.depends_on):
            if parent == target.name:
                problems.append(f"targets[{i}].depends_on[{j}]: a target cannot depend on itself")
            elif parent not in names:
                problems.append(f"targets[{i}].depends_on[{j}]: no target named {parent!r}")
    if cycle := dependency_cycle(targets):
        problems.append(f"targets: depends_on makes a cycle: {' -> '.join(cycle)}")
    return problems


def dependency_cycle(targets: Collection[Target]) -> list[str] | None:
    """A cycle of `depends_on` (its names, the first repeated at the end), if any.
    Depth first without recursion: a chain of thousands of targets is fine."""
    if not any(t.depends_on for t in targets):
        return None  # the common case, told without a graph
    parents = {t.name: [p for p in t.depends_on if p != t.name] for t in targets}
    ON_PATH, DONE = 1, 2
    seen: dict[str, int] = {}
    for start in parents:
        if start in seen:
            continue
        path, pending = [start], [iter(parents[start])]
        seen[start] = ON_PATH
        while path:
            parent = next(pending[-1], None)
            if parent is None:
                seen[path.pop()] = DONE
                pending.pop()
            elif seen.get(parent) == ON_PATH:
                return [*path[path.index(parent) :], parent]
            elif parent not in seen and parent in parents:
                seen[parent] = ON_PATH
                path.append(parent)
                pending.append(iter(parents[parent]))
    return None


def _spread(
    t: TargetSection, cluster: ClusterSection | None, where: str, problems: list[str]
) -> dict[str, int]:
    """A target's `locations` and `quorum`: 1 ≤ quorum ≤ locations; more than one
    location only in a cluster."""
    locations = 1 if t.locations is None else t.locations
    quorum = 1 if t.quorum is None else t.quorum
    if quorum > locations:
        problems.append(f"{where}.quorum: must be at most locations ({locations}), got {quorum}")
    if locations > 1 and cluster is None:
        problems.append(f"{where}.locations: more than one location needs a [cluster] section")
    return {"locations": locations, "quorum": quorum}


CLUSTER_EXTRA = "pip install 'trio-monitor[cluster]'"


def _shared_hash(data: Mapping[str, Any]) -> str:
    shared = {"targets": data.get("targets"), "alerts": data.get("alerts")}
    text = json.dumps(shared, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cluster_settings(
    section: ClusterSection | None,
    env: Mapping[str, str],
    problems: list[str],
    data: Mapping[str, Any],
) -> ClusterSettings | None:
    """[cluster] resolved: the Redis URL's ${ENV} expanded and checked, the node's name
    defaulted to the host's; its client library (coredis, an extra) must be installed."""
    if section is None:
        return None
    if importlib.util.find_spec("coredis") is None:
        problems.append(f"cluster: cluster mode needs the coredis library: {CLUSTER_EXTRA}")
    redis = section.redis
    try:
        redis = expand_env(redis, env)
    except _Invalid as exc:
        problems.append(f"cluster.redis: {exc}")
    else:
        scheme, sep, rest = redis.partition("://")
        if scheme not in ("redis", "rediss") or not sep or not rest:
            problems.append(
                f"cluster.redis: expected a redis:// or rediss:// URL, got {redact_url(redis)!r}"
            )
    if section.node is None:
        try:
            node = parse_cluster_name(socket.gethostname().split(".")[0])
        except _Invalid:
            problems.append("cluster.node: the host name is no node name: set `node`")
            node = "node"
    else:
        node = _cluster_name(section.node, "cluster.node", env, problems)
    return ClusterSettings(
        redis=redis,
        node=node,
        location=_cluster_name(section.location, "cluster.location", env, problems),
        redis_down=section.redis_down,
        config_hash=_shared_hash(data),
    )


def _cluster_name(value: str, key: str, env: Mapping[str, str], problems: list[str]) -> str:
    """A node or location name with its ${ENV} expanded, checked (a placeholder when it
    is not one, the problem noted)."""
    try:
        return parse_cluster_name(expand_env(value, env))
    except _Invalid as exc:
        problems.append(f"{key}: {exc}")
        return "node"


class _Conditions:
    """Compiles targets' conditions, each distinct (kind, text) once: a fleet of
    thousands of targets shares a few conditions, and their compiled form."""

    def __init__(self) -> None:
        self._known = frozenset(name for kind in probe_kinds.kinds() for name in kind.placeholders)
        self._cache: dict[tuple[str, str], Condition | str] = {}

    def compile(
        self, texts: tuple[str, ...], kind: probe_kinds.ProbeKind, where: str, problems: list[str]
    ) -> tuple[Condition, ...]:
        compiled = []
        for i, text in enumerate(texts):
            key = (kind.name, text)
            if key not in self._cache:
                try:
                    self._cache[key] = _readable(
                        compile_condition(
                            text, kind.placeholders, kind=kind.name, known=self._known
                        ),
                        kind,
                    )
                except ConditionError as exc:
                    self._cache[key] = f"{text!r}: {exc}"
            found = self._cache[key]
            if isinstance(found, str):
                problems.append(f"{where}.conditions[{i}]: {found}")
            else:
                compiled.append(found)
        return tuple(compiled)


def _readable(condition: Condition, kind: probe_kinds.ProbeKind) -> Condition:
    """`condition`, once the kind says it can read each key it names (ConditionError)."""
    for name, key in sorted(condition.keys):
        problem = kind.key_problem(name, key)
        if problem is not None:
            raise ConditionError(problem)
    return condition


MAX_GROUP = 100  # characters: a heading, not a paragraph


def _group(own: str | None, key: str, problems: list[str]) -> str | None:
    """A target's group, stripped; a problem line when it cannot be a heading."""
    if own is None:
        return None
    group = own.strip()
    if not group:
        problems.append(f"{key}: must not be empty (leave it out for no group)")
    elif _has_control_character(group):
        problems.append(f"{key}: must not contain control characters, got {group!r}")
    elif len(group) > MAX_GROUP:
        problems.append(f"{key}: at most {MAX_GROUP} characters, got {len(group)}")
    return group or None


def _step_problem(window: float, steps: Iterable[float], key: str) -> str | None:
    """A configured step that is not between 0s and cert_expiry, as a problem line."""
    wrong = [step for step in steps if not 0 < step < window]
    if not window or not wrong:
        return None
    return (
        f"{key}: each step must be more than 0s and shorter than cert_expiry "
        f"({format_duration(window)}), got {format_duration(wrong[0]) if wrong[0] else '0s'}"
    )


def _cert_alerts(
    t: TargetSection, m: MonitorSection, where: str, problems: list[str]
) -> tuple[float, ...]:
    """cert_expiry and its steps, longest first. A target's own steps must be shorter
    than its cert_expiry; inherited ones that are not are skipped."""
    window = inherit(t.cert_expiry, m.cert_expiry)
    if not window:
        return ()
    steps = inherit(t.cert_expiry_steps, inherit(m.cert_expiry_steps, DEFAULT_CERT_STEPS))
    if t.cert_expiry_steps is not None and (
        problem := _step_problem(window, steps, f"{where}.cert_expiry_steps")
    ):
        problems.append(problem)
    return _alert_windows(window, steps)


@functools.lru_cache(maxsize=16)
def _alert_windows(window: float, steps: tuple[float, ...]) -> tuple[float, ...]:
    """cert_expiry and the steps below it, longest first (most targets share theirs:
    computed once)."""
    return tuple(sorted({window, *(step for step in steps if 0 < step < window)}, reverse=True))


def _pacing(own: float | None, default: float | None, fallback: float) -> float:
    """A target's confirm or recover interval, before the cap at its interval."""
    return inherit(own, inherit(default, fallback))


def _longer_than_interval(value: float, interval: float) -> str:
    return (
        f"must be at most the interval ({format_duration(interval)}), got {format_duration(value)}"
    )


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode's category Cc, all of it


def _has_control_character(text: str) -> bool:
    return _CONTROL.search(text) is not None


def _monitor_problems(m: MonitorSection) -> list[str]:
    """What no single key's range can tell: keys that must agree."""
    problems = []
    if m.adaptive and m.adaptive_min > m.concurrency:
        problems.append(
            f"monitor.adaptive_min: must be at most concurrency ({m.concurrency})"
            f" with adaptive = true, got {m.adaptive_min}"
        )
    for key, value in (
        ("confirm_interval", m.confirm_interval),
        ("recover_interval", m.recover_interval),
    ):
        if value is not None and value > m.interval:
            problems.append(f"monitor.{key}: {_longer_than_interval(value, m.interval)}")
    if m.min_addresses_ok is not None and m.addresses == "first":
        problems.append(f"monitor.min_addresses_ok: {ONLY_WITH_ALL_ADDRESSES}")
    steps = m.cert_expiry_steps or ()
    if problem := _step_problem(m.cert_expiry, steps, "monitor.cert_expiry_steps"):
        problems.append(problem)
    return problems


ONLY_WITH_ALL_ADDRESSES = 'applies only with addresses = "all" (set it, or remove this key)'


def _storage_problems(storage: StorageSection) -> list[str]:
    if storage.path is not None and not storage.path.strip():
        return ["storage.path: must not be empty (remove it for the default)"]
    return []


def _store_path(storage: StorageSection, config_path: str, env: Mapping[str, str]) -> str | None:
    """Where history goes. A config that is not a file ("<memory>") keeps none by default."""
    if not storage.enabled:
        return None
    base = Path(config_path).parent if config_path != "<memory>" else Path.cwd()
    if storage.path is not None:
        return str(base / storage.path)
    if env.get("STATE_DIRECTORY"):  # set by systemd's StateDirectory=
        return str(Path(env["STATE_DIRECTORY"].split(":")[0]) / "trio-monitor.db")
    if config_path == "<memory>":
        return None
    return str(Path(config_path).with_suffix(".db"))


def parse_config(
    data: dict, *, env: Mapping[str, str] | None = None, path: str = "<memory>"
) -> Config:
    """Structure and validate an already-parsed TOML document."""
    env = os.environ if env is None else env
    try:
        file = converter.structure(data, ConfigFile)
    except (ClassValidationError, IterableValidationError) as exc:
        raise ConfigError([f"{path}: {line}" for line in _structure_problems(exc)]) from None
    finally:
        _FIRSTS.clear()  # holds the document's values (a token, say): not kept past it
    alerts, targets, problems = _resolve(file, env)
    cluster = _cluster_settings(file.cluster, env, problems, data)
    problems += _monitor_problems(file.monitor) + _storage_problems(file.storage)
    maintenance, window_problems = _maintenance_problems(file, targets)
    problems += window_problems
    server = file.server
    if server is not None and server.token is not None:
        try:
            token = expand_env(server.token, env)
        except _Invalid as exc:
            problems.append(f"server.token: {exc}")
        else:
            server = attrs.evolve(server, token=token)
            if not token.strip():
                problems.append("server.token: must not be empty (remove it for no token)")
    if problems:
        raise ConfigError([f"{path}: {line}" for line in problems])
    return Config(
        monitor=file.monitor,
        alerts=alerts,
        targets=targets,
        path=path,
        storage=file.storage,
        store_path=_store_path(file.storage, path, env),
        server=server,
        maintenance=maintenance,
        early_warning=file.early_warning,
        cluster=cluster,
    )


def load_config(path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate a config file; raise ConfigError with every problem."""
    name = os.fspath(path)
    try:
        text = Path(name).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{name}: file not found"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})"]) from None
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read: {exc.strerror or exc}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{name}: TOML syntax error: {exc}"]) from None
    return parse_config(data, env=env, path=name)
