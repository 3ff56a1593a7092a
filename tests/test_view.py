"""The read-only view the HTTP server uses: 24-hour stats per target and health."""

from __future__ import annotations

import attrs
import factories
import pytest
import trio
from factories import config_doc, probe_result, tls_details
from fakes import FakeProber, make_config, result_for, running

from trio_monitor import parse_config, prepare
from trio_monitor._records import PHASES
from trio_monitor.engine.state import MemoryStateStore
from trio_monitor.engine.view import MonitorView, RecentStats
from trio_monitor.store.records import ERROR_BOUND

PLAN = prepare(make_config([{"name": "t", "url": "http://127.0.0.1/"}]).targets[0])
HOUR = 3600.0
T0 = 1_800_000_000.0 - 1_800_000_000.0 % HOUR  # an hour boundary


def result(ts: float, ok: bool = True, latency: float = 100.0):
    return attrs.evolve(result_for(PLAN, 1, ok=ok), ts=ts, latency_ms=latency if ok else None)


def test_availability_and_p95_over_the_last_24_hours():
    stats = RecentStats()
    for i in range(100):  # one hour: 90 ok at 1..90 ms, 10 failed
        stats.observe(result(T0 + i, ok=i < 90, latency=float(i + 1)))
    checks, availability, p95 = stats.summary("t", T0 + 100)
    assert (checks, availability) == (100, 90.0)
    assert abs(p95 - 86.0) <= 86.0 * ERROR_BOUND  # the 95th of 90 ok latencies 1..90 ms


def test_old_hours_fall_out_of_the_window():
    stats = RecentStats()
    stats.observe(result(T0, ok=False))
    for h in range(1, 30):
        stats.observe(result(T0 + h * HOUR))
    checks, availability, _ = stats.summary("t", T0 + 29 * HOUR)
    assert (checks, availability) == (24, 100.0)  # the failure 29 hours ago is gone
    assert stats.summary("t", T0 + 100 * HOUR) == (0, None, None)


def test_finished_hours_are_kept_compact_and_still_count():
    stats = RecentStats()
    for i in range(50):
        stats.observe(result(T0 + i, latency=10.0))
    stats.observe(result(T0 + HOUR, latency=1000.0))
    slots = stats._targets["t"]
    assert isinstance(slots[0].hist, bytes)
    checks, _, p95 = stats.summary("t", T0 + HOUR)
    assert checks == 51
    assert p95 == pytest.approx(10.0, rel=ERROR_BOUND)


def test_a_late_result_for_a_closed_hour_is_ignored_not_misfiled():
    stats = RecentStats()
    stats.observe(result(T0 + HOUR))
    stats.observe(result(T0 + 10, ok=False))
    assert stats.summary("t", T0 + HOUR) == (1, 100.0, pytest.approx(100.0, rel=ERROR_BOUND))


def timed(ts: float, ok: bool = True, **phases: float | None):
    return attrs.evolve(result(ts, ok=ok), phases_ms=dict.fromkeys(PHASES) | phases)


def test_phase_percentiles_over_the_last_24_hours():
    stats = RecentStats()
    for i in range(100):  # ttfb 1..100 ms; connect 2 ms; tls never (http)
        stats.observe(timed(T0 + i, connect=2.0, ttfb=float(i + 1), transfer=0.5))
    stats.observe(timed(T0 + 100, ok=False, connect=500.0, ttfb=900.0))  # a failure: not counted
    stats.observe(attrs.evolve(result(T0 + 101), phases_ms=None))  # no connection
    phases = stats.phases("t", T0 + 200)
    assert (phases["dns"], phases["tls"]) == (None, None)  # never happened
    assert phases["connect"].count == 100
    assert phases["connect"].p50 == phases["connect"].p95 == pytest.approx(2.0, rel=ERROR_BOUND)
    assert phases["ttfb"].p50 == pytest.approx(50.0, rel=ERROR_BOUND)
    assert phases["ttfb"].p95 == pytest.approx(95.0, rel=ERROR_BOUND)
    assert phases["transfer"].p95 == pytest.approx(0.5, rel=ERROR_BOUND)


def test_phases_of_finished_hours_are_blobs_and_old_hours_fall_out():
    stats = RecentStats()
    stats.observe(timed(T0, connect=1000.0))
    for h in range(1, 30):
        stats.observe(timed(T0 + h * HOUR, connect=3.0))
    slots = stats._targets["t"]
    assert all(isinstance(slot.phases, bytes) for slot in slots[:-1])
    connect = stats.phases("t", T0 + 29 * HOUR)["connect"]
    assert connect.count == 24  # the hour of 1000 ms, 29 hours ago, is gone
    assert connect.p95 == pytest.approx(3.0, rel=ERROR_BOUND)
    assert stats.phases("t", T0 + 100 * HOUR) == dict.fromkeys(PHASES)


def test_a_target_without_phases_keeps_none():
    stats = RecentStats()
    stats.observe(result(T0))  # e.g. a kind without phases
    stats.observe(result(T0 + HOUR))
    assert [slot.phases for slot in stats._targets["t"]] == [None, None]


def test_retain_forgets_removed_targets():
    stats = RecentStats()
    stats.observe(result(T0))
    stats.retain(set())
    assert stats.summary("t", T0) == (0, None, None)


async def test_health_follows_the_schedule(autojump_clock):
    config = make_config(
        [{"name": "t", "url": "http://127.0.0.1:1/", "interval": "10s"}], stagger="5s"
    )
    prober = FakeProber({"t": 0.1})
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, config, out=_Null(), probers={"http": prober})
        assert monitor.view.health().ok  # before the first round: within the stagger
        await trio.sleep(30)
        health = monitor.view.health()
        assert health.ok
        assert health.max_age_s == 20.0
        assert health.last_round_age_s < 10.0
        # the scheduler's loop gets stuck (as if blocked): rounds stop, health fails
        monitor.scheduler._starting.cancel()
        await trio.sleep(25)
        health = monitor.view.health()
        assert not health.ok
        assert "no round for" in health.reason
        monitor.stop()


async def test_health_waits_for_the_first_due_time_of_a_whole_interval_spread(autojump_clock):
    # the default spread: the first probe may come up to an interval after start-up
    targets = [{"name": "t", "url": "http://127.0.0.1:1/", "interval": "30s"}]
    config = factories.make_config(config_doc(*targets))
    prober = FakeProber({"t": 0.1})
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, config, out=_Null(), probers={"http": prober})
        first = monitor.scheduler.first_due - monitor.scheduler.started_at
        assert 0 <= first < 30.0
        await trio.sleep(first / 2)
        assert monitor.view.health().ok  # before the first round: not yet due
        await trio.sleep(first / 2 + 59.9)
        assert monitor.view.health().ok
        assert prober.starts["t"][0] == pytest.approx(first, abs=1e-6)
        monitor.stop()


async def test_health_reports_a_stalled_loop(autojump_clock):
    config = make_config([{"name": "t", "url": "http://127.0.0.1:1/", "interval": "1s"}])
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, config, out=_Null(), probers={"http": FakeProber()})
        await trio.sleep(1.5)
        autojump_clock.jump(7)  # nothing ran for 7 s
        await trio.sleep(0.15)  # the lag sampler wakes and measures it
        health = monitor.view.health()
        assert not health.ok
        assert "stalled" in health.reason or "no round" in health.reason
        monitor.stop()


def twelve_probes_every_10s(taking: float):
    """12 targets due every 10 s at concurrency 1, each probe taking `taking` seconds."""
    targets = [
        {"name": f"t{i}", "url": f"http://127.0.0.{i + 1}:80/", "interval": "10s"}
        for i in range(12)
    ]
    return make_config(targets, concurrency=1), FakeProber({t["name"]: taking for t in targets})


async def test_health_sees_probes_starting_late_behind_a_backlog(autojump_clock):
    # 12 targets due every 10 s, 1.5 s each, concurrency 1: 18 s of work per 10 s.
    # Rounds start on time and every probe succeeds; only the start lag tells.
    config, prober = twelve_probes_every_10s(taking=1.5)
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, config, out=_Null(), probers={"http": prober})
        await trio.sleep(60)
        health = monitor.view.health()
        assert not health.ok
        assert "late" in health.reason
        assert "concurrency" in health.reason
        assert health.start_lag_p50_s > 5.0  # half the interval
        assert health.start_lag_max_s >= health.start_lag_p50_s
        monitor.stop()


async def test_health_is_ok_while_probes_start_on_time(autojump_clock):
    config, prober = twelve_probes_every_10s(taking=0.5)  # 6 s of work per 10 s
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, config, out=_Null(), probers={"http": prober})
        await trio.sleep(60)
        health = monitor.view.health()
        assert health.ok, health.reason
        assert health.start_lag_max_s == pytest.approx(5.5)  # the last of 12 in a round
        monitor.stop()


def test_targets_without_results_have_no_stats():
    assert RecentStats().summary("nobody", T0) == (0, None, None)


class _Null:
    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


async def test_a_target_keeps_its_24_hours_when_its_url_changes():
    def config(*targets):
        return make_config([{"name": n, "url": u} for n, u in targets])

    old = config(("t", "http://127.0.0.1:1/"), ("gone", "http://127.0.0.1:2/"))
    stats = RecentStats()
    stats.observe(result(T0))
    stats.observe(attrs.evolve(result(T0), target="gone"))
    await stats.reconfigure(old, config(("t", "http://127.0.0.1:3/")))
    assert stats.summary("t", T0)[0] == 1
    assert stats.summary("gone", T0) == (0, None, None)


def test_the_latest_certificate_is_kept_until_a_probe_brings_another():
    stats = RecentStats()
    first, second = tls_details(T0 + 30 * 86400), tls_details(T0 + 90 * 86400)
    stats.observe(attrs.evolve(result(T0), tls=first))
    stats.observe(result(T0 + 1, ok=False))  # no handshake: the certificate stays shown
    assert stats.tls("t") == first
    stats.observe(attrs.evolve(result(T0 + 2), tls=second))
    assert stats.tls("t") == second
    stats.retain(set())
    assert stats.tls("t") is None


def test_outage_groups_group_the_down_targets_as_storm_grouping_does():
    doc = {
        "alerts": {"failure_threshold": 1},
        "targets": [{"name": f"n{i}", "url": f"http://10.1.2.{i}/"} for i in range(1, 5)]
        + [{"name": "up", "url": "http://10.1.2.9/"}],
    }
    config = parse_config(doc)
    state = MemoryStateStore(config.alerts)
    for target in config.targets:
        ok = target.name == "up"
        detail = None if ok else f"cannot connect to {target.url[7:-1]}:80 (Connection refused)"
        state.observe(target, probe_result(target.name, ok=ok, error_detail=detail), 0.0)
    view = MonitorView(lambda: config, state, None, RecentStats(), lambda: 1000.0)
    (group,), alone = view.outage_groups()
    assert (group.members, alone) == (("n1", "n2", "n3", "n4"), [])
    assert group.describe() == "4 targets on 10.1.2.0/24 failing with connect: connection refused"
    off = parse_config({**doc, "alerts": {"failure_threshold": 1, "group_window": "0s"}})
    view = MonitorView(lambda: off, state, None, RecentStats(), lambda: 1000.0)
    assert view.outage_groups() == ([], ["n1", "n2", "n3", "n4"])
