"""Confirmation probes on trio's autojump clock: after a failure (and while DOWN) a
target is probed every confirm_interval (recover_interval) until its state is decided,
then goes back to its normal due times; other targets' schedules never move."""

from __future__ import annotations

import factories
import pytest
import trio
from factories import config_doc
from fakes import FakeProber, dispatcher_for, rounds

from trio_monitor import AlertEvent, ProbeResult
from trio_monitor._config import MonitorSection, Positive
from trio_monitor._records import to_dict
from trio_monitor.engine.rounds import Limits
from trio_monitor.engine.schedule import Scheduler, stagger_spot


def timed_scheduler(config, prober, records, times):
    """A scheduler whose records also land in `times` as (seconds since t0, record)."""
    dispatcher = dispatcher_for(config, records)
    dispatcher.add_observer(lambda r: times.append((trio.current_time() - prober.t0, r)))
    return Scheduler(config, {"http": prober}, dispatcher)


async def run(scheduler, seconds, **options):
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: scheduler.run(**options))
        await trio.sleep(seconds)
        scheduler.stop()


def alert_times(times, event):
    return [round(t, 6) for t, r in times if isinstance(r, AlertEvent) and r.event == event]


def probes(records, name):
    return [r for r in records if isinstance(r, ProbeResult) and r.target == name]


def config_with(targets, alerts=None, **monitor):
    """Unstaggered unless asked, like fakes.make_config, with an [alerts] table."""
    doc = config_doc(*targets, monitor={"stagger": "0s", **monitor}, alerts=alerts or {})
    return factories.make_config(doc)


async def test_cadence_switches_to_confirm_and_recover_and_back(autojump_clock):
    """The issue's example: interval 30 s, threshold 3, confirm_interval 2 s; each probe
    takes the timeout (1 s, the worst case). `flaky` fails from its probe at 30 s to
    before 40.5 s; success_threshold 2."""
    config = config_with(
        [
            {"name": "flaky", "url": "http://127.0.0.1:1/", "timeout": "1s"},
            {"name": "steady", "url": "http://127.0.0.1:2/"},
        ],
        alerts={"failure_threshold": 3, "success_threshold": 2},
        interval="30s",
        confirm_interval="2s",
    )
    prober = FakeProber({"flaky": 1.0}, fail_during={"flaky": (30.0, 40.5)})
    records, times = [], []
    await run(timed_scheduler(config, prober, records, times), 95)

    # normal 0, 30; confirming 32, 34 (DOWN); recovering 36..44 (UP); normal 60, 90
    assert prober.starts["flaky"] == [0, 30, 32, 34, 36, 38, 40, 42, 44, 60, 90]
    assert prober.starts["steady"] == [0, 30, 60, 90]  # unchanged
    # first failed probe (30) to `down`: 2 x confirm_interval + the timeout
    assert alert_times(times, "down") == [35.0]
    assert 35.0 - 30.0 <= 2 * 2 + 1.0
    # first good probe (42) to `up`: (success_threshold - 1) x recover_interval + latency
    assert alert_times(times, "up") == [45.0]
    assert 45.0 - 42.0 <= (2 - 1) * 2 + 1.0
    assert [r.confirm for r in probes(records, "flaky")] == [False, False] + [True] * 7 + [
        False,
        False,
    ]
    assert not any(r.confirm for r in probes(records, "steady"))
    assert sum(r.confirm for r in rounds(records)) == 7
    # in the JSON lines: added fields, schema 1
    line = to_dict(probes(records, "flaky")[2])
    assert (line["schema"], line["confirm"]) == (1, True)
    assert [to_dict(r)["confirm"] for r in rounds(records)][1:4] == [0, 1, 1]
    assert sum(r.skipped for r in rounds(records)) == 0


async def test_recover_interval_paces_a_down_target(autojump_clock):
    config = config_with(
        [{"name": "t", "url": "http://127.0.0.1:1/"}],
        interval="60s",
        confirm_interval="1s",
        recover_interval="10s",
    )
    prober = FakeProber({"t": 0.01}, fail_during={"t": (0.0, 25.0)})
    records, times = [], []
    await run(timed_scheduler(config, prober, records, times), 61)
    # confirm at 1, 2 (DOWN after 3 failures); recover every 10 s: 12, 22 fail, 32 ok
    # (success_threshold 1: UP); then its normal due time
    assert prober.starts["t"] == [0, 1, 2, 12, 22, 32, 60]
    assert alert_times(times, "down") == [2.01]
    assert alert_times(times, "up") == [32.01]


async def test_one_success_while_confirming_goes_back_to_the_normal_cadence(autojump_clock):
    config = config_with(
        [{"name": "blip", "url": "http://127.0.0.1:1/"}], interval="30s", confirm_interval="5s"
    )
    prober = FakeProber(fail_during={"blip": (30.0, 31.0)})
    records, times = [], []
    await run(timed_scheduler(config, prober, records, times), 95)
    assert prober.starts["blip"] == [0, 30, 35, 60, 90]  # one confirmation, no alert
    assert alert_times(times, "down") == []


async def test_confirmations_slower_than_their_interval_never_stack(autojump_clock):
    """Probes that take 3 s with confirm_interval 2 s: the next starts as the previous
    ends; a normal due time that finds one in flight is skipped, as always."""
    config = config_with(
        [{"name": "sluggish", "url": "http://127.0.0.1:1/"}],
        interval="10s",
        confirm_interval="2s",
    )
    prober = FakeProber({"sluggish": 3.0}, fail_during={"sluggish": (0.0, 1000.0)})
    records = []
    await run(timed_scheduler(config, prober, records, []), 22)
    assert prober.max_active_per_target["sluggish"] == 1
    assert prober.starts["sluggish"] == [0, 3, 6, 9, 12, 15, 18, 21]
    assert sum(r.skipped for r in rounds(records)) == 2  # due at 10 and 20


async def test_a_confirmation_as_late_as_the_next_due_time_is_the_normal_probe(autojump_clock):
    config = config_with(
        [{"name": "t", "url": "http://127.0.0.1:1/"}], interval="2s", confirm_interval="2s"
    )
    prober = FakeProber(fail_during={"t": (0.0, 1000.0)})
    records = []
    await run(timed_scheduler(config, prober, records, []), 9)
    assert prober.starts["t"] == [0, 2, 4, 6, 8]
    assert not any(r.confirm for r in probes(records, "t"))
    assert sum(r.skipped for r in rounds(records)) == 0


async def test_once_never_confirms(autojump_clock):
    config = config_with([{"name": "t", "url": "http://127.0.0.1:1/"}], confirm_interval="1s")
    prober = FakeProber(fail_during={"t": (0.0, 1000.0)})
    records = []
    scheduler = timed_scheduler(config, prober, records, [])
    summary = await scheduler.run(once=True)
    await trio.sleep(10)
    assert prober.starts["t"] == [0]
    assert summary is not None
    assert summary.confirm == 0


async def test_a_mass_failure_holds_at_most_half_the_probe_limit(autojump_clock):
    """Six targets fail for good and their probes take 5 s, so after their first probe
    they are re-probed back to back; with concurrency 6 they could hold every token.
    The confirmation share (3) leaves the healthy target its schedule, to the instant."""
    failing = [{"name": f"f{i}", "url": f"http://127.0.0.1:{10 + i}/"} for i in range(6)]
    healthy = {"name": "h", "url": "http://127.0.0.1:2/", "interval": "1s"}
    config = config_with(
        [*failing, healthy],
        interval="60s",
        confirm_interval="1s",
        concurrency=6,
        stagger="60s",
    )
    durations = {f"f{i}": 5.0 for i in range(6)}
    prober = FakeProber(durations, fail_during={f"f{i}": (0.0, 1000.0) for i in range(6)})
    records = []
    scheduler = timed_scheduler(config, prober, records, [])
    assert scheduler.limits.confirm_share.total_tokens == 3
    await run(scheduler, 100.5)
    offset = sum(stagger_spot(config.targets[-1], 60.0))  # its round's tick, its spot in it
    assert prober.starts["h"] == [round(offset + n, 6) for n in range(100)]
    # every failing target is probing all the time by now, 3 at once at most
    late = sorted(t for i in range(6) for t in prober.starts[f"f{i}"] if t >= 70)
    assert all(sum(s <= t < s + 5 for s in late) <= 3 for t in late)
    # confirmations queue for their share by design: no start lag for health
    assert scheduler.recent_start_lag()[1] == 0.0  # the worst


async def test_a_reload_keeps_an_unchanged_targets_confirmation(autojump_clock):
    targets = [{"name": "t", "url": "http://127.0.0.1:1/"}]
    config = config_with(targets, interval="30s", confirm_interval="2s")
    prober = FakeProber(fail_during={"t": (0.0, 3.0)})
    records = []
    scheduler = timed_scheduler(config, prober, records, [])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        await trio.sleep(1)
        await scheduler.reconfigure(
            config, config_with(targets, interval="30s", confirm_interval="2s")
        )
        await trio.sleep(40)
        scheduler.stop()
    assert prober.starts["t"] == [0, 2, 4, 30]


@pytest.mark.parametrize("failure_threshold", [1, 2, 3, 5])
@pytest.mark.parametrize("success_threshold", [1, 2, 3])
async def test_down_and_up_timing_formulas(autojump_clock, failure_threshold, success_threshold):
    """README's formulas, exact when every probe takes the whole timeout (1 s):
    first failed probe to `down` = (failure_threshold - 1) x confirm_interval + timeout;
    first good probe to `up` = (success_threshold - 1) x recover_interval + latency."""
    config = config_with(
        [{"name": "t", "url": "http://127.0.0.1:1/", "timeout": "1s"}],
        alerts={"failure_threshold": failure_threshold, "success_threshold": success_threshold},
        interval="60s",
        confirm_interval="2s",
        recover_interval="3s",
    )
    prober = FakeProber({"t": 1.0}, fail_during={"t": (60.0, 80.0)})
    records, times = [], []
    await run(timed_scheduler(config, prober, records, times), 119)
    (down,) = alert_times(times, "down")
    assert down - 60.0 == (failure_threshold - 1) * 2.0 + 1.0
    first_good = next(t for t in prober.starts["t"] if t >= 80.0)
    (up,) = alert_times(times, "up")
    assert up - first_good == (success_threshold - 1) * 3.0 + 1.0
    assert prober.starts["t"][-1] == up - 1.0  # then nothing until its next due time (120)


async def test_a_changed_target_is_probed_at_once_and_paced_by_its_kept_state(autojump_clock):
    targets = [{"name": "t", "url": "http://127.0.0.1:1/"}]
    config = config_with(targets, interval="30s", confirm_interval="2s")
    prober = FakeProber(fail_during={"t": (0.0, 4.0)})
    records, times = [], []
    scheduler = timed_scheduler(config, prober, records, times)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(scheduler.run)
        await trio.sleep(1)
        changed = config_with(
            [{**targets[0], "timeout": "3s"}], interval="30s", confirm_interval="2s"
        )
        await scheduler.reconfigure(config, changed)
        await trio.sleep(40)
        scheduler.stop()
    # the old slot's confirmation (due at 2) is gone; the new slot starts at 1 with the
    # kept failure count: 1 and 3 fail (DOWN), 5 recovers, then its own cadence
    assert prober.starts["t"] == [0, 1, 3, 5, 31]
    assert alert_times(times, "down") == [3.01]
    assert alert_times(times, "up") == [5.01]


def test_the_confirmation_share_is_half_the_lowest_probe_limit():
    limits = Limits(MonitorSection(concurrency=Positive(7)))
    assert limits.confirm_share.total_tokens == 3
    limits.apply(MonitorSection(concurrency=Positive(1)), ())
    assert limits.confirm_share.total_tokens == 1  # never none
    adaptive = MonitorSection(concurrency=Positive(200), adaptive=True, adaptive_min=Positive(10))
    limits.apply(adaptive, ())  # the limit in force never goes below adaptive_min
    assert limits.confirm_share.total_tokens == 5
