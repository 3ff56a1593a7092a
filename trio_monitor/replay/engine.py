"""The replay: recorded probe results through a candidate config's own alert code.

Nothing here decides an alert. Each result goes through `Dispatcher.probed` (the live
monitor's dispatch point: the state machine, `StateStore.observe`, then the alert
policy, `Policy.process`, with every stage the monitor builds for that config), with
`now` = the result's recorded `ts`; between results the policy's due times are ticked
as `Dispatcher.run_policy` does (now = wall = the due time); at the end it is flushed
as when the monitor stops. Every alert published is routed as the notifiers route it
(alerts/routing.py `accepts`, per configured notifier, named as the monitor names them).

What is added is bookkeeping only: per notifier the alerts it would have been sent,
and per outage (a target's stay in DOWN, by the candidate's state machine: from its
first failed probe to its recovery) when the first page (a `down`, `group_down` or
`flapping` routed to a notifier) went out, or why none did.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterable

from attrs import define, field

from .._config import Config
from .._records import TS_MIN, AlertEvent, ProbeResult, Record
from ..alerts import routing
from ..alerts.base import configured
from ..early import EarlyWarning
from ..engine.dispatch import Dispatcher
from ..engine.state import DOWN, MemoryStateStore
from ..policy import Policy

PAGES = frozenset({"down", "group_down", "flapping"})  # alerts that tell of an outage


@define
class Outage:
    target: str
    start: float  # its first failed probe (the state machine's `since`)
    end: float | None = None  # recovery; None: still DOWN at the end of the recording
    page: float | None = None  # the candidate's first page for it
    recorded_page: float | None = None  # the recording's
    quiet: str | None = None  # why the candidate's down did not page, if it did not

    @property
    def time_to_alert(self) -> float | None:
        return None if self.page is None else round(self.page - self.start, 3)

    @property
    def recorded_time_to_alert(self) -> float | None:
        return None if self.recorded_page is None else round(self.recorded_page - self.start, 3)


@define
class Notifier:
    name: str
    identity: str  # as the outbox records it (alerts/base.py `identity`)
    accepts: Callable[[AlertEvent], bool]
    alerts: list[AlertEvent] = field(factory=list)  # the replay would have sent these


def _quiet_reason(alert: AlertEvent) -> str:
    if alert.suppressed_by:
        return "suppressed by " + ", ".join(alert.suppressed_by)
    if alert.held_by:
        return f"held by {alert.held_by}"
    if alert.group:
        return f"folded into {alert.group}"
    return "routed to no notifier"


class Replay:
    """Feed it recorded results in time order (`feed`), then `finish`."""

    def __init__(self, config: Config) -> None:
        self.targets = {t.name: t for t in config.targets}
        self.state = MemoryStateStore(config.alerts)
        # as _lifecycle.Monitor builds them (early warning learns its baselines afresh
        # from the replayed results: the stored ones are the present's, not the past's)
        self.policy = Policy(config, self.state)
        self.dispatcher = Dispatcher(
            self.state, self.policy, EarlyWarning.for_config(config, self.state)
        )
        self.dispatcher.add_observer(self._published)
        self.notifiers = [
            Notifier(name, ident, routing.accepts(table, name, self.targets))
            for _, name, table, ident in configured(config.alerts)
        ]
        self.probes = 0
        self.first: float | None = None
        self.last: float | None = None
        self.made: Counter[str] = Counter()  # every alert the policy let out, by event
        self.outages: list[Outage] = []
        self._latest: dict[str, Outage] = {}  # each target's latest outage
        self._was: dict[str, str] = {}  # each target's state before its latest result

    def feed(self, result: ProbeResult) -> None:
        self._tick(result.ts)
        self.probes += 1
        self.first = result.ts if self.first is None else self.first
        self.last = result.ts
        st = self.state.get(result.target)
        self._was[result.target] = "" if st is None else st.state
        self.dispatcher.probed(self.targets[result.target], result, result.ts, current=True)

    def _tick(self, until: float) -> None:
        """The policy's due times up to `until`, as run_policy would have met them."""
        while (due := self.policy.next_tick()) <= until:
            for alert in self.policy.tick(due, due):
                self.dispatcher.publish(alert)
            if self.policy.next_tick() <= due:
                break  # a stage not done with `due`: it is asked again at the next result

    def finish(self) -> None:
        """The end of the recording: what is due by its last result, then what the
        policy holds back only for a moment goes out, as when the monitor stops."""
        end = TS_MIN if self.last is None else self.last
        self._tick(end)
        for alert in self.policy.flush(end, end):
            self.dispatcher.publish(alert)

    def _published(self, record: Record) -> None:
        if isinstance(record, ProbeResult):
            self._observed(record)
        elif isinstance(record, AlertEvent):
            self.made[record.event] += 1
            routed = [n for n in self.notifiers if n.accepts(record)]
            for n in routed:
                n.alerts.append(record)
            latest = self._latest.get(record.target)
            if (
                not routed
                and record.event in PAGES
                and latest is not None
                and latest.quiet is None
                and latest.end is None
            ):
                latest.quiet = _quiet_reason(record)

    def _observed(self, result: ProbeResult) -> None:
        st = self.state.get(result.target)
        if st is None:
            return
        was, now = self._was.get(result.target, ""), st.state
        if now == DOWN and was != DOWN:
            outage = Outage(result.target, st.since if st.since is not None else result.ts)
            if st.flapping:
                outage.quiet = "flapping (its alerts are held until it settles)"
            self.outages.append(outage)
            self._latest[result.target] = outage
        elif was == DOWN and now != DOWN:
            self._latest[result.target].end = result.ts

    def pages(self) -> dict[str, list[float]]:
        """Per target, the times a page naming it went to some notifier."""
        return page_times(a for n in self.notifiers for a in n.alerts)

    def settle(self, recorded: Iterable[AlertEvent]) -> None:
        """Each outage's first page, the candidate's and the recording's."""
        assign_pages(self.outages, self.pages(), "page")
        assign_pages(self.outages, page_times(recorded), "recorded_page")


def page_times(alerts: Iterable[AlertEvent]) -> dict[str, list[float]]:
    times: dict[str, set[float]] = {}
    for a in alerts:
        if a.event in PAGES:
            for name in a.members or (a.target,):
                times.setdefault(name, set()).add(a.ts)
    return {name: sorted(ts) for name, ts in times.items()}


def assign_pages(outages: list[Outage], pages: dict[str, list[float]], attr: str) -> None:
    """An outage's page: the first page naming its target at or after its start and
    before the target's next outage starts."""
    by_target: dict[str, list[Outage]] = {}
    for o in outages:
        by_target.setdefault(o.target, []).append(o)
    for name, its in by_target.items():
        times = pages.get(name, [])
        for i, o in enumerate(its):
            nxt = its[i + 1].start if i + 1 < len(its) else None
            k = bisect.bisect_left(times, o.start)
            if k < len(times) and (nxt is None or times[k] < nxt):
                setattr(o, attr, times[k])
