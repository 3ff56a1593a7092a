"""Routing (alerts/routing.py): which notifier takes which alert, by event, labels,
the target's `notify` list and reminder pace; through the running notifiers too."""

from __future__ import annotations

import memory_notifier
import pytest
import trio
from factories import alert_event

from trio_monitor import parse_config
from trio_monitor.alerts.base import Notifiers
from trio_monitor.alerts.routing import accepts
from trio_monitor.engine.dispatch import Dispatcher
from trio_monitor.engine.state import MemoryStateStore

pytestmark = pytest.mark.usefixtures("memory_channel")


def fleet(*tables, targets=None, monitor=None):
    return parse_config(
        {
            "monitor": monitor or {},
            "alerts": {"memory": list(tables)},
            "targets": targets
            or [
                {"name": "pay", "url": "http://127.0.0.1/p", "labels": {"team": "payments"}},
                {"name": "web", "url": "http://127.0.0.1/w", "labels": {"team": "web"}},
            ],
        }
    )


def predicate(config, index=0):
    table = config.alerts.channels("memory")[index]
    return accepts(table, table.name, {t.name: t for t in config.targets})


def test_match_needs_every_label_equal():
    wants = predicate(fleet({"name": "p", "match": {"team": "payments"}}))
    assert wants(alert_event("down", "pay"))
    assert not wants(alert_event("down", "web"))


def test_match_re_matches_whole_values_and_needs_the_label():
    config = fleet(
        {"name": "p", "match_re": {"team": "pay"}},
        {"name": "q", "match_re": {"team": "pay.*|web"}},
        {"name": "r", "match_re": {"env": ".*"}},
    )
    assert not predicate(config, 0)(alert_event("down", "pay"))  # "pay" is not "payments"
    assert predicate(config, 1)(alert_event("down", "pay"))
    assert predicate(config, 1)(alert_event("down", "web"))
    assert not predicate(config, 2)(alert_event("down", "web"))  # no env label at all


def test_monitor_labels_are_defaults_under_the_targets_own():
    config = fleet(
        {"name": "prod", "match": {"env": "prod", "team": "web"}},
        monitor={"labels": {"env": "prod", "team": "ops"}},
    )
    pay, _web = config.targets
    assert dict(pay.labels) == {"env": "prod", "team": "payments"}
    assert predicate(config)(alert_event("down", "web"))
    assert not predicate(config)(alert_event("down", "pay"))


def test_events_and_the_targets_notify_list():
    config = fleet(
        {"name": "pager", "events": ["down"]},
        {"name": "chat"},
        targets=[
            {"name": "a", "url": "http://127.0.0.1/a", "alerts": {"notify": ["chat"]}},
            {"name": "b", "url": "http://127.0.0.1/b", "alerts": {"notify": []}},
            {"name": "c", "url": "http://127.0.0.1/c"},
        ],
    )
    pager, chat = predicate(config, 0), predicate(config, 1)
    assert [pager(alert_event("down", t)) for t in "abc"] == [False, False, True]
    assert [chat(alert_event("down", t)) for t in "abc"] == [True, False, True]
    assert not pager(alert_event("up", "c"))


def test_marked_alerts_reach_no_notifier_but_a_groups_own_does():
    wants = predicate(fleet({"name": "all"}))
    assert not wants(alert_event("down", "pay", held_by="silence:1"))
    assert not wants(alert_event("down", "pay", suppressed_by=("router",)))
    assert not wants(alert_event("down", "pay", group="g1"))  # folded into the group's
    group = alert_event("group_down", "g1", group="g1", members=("pay", "web"))
    assert group.deliverable
    assert wants(group)


def test_a_group_alert_goes_where_any_members_would():
    wants = predicate(fleet({"name": "p", "match": {"team": "payments"}}))
    assert wants(alert_event("group_down", "g", group="g", members=("web", "pay")))
    assert not wants(alert_event("group_down", "g", group="g", members=("web",)))


def test_reminders_go_at_the_notifiers_own_pace_else_the_targets():
    config = fleet(
        {"name": "own", "repeat": "10m"},
        {"name": "inherits"},
        targets=[{"name": "a", "url": "http://127.0.0.1/a", "alerts": {"repeat": "1h"}}],
    )
    own, inherits = predicate(config, 0), predicate(config, 1)
    hourly = alert_event("reminder", "a", repeat_s=3600.0, reminder=1)
    ten = alert_event("reminder", "a", repeat_s=600.0, reminder=1)
    assert (own(hourly), own(ten)) == (False, True)
    assert (inherits(hourly), inherits(ten)) == (True, False)
    no_repeat = fleet({"name": "x"}, targets=[{"name": "a", "url": "http://127.0.0.1/a"}])
    assert not predicate(no_repeat)(hourly)


def test_an_unconfigured_target_is_routed_by_the_labels_it_carries():
    wants = predicate(fleet({"name": "p", "match": {"team": "payments"}}))
    assert wants(alert_event("down", "gone", labels={"team": "payments"}))
    assert not wants(alert_event("down", "gone"))


async def test_running_notifiers_route_and_a_reload_reroutes():
    """Without an outbox each notifier is a dispatcher outlet: its predicate decides;
    a reload that relabels a target reroutes it without restarting the notifier."""
    config = fleet({"name": "payments", "match": {"team": "payments"}})
    dispatcher = Dispatcher(MemoryStateStore(config.alerts))
    async with trio.open_nursery() as nursery:
        notifiers = Notifiers(dispatcher, nursery, client=None)
        notifiers.configure(config)
        dispatcher.publish(alert_event("down", "web", ts=1.0))
        dispatcher.publish(alert_event("down", "pay", ts=2.0))
        relabelled = fleet(
            {"name": "payments", "match": {"team": "payments"}},
            targets=[{"name": "web", "url": "http://127.0.0.1/w", "labels": {"team": "payments"}}],
        )
        await notifiers.reconfigure(config, relabelled)
        dispatcher.publish(alert_event("down", "web", ts=3.0))
        delivered = await memory_notifier.wait_delivered("payments", 2)
        dispatcher.close()
        notifiers.close()
    assert [(a.target, a.ts) for a in delivered] == [("pay", 2.0), ("web", 3.0)]
