"""The per-target state machine and its alert decisions."""

from __future__ import annotations

import attrs
import pytest
from factories import probe_result, tls_details

from trio_monitor import ErrorKind, parse_config
from trio_monitor.engine.state import CONFIRM, DOWN, RECOVER, UNKNOWN, UP, MemoryStateStore


def setup(failure_threshold=3, success_threshold=1, **target):
    config = parse_config(
        {
            "alerts": {
                "failure_threshold": failure_threshold,
                "success_threshold": success_threshold,
            },
            "targets": [{"name": "t", "url": "http://127.0.0.1/", **target}],
        }
    )
    return MemoryStateStore(config.alerts), config.targets[0]


class Feed:
    """Feeds results one per second (trio-clock and wall time alike) and collects alerts."""

    def __init__(self, store, target):
        self.store, self.target, self.now, self.alerts = store, target, 0.0, []

    def __call__(self, ok=True, *, latency=10.0, content="a", error=ErrorKind.CONNECT):
        self.now += 1.0
        result = probe_result(
            self.target.name,
            ts=1_000_000 + self.now,
            url=self.target.url,
            ok=ok,
            latency_ms=latency if ok else None,
            error=None if ok else error,
            error_detail=None if ok else "refused",
            round=int(self.now),
            content_hash=f"sha256:{content}" if ok else None,
            slow=bool(ok and self.target.slow and latency > self.target.slow * 1000),
        )
        result, alerts = self.store.observe(self.target, result, self.now)
        self.alerts += alerts
        return result

    def events(self):
        return [a.event for a in self.alerts]

    @property
    def state(self):
        return self.store.get(self.target.name).state


def test_one_blip_does_not_alert():
    feed = Feed(*setup())
    feed(), feed(ok=False), feed(ok=False), feed()
    assert feed.events() == []
    assert feed.state == UP


def test_down_fires_once_per_outage_and_up_reports_downtime():
    feed = Feed(*setup(failure_threshold=3))
    feed()
    for _ in range(6):
        feed(ok=False, error=ErrorKind.TIMEOUT)
    assert feed.events() == ["down"]
    down = feed.alerts[0]
    assert down.reason == "timeout"
    assert down.failures == 3
    assert down.since == 1_000_000 + 2.0  # the first failure of the streak, not the third
    assert feed.state == DOWN
    feed()
    assert feed.events() == ["down", "up"]
    assert feed.alerts[1].downtime_s == pytest.approx(6.0)  # first failure (t=2) to recovery (t=8)
    assert feed.alerts[1].since == down.since
    assert feed.state == UP


def test_pace_follows_the_undecided_and_the_down_states():
    """What the scheduler reads after each result: CONFIRM while failures are counted
    but undecided, RECOVER while DOWN, None when settled."""
    store, target = setup(failure_threshold=3, success_threshold=2)
    feed = Feed(store, target)
    assert store.pace("t") is None  # never probed
    paces = []
    for ok in (True, False, True, False, False, True, False, True, True):
        feed(ok)
        paces.append(store.pace("t"))
    assert paces == [
        None,  # UNKNOWN without failures: settled
        CONFIRM,  # a failure
        CONFIRM,  # one success of two: the streak is not over
        CONFIRM,  # the second failure
        RECOVER,  # the third: DOWN
        RECOVER,  # one good probe of two
        RECOVER,  # a failure while DOWN
        RECOVER,
        None,  # two good probes: UP again
    ]
    store.restore_down("r", since=1.0, now=0.0, wall_now=2.0)
    assert store.pace("r") == RECOVER  # an outage resumed at start-up is recovering


def test_success_threshold_debounces_recovery():
    feed = Feed(*setup(failure_threshold=1, success_threshold=3))
    feed(ok=False)
    feed(), feed(), feed(ok=False), feed(), feed()
    assert feed.events() == ["down"]
    feed()
    assert feed.events() == ["down", "up"]


def test_unknown_to_down_alerts_but_unknown_to_up_does_not():
    feed = Feed(*setup(failure_threshold=2))
    assert feed.store.get("t") is None
    feed()
    assert feed.state == UP
    assert feed.events() == []
    store, target = setup(failure_threshold=2)
    feed = Feed(store, target)
    feed(ok=False)
    assert feed.state == UNKNOWN
    feed(ok=False)
    assert feed.state == DOWN
    assert feed.events() == ["down"]


def test_content_change_flags_result_and_alerts_only_when_asked():
    feed = Feed(*setup())
    assert feed(content="a").content_changed is False  # nothing to compare with yet
    assert feed(content="a").content_changed is False
    assert feed(content="b").content_changed is True
    assert feed(ok=False).content_changed is False  # failures carry no content
    assert feed(content="b").content_changed is False  # compared with the last ok probe
    assert feed.events() == []

    feed = Feed(*setup(content_alert=True))
    feed(content="a"), feed(content="b")
    assert feed.events() == ["content_changed"]
    assert feed.alerts[0].previous_hash == "sha256:a"
    assert feed.alerts[0].content_hash == "sha256:b"


def test_slow_is_debounced_and_rearms():
    feed = Feed(*setup(failure_threshold=2, success_threshold=2, slow="100ms"))
    feed(latency=150), feed(latency=50), feed(latency=150)
    assert feed.events() == []
    feed(latency=200), feed(latency=300)
    assert feed.events() == ["slow"]
    assert feed.alerts[0].slow_ms == 100.0
    feed(latency=50), feed(latency=150), feed(latency=150)
    assert feed.events() == ["slow"]  # one fast probe is not enough to re-arm
    feed(latency=50), feed(latency=50), feed(latency=150), feed(latency=150)
    assert feed.events() == ["slow", "slow"]


def test_retain_and_configure():
    store, target = setup(failure_threshold=5)
    feed = Feed(store, target)
    feed(ok=False), feed(ok=False)
    store.retain(["t"])
    assert store.get("t").failures == 2
    # a reload: the target's new threshold comes with the new config's Target
    config = parse_config(
        {"alerts": {"failure_threshold": 3}, "targets": [{"name": "t", "url": target.url}]}
    )
    feed.target = config.targets[0]
    store.configure(config.alerts)
    feed(ok=False)
    assert feed.events() == ["down"]
    store.retain([])
    assert store.get("t") is None


def flapping_setup(threshold=5, window="60s"):
    config = parse_config(
        {
            "alerts": {
                "failure_threshold": 1,
                "success_threshold": 1,
                "flap_threshold": threshold,
                "flap_window": window,
            },
            "targets": [{"name": "t", "url": "http://127.0.0.1/"}],
        }
    )
    return Feed(MemoryStateStore(config.alerts), config.targets[0])


def test_flapping_is_alerted_once_and_holds_transitions_until_settled():
    feed = flapping_setup(threshold=5, window="60s")
    for i in range(30):  # 200/500 alternating: 29 changes of state in 30 s
        feed(ok=i % 2 == 0)
    assert feed.events() == ["down", "up", "down", "up", "flapping"]
    flapping = feed.alerts[-1]
    assert (flapping.changes, flapping.state) == (5, DOWN)
    assert feed.store.get("t").flapping
    assert feed.state == DOWN  # the state still follows the probes; only alerts are held
    for _ in range(59):
        feed(ok=False)
    assert feed.events()[-1] == "flapping"  # not settled yet: 59 s in one state
    feed(ok=False)
    assert feed.events()[-1] == "flap_end"
    settled = feed.alerts[-1]
    assert (settled.state, settled.changes) == (DOWN, 29)
    assert settled.since == 1_000_000 + 30.0  # when the settled state began
    assert not feed.store.get("t").flapping
    feed()
    assert feed.events()[-2:] == ["flap_end", "up"]  # and alerts work as before


def test_changes_outside_the_window_do_not_count_and_zero_turns_it_off():
    feed = flapping_setup(threshold=3, window="5s")
    for _ in range(4):  # down and up again every 6 s: never 3 changes within 5 s
        feed(ok=False), feed(), feed(), feed(), feed(), feed()
    assert feed.events() == ["down", "up"] * 4
    feed = flapping_setup(threshold=0)
    for i in range(30):
        feed(ok=i % 2 == 0)
    assert len(feed.alerts) == 29


async def test_a_reload_keeps_state_by_name_and_the_content_baseline_per_request():
    def config(**target):
        return parse_config(
            {
                "targets": [
                    {"name": "t", "url": "http://127.0.0.1/", "content_alert": True, **target}
                ]
            }
        )

    first = config()
    store = MemoryStateStore(first.alerts)
    feed = Feed(store, first.targets[0])
    feed(content="a")
    # other timings: the same request, so a new body is a content change
    timed = config(timeout="3s")
    await store.reconfigure(first, timed)
    feed.target = timed.targets[0]
    feed(content="b")
    assert feed.events() == ["content_changed"]
    # another URL: the state stays (UP since the first probe), the baseline starts anew
    moved = config(timeout="3s", url="http://127.0.0.1/other")
    await store.reconfigure(timed, moved)
    feed.target = moved.targets[0]
    assert (store.get("t").state, store.get("t").since) == (UP, 1_000_001.0)
    feed(content="c")
    assert feed.events() == ["content_changed"]
    feed(content="d")
    assert feed.events() == ["content_changed", "content_changed"]


# --- certificate expiry ---------------------------------------------------------

DAY = 86400.0


def cert_config(**target):
    return parse_config({"targets": [{"name": "t", "url": "https://127.0.0.1/", **target}]})


def see(store, target, ts, not_after, ok=True):
    """One probe at `ts` that saw a certificate expiring at `not_after`: its alerts."""
    result = probe_result(target.name, ts=ts, ok=ok, tls=tls_details(not_after, ts=ts))
    return store.observe(target, result, ts)[1]


async def test_cert_expiring_at_each_step_once_then_renewed_across_a_reload():
    config = cert_config()
    store, target = MemoryStateStore(config.alerts), config.targets[0]
    t0, expiry = 1_000_000.0, 1_000_000.0 + 20 * DAY
    sent = []
    for day in range(20):  # one probe every 12 hours, up to a day before expiry
        for half in (0.0, 0.5):
            if day + half == 10:  # a reload in between: the state (and what was sent) stays
                again = cert_config(timeout="3s")
                await store.reconfigure(config, again)
                config, target = again, again.targets[0]
            sent += see(store, target, t0 + (day + half) * DAY, expiry)
    assert [(a.event, a.step_days) for a in sent] == [
        ("cert_expiring", 14.0),
        ("cert_expiring", 7.0),
        ("cert_expiring", 1.0),
    ]
    first = sent[0]
    assert (first.subject, first.not_after, first.ts) == ("CN=site", expiry, t0 + 6.5 * DAY)
    assert first.days_left == 13.5
    assert first.detail == "certificate CN=site expires on 1970-02-01 (in 13 days)"
    assert sent[2].days_left == 0.5

    renewed = expiry + 90 * DAY
    ts = t0 + 19.75 * DAY
    later = see(store, target, ts, renewed) + see(store, target, ts + DAY, renewed)
    assert [a.event for a in later] == ["cert_renewed"]
    assert (later[0].not_after, later[0].previous_not_after) == (renewed, expiry)
    assert later[0].days_left == 90.25
    # the new certificate is alerted afresh when its time comes
    assert [a.event for a in see(store, target, renewed - 10 * DAY, renewed)] == ["cert_expiring"]


def test_first_seen_below_several_steps_raises_one_alert_for_the_shortest():
    config = cert_config()
    store, target = MemoryStateStore(config.alerts), config.targets[0]
    alerts = see(store, target, 1_000_000.0, 1_000_000.0 + 3 * DAY, ok=False)
    assert [(a.event, a.step_days) for a in alerts] == [("cert_expiring", 7.0)]
    # an expired one is below every step
    assert [a.step_days for a in see(store, target, 1_000_000.0, 999_000.0)] == [1.0]


def test_no_cert_alerts_when_turned_off_or_renewed_without_warning():
    config = cert_config(cert_expiry="0s")
    store, target = MemoryStateStore(config.alerts), config.targets[0]
    assert see(store, target, 1_000_000.0, 1_000_000.0 + DAY) == []
    on = cert_config(cert_expiry="2d", cert_expiry_steps=["12h"])
    store, target = MemoryStateStore(on.alerts), on.targets[0]
    assert see(store, target, 1_000_000.0, 1_000_000.0 + 30 * DAY) == []
    # a later certificate with no cert_expiring sent before: nothing to announce
    assert see(store, target, 1_000_001.0, 1_000_000.0 + 60 * DAY) == []
    assert [
        a.step_days for a in see(store, target, 1_000_000.0 + 59.9 * DAY, 1_000_000.0 + 60 * DAY)
    ] == [0.5]


def test_cert_expiring_names_a_chain_certificate_that_expires_first():
    config = cert_config()
    store, target = MemoryStateStore(config.alerts), config.targets[0]
    ts = 1_000_000.0
    tls = tls_details(ts + 10 * DAY, ts=ts, earliest_not_after=ts + 5 * DAY)
    tls = attrs.evolve(tls, earliest_subject="CN=I")
    (alert,) = store.observe(target, probe_result("t", ts=ts, tls=tls), ts)[1]
    assert alert.detail.endswith(
        "(in 10 days); chain certificate CN=I expires on 1970-01-17 (in 5 days)"
    )


def test_each_target_has_its_own_thresholds():
    config = parse_config(
        {
            "alerts": {"failure_threshold": 2},
            "targets": [
                {"name": "quick", "url": "http://127.0.0.1/q"},
                {
                    "name": "patient",
                    "url": "http://127.0.0.1/p",
                    "alerts": {"failure_threshold": 4},
                },
            ],
        }
    )
    store = MemoryStateStore(config.alerts)
    quick, patient = (Feed(store, t) for t in config.targets)
    for _ in range(3):
        quick(ok=False), patient(ok=False)
    assert (quick.events(), patient.events()) == (["down"], [])
    patient(ok=False)
    assert patient.events() == ["down"]
    assert patient.alerts[0].labels is None  # no labels: no `labels` object
