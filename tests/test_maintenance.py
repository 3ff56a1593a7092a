"""Maintenance windows and silences (policy/_maintenance.py): when a window holds
(pure functions on wall time, daylight-saving changes included), the config's
validation, and the stage: held alerts, an `up` that closes a page, one `down` when a
hold ends on a target still DOWN."""

from __future__ import annotations

import math
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from factories import alert_event, config_doc, make_config, probe_result

from trio_monitor import ConfigError
from trio_monitor.engine.state import MemoryStateStore
from trio_monitor.policy import Policy
from trio_monitor.policy._maintenance import Holds, Silence, next_occurrence, occurrence
from trio_monitor.store.records import Incident

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


def at(zone: ZoneInfo, *parts: int, fold: int = 0) -> float:
    return datetime(*parts, tzinfo=zone, fold=fold).timestamp()  # type: ignore[misc]


def window(**keys):
    doc = config_doc(
        {"name": "api", "url": "http://127.0.0.1/", "labels": {"team": "pay"}},
        {"name": "db", "url": "http://127.0.0.2/"},
        alerts={"failure_threshold": 1},
    )
    doc["maintenance"] = [{"name": "w", "match": {"team": "pay"}, **keys}]
    return make_config(doc)


# --- when a window holds ---------------------------------------------------------


def test_a_one_off_window_holds_from_its_start_up_to_its_end():
    (w,) = window(start="2026-12-01T02:00:00+01:00", end="2026-12-01T04:00:00+01:00").maintenance
    start, end = at(BERLIN, 2026, 12, 1, 2), at(BERLIN, 2026, 12, 1, 4)
    assert occurrence(w, start - 1) is None
    assert occurrence(w, start) == (start, end)
    assert occurrence(w, end - 0.001) == (start, end)
    assert occurrence(w, end) is None
    assert next_occurrence(w, start - 3600) == (start, end)
    assert next_occurrence(w, end) is None


def test_a_weekly_window_holds_each_week_in_its_own_zone():
    # Sundays 02:00 Berlin time for 2 hours, CET in winter and CEST in summer
    (w,) = window(cron="0 2 * * 0", duration="2h", timezone="Europe/Berlin").maintenance
    winter = at(BERLIN, 2026, 12, 6, 2)  # a Sunday
    assert occurrence(w, winter + 3599) == (winter, winter + 7200)
    assert occurrence(w, winter + 7200) is None
    assert occurrence(w, winter - 1) is None
    assert next_occurrence(w, winter + 7200) == (winter + 7 * 86400, winter + 7 * 86400 + 7200)
    summer = at(BERLIN, 2026, 7, 5, 2)
    assert occurrence(w, summer + 60) == (summer, summer + 7200)
    assert datetime.fromtimestamp(summer, BERLIN).utcoffset().total_seconds() == 7200


def test_a_start_that_does_not_exist_on_a_spring_forward_day_is_at_03_00():
    # 2026-03-29: Berlin's clocks jump from 02:00 CET to 03:00 CEST; 02:30 never happens
    (w,) = window(cron="30 2 * * *", duration="1h", timezone="Europe/Berlin").maintenance
    start = at(BERLIN, 2026, 3, 29, 3)
    assert datetime.fromtimestamp(start, BERLIN).utcoffset().total_seconds() == 7200
    assert next_occurrence(w, at(BERLIN, 2026, 3, 29, 0)) == (start, start + 3600)
    assert occurrence(w, start - 1) is None  # 01:59:59 CET, a second before the jump
    assert occurrence(w, start + 3599) == (start, start + 3600)  # an hour of real time
    assert occurrence(w, start + 3600) is None
    # the days around it: 02:30 as usual
    assert occurrence(w, at(BERLIN, 2026, 3, 28, 2, 45)) is not None
    assert occurrence(w, at(BERLIN, 2026, 3, 30, 2, 45)) is not None


def test_a_start_that_happens_twice_on_a_fall_back_day_is_the_first_one():
    # 2026-11-01: New York's clocks go from 02:00 EDT back to 01:00 EST; 01:30 is twice
    (w,) = window(cron="30 1 * * *", duration="1h", timezone="America/New_York").maintenance
    first = at(NEW_YORK, 2026, 11, 1, 1, 30)  # EDT, fold 0
    second = at(NEW_YORK, 2026, 11, 1, 1, 30, fold=1)  # EST, an hour later
    assert second - first == 3600
    assert occurrence(w, first) == (first, first + 3600)
    assert occurrence(w, second - 1) == (first, first + 3600)
    assert occurrence(w, second) is None  # the second 01:30 starts no second window
    assert next_occurrence(w, second) == (
        at(NEW_YORK, 2026, 11, 2, 1, 30),
        at(NEW_YORK, 2026, 11, 2, 1, 30) + 3600,
    )


# --- the config --------------------------------------------------------------------


def problems(*windows, targets=({"name": "api", "url": "http://127.0.0.1/"},)):
    doc = config_doc(*targets)
    doc["maintenance"] = list(windows)
    with pytest.raises(ConfigError) as caught:
        make_config(doc)
    return [line.removeprefix("<memory>: ") for line in caught.value.problems]


def test_each_bad_window_is_one_line_with_its_key_path():
    assert problems(
        {"name": "a", "targets": ["api"], "cron": "61 2 * * *", "duration": "1h"},
        {"name": "b", "match": {}, "cron": "0 2 * * *", "duration": "1h", "timezone": "Mars/Base"},
        {"name": "c", "targets": ["nope"], "start": "2026-12-01T02:00:00Z", "end": "2026-12-01T01:00:00Z"},
        {"name": "c", "targets": ["api"], "start": "2026-12-01T02:00:00Z"},
        {"name": "e", "cron": "0 2 * * *", "duration": "1h"},
        {"name": "f", "match": {}, "cron": "0 2 * * *", "start": "2026-12-01T02:00:00Z", "end": "2026-12-01T03:00:00Z"},
        {"name": "g", "match": {}, "start": "2026-01-01T00:00:00Z", "end": "2027-06-01T00:00:00Z"},
        {"name": "h", "match": {}},
    ) == [
        "maintenance[0].cron: invalid cron expression '61 2 * * *': Bad minute",
        "maintenance[1].timezone: unknown time zone 'Mars/Base' (use an IANA name like \"Europe/Berlin\" or \"UTC\")",
        "maintenance[2].targets[0]: no target named 'nope'",
        "maintenance[2].end: must be after start",
        "maintenance[3].name: duplicate window name 'c' (first used by maintenance[2])",
        "maintenance[3].end: a one-off window needs both start and end",
        "maintenance[4].match: set match (labels; {} for every target) or targets (names)",
        "maintenance[5].cron: a window is one-off (start, end) or recurring (cron, duration), not both",
        "maintenance[6].end: a one-off window lasts a year at most",
        "maintenance[7].cron: set start and end (a one-off window) or cron and duration (a recurring one)",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("keys", "line"),
    [
        ({"duration": "0s"}, "maintenance[0].duration: duration must be greater than 0, got '0s'"),
        ({"duration": "40d"}, "maintenance[0].duration: must be from 1s to 31d, got '40d'"),
        ({"start": "2026-12-01T02:00:00"}, "maintenance[0].start: 2026-12-01T02:00:00 has no offset: add one, like +01:00 or Z"),
        ({"start": "soon"}, "maintenance[0].start: expected a date and time like 2026-12-01T02:00:00+01:00, got 'soon'"),
    ],
)  # fmt: skip
def test_bad_values_are_one_line(keys, line):
    assert problems({"name": "w", "match": {}, "cron": "0 2 * * *", "duration": "1h", **keys}) == [
        line
    ]


def test_toml_datetimes_are_taken():
    config = make_config(
        """
        [[targets]]
        url = "http://127.0.0.1/"
        [[maintenance]]
        name = "upgrade"
        targets = ["http://127.0.0.1/"]
        start = 2026-12-01T02:00:00+01:00
        end = 2026-12-01T03:00:00Z
        """
    )
    (w,) = config.maintenance
    assert (w.start, w.end) == (at(BERLIN, 2026, 12, 1, 2), at(BERLIN, 2026, 12, 1, 4))


# --- the stage -----------------------------------------------------------------------

START = at(BERLIN, 2026, 12, 1, 2)
END = START + 3600


class Run:
    """The state store and a policy of the maintenance stage alone (the later stages
    have their own tests), fed probe results at wall time `ts` (trio's clock: ts - 1000,
    so the two differ)."""

    def __init__(self, config):
        self.config = config
        self.state = MemoryStateStore(config.alerts)
        self.holds = Holds(config, self.state)
        self.policy = Policy(config, self.state, [self.holds])
        self.targets = {t.name: t for t in config.targets}

    def probe(self, name, ts, ok):
        _, alerts = self.state.observe(
            self.targets[name], probe_result(name, ts=ts, ok=ok), ts - 1000
        )
        return self.policy.process(alerts, ts - 1000) if alerts else []

    def tick(self, ts):
        due = self.policy.next_tick()
        return self.policy.tick(ts - 1000, ts) if due <= ts - 1000 else []


def one_off():
    return window(start="2026-12-01T02:00:00+01:00", end="2026-12-01T03:00:00+01:00")


def test_a_down_in_a_window_is_held_and_one_down_goes_out_at_its_end():
    run = Run(one_off())
    (down,) = run.probe("api", START + 60, ok=False)
    assert down.held_by == "maintenance:w"
    assert not down.deliverable
    assert run.probe("api", START + 120, ok=False) == []
    assert run.policy.next_tick() == END - 1000  # trio's clock
    assert run.tick(END - 1) == []
    (late,) = run.tick(END)
    assert (late.event, late.ts, late.since, late.held_by) == ("down", END, START + 60, None)
    assert late.deliverable
    assert (
        "held by maintenance:w since 2026-12-01T01:01:00.000Z; still down at its end" in late.detail
    )
    assert run.policy.next_tick() == math.inf
    assert run.probe("api", END + 60, ok=True)[0].deliverable  # its up closes the page


def test_a_target_that_recovers_in_the_window_pages_nothing():
    run = Run(one_off())
    (_down,) = run.probe("api", START + 60, ok=False)
    (up,) = run.probe("api", START + 120, ok=True)
    assert (up.event, up.held_by) == ("up", "maintenance:w")
    assert run.policy.next_tick() == math.inf
    assert run.tick(END) == []


def test_an_up_whose_down_was_paged_before_the_window_is_delivered():
    run = Run(one_off())
    (down,) = run.probe("api", START - 60, ok=False)
    assert down.deliverable
    (up,) = run.probe("api", START + 60, ok=True)
    assert (up.event, up.held_by) == ("up", None)


def test_targets_the_window_does_not_match_are_not_held():
    run = Run(one_off())
    (down,) = run.probe("db", START + 60, ok=False)
    assert down.deliverable


def test_a_down_held_at_a_windows_end_that_recovered_meanwhile_sends_nothing():
    run = Run(one_off())
    run.probe("api", START + 60, ok=False)
    run.state.observe(run.targets["api"], probe_result("api", ts=END - 5, ok=True), END - 1005)
    assert run.tick(END) == []


def test_a_silence_holds_until_it_is_expired_then_a_target_still_down_is_paged():
    run = Run(window(start="2020-01-01T00:00:00Z", end="2020-01-01T01:00:00Z"))
    run.holds.silence(Silence("s1", start=START, until=END, targets=("db",), comment="x"))
    (down,) = run.probe("db", START + 60, ok=False)
    assert down.held_by == "silence:s1"
    assert run.holds.held_by("db", None, START + 61) == "silence:s1"
    assert run.holds.expire("s1", START + 100).until == START + 100
    assert run.holds.expire("s1", START + 101) is None  # over already
    assert run.policy.next_tick() == -math.inf  # look again at once
    (late,) = run.tick(START + 100)
    assert (late.event, late.held_by, late.ts) == ("down", None, START + 100)
    assert run.holds.silences(START + 100) == []


def test_a_silence_by_labels_runs_out_at_its_until():
    run = Run(window(start="2020-01-01T00:00:00Z", end="2020-01-01T01:00:00Z"))
    run.holds.restore([Silence("s2", start=START, until=START + 600, match={"team": "pay"})])
    (down,) = run.probe("api", START + 60, ok=False)
    assert down.held_by == "silence:s2"
    assert run.policy.next_tick() == START + 600 - 1000
    (late,) = run.tick(START + 600)
    assert late.event == "down"
    assert late.deliverable


def test_a_reload_that_drops_the_window_releases_what_it_held():
    run = Run(one_off())
    run.probe("api", START + 60, ok=False)
    run.holds.configure(window(start="2020-01-01T00:00:00Z", end="2020-01-01T01:00:00Z"))
    (late,) = run.tick(START + 90)
    assert late.event == "down"
    assert late.deliverable


def test_overlapping_holds_hand_over_without_a_page():
    run = Run(one_off())
    run.holds.silence(Silence("s3", start=START, until=END + 600, match={}))
    run.probe("api", START + 60, ok=False)
    assert run.tick(END) == []  # the silence holds it on
    assert run.policy.next_tick() == END + 600 - 1000
    (late,) = run.tick(END + 600)
    assert late.event == "down"


def test_holds_is_the_policys_first_stage():
    config = one_off()
    stages = Policy(config, MemoryStateStore(config.alerts)).stages
    assert isinstance(stages[0], Holds)


def test_other_events_in_a_window_are_held():
    run = Run(window(start="2026-12-01T02:00:00+01:00", end="2026-12-01T03:00:00+01:00"))

    (flap,) = run.policy.process(
        [alert_event("flapping", ts=START + 5, labels={"team": "pay"})], START - 995
    )
    assert flap.held_by == "maintenance:w"


def resumed(run, start, wall, **incident):
    """An outage open in history at start-up: the target DOWN, the policy told."""
    run.state.restore_down("api", start, wall - 1000, wall)
    run.policy.resume([Incident("api", start, None, "connect", **incident)], wall - 1000, wall)


def test_an_outage_resumed_at_start_up_inside_its_hold_stays_held():
    run = Run(one_off())
    resumed(run, START + 60, START + 120)
    (up,) = run.probe("api", START + 180, ok=True)
    assert up.held_by == "maintenance:w"  # its down was never paged: neither is its up


def test_an_outage_resumed_whose_down_was_paged_is_not_held():
    run = Run(one_off())
    resumed(run, START - 60, START + 120, paged=START - 60)
    assert run.policy.next_tick() == math.inf
    (up,) = run.probe("api", START + 180, ok=True)
    assert up.held_by is None  # closes the page opened before the window


def test_an_outage_resumed_whose_page_dependencies_owe_is_theirs():
    run = Run(one_off())
    resumed(run, START + 60, START + 120, suppressed_by=("router",))
    assert run.policy.next_tick() == math.inf


def test_an_outage_resumed_inside_its_hold_is_paged_at_its_end_if_still_down():
    run = Run(one_off())
    resumed(run, START + 60, START + 120)
    (late,) = run.tick(END)
    assert (late.event, late.since, late.ts) == ("down", START + 60, END)
    assert late.url == "http://127.0.0.1/"
