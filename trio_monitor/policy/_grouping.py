"""Storm grouping: downs that arrive together and share a cause become one `group_down`.

The first deliverable `down` opens a window of `[alerts] group_window`; the downs that
come in it wait. At its end `decide` (a pure function: the members' facts in, groups
out) looks for sets of at least `group_min` of them that share a cause, in the order of
`group_by` (most specific first by default): the same remote address, certificate, DNS
resolver, /24 (IPv4) or /64 (IPv6) network, error, or value of a chosen label. Each set
becomes one `group_down` ("14 targets on 10.1.2.0/24 failing with connect: connection
refused"); its members' own downs go on marked `group` (recorded, not delivered). The
rest go on as they were, late by the window at most.

While a group is open, a later `down` with its cause is folded in at once; members'
`up`s are marked; the last member's recovery sends one `group_up`. Held and suppressed
alerts (earlier stages) are left alone: they are not paged, so they group with nothing.

`facts` reads what a member's down says, its target and its last result (the state
store's); the server groups open incidents with the same two functions.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit

import attrs
from attrs import frozen

from .._config import Config, Target
from .._records import AlertEvent, ProbeResult, rfc3339
from ..conditions import ip_of
from ..engine.state import StateView
from ..store.records import Incident

# how each cause reads after "N targets ..."
_PHRASES = {
    "address": "on {}",
    "network": "on {}",
    "certificate": "with certificate {}",
    "resolver": "resolving through {}",
    "error": "failing with {}",
}
_REASON = re.compile(r"\(([^()]*)\)\s*$")  # "cannot connect to 10.1.2.3:80 (Connection refused)"
MIXED_SHOWN = 3  # errors named in a group of mixed errors


@frozen
class Facts:
    """What a down target's failure may share with others'. None: not known, or not a
    cause for this failure (a resolver is one only when the name did not resolve)."""

    target: str
    address: str | None = None  # the IP that answered or was dialled, else the host name
    network: str | None = None  # its /24 (IPv4) or /64 (IPv6)
    error: str | None = None  # "connect: connection refused": kind and the gist of the detail
    resolver: str | None = None  # "10.0.0.53:53" or "system" (dns failures only)
    certificate: str | None = None  # subject and expiry (tls failures only)
    labels: Mapping[str, str] = attrs.field(factory=dict)

    def value(self, cause: str) -> str | None:
        if cause.startswith("label:"):
            return self.labels.get(cause.removeprefix("label:"))
        value: str | None = getattr(self, cause)
        return value


@frozen
class Group:
    """Members (sorted) that share `by`'s `value`; `error`: the one they all fail with."""

    by: str
    value: str
    members: tuple[str, ...]
    error: str | None

    @property
    def cause(self) -> str:
        """ "network 10.1.2.0/24", "label team=payments": what the alert's `cause` says."""
        if self.by.startswith("label:"):
            return f"label {self.by.removeprefix('label:')}={self.value}"
        return f"{self.by} {self.value}"

    @classmethod
    def of_cause(cls, cause: str, members: Iterable[str]) -> Group:
        """The group a stored `cause` names (the inverse of `cause`; its error unknown)."""
        by, _, value = cause.partition(" ")
        if by == "label":
            name, _, value = value.partition("=")
            by = f"label:{name}"
        return cls(by, value, tuple(sorted(members)), None)

    def describe(self, errors: Iterable[str | None] = ()) -> str:
        """ "14 targets on 10.1.2.0/24 failing with connect: connection refused"."""
        if self.by.startswith("label:"):
            where = f"with {self.by.removeprefix('label:')}={self.value}"
        else:
            where = _PHRASES[self.by].format(self.value)
        text = f"{len(self.members)} targets {where}"
        if self.by == "error":
            return text
        if self.error is not None:
            return f"{text} failing with {self.error}"
        counts = Counter(e for e in errors if e is not None).most_common(MIXED_SHOWN)
        shown = ", ".join(f"{e} x{n}" for e, n in counts)
        return f"{text} failing ({shown})" if shown else text


def decide(
    members: Iterable[Facts], group_by: Sequence[str], group_min: int
) -> tuple[list[Group], list[str]]:
    """Down targets' facts -> (groups, the targets left alone). Pure, and the order of
    `members` does not matter: for each cause in `group_by`'s order, its values from the
    most shared (then by value), each a group if >= group_min targets not yet in one
    have it. A target is in one group at most."""
    facts = {f.target: f for f in members}
    free = set(facts)
    groups: list[Group] = []
    for cause in group_by:
        sharing: dict[str, set[str]] = {}
        for name in free:
            value = facts[name].value(cause)
            if value is not None:
                sharing.setdefault(value, set()).add(name)
        for value, names in sorted(sharing.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            names &= free
            if len(names) >= group_min:
                errors = {facts[n].error for n in names}
                error = errors.pop() if len(errors) == 1 else None
                groups.append(Group(cause, value, tuple(sorted(names)), error))
                free -= names
    return groups, sorted(free)


def _gist(detail: str | None) -> str | None:
    """An error detail without what differs per target (its address): the reason in
    its closing parentheses, if it has one."""
    if detail is None:
        return None
    found = _REASON.search(detail)
    return found.group(1).lower() if found else detail


def error_of(reason: str | None, detail: str | None) -> str | None:
    if reason is None:
        return None
    gist = _gist(detail)
    return reason if not gist else f"{reason}: {gist}"


def _network(address: str | None) -> str | None:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return None
    return str(ipaddress.ip_network(f"{ip}/{24 if ip.version == 4 else 64}", strict=False))


def _host(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def facts(
    name: str,
    url: str,
    reason: str | None,
    detail: str | None,
    labels: Mapping[str, str] | None,
    target: Target | None,
    last: ProbeResult | None,
) -> Facts:
    """A down target's facts from its down (reason, detail), its config and its last
    result. The address is the one that answered, else the URL's host: a refused
    connection has no peer, and targets on the same host share it."""
    address = ip_of(last.remote_addr) if last is not None and last.remote_addr else _host(url)
    resolver = certificate = None
    if reason == "dns":
        if last is not None and last.dns is not None:
            resolver = last.dns.server
        else:
            configured = getattr(target.spec, "resolver", None) if target else None
            resolver = "system" if configured is None else "{}:{}".format(*configured)
    if reason == "tls" and last is not None and last.tls is not None:
        certificate = f"{last.tls.subject} (expires {rfc3339(last.tls.not_after)})"
    return Facts(
        target=name,
        address=address,
        network=_network(address),
        error=error_of(reason, detail),
        resolver=resolver,
        certificate=certificate,
        labels=dict(labels or {}),
    )


def _recovers(alert: AlertEvent) -> bool:
    """The target is UP again: its `up`, or a flapping spell that settled UP."""
    return alert.event == "up" or (alert.event == "flap_end" and alert.state == "UP")


def _shared_labels(labels: Iterable[Mapping[str, str] | None]) -> dict[str, str] | None:
    """The labels every member has, with the same value (routing reads them)."""
    common: dict[str, str] | None = None
    for each in labels:
        mine = dict(each or {})
        common = mine if common is None else {k: v for k, v in common.items() if mine.get(k) == v}
    return common or None


@attrs.define
class _Open:
    """A group sent as `group_down`, until its last member recovers."""

    id: str
    group: Group
    since: float
    members: list[str]  # every target folded in, in order
    down: set[str]  # those not recovered yet
    labels: dict[str, str] | None


class Grouping:
    """The grouping stage (see the module's docstring)."""

    def __init__(self, config: Config, state: StateView | None) -> None:
        self._state = state
        self._waiting: dict[str, tuple[AlertEvent, Facts]] = {}  # the window's downs
        self._due: float | None = None  # the window's end
        self._open: dict[str, _Open] = {}
        self._member_of: dict[str, _Open] = {}
        self._closing: list[_Open] = []  # groups a reload emptied: their group_up is due
        self.configure(config)

    def configure(self, config: Config) -> None:
        self._window = config.alerts.group_window
        self._min = config.alerts.group_min
        self._by = config.alerts.group_by
        self._targets = {t.name: t for t in config.targets}
        if not self._window and self._waiting:
            self._due = -math.inf  # grouping turned off: release the window at once
        for name in [n for n in self._member_of if n not in self._targets]:
            # a removed target recovers nothing: it leaves its group
            group = self._member_of.pop(name)
            group.down.discard(name)
            if not group.down:
                del self._open[group.id]
                self._closing.append(group)

    def resume(self, outages: Iterable[Incident], now: float, wall: float) -> None:
        """Groups open when the monitor last stopped, from history's open incidents of
        targets still configured (their `group` and `cause`): the members recover into
        them, the last one's recovery sends the `group_up`."""
        found: dict[str, list[tuple[str, float, str]]] = {}
        for i in outages:
            if (
                i.group
                and i.cause
                and i.target in self._targets
                and i.target not in self._member_of
            ):
                found.setdefault(i.group, []).append((i.target, i.start, i.cause))
        for gid, members in found.items():
            names = sorted(m for m, _, _ in members)
            labels = _shared_labels(dict(self._targets[m].labels) for m in names)
            group = Group.of_cause(members[0][2], names)
            state = _Open(gid, group, min(s for _, s, _ in members), names, set(names), labels)
            self._open[gid] = state
            for name in names:
                self._member_of[name] = state

    def next_tick(self) -> float | None:
        return -math.inf if self._closing else self._due

    def process(self, alerts: list[AlertEvent], now: float) -> list[AlertEvent]:
        out: list[AlertEvent] = []
        for alert in alerts:
            if _recovers(alert):
                out += self._recovered(alert)
            elif alert.event == "down" and alert.deliverable and self._window:
                out += self._down(alert, now)
            else:
                out.append(alert)
        return out

    def tick(self, now: float, wall: float) -> list[AlertEvent]:
        out = self._closed(wall)
        if self._due is not None and self._due <= now:
            out += self._release(wall)
        return out

    def flush(self, now: float, wall: float) -> list[AlertEvent]:
        """The window's downs go out now, grouped as its end would have."""
        return self._closed(wall) + self._release(wall)

    def _closed(self, wall: float) -> list[AlertEvent]:
        closing, self._closing = self._closing, []
        return [self._group_up(group, wall) for group in closing]

    def _facts(self, alert: AlertEvent) -> Facts:
        st = None if self._state is None else self._state.get(alert.target)
        return facts(
            alert.target,
            alert.url,
            alert.reason,
            alert.detail,
            alert.labels,
            self._targets.get(alert.target),
            None if st is None else st.last,
        )

    def _down(self, alert: AlertEvent, now: float) -> list[AlertEvent]:
        found = self._facts(alert)
        for group in self._open.values():
            if found.value(group.group.by) == group.group.value:
                group.members.append(alert.target)
                group.down.add(alert.target)
                self._member_of[alert.target] = group
                return [_folded(alert, group)]
        self._waiting[alert.target] = (alert, found)
        if self._due is None:
            self._due = now + self._window
        return []

    def _recovered(self, alert: AlertEvent) -> list[AlertEvent]:
        waiting = self._waiting.pop(alert.target, None)
        if waiting is not None:  # back within the window: its down goes out, then this
            return [waiting[0], alert]
        group = self._member_of.pop(alert.target, None)
        if group is None:
            return [alert]
        group.down.discard(alert.target)
        out = [attrs.evolve(alert, group=group.id) if alert.deliverable else alert]
        if not group.down:
            del self._open[group.id]
            out.append(self._group_up(group, alert.ts))
        return out

    def _release(self, wall: float) -> list[AlertEvent]:
        """The window's end: its downs, grouped where they share a cause."""
        waiting, self._waiting, self._due = self._waiting, {}, None
        groups, _ = decide((f for _, f in waiting.values()), self._by, self._min)
        out: list[AlertEvent] = []
        grouped: dict[str, _Open] = {}
        for group in groups:
            downs = [waiting[m][0] for m in group.members]
            since = min(d.ts if d.since is None else d.since for d in downs)
            key = f"{group.cause}\n{since!r}\n{' '.join(group.members)}"
            gid = "group-" + hashlib.sha256(key.encode()).hexdigest()[:10]
            labels = _shared_labels(d.labels for d in downs)
            state = _Open(gid, group, since, list(group.members), set(group.members), labels)
            self._open[gid] = state
            for member in group.members:
                self._member_of[member] = grouped[member] = state
            out.append(
                AlertEvent(
                    ts=wall,
                    target=gid,
                    url=f"group:{gid}",
                    event="group_down",
                    reason=_shared_reason(downs),
                    detail=group.describe(waiting[m][1].error for m in group.members),
                    since=since,
                    labels=state.labels,
                    group=gid,
                    cause=group.cause,
                    members=group.members,
                )
            )
        for alert, _ in waiting.values():  # in the order they came
            folded = grouped.get(alert.target)
            out.append(alert if folded is None else _folded(alert, folded))
        return out

    def _group_up(self, group: _Open, end: float) -> AlertEvent:
        """The last member recovered, or a reload removed it, at `end`."""
        n = len(group.members)
        return AlertEvent(
            ts=end,
            target=group.id,
            url=f"group:{group.id}",
            event="group_up",
            detail=f"all {n} targets of the group ({group.group.cause}) are up",
            since=group.since,
            downtime_s=round(max(0.0, end - group.since), 3),
            labels=group.labels,
            group=group.id,
            cause=group.group.cause,
            members=tuple(group.members),
        )


def _folded(down: AlertEvent, group: _Open) -> AlertEvent:
    """A member's own down, marked with its group (not delivered) and the group's cause:
    its incident keeps both, so a restart rebuilds the group (`Grouping.resume`)."""
    return attrs.evolve(down, group=group.id, cause=group.group.cause)


def _shared_reason(downs: Sequence[AlertEvent]) -> str | None:
    reasons: set[str | None] = {d.reason for d in downs}
    return reasons.pop() if len(reasons) == 1 else None
