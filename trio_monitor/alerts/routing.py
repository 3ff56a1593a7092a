"""Routing: which notifiers an alert goes to.

A notifier takes a deliverable alert (not held, suppressed or folded into a group's:
policy/) when it wants the event (`events`), the target's labels agree with its `match`
(every key equal) and `match_re` (every key's whole value matches), and the target's
`[targets.alerts] notify` list, if it has one, names it. A group's alert goes where any
of its members' would. A `reminder` goes to a notifier whose own `repeat` (else the
target's) is the reminder's interval: each notifier hears an outage repeated at its own
pace, and not at all when neither sets one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from .._records import AlertEvent

if TYPE_CHECKING:  # _config reads this package's registry
    from .._config import AlertsSection, ChannelSection, Target


def _labels_match(table: ChannelSection, labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in table.match.items()) and all(
        k in labels and pattern.fullmatch(labels[k]) for k, pattern in table.match_re
    )


def _named_by(target: Target, name: str) -> bool:
    return target.notify is None or name in target.notify


def _repeats_at(table: ChannelSection, target: Target, alert: AlertEvent) -> bool:
    every = table.repeat if table.repeat is not None else target.repeat
    return every is not None and every == alert.repeat_s


def reminder_intervals(alerts: AlertsSection, target: Target) -> frozenset[float]:
    """The intervals a DOWN target's `reminder`s are made at: the target's own
    `repeat`, and that of every notifier that would take its reminders (`repeat`
    unset: the target's), so each of them hears the outage at its own pace."""
    every = {target.repeat} if target.repeat is not None else set()
    for key, tables in alerts.notifiers.items():
        for i, table in enumerate(tables):
            name = table.name or f"{key}[{i}]"
            if table.repeat is not None and (
                "reminder" in table.events
                and _labels_match(table, target.labels)
                and _named_by(target, name)
            ):
                every.add(table.repeat)
    return frozenset(every)


def _for(table: ChannelSection, name: str, target: Target, alert: AlertEvent) -> bool:
    return (
        _labels_match(table, target.labels)
        and _named_by(target, name)
        and (alert.event != "reminder" or _repeats_at(table, target, alert))
    )


def accepts(
    table: ChannelSection, name: str, targets: Mapping[str, Target]
) -> Callable[[AlertEvent], bool]:
    """The predicate of notifier `name` (configured by `table`) over the config's targets.
    An alert for a target no longer configured (re-sent from the outbox after a reload
    removed it) is routed by the labels it carries."""

    def accept(alert: AlertEvent) -> bool:
        if not alert.deliverable or alert.event not in table.events:
            return False
        subjects = alert.members or (alert.target,)
        return any(
            _for(table, name, target, alert)
            if (target := targets.get(subject)) is not None
            else subject == alert.target and _labels_match(table, alert.labels or {})
            for subject in subjects
        )

    return accept
