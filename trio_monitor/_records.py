"""The records trio-monitor emits, and their one JSON form.

Every JSON line starts with `"schema": SCHEMA, "type": ...`. Fields are only ever
added within a schema version; renaming or removing one bumps SCHEMA.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import NoneType, UnionType
from typing import Any, ClassVar, Union, get_args, get_origin

import cattrs
import orjson
from attrs import field, frozen
from cattrs.fns import identity
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from ._errors import ErrorKind
from .net.certs import TlsDetails

SCHEMA = 1

# the keys of ProbeResult.phases_ms, in the order the time is spent
PHASES = ("dns", "connect", "tls", "ttfb", "transfer")
RECEIVED_SHOWN = 256  # characters of `received` a probe line keeps


TS_MIN, TS_MAX = -62135596800.0, 253402300799.0  # years 1 to 9999: what RFC 3339 can say


def in_rfc3339_range(ts: float) -> bool:
    """`rfc3339` can write it (NaN cannot be written either)."""
    return TS_MIN <= ts <= TS_MAX


# whole seconds already written, as text up to the seconds: a round's lines share their
# second, and an HTTPS line's certificate times are the same every probe (a dict, not
# the last one: those would take turns); emptied when full
_SECONDS_KEPT = 1024
_seconds: dict[float, str] = {}


def rfc3339(ts: float) -> str:
    """Unix seconds -> '2026-11-27T21:56:58.123Z', as datetime writes it: rounded to
    microseconds (half even, like `datetime.fromtimestamp`), then cut to milliseconds.
    ValueError / OverflowError (datetime's) out of range."""
    frac, whole = math.modf(ts)  # the split fromtimestamp makes before rounding
    if frac >= 0.0:  # negative times keep datetime's way: rare, and its carry differs
        us = round(frac * 1e6)
        if us < 1_000_000:  # else it rounds into the next second
            text = _seconds.get(whole)
            if text is None:
                if len(_seconds) >= _SECONDS_KEPT:
                    _seconds.clear()
                stamp = datetime.fromtimestamp(whole, UTC).isoformat(timespec="seconds")
                text = _seconds[whole] = stamp[:-6]
            return f"{text}.{us // 1000:03d}Z"
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


@frozen
class AddressResult:
    """One address's outcome in a probe of every address behind a name."""

    addr: str  # the IP address (IPv6 without brackets)
    ok: bool
    error: ErrorKind | None
    latency_ms: float | None


@frozen
class ConditionResult:
    """One condition's outcome in a probe (conditions/)."""

    condition: str  # as written in the config
    ok: bool
    actual: str | None  # the placeholder's value as text; None when it did not exist


@frozen
class DnsAnswer:
    """What a dns:// probe's nameserver answered (the `dns` object of a probe line)."""

    record_type: str  # the type asked: "A", "MX", ...
    rcode: str  # "NOERROR", "NXDOMAIN", "SERVFAIL", ...
    answers: tuple[str, ...]  # each answer-section record's data as text, in answer order
    server: str  # "ip:port" asked
    tcp: bool  # the answer came over TCP, after a truncated UDP one
    authority_rrs: int = 0  # records in the authority section
    additional_rrs: int = 0  # records in the additional section (the OPT record excluded)


@frozen
class IcmpDetails:
    """An icmp:// probe's echo requests and replies (the probe line's `icmp` object)."""

    sent: int  # echo requests sent
    received: int  # distinct replies that matched one of them
    loss_pct: float  # 100 x (sent - received) / sent, 0.1 % steps
    rtt_min_ms: float | None  # None without a reply
    rtt_avg_ms: float | None
    rtt_max_ms: float | None
    addr: str  # the IP address pinged
    socket: str  # "dgram" (unprivileged ICMP socket) or "raw" (CAP_NET_RAW)
    hop_limit: int | None = None  # the last reply's TTL (IPv4) or hop limit (IPv6)
    setup_ms: float | None = None  # socket set up before the first request


@frozen
class PushDetails:
    """A push (heartbeat) target's state when its line was made (probes/push/)."""

    last_ping: float | None  # the last signal that a run ended (ping, fail, exit code)
    last_event: str | None  # "ping" | "start" | "fail" | "exit"; None: none since start-up
    exit_code: int | None  # the last one reported (/0.../255); None: none given
    run_ms: float | None  # the last timed run's time (/start, then its end signal)
    next_due: float | None  # when a missing ping becomes `missed` (grace included)


@frozen
class BrowserStep:
    """One step of a browser target's `steps`, as it ran (the `browser.steps` items)."""

    action: str  # goto, click, fill, press, wait_for, expect_text
    target: str  # its URL, selector, key, wait or text: never a filled value
    ok: bool
    ms: float  # how long it took
    error: str | None = None  # why it failed


@frozen
class BrowserDetails:
    """A browser probe's page load in Chromium (the probe line's `browser` object)."""

    dom_content_loaded_ms: float | None  # DOMContentLoaded fired, ms since navigation start
    load_ms: float | None  # the load event fired; None when the probe ended before it
    lcp_ms: float | None  # the largest contentful paint; None when Chromium reported none
    requests: int  # requests the page made, the document included (redirect hops not)
    failed_requests: int  # sub-requests that failed (network error, or HTTP 400 and above)
    console_errors: int  # uncaught script errors (exceptions, unhandled rejections)
    transfer_bytes: int  # bytes received over the network (encoded, headers included)
    steps: tuple[BrowserStep, ...] = ()  # the target's steps that ran, in order
    # a failed probe's screenshot (PNG) and console log, relative to the state directory
    # (probes/browser/artifacts.py); None when the probe passed or none could be kept
    screenshot: str | None = None
    console_log: str | None = None


@frozen
class ProbeResult:
    """The outcome of one probe of one target. Failures are data: `error` says why."""

    type: ClassVar[str] = "probe"

    ts: float  # wall-clock time the probe started (unix seconds)
    target: str
    url: str
    ok: bool
    status: int | None  # final HTTP status, after redirects
    latency_ms: float | None  # request start to body read, last attempt; None if no response
    error: ErrorKind | None
    attempts: int
    round: int
    error_detail: str | None = None
    ttfb_ms: float | None = None  # request start to response headers
    bytes: int = 0  # body bytes read (after decoding), at most max_body
    truncated: bool = False  # the body was longer than max_body; the rest was not read
    content_hash: str | None = None  # "sha256:<hex>" of the bytes read
    content_changed: bool = False  # content_hash differs from the target's previous one
    slow: bool = False  # ok, but latency_ms above the target's `slow`
    final_url: str | None = None  # where redirects led, if anywhere else
    remote_addr: str | None = None  # "ip:port" of the server that answered
    kind: str = "http"  # the probe kind (probes/): what the kind-specific fields mean
    # a confirmation probe: run between the target's due times because its state was
    # undecided (failing, not yet DOWN) or DOWN (confirm_interval / recover_interval)
    confirm: bool = False
    # where the last attempt's time went, ms: "dns", "connect", "tls", "ttfb" (request
    # sent to response head), "transfer" (head to body end); None for a phase that did
    # not happen (dns for an address, tls for http, all but ttfb and transfer on a reused
    # connection); None when the probe got no connection at all
    phases_ms: dict[str, float | None] | None = None
    # an HTTPS probe's connection: its leaf certificate, chain expiry, version, cipher
    # (verified or not; also when the handshake failed, if the server sent certificates)
    tls: TlsDetails | None = None
    # addresses = "all": each address behind the name, in the resolver's order
    addresses: tuple[AddressResult, ...] | None = None
    # the target's conditions, in config order, each with its outcome; None without any
    conditions: tuple[ConditionResult, ...] | None = None
    # a dns:// probe's answer; None when no answer came (timeout, connection refused)
    dns: DnsAnswer | None = None
    # tcp://, tls://, ws://: the text `expect` was tried on (UTF-8, undecodable bytes
    # replaced, the first RECEIVED_SHOWN characters); ws: the first message received
    received: str | None = None
    icmp: IcmpDetails | None = None  # icmp:// probes
    push: PushDetails | None = None  # push targets
    browser: BrowserDetails | None = None  # browser targets: the page load in Chromium


@frozen
class RoundSummary:
    type: ClassVar[str] = "round"

    ts: float  # when the round started
    round: int
    targets: int  # probes started in this round
    ok: int
    failed: int
    duration_ms: float
    skipped: int = 0  # due targets not probed because their previous probe still ran
    confirm: int = 0  # of `targets`, the confirmation probes (see ProbeResult.confirm)
    concurrency: int = 0  # the probe limit in force
    dropped: int = 0  # lines a full output channel had to drop since start
    unstored: int = 0  # results the history store could not keep since start
    # per consumer ("output", "history", "webhook[0]", ...): records it had to drop
    # (or, for history, could not store) since start
    drops: dict[str, int] = field(factory=dict)
    # per notifier ("webhook[0]", ...): alerts it gave up on after its retries, since start
    given_up: dict[str, int] = field(factory=dict)
    # how late this round's probes started (due time until they held both limits);
    # None when none started
    lag_p50_ms: float | None = None
    lag_max_ms: float | None = None
    # per notifier ("webhook[0]", ...): alerts it delivered, since start (only those
    # that delivered one)
    sent: dict[str, int] = field(factory=dict)


def _names(value: Any) -> tuple[str, ...] | None:
    """A list read back from JSON (the outbox) is the tuple it was."""
    return None if value is None else tuple(value)


@frozen
class AlertEvent:
    type: ClassVar[str] = "alert"

    ts: float
    target: str
    url: str
    # "down" | "up" | "slow" | "content_changed" | "flapping" | "flap_end" |
    # "cert_expiring" | "cert_renewed" | "reminder" | "group_down" | "group_up" |
    # "degrading"
    event: str
    reason: str | None = None  # the error kind that took it down, or "slow"
    detail: str | None = None
    since: float | None = None  # when the outage (or slowness, or degradation) began
    downtime_s: float | None = None  # for "up": how long it was down
    failures: int | None = None  # consecutive failed probes when "down" fired
    latency_ms: float | None = None  # for "slow"
    slow_ms: float | None = None  # the threshold, for "slow"
    content_hash: str | None = None  # for "content_changed": the new hash
    previous_hash: str | None = None
    changes: int | None = None  # for "flapping" and "flap_end": UP/DOWN changes counted
    state: str | None = None  # for "flapping" and "flap_end": "UP" or "DOWN" at that point
    # for "cert_expiring" and "cert_renewed": the (new) leaf certificate
    subject: str | None = None
    not_after: float | None = None
    days_left: float | None = None
    step_days: float | None = None  # for "cert_expiring": the cert_expiry step crossed, in days
    previous_not_after: float | None = None  # for "cert_renewed": the old certificate's
    # the target's labels ([monitor]'s and its own); None without any
    labels: dict[str, str] | None = None
    # The alert policy (policy/) marks an alert instead of dropping it: it is recorded
    # (JSON lines, history), but only a `deliverable` one reaches notifiers.
    # dependencies: the parents that were DOWN, so this `down` (or its `up`) is not paged
    suppressed_by: tuple[str, ...] | None = field(default=None, converter=_names)
    # what holds it back: "maintenance:NAME" (a window), "silence:ID" (a runtime silence)
    held_by: str | None = None
    # grouping: the group's id on "group_down"/"group_up" and on the members' own alerts
    # folded into it
    group: str | None = None
    cause: str | None = None  # "group_down"/"group_up": what the members share, in words
    members: tuple[str, ...] | None = field(default=None, converter=_names)  # group's targets
    # "reminder": the interval it repeats at, and which reminder this is (1, 2, ...)
    repeat_s: float | None = None
    reminder: int | None = None
    # cluster mode: "target:version", the alert's id across the cluster (cluster/)
    id: str | None = None

    # for "degrading" (trio_monitor/early/): the signal that left its baseline
    # ("latency", "errors", "size", "churn", "cert"), the baseline and the current value
    # in the signal's unit (ms, failure share, bytes, change share, days left), and how
    # far past the warning threshold it is (score 1: just at it)
    signal: str | None = None
    baseline: float | None = None
    current: float | None = None
    score: float | None = None

    @property
    def deliverable(self) -> bool:
        """Sent to notifiers (routing permitting): not held, not suppressed, not folded
        into a group's alert."""
        return not (self.held_by or self.suppressed_by or (self.group and not self.members))

    @property
    def key(self) -> str:
        """The alert's idempotency key: the same for every attempt to deliver it, in
        this process or after a restart (target, event and time make an alert one);
        in a cluster its id, the same on every node."""
        if self.id is not None:
            return self.id
        text = f"{self.target}\n{self.event}\n{self.ts!r}"
        return hashlib.sha256(text.encode()).hexdigest()[:32]


@frozen
class TargetRemoved:
    """A target is no longer monitored: a reload removed it, or it had an open outage
    in history but is not configured at start-up. Its open incident (if any) ends at
    `ts` with the end reason "removed": after that nothing observes it, so nothing
    after counts as downtime. Not an alert: notifiers never see it."""

    type: ClassVar[str] = "removed"

    ts: float  # when monitoring it ended: the reload, or (at start-up) its last stored probe
    target: str
    url: str | None = None  # None when found at start-up (only history knows the name)
    since: float | None = None  # start of the outage this ends; None when it was not down
    # the target's labels as it was configured; None without any (or found at start-up)
    labels: dict[str, str] | None = None


@frozen
class StreamMark:
    """Cluster mode: how far a node's history has folded in one of the cluster's Redis
    streams; stored in the same transaction as the records before it. Not a line."""

    type: ClassVar[str] = "mark"

    stream: str
    id: str


Record = ProbeResult | RoundSummary | AlertEvent | TargetRemoved | StreamMark

_converter = cattrs.Converter()


def _plain_or_none(t: Any) -> bool:
    """`X | None` where X is unstructured as itself (int, str, a StrEnum, ...): so is the
    union, and cattrs' generated functions read such a field instead of calling a
    None-check on it (21 calls a probe line)."""
    args = get_args(t)
    return (
        get_origin(t) in (Union, UnionType)
        and len(args) == 2
        and NoneType in args
        and _converter.get_unstructure_hook(args[args[0] is NoneType]) is identity
    )


_converter.register_unstructure_hook_func(_plain_or_none, identity)


def _time_or_none(ts: float | None) -> str | None:
    return None if ts is None else rfc3339(ts)


# the fields that are times: unix seconds here, RFC 3339 text in a JSON line
_TIMES: tuple[tuple[type, tuple[str, ...]], ...] = (
    (TlsDetails, ("not_before", "not_after", "earliest_not_after")),
    (PushDetails, ("last_ping", "next_due")),
    (ProbeResult, ("ts",)),
    (RoundSummary, ("ts",)),
    (AlertEvent, ("ts", "since", "not_after", "previous_not_after")),
    (TargetRemoved, ("ts", "since")),
)
for _cls, _times in _TIMES:
    _overrides: dict[str, Any] = {name: override(unstruct_hook=_time_or_none) for name in _times}
    _converter.register_unstructure_hook(
        _cls, make_dict_unstructure_fn(_cls, _converter, **_overrides)
    )


# each record class's generated function, called directly: the converter's dispatch
# by class is a twentieth of a probe line's encoding
_UNSTRUCTURE: dict[type, Callable[[Any], dict[str, Any]]] = {
    cls: _converter.get_unstructure_hook(cls)
    for cls in (ProbeResult, RoundSummary, AlertEvent, TargetRemoved, StreamMark)
}


def to_dict(record: Record, labels: Mapping[str, str] | None = None) -> dict:
    """`labels`: a probe line's, its target's from the config (a probe result does
    not carry them: probers never see labels); `null` without any, after every field."""
    line = {"schema": SCHEMA, "type": record.type, **_UNSTRUCTURE[type(record)](record)}
    if record.type == "probe":
        line["labels"] = dict(labels) if labels else None
    return line


def tls_dict(tls: TlsDetails) -> dict:
    """TLS details as the probe line's `tls` object (times in RFC 3339)."""
    return _converter.unstructure(tls)


def to_json(record: Record, labels: Mapping[str, str] | None = None) -> bytes:
    """One JSON line, UTF-8, ending in a newline; keys in a stable order (`labels`: see
    to_dict). orjson: a twentieth of the standard library's time, on every probe."""
    return orjson.dumps(to_dict(record, labels), option=orjson.OPT_APPEND_NEWLINE)


def to_line(record: Record, labels: Mapping[str, str] | None = None) -> str:
    """One JSON object as text, no newline (what alert channels send)."""
    return to_json(record, labels)[:-1].decode()


# --- reading a JSON line back (`trio-monitor simulate` replays recorded lines) ----


def _time_from_text(value: Any, _: Any) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected an RFC 3339 time, got {value!r}")
    when = datetime.fromisoformat(value)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


@functools.cache
def _reader() -> cattrs.Converter:
    """Built at the first line read back: generating its functions costs every start of
    every command a few milliseconds, and only `simulate` reads lines."""
    reader = cattrs.Converter()  # fields a newer version added are ignored
    for cls, times in _TIMES:
        fields: dict[str, Any] = {name: override(struct_hook=_time_from_text) for name in times}
        reader.register_structure_hook(cls, make_dict_structure_fn(cls, reader, **fields))
    return reader


def from_dict(data: dict[str, Any]) -> ProbeResult | AlertEvent:
    """A probe or alert line's object (`to_dict`'s form) -> the record. Raises
    ValueError (or TypeError, KeyError, cattrs' errors) for one that is not well formed."""
    kind = {"probe": ProbeResult, "alert": AlertEvent}.get(data.get("type"))  # type: ignore[arg-type]
    if kind is None:
        raise ValueError(f"not a probe or alert line (type {data.get('type')!r})")
    return _reader().structure(data, kind)
