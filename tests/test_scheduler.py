"""Scheduling logic on trio's autojump clock, with a fake probe: no network, no real time."""

from __future__ import annotations

import itertools
import math
from functools import partial

import factories
import httpx
import pytest
import trio
import trio.testing
from factories import config_doc
from fakes import FakeProber, dispatcher_for, make_config, rounds, run_for, scheduler_for

from trio_monitor import AlertEvent, ErrorKind, ProbeResult
from trio_monitor._config import MonitorSection, Positive
from trio_monitor.engine.dispatch import Dispatcher
from trio_monitor.engine.rounds import Limits
from trio_monitor.engine.schedule import SPREAD_TICK, Scheduler, stagger_spot
from trio_monitor.engine.state import MemoryStateStore
from trio_monitor.probes.http import HttpProber


async def test_fixed_schedule_without_drift(autojump_clock):
    config = make_config(
        [
            {"name": "fast", "url": "http://127.0.0.1:1/", "interval": "1s"},
            {"name": "slowcadence", "url": "http://127.0.0.1:2/", "interval": "3s"},
        ]
    )
    prober = FakeProber({"fast": 0.3, "slowcadence": 0.7})
    records = []
    await run_for(scheduler_for(config, prober, records), 9.5)
    # due times are anchor + n * interval: probe durations never push them later
    assert prober.starts["fast"] == [float(n) for n in range(10)]
    assert prober.starts["slowcadence"] == [0.0, 3.0, 6.0, 9.0]
    # targets due at the same instant share a round
    sizes = [r.targets for r in rounds(records)]
    assert sizes == [2, 1, 1, 2, 1, 1, 2, 1, 1, 2]
    assert [r.round for r in rounds(records)] == list(range(1, 11))


async def test_overrunning_target_is_skipped_not_stacked(autojump_clock):
    config = make_config([{"name": "laggard", "url": "http://127.0.0.1:1/", "interval": "1s"}])
    prober = FakeProber({"laggard": 2.5})
    records = []
    await run_for(scheduler_for(config, prober, records), 6.5)
    assert prober.max_active_per_target["laggard"] == 1
    assert prober.starts["laggard"] == [0.0, 3.0, 6.0]
    assert sum(r.skipped for r in rounds(records)) == 4  # due at 1, 2, 4, 5


async def test_slow_target_does_not_delay_others(autojump_clock):
    config = make_config(
        [
            {"name": "quick", "url": "http://127.0.0.1:1/", "interval": "1s"},
            {"name": "stuck", "url": "http://127.0.0.1:2/", "interval": "1s"},
        ]
    )
    prober = FakeProber({"stuck": 100.0})
    records = []
    await run_for(scheduler_for(config, prober, records), 5.5)
    assert prober.starts["quick"] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    # rounds without the stuck target finished on their own
    assert [r.ok for r in rounds(records)][:5] == [1, 1, 1, 1, 1]


async def test_global_concurrency_limit(autojump_clock):
    targets = [{"name": f"t{i}", "url": f"http://127.0.0.{i + 1}:80/"} for i in range(10)]
    config = make_config(targets, concurrency=3)
    prober = FakeProber({f"t{i}": 1.0 for i in range(10)})
    records = []
    scheduler = scheduler_for(config, prober, records)
    await scheduler.run(once=True)
    assert prober.max_total == 3
    assert rounds(records)[0].ok == 10
    assert rounds(records)[0].concurrency == 3


async def test_round_lines_report_how_late_probes_start(autojump_clock):
    # 10 targets due together, each probe 2 s, one at a time: a backlog that every
    # probe survives (all ok, nothing skipped), but the n-th probe starts 2(n-1) s late
    targets = [{"name": f"t{i}", "url": f"http://127.0.0.{i + 1}:80/"} for i in range(10)]
    config = make_config(
        [{**t, "interval": "60s", "timeout": "5s"} for t in targets], concurrency=1
    )
    prober = FakeProber({f"t{i}": 2.0 for i in range(10)})
    records = []
    await run_for(scheduler_for(config, prober, records), 21.0)
    first = rounds(records)[0]
    assert (first.ok, first.skipped) == (10, 0)
    assert first.lag_max_ms == 18_000.0  # the last of ten started 9 x 2 s late
    assert first.lag_p50_ms == 8_000.0  # the median (5th of 10) 4 x 2 s late


async def test_on_time_probes_have_no_start_lag(autojump_clock):
    config = make_config([{"name": "t", "url": "http://127.0.0.1:1/", "interval": "1s"}])
    records = []
    scheduler = scheduler_for(config, FakeProber(), records)
    await run_for(scheduler, 3.5)
    assert {(r.lag_p50_ms, r.lag_max_ms) for r in rounds(records)} == {(0.0, 0.0)}
    p50, worst = scheduler.recent_start_lag()
    assert p50 < 0.001
    assert worst == 0.0


async def test_a_slow_start_up_is_not_start_lag(autojump_clock):
    # the scheduler is built, then start-up (opening the store, the HTTP server) takes
    # a while before its loop runs: the first round is late, but no backlog made it so
    config = make_config([{"name": "t", "url": "http://127.0.0.1:1/", "interval": "1s"}])
    records = []
    scheduler = scheduler_for(config, FakeProber(), records)
    await trio.sleep(0.8)
    await run_for(scheduler, 0.5)
    assert rounds(records)[0].lag_max_ms == 0.0


async def test_a_late_first_round_starts_at_once(autojump_clock):
    # start-up took most of the interval: the first probe must not then wait for its
    # spot in the tick, or the next round finds it not started yet and skips the target
    name = next(
        f"t{i}" for i in range(100) if _spot(f"t{i}") == (0.0, pytest.approx(0.07, abs=0.02))
    )
    config = make_config([{"name": name, "url": "http://127.0.0.1:1/", "interval": "200ms"}])
    records = []
    prober = FakeProber()
    scheduler = scheduler_for(config, prober, records)
    await trio.sleep(0.15)  # the next due time is at 0.2 s; its spot after 0.15 s is later
    await run_for(scheduler, 0.5)
    assert prober.starts[name][0] == pytest.approx(0.15)
    assert {r.skipped for r in rounds(records)} == {0}


def _spot(name: str) -> tuple[float, float]:
    """(offset, spot) of a target of that name, interval 200 ms, whole-interval stagger."""
    doc = [{"name": name, "url": "http://127.0.0.1:1/", "interval": "200ms"}]
    return stagger_spot(make_config(doc).targets[0], None)


async def test_per_host_limit(autojump_clock):
    same = [{"name": f"same{i}", "url": f"http://127.0.0.1:8000/{i}"} for i in range(6)]
    # another port is another origin, with its own limit (as it has its own pool)
    other = [{"name": "other", "url": "http://127.0.0.1:8001/"}]
    config = make_config(same + other, per_host=2)
    prober = FakeProber({t["name"]: 1.0 for t in same + other})
    records = []
    await scheduler_for(config, prober, records).run(once=True)
    starts = sorted(prober.starts[f"same{i}"][0] for i in range(6))
    assert starts == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]  # two at a time to 127.0.0.1:8000
    assert prober.starts["other"] == [0.0]  # another origin is not held up


async def test_raising_probe_is_contained(autojump_clock):
    config = make_config(
        [
            {"name": "buggy", "url": "http://127.0.0.1:1/", "interval": "1s"},
            {"name": "fine", "url": "http://127.0.0.1:2/", "interval": "1s"},
        ]
    )
    prober = FakeProber(fail={"buggy"})
    records = []
    await run_for(scheduler_for(config, prober, records), 2.5)
    probes = [r for r in records if isinstance(r, ProbeResult)]
    buggy = [r for r in probes if r.target == "buggy"]
    assert [r.error for r in buggy] == [ErrorKind.INTERNAL] * 3
    assert "boom" in buggy[0].error_detail
    assert all(r.ok for r in probes if r.target == "fine")
    assert len(rounds(records)) == 3


async def test_a_changed_target_keeps_its_state_and_its_outage(autojump_clock):
    """A target is its name: new settings keep its DOWN state; a probe that started with
    the old settings is reported but moves no state; the new settings' probes decide."""
    target = {"name": "t", "url": "http://127.0.0.1:1/", "interval": "1s", "timeout": "5s"}
    configs = [make_config([target])]
    prober = FakeProber({"t": 0.5}, fail={"t"})
    records = []
    store = MemoryStateStore(configs[0].alerts)
    dispatcher = Dispatcher(store)
    dispatcher.add_observer(records.append)
    scheduler = Scheduler(configs[0], {"http": prober}, dispatcher)

    async def change(**fields):
        old, new = configs[-1], make_config([target | fields])
        configs.append(new)
        await store.reconfigure(old, new)
        await scheduler.reconfigure(old, new)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        await trio.sleep(3.2)  # down at 2.5 (three failures); the probe of 3.0 in flight
        await change(timeout="6s")
        await trio.sleep(3.1)  # more failures with the new timeout: no second `down`
        prober.fail.clear()  # the probe of 6.2 (old settings) will end ok at 6.7
        await change(timeout="6s", url="http://127.0.0.1:2/")
        await trio.sleep(2.9)  # up from the probe of 7.3, with the new URL
        scheduler.stop()

    alerts = [r for r in records if isinstance(r, AlertEvent)]
    assert [(a.event, a.url) for a in alerts] == [
        ("down", "http://127.0.0.1:1/"),
        ("up", "http://127.0.0.1:2/"),  # from a probe with the new URL, not the old one
    ]
    assert alerts[1].since == alerts[0].since  # the same outage, its start kept
    assert store.get("t").state == "UP"
    # every probe is reported, the old settings' last one (ok, at 6.7) included
    oks = [(r.url, r.ok) for r in records if isinstance(r, ProbeResult)]
    assert oks[-3:] == [
        ("http://127.0.0.1:1/", True),
        ("http://127.0.0.1:2/", True),
        ("http://127.0.0.1:2/", True),
    ]
    assert prober.starts["t"] == [0.0, 1.0, 2.0, 3.0, 4.2, 5.2, 6.2, 7.3, 8.3]


async def test_reconfigure_adds_removes_and_keeps_cadence(autojump_clock):
    keep = {"name": "keep", "url": "http://127.0.0.1:1/", "interval": "2s"}
    gone = {"name": "gone", "url": "http://127.0.0.1:2/", "interval": "1s"}
    new = {"name": "new", "url": "http://127.0.0.1:3/", "interval": "1s"}
    prober = FakeProber()
    records = []
    old = make_config([keep, gone])
    scheduler = scheduler_for(old, prober, records)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        await trio.sleep(2.5)
        await scheduler.reconfigure(old, make_config([keep, new]))
        await trio.sleep(3.2)
        scheduler.stop()
    assert prober.starts["keep"] == [0.0, 2.0, 4.0]  # unchanged: same cadence
    assert prober.starts["gone"] == [0.0, 1.0, 2.0]
    assert prober.starts["new"] == [2.5, 3.5, 4.5, 5.5]  # due at once, then every second
    assert [t.name for t in scheduler.targets] == ["keep", "new"]


async def test_stop_gives_grace_then_cancels(autojump_clock):
    config = make_config([{"name": "hang", "url": "http://127.0.0.1:1/"}], grace="2s")
    prober = FakeProber({"hang": 1000.0})
    records = []
    scheduler = scheduler_for(config, prober, records)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        await trio.sleep(1.0)
        stopped_at = trio.current_time()
        scheduler.stop()
    assert trio.current_time() - stopped_at == pytest.approx(2.0)
    assert prober.active_total == 0


async def test_stop_waits_for_probes_that_finish_within_grace(autojump_clock):
    config = make_config([{"name": "t", "url": "http://127.0.0.1:1/"}], grace="5s")
    prober = FakeProber({"t": 3.0})
    records = []
    scheduler = scheduler_for(config, prober, records)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        await trio.sleep(1.0)
        scheduler.stop()
    assert trio.current_time() - prober.t0 == pytest.approx(3.0)
    assert [r.ok for r in records if isinstance(r, ProbeResult)] == [True]
    assert rounds(records)[0].ok == 1


async def test_once_runs_every_target_once(autojump_clock):
    config = make_config(
        [
            {"name": "a", "url": "http://127.0.0.1:1/", "interval": "1s"},
            {"name": "b", "url": "http://127.0.0.1:2/", "interval": "1h"},
        ]
    )
    prober = FakeProber({"a": 0.5, "b": 2.0})
    records = []
    summary = await scheduler_for(config, prober, records).run(once=True)
    assert summary.targets == 2
    assert summary.ok == 2
    assert summary.failed == 0
    assert summary.duration_ms == pytest.approx(2000.0)
    assert dict(prober.starts) == {"a": [0.0], "b": [0.0]}


async def test_late_loop_skips_missed_due_times(autojump_clock):
    # If the whole process stalls past several due times, the target resumes on its
    # grid (anchor + n * interval), not with a burst of catch-up probes.
    config = make_config([{"name": "t", "url": "http://127.0.0.1:1/", "interval": "1s"}])
    prober = FakeProber()
    records = []
    scheduler = scheduler_for(config, prober, records)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        await trio.sleep(0.5)
        autojump_clock.jump(3.2)  # as if the loop was blocked for 3.2 s
        await trio.sleep(2.0)
        scheduler.stop()
    # one late probe for the missed due time at 1 s, none for 2 and 3, then back on the grid
    assert prober.starts["t"] == [0.0, 3.7, 4.0, 5.0]


async def test_stagger_spreads_targets_and_keeps_each_cadence(autojump_clock):
    targets = [{"name": f"t{i}", "url": f"http://127.0.0.1:{i + 1}/"} for i in range(50)]
    config = make_config(targets, interval="10s", stagger="10s")
    prober = FakeProber()
    records = []
    await run_for(scheduler_for(config, prober, records), 25.0)
    firsts = sorted(starts[0] for starts in prober.starts.values())
    assert len(firsts) == 50
    assert firsts[0] >= 0
    assert firsts[-1] < 10.0
    assert len({round(f, 3) for f in firsts}) >= 45  # spread, not fired in one instant
    # ... but grouped in rounds by tick: one round (one nursery, one round line) per
    # SPREAD_TICK that has targets, however many targets share it
    # (a probe starting right at its tick: 0.3 / 0.1 is 2.999..., hence the epsilon)
    ticks = {math.floor(f / SPREAD_TICK + 1e-9) for f in firsts}
    first_rounds = [r for r in records if r.type == "round" and r.round <= len(ticks)]
    assert sum(r.targets for r in first_rounds) == 50
    assert sum(f < 5.0 for f in firsts) in range(15, 36)  # roughly even over the interval
    for starts in prober.starts.values():  # each target keeps its own steady cadence
        assert [round(b - a, 6) for a, b in itertools.pairwise(starts)] == [10.0] * (
            len(starts) - 1
        )
    # the same name lands on the same offset in every run
    again = FakeProber()
    await run_for(scheduler_for(config, again, []), 10.0)
    assert {n: s[0] for n, s in again.starts.items()} == {n: s[0] for n, s in prober.starts.items()}


async def test_once_is_never_staggered(autojump_clock):
    targets = [{"name": f"t{i}", "url": f"http://127.0.0.{i + 1}/"} for i in range(10)]
    prober = FakeProber()
    await scheduler_for(make_config(targets, stagger="10s"), prober, []).run(once=True)
    assert {s[0] for s in prober.starts.values()} == {0.0}


async def test_stagger_window_is_capped(autojump_clock):
    # an hourly target is not first probed an hour after start-up
    targets = [{"name": f"t{i}", "url": f"http://127.0.0.{i + 1}/"} for i in range(20)]
    prober = FakeProber()
    await run_for(scheduler_for(make_config(targets, interval="1h", stagger="5s"), prober, []), 6)
    firsts = [s[0] for s in prober.starts.values()]
    assert len(firsts) == 20
    assert max(firsts) < 5.0


async def test_by_default_probes_spread_over_the_whole_interval(autojump_clock):
    # no stagger key: each target's offset falls anywhere in its own interval, so a
    # minute's probes are spread over the minute, not a burst at its start
    targets = [{"name": f"t{i}", "url": f"http://127.0.0.{i + 1}/"} for i in range(200)]
    hourly = {"name": "hourly", "url": "http://127.0.0.1:9/", "interval": "1h"}
    config = factories.make_config(config_doc(*targets, hourly, monitor={"interval": "60s"}))
    assert config.monitor.stagger is None
    prober = FakeProber()
    await run_for(scheduler_for(config, prober, []), 130.0)
    firsts = sorted(prober.starts[f"t{i}"][0] for i in range(200))
    assert firsts[0] >= 0
    assert firsts[-1] < 60.0
    assert firsts[-1] > 50.0  # not capped at the old 15 s window
    per_quarter = [sum(q * 15 <= f < (q + 1) * 15 for f in firsts) for q in range(4)]
    assert all(30 <= n <= 70 for n in per_quarter), per_quarter  # flat: about 50 each
    for i in range(200):  # each keeps its cadence from its own offset
        starts = prober.starts[f"t{i}"]
        assert [round(b - a, 6) for a, b in itertools.pairwise(starts)] == [60.0] * (
            len(starts) - 1
        )
    # the hourly target's offset is within its hour, fixed by its name
    place = sum(stagger_spot(config.targets[-1], None))  # its round's tick + its spot in it
    assert place == sum(stagger_spot(config.targets[-1], 3600.0))
    assert prober.starts.get("hourly", []) == ([round(place, 6)] if place < 130 else [])


async def test_an_explicit_stagger_caps_the_spread(autojump_clock):
    targets = [{"name": f"t{i}", "url": f"http://127.0.0.{i + 1}/"} for i in range(50)]
    config = factories.make_config(
        config_doc(*targets, monitor={"interval": "60s", "stagger": "15s"})
    )
    prober = FakeProber()
    await run_for(scheduler_for(config, prober, []), 61.0)
    firsts = [s[0] for s in prober.starts.values()]
    assert len(firsts) == 50
    assert max(firsts) < 15.0


async def test_event_loop_stall_does_not_count_against_timeouts(autojump_clock):
    # A target that answers in 12 s with a 10 s timeout, while the process stalls for 5 s
    # (as a saturated CPU does): the stall is ours, so the deadline moves by it.
    async def answer_in_12s(request):
        await trio.sleep(12)
        return httpx.Response(200, text="late but fine")

    config = make_config([{"name": "t", "url": "http://127.0.0.1:1/", "timeout": "10s"}])
    records = []
    scheduler = Scheduler(
        config,
        {"http": HttpProber(httpx.MockTransport(answer_in_12s))},
        dispatcher_for(config, records),
    )
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(scheduler.run, once=True))
        await trio.sleep(1)
        autojump_clock.jump(5)  # no task runs meanwhile: a stall of the whole loop
    (result,) = [r for r in records if isinstance(r, ProbeResult)]
    assert result.ok, result.error_detail


async def test_without_a_stall_the_timeout_holds(autojump_clock):
    async def answer_in_12s(request):
        await trio.sleep(12)
        return httpx.Response(200)

    config = make_config([{"name": "t", "url": "http://127.0.0.1:1/", "timeout": "10s"}])
    records = []
    scheduler = Scheduler(
        config,
        {"http": HttpProber(httpx.MockTransport(answer_in_12s))},
        dispatcher_for(config, records),
    )
    await scheduler.run(once=True)
    (result,) = [r for r in records if isinstance(r, ProbeResult)]
    assert result.error == ErrorKind.TIMEOUT
    assert trio.current_time() == pytest.approx(10.0, abs=0.2)


async def test_a_limiter_that_cannot_block_is_not_taken():
    # one probe per target in flight: an origin with at most per_host targets, and a
    # fleet within concurrency, never wait for a token, so none is taken
    monitor = MonitorSection(concurrency=Positive(10), per_host=Positive(4))
    limits = Limits(monitor)

    async def held(*probes):
        """(global, confirmation share, per origin) tokens while these probes hold."""
        release = trio.Event()
        async with trio.open_nursery() as nursery:
            for key, confirm in probes:
                nursery.start_soon(hold, key, confirm, release)
            await trio.testing.wait_all_tasks_blocked()
            taken = (
                limits.limiter.borrowed_tokens,
                limits.confirm_share.borrowed_tokens,
                {k: lim.borrowed_tokens for k, lim in limits._by_key.items()},
            )
            release.set()
        return taken

    async def hold(key, confirm, release):
        async with limits.hold(key, confirm=confirm):
            await release.wait()

    limits.apply(monitor, ["a"] * 4 + ["b"] * 5)
    # 5 targets on b: its limiter can block; 9 targets within concurrency 10
    assert await held(("a", False), ("b", False)) == (0, 0, {"b": 1})
    # a reload counts the old targets too (their last probes may still run)
    limits.apply(monitor, ["c"] * 4 + ["b"] * 3)
    assert await held(("b", False), ("c", True)) == (2, 1, {"b": 1})
    limits.apply(monitor, ["c"] * 4 + ["b"] * 3)  # settled: 7 targets, 3 or 4 per origin
    assert await held(("b", False), ("c", True)) == (0, 1, {})  # the share (5) can block


async def test_a_free_token_is_taken_without_a_scheduling_point_and_waiters_go_first():
    monitor = MonitorSection(concurrency=Positive(1), per_host=Positive(1))
    limits = Limits(monitor)
    limits.apply(monitor, ["a", "a"])  # both limiters can block
    with trio.testing.assert_no_checkpoints():  # acquire() alone would pass through one
        async with limits.hold("a"):
            pass
    order = []

    async def probe(name):
        async with limits.hold("a"):
            order.append(name)
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        async with limits.hold("a"):
            nursery.start_soon(probe, "waiting")
            await trio.testing.wait_all_tasks_blocked()  # parked for the tokens
        # released: the parked probe has them now, a newcomer waits behind it
        nursery.start_soon(probe, "newcomer")
    assert order == ["waiting", "newcomer"]
    assert (limits.limiter.borrowed_tokens, limits._by_key["a"].borrowed_tokens) == (0, 0)


async def test_select_probes_only_owned_targets_and_a_gained_one_at_once(autojump_clock):
    """The target-selection seam (a cluster node's share): an unowned target's due
    times pass unprobed; one gained is probed at once, then on its own cadence."""
    config = make_config(
        [
            {"name": "mine", "url": "http://127.0.0.1:1/", "interval": "1s"},
            {"name": "theirs", "url": "http://127.0.0.1:2/", "interval": "1s"},
        ],
        stagger="0s",
    )
    prober = FakeProber()
    scheduler = scheduler_for(config, prober, [])
    owned = {"mine"}
    scheduler.select(owned.__contains__)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        await trio.sleep(2.5)
        owned.add("theirs")
        scheduler.select(owned.__contains__, gained=["theirs"])
        await trio.sleep(2.0)
        scheduler.stop()
    assert prober.starts["mine"] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert prober.starts["theirs"] == [2.5, 3.0, 4.0]
