"""Early warning (trio_monitor/early/): each detector on synthetic series, episodes,
outages, persistence across a restart, the config."""

from __future__ import annotations

import json
import math
import random
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import trio
from factories import T0, config_doc, make_config, make_target, probe_result, tls_details

from trio_monitor import ConfigError, Target
from trio_monitor._config import AlertsSection, EarlyWarningSection
from trio_monitor._records import AlertEvent, to_dict
from trio_monitor.early import EarlyWarning
from trio_monitor.early.baselines import season_slot
from trio_monitor.early.store import load_models, save, serve_baselines
from trio_monitor.engine.state import MemoryStateStore
from trio_monitor.net.certs import DAY
from trio_monitor.store import HistoryReader, StoreStats, StoreWriter, open_store
from trio_monitor.store._db import Db, ErrorLog

STEP = 30.0  # seconds between probes
WEEK = 7 * 86400 // int(STEP)  # probes in a week
PARAMS = EarlyWarningSection()


class Replay:
    """A target's probes through the state store and early warning, on virtual time."""

    def __init__(self, target: Target | None = None, params: EarlyWarningSection = PARAMS) -> None:
        self.target = target or make_target(name="t")
        self.state = MemoryStateStore(AlertsSection())
        self.early = EarlyWarning(params, self.state)
        self.i = 0

    def feed(self, points: Iterable[dict[str, Any]]) -> list[tuple[int, AlertEvent]]:
        """Each point: probe_result's fields. -> (probe index, alert) for every alert."""
        out = []
        for fields in points:
            ts = T0 + self.i * STEP
            r = probe_result(self.target.name, ts=ts, url=self.target.url, **fields)
            r, alerts = self.state.observe(self.target, r, ts - T0)
            alerts += self.early.observe(self.target, r, ts - T0)
            out += [(self.i, a) for a in alerts]
            self.i += 1
        return out


def warnings(alerts: list[tuple[int, AlertEvent]]) -> list[tuple[int, AlertEvent]]:
    return [(i, a) for i, a in alerts if a.event == "degrading"]


def latencies(
    n: int, *, seed: int = 1, base: float = 80.0, noise: float = 0.15, diurnal: float = 0.0
) -> Iterator[float]:
    rng = random.Random(seed)
    for i in range(n):
        day = 2 * math.pi * (i * STEP) / 86400
        yield base * math.exp(diurnal * math.sin(day) + rng.gauss(0, noise))


def ok(lat: Iterable[float], **fields: Any) -> Iterator[dict[str, Any]]:
    return ({"latency_ms": x, **fields} for x in lat)


# --- latency -----------------------------------------------------------------------


def test_a_latency_ramp_is_caught_once_before_the_outage_and_names_its_evidence():
    replay = Replay()
    assert replay.feed(ok(latencies(400))) == []
    ramp = [x * math.exp(0.04 * i) for i, x in enumerate(latencies(60, seed=2))]
    found = warnings(replay.feed(ok(ramp)))
    alerts = replay.feed([{"ok": False}] * 3)
    assert [a.event for _, a in alerts] == ["down"]
    assert len(found) == 1  # one per episode, not one per probe
    i, alert = found[0]
    assert 400 < i < 440  # well before the outage at 460
    assert alert.signal == "latency"
    assert alert.baseline is not None
    assert 60 < alert.baseline < 110
    assert alert.current is not None
    assert alert.current > 1.2 * alert.baseline
    assert alert.score is not None
    assert alert.score >= 1
    assert alert.since is not None
    assert T0 + 350 * STEP <= alert.since <= alert.ts
    assert alert.detail is not None
    assert alert.detail.startswith("latency ")
    line = to_dict(alert)
    assert {"signal", "baseline", "current", "score", "since"} <= line.keys()


def test_a_diurnal_pattern_is_not_flagged_over_a_week():
    replay = Replay()
    assert warnings(replay.feed(ok(latencies(WEEK, diurnal=0.4)))) == []


def test_one_off_spikes_are_not_flagged():
    replay = Replay()
    lat = list(latencies(2000))
    for i in range(300, 2000, 97):
        lat[i] *= 50  # a single probe 50 times slower, now and then
    assert warnings(replay.feed(ok(lat))) == []


def test_after_the_signal_is_back_to_its_baseline_the_next_episode_warns_again():
    replay = Replay()
    replay.feed(ok(latencies(400)))
    slow = ok(x * 4 for x in latencies(20, seed=3))
    assert len(warnings(replay.feed(slow))) == 1
    assert replay.early.warning("t") is not None  # open while it lasts
    replay.feed(ok(latencies(200, seed=4)))
    assert replay.early.warning("t") is None  # back to normal: over
    assert len(warnings(replay.feed(ok(x * 4 for x in latencies(20, seed=5))))) == 1


def test_no_warning_before_the_warm_up():
    replay = Replay(params=EarlyWarningSection(warmup=300))
    lat = [x * (4 if i > 100 else 1) for i, x in enumerate(latencies(250))]
    assert replay.feed(ok(lat)) == []


def test_the_seasonal_profile_is_learned_per_hour_and_weekend():
    assert season_slot(T0) == 8  # 2027-01-15 (a Friday) 08:00 UTC
    assert season_slot(T0 + 86400) == 24 + 8  # Saturday
    replay = Replay()
    replay.feed(ok(latencies(2 * 2880, diurnal=0.4)))
    model = replay.early._models["t"]
    # the daily peak (Friday 14:00 UTC) is above the trough (Saturday 02:00)
    peak, trough = season_slot(T0 + 6 * 3600), season_slot(T0 + 18 * 3600)
    assert model.latency.offset(peak) - model.latency.offset(trough) > 0.4


# --- errors ------------------------------------------------------------------------


def test_intermittent_failures_rising_below_the_down_threshold_are_caught():
    replay = Replay()
    replay.feed(ok(latencies(400)))
    rng = random.Random(7)
    points = [
        {"ok": False} if rng.random() < 0.2 and i % 3 else {"latency_ms": 80.0} for i in range(60)
    ]
    found = warnings(replay.feed(points))
    assert [a.signal for _, a in found] == ["errors"]
    assert replay.state.get("t").state == "UP"  # never DOWN: below the threshold


def test_rare_isolated_failures_are_not_flagged():
    replay = Replay()
    points = [{"ok": False} if i % 600 == 300 else {"latency_ms": 80.0} for i in range(WEEK)]
    assert warnings(replay.feed(points)) == []


def test_an_outage_ends_the_episode_and_nothing_warns_while_down():
    replay = Replay()
    replay.feed(ok(latencies(400)))
    replay.feed(ok(x * 4 for x in latencies(20, seed=3)))
    assert replay.early.warning("t") is not None
    alerts = replay.feed([{"ok": False}] * 50)
    assert [a.event for _, a in alerts] == ["down"]
    assert replay.early.warning("t") is None
    replay.feed(ok(latencies(5)))  # recovered, at the baseline
    assert len(warnings(replay.feed(ok(x * 4 for x in latencies(20, seed=3))))) == 1


def test_a_target_with_early_warning_off_never_warns():
    replay = Replay(target=make_target(name="t", early_warning=False))
    replay.feed(ok(latencies(400)))
    assert replay.feed(ok(x * 4 for x in latencies(60))) == []
    assert list(replay.early.scores()) == []


# --- size, churn -------------------------------------------------------------------


def test_a_step_in_body_size_is_caught_and_a_one_off_size_is_not():
    replay = Replay()
    sizes = [5000] * 400
    sizes[300] = 200  # one odd body
    assert warnings(replay.feed({"latency_ms": 80.0, "bytes": s} for s in sizes)) == []
    found = warnings(replay.feed({"latency_ms": 80.0, "bytes": 1800} for _ in range(20)))
    assert [a.signal for _, a in found] == ["size"]
    assert found[0][1].baseline == pytest.approx(5000, rel=0.05)
    assert found[0][1].current is not None
    assert found[0][1].current < 3000


def test_content_churn_on_a_stable_page_is_caught():
    replay = Replay()
    replay.feed({"latency_ms": 80.0, "bytes": 500} for _ in range(400))
    changing = ({"latency_ms": 80.0, "bytes": 500, "content_changed": True} for _ in range(20))
    assert [a.signal for _, a in warnings(replay.feed(changing))] == ["churn"]


# --- certificates ------------------------------------------------------------------


class Certificates:
    """Daily probes of a target whose certificate is renewed (90 days more) once
    `renew_at` days are left."""

    def __init__(self) -> None:
        self.replay = Replay()
        self.not_after = T0 + 60 * DAY

    def days(self, n: int, renew_at: float | None) -> list[tuple[int, AlertEvent]]:
        out = []
        for _ in range(n):
            ts = T0 + self.replay.i * STEP
            if renew_at is not None and self.not_after - ts < renew_at * DAY:
                self.not_after = ts + 90 * DAY
            tls = tls_details(self.not_after, ts=ts)
            out += self.replay.feed([{"latency_ms": 80.0, "tls": tls}])
            self.replay.i += 2879  # a day apart
        return warnings(out)


def test_a_certificate_renewed_on_time_never_warns():
    assert Certificates().days(200, renew_at=30) == []


def test_a_certificate_whose_renewal_is_overdue_warns_once_with_days_left():
    certs = Certificates()
    assert certs.days(100, renew_at=30) == []  # renewed at 30 days left, twice
    found = certs.days(70, renew_at=None)  # then not any more
    assert [a.signal for _, a in found] == ["cert"]
    alert = found[0][1]
    assert alert.baseline is not None
    assert alert.current is not None
    assert 24 < alert.current <= alert.baseline - 2  # days left when it warned


# --- persistence -------------------------------------------------------------------


def test_baselines_survive_a_restart_and_warn_without_a_new_warm_up(tmp_path):
    path = str(tmp_path / "h.db")
    open_store(path).close()
    before = Replay()
    before.feed(ok(latencies(400)))

    async def persist() -> None:
        db = Db(path, 5.0, sqlite3.connect)
        assert await save(before.early, db, ErrorLog("test"))
        await db.close()

    trio.run(persist)
    models = load_models(path, ["t", "other"], PARAMS)
    assert list(models) == ["t"]
    after = Replay()
    after.early.adopt(models)
    model, learned = after.early._models["t"], before.early._models["t"]
    assert model.latency.n == learned.latency.n == 400
    assert model.latency.level == pytest.approx(learned.latency.level)
    assert model.latency.offsets == learned.latency.offsets
    assert len(warnings(after.feed(ok(x * 4 for x in latencies(20, seed=3))))) == 1


def test_without_stored_baselines_the_history_samples_warm_it_up(tmp_path):
    path = str(tmp_path / "h.db")
    writer = StoreWriter(path, make_config(config_doc()).storage, StoreStats())

    async def write() -> None:
        for i, x in enumerate(latencies(PARAMS.warmup)):
            writer.add(probe_result("t", ts=T0 + i * STEP, latency_ms=x))
        assert await writer.flush()

    trio.run(write)
    models = load_models(path, ["t"], PARAMS)
    assert models["t"].latency.n == PARAMS.warmup
    assert math.exp(models["t"].latency.level) == pytest.approx(80, rel=0.2)


def test_serve_baselines_saves_once_more_at_the_stop(tmp_path):
    path = str(tmp_path / "h.db")
    open_store(path).close()
    replay = Replay()
    replay.feed(ok(latencies(10)))

    async def main() -> None:
        stopped = trio.Event()
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_baselines, replay.early, path, stopped)
            replay.feed(ok(latencies(5)))
            stopped.set()
        assert stored() == 15

    def stored() -> int | None:
        with HistoryReader(path) as reader:
            rows = reader.baselines()
        return json.loads(rows[0][1])["latency"][0] if rows else None

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_degrading_alerts_are_kept_as_warnings_in_history(tmp_path):
    path = str(tmp_path / "h.db")
    writer = StoreWriter(path, make_config(config_doc()).storage, StoreStats())
    alert = AlertEvent(
        ts=T0, target="t", url="u", event="degrading", signal="errors", baseline=0.01,
        current=0.05, score=1.2, since=T0 - 60, detail="failures rising",
    )  # fmt: skip

    async def write() -> None:
        writer.add(alert)
        assert await writer.flush()

    trio.run(write)
    with HistoryReader(path) as reader:
        (w,) = reader.warnings(0, math.inf)
    assert (w.target, w.ts, w.signal, w.baseline, w.current, w.score, w.detail) == (
        "t", T0, "errors", 0.01, 0.05, 1.2, "failures rising"
    )  # fmt: skip


# --- config ------------------------------------------------------------------------


def test_early_warning_is_on_by_default_and_off_per_target():
    config = make_config(
        config_doc({"url": "http://a.test/"}, {"url": "http://b.test/", "early_warning": False})
    )
    assert [t.early_warning for t in config.targets] == [True, False]
    config = make_config(
        config_doc({"url": "http://a.test/"}, early_warning={"enabled": False, "warmup": 50})
    )
    assert [t.early_warning for t in config.targets] == [False]
    assert config.early_warning.warmup == 50


@pytest.mark.parametrize(
    ("section", "line"),
    [
        ({"warmup": 0}, "early_warning.warmup: must be 1 or more, got 0"),
        (
            {"latency_threshold": -1},
            "early_warning.latency_threshold: must be between 0.01 and 1000, got -1",
        ),
        ({"errors_floor": "x"}, "early_warning.errors_floor: expected a number, got 'x'"),
        ({"cert_margin": "2 days"}, "early_warning.cert_margin: "),
        ({"nope": 1}, "early_warning"),
    ],
)
def test_early_warning_config_errors_are_one_line_each(section, line):
    with pytest.raises(ConfigError) as info:
        make_config(config_doc({"url": "http://a.test/"}, early_warning=section))
    (problem,) = info.value.problems
    assert problem.startswith(f"<memory>: {line}")
    assert "\n" not in problem


# --- surfaces ----------------------------------------------------------------------


def test_the_anomaly_score_metric_follows_each_signal():
    from test_metrics import value

    from trio_monitor.server.metrics import Metrics

    replay = Replay()
    metrics = Metrics(replay.early.scores)
    replay.feed(ok(latencies(400), bytes=500))
    for signal in ("latency", "errors", "size", "churn"):
        assert 0 <= value(metrics, "probe_anomaly_score", target="t", signal=signal) < 0.5
    assert value(metrics, "probe_anomaly_score", target="t", signal="cert") is None  # no TLS
    replay.feed(ok((x * 4 for x in latencies(20, seed=3)), bytes=500))
    score = value(metrics, "probe_anomaly_score", target="t", signal="latency")
    assert score is not None
    assert score >= 1


def test_the_view_shows_a_targets_open_warning():
    from trio_monitor.engine.view import MonitorView, RecentStats

    replay = Replay()
    config = make_config(config_doc({"name": "t", "url": "http://127.0.0.1/"}))
    view = MonitorView(lambda: config, replay.state, None, RecentStats(), lambda: T0, replay.early)
    replay.feed(ok(latencies(400)))
    status = view.target("t")
    assert status is not None
    assert status.degrading is None
    replay.feed(ok(x * 4 for x in latencies(20, seed=3)))
    status = view.target("t")
    assert status is not None
    assert status.degrading is not None
    assert status.degrading.signal == "latency"


def test_a_certificate_already_within_cert_expiry_is_left_to_cert_expiring():
    replay = Replay()
    tls = tls_details(T0 + 2 * DAY, ts=T0)  # 2 days left of 90: overdue, and expiring
    alerts = replay.feed([{"latency_ms": 80.0, "tls": tls}])
    assert [a.event for _, a in alerts] == ["cert_expiring"]
