"""The alert policy on a cluster's alerts: every node computes the same alerts.

    {tm}:outbox ──▶ ClusterPolicy.entry ──▶ Policy (policy/: holds, dependencies,
    (verdicts,       ClusterPolicy.until       grouping, reminders) ──▶ (time, id, alert)
    events,                                          │
    silences)                                        ▼
                           tm_alert: into {tm}:alerts once per id ──▶ the notifiers'
                           consumer groups, every node's history

Every node reads the whole outbox in order and runs its own `Policy` over it. The
policy's clock is the stream's: an entry is processed at its id's time (Redis's clock,
the same for every node), and the stages' due times are ticked at exactly their time,
once everything before it has been read (`until`). So the policy is a pure function of
the stream: every node makes the same alerts, with the same content and the same ids,
and `tm_alert` takes each once, whichever node comes first; a node stopping changes
nothing, since the others compute the same.

The stages read the cluster's verdicts (`Verdicts`: the outbox's `down`s and `up`s),
not the node's own view. Runtime silences are outbox entries too (`silence`), so a
silence made through any node holds at the same point of the stream on every node.

Ids: an alert of the outbox keeps its id (its Idempotency-Key as before); one a stage
makes again later (a held `down` released at its hold's end, a suppressed `down` paged
when its parents recover) adds its new time (`TARGET:VERSION/MS`); a group's alerts are
`GROUP:group_down` and `GROUP:group_up`; a reminder names its outage's start, interval
and number (`TARGET:reminder@SINCE_MS/REPEAT/K`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from .._config import Config
from .._records import AlertEvent
from ..engine.state import DOWN, UP, TargetState
from ..policy import Holds, Policy, Silence

# an output: (its time on the stream's clock, its id, the alert carrying that id)
Output = tuple[float, str, AlertEvent]
# a reminder this far behind what was read (s), and its next one due too, is left out:
# nobody ran the policy for that long (every node was away); a node merely slow is not
STALE_S = 60.0


def stream_time(entry_id: str) -> float:
    """ "1764531234567-0" -> 1764531234.567 (Redis's clock when it was added)."""
    return int(entry_id.partition("-")[0]) / 1000


def _ms(ts: float) -> str:
    return f"{ts * 1000:.0f}"


class Verdicts:
    """The cluster's verdicts, from the outbox's `down` and `up` (what the stages read)."""

    def __init__(self) -> None:
        self._states: dict[str, TargetState] = {}

    def get(self, name: str) -> TargetState | None:
        return self._states.get(name)

    def saw(self, alert: AlertEvent) -> None:
        if alert.event == "down":
            self._states[alert.target] = TargetState(state=DOWN, since=alert.since or alert.ts)
        elif alert.event == "up":
            self._states[alert.target] = TargetState(state=UP, since=alert.ts)


def silence_entry(silence: Silence) -> str:
    """A silence as the outbox carries it (JSON)."""
    return json.dumps(attrs.asdict(silence), separators=(",", ":"))


def _silence(text: str) -> Silence:
    data: dict[str, Any] = json.loads(text)
    data["targets"] = tuple(data.get("targets") or ())
    return Silence(**data)


class ClusterPolicy:
    """One node's run of the policy over the outbox, on the stream's clock."""

    def __init__(
        self, config: Config, silenced: Callable[[Silence], None] = lambda _: None
    ) -> None:
        self.verdicts = Verdicts()
        self._silenced = silenced  # told each silence too (the node's local alerts)
        self.policy = Policy(config, self.verdicts)
        (self.holds,) = (s for s in self.policy.stages if isinstance(s, Holds))
        self.clock = -math.inf  # the stream time processed through
        # ids of alerts sent held or suppressed: the same alert made again gets its own id
        self._marked: set[str] = set()

    def entry(
        self, entry_id: str, fields: dict[str, str], alert: AlertEvent | None
    ) -> list[Output]:
        """One outbox entry (`alert`: it as an alert, None if it is none) -> the alerts
        it and the due times before it make."""
        t = stream_time(entry_id)
        out = self.until(t, inclusive=False)
        self.clock = max(self.clock, t)
        if "silence" in fields:
            silence = _silence(fields["silence"])
            self.holds.silence(silence)  # held from the next tick on
            self._silenced(silence)
            return out + self.until(t)
        if alert is None:
            return out
        self.verdicts.saw(alert)
        return out + self._named(self.policy.process([alert], self.clock), self.clock)

    def until(self, frontier: float, *, inclusive: bool = True) -> list[Output]:
        """Tick every due time up to `frontier` (the stream read through it), each at
        its own time. A reminder that a later one of its grid replaces and that is
        STALE_S behind (nobody ran the policy for a while) is left out."""
        out: list[Output] = []
        while (due := self.policy.next_tick()) < frontier or (inclusive and due == frontier):
            self.clock = at = max(due, self.clock)
            made = self._named(self.policy.tick(at, at), at)
            out += [o for o in made if not _superseded(o[2], frontier)]
        return out

    def _named(self, alerts: Iterable[AlertEvent], at: float) -> list[Output]:
        out = []
        for alert in alerts:
            alert_id = self._id(alert)
            if alert.held_by is not None or alert.suppressed_by is not None:
                self._marked.add(alert_id)
            out.append((at, alert_id, attrs.evolve(alert, id=alert_id)))
        return out

    def _id(self, alert: AlertEvent) -> str:
        if alert.event == "reminder":
            since = alert.ts if alert.since is None else alert.since
            return f"{alert.target}:reminder@{_ms(since)}/{alert.repeat_s:g}/{alert.reminder}"
        if alert.id is None:  # a group's: its id names the group's cause, start and members
            return f"{alert.target}:{alert.event}"
        if alert.id in self._marked:  # made again: released, or paged after its parents
            return f"{alert.id}/{_ms(alert.ts)}"
        return alert.id

    async def reconfigure(self, old: Config, new: Config) -> None:
        await self.policy.reconfigure(old, new)


def _superseded(alert: AlertEvent, frontier: float) -> bool:
    return (
        alert.event == "reminder"
        and alert.repeat_s is not None
        and alert.ts + max(alert.repeat_s, STALE_S) <= frontier
    )
