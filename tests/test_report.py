"""`trio-monitor report`: bucket percentiles, the aggregator's maths, both sources (a fake
HistoryReader; the monitor's JSON lines through the real console script), every format,
error paths, and the HTML page rendered by real headless Chromium.

Percentiles come from the log-bucket histogram of `store.records`: for latencies of at least
FLOOR_MS (0.1 ms) their relative error is at most ERROR_BOUND = sqrt(1.1) - 1 (4.88%).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import shutil
import subprocess
import sys
import zipfile
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import attrs
import pytest
import trio
from chromium import set_viewport
from factories import (
    alert_event,
    config_doc,
    probe_result,
    round_summary,
    tls_details,
    write_config,
)
from pngs import read_png

from trio_monitor._config import StorageSection
from trio_monitor._errors import UsageError
from trio_monitor._palette import COLORS, OK_FROM, WARN_FROM
from trio_monitor._records import PHASES, AlertEvent, TargetRemoved, rfc3339, to_line
from trio_monitor.cli import report as report_cli
from trio_monitor.cli.main import main
from trio_monitor.cli.report import make_report, parse_time
from trio_monitor.report import (
    Aggregator,
    build_report,
    feed_jsonl,
    feed_store,
    render_html,
    render_json,
    render_text,
)
from trio_monitor.report.format import fmt_pct, human_duration
from trio_monitor.store import StoreStats, StoreWriter
from trio_monitor.store.records import (
    ERROR_BOUND,
    FLOOR_MS,
    Certificate,
    ContentChange,
    Histogram,
    HourRollup,
    Incident,
    Sample,
    encode_phases,
    rollup,
)

T0 = 1_780_000_000.0 - 1_780_000_000 % 3600  # an hour boundary (2026-05-28T20:00:00Z)
TIMEOUT = 30.0  # seconds any console-script run may take
EXE = Path(sys.executable).with_name("trio-monitor")
ROOT = Path(__file__).resolve().parent.parent


def test_error_bound_is_what_the_docs_say():
    # The README and the report state +/-4.9%: sqrt(1.1) - 1.
    assert pytest.approx(math.sqrt(1.1) - 1) == ERROR_BOUND
    assert 0.048 < ERROR_BOUND < 0.049


# --- percentile accuracy of the bucket scheme ------------------------------------------


def _exact(values: list[float], p: float) -> float:
    """Nearest-rank percentile, the definition Histogram.percentile reads buckets by."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def _uniform(rng: random.Random, n: int) -> list[float]:
    return [rng.uniform(1.0, 2000.0) for _ in range(n)]


def _lognormal(rng: random.Random, n: int) -> list[float]:
    return [max(FLOOR_MS, rng.lognormvariate(math.log(40), 1.2)) for _ in range(n)]


def _bimodal(rng: random.Random, n: int) -> list[float]:
    # a fast cache hit and a slow backend call
    return [
        max(FLOOR_MS, rng.gauss(3, 0.5) if rng.random() < 0.7 else rng.gauss(350, 60))
        for _ in range(n)
    ]


@pytest.mark.parametrize("make", [_uniform, _lognormal, _bimodal])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bucket_percentiles_within_error_bound(make, seed):
    values = make(random.Random(seed), 20_000)
    hist = Histogram.empty()
    for v in values:
        hist.add(v)
    worst = 0.0
    for p in (1, 10, 25, 50, 75, 90, 95, 99, 99.9, 100):
        exact = _exact(values, p)
        got = hist.percentile(p)
        assert got is not None
        # percentile() rounds to 3 decimals: allow that on top of the bucket error
        error = abs(got - exact) / exact
        assert error <= ERROR_BOUND + 0.0005 / exact + 1e-12, (p, exact, got)
        worst = max(worst, error)
    assert worst > 0  # the histogram really is approximate: the test compares something


def test_report_percentiles_are_the_histograms_within_bound():
    rng = random.Random(7)
    values = _lognormal(rng, 5000)
    a = Aggregator(T0, T0 + 5000)
    for i, v in enumerate(values):
        a.add_sample(Sample("api", T0 + i, True, v, None, 200))
    t = build_report(a).targets[0]
    for p, got in ((50, t.p50), (95, t.p95), (99, t.p99)):
        exact = _exact(values, p)
        assert abs(got - exact) / exact <= ERROR_BOUND + 0.0005 / exact
    assert t.mean_ms == pytest.approx(sum(values) / len(values))
    assert (t.min_ms, t.max_ms) == (min(values), max(values))


# --- aggregator maths on hand-made data --------------------------------------------------

SINCE = T0
UNTIL = T0 + 48 * 600  # 48 slots of 10 minutes


def _ok(target: str, ts: float, ms: float = 10.0, phases: bytes | None = None) -> Sample:
    return Sample(target, ts, True, ms, None, 200, phases)


def _fresh(ms: float, tls: float | None = 8.0) -> bytes | None:
    """The phases of a fresh connection whose answer took `ms`: dns 0.5, connect 1,
    `tls`, the rest split 9:1 between ttfb and transfer."""
    rest = ms - 1.5 - (tls or 0.0)
    phases = {"dns": 0.5, "connect": 1.0, "tls": tls, "ttfb": 0.9 * rest, "transfer": 0.1 * rest}
    return encode_phases(phases)


def _fail(target: str, ts: float, error: str = "connect") -> Sample:
    return Sample(target, ts, False, None, error, None)


def test_availability_counts_only_the_range_and_fills_slots():
    a = Aggregator(SINCE, UNTIL)
    for i in range(95):
        a.add_sample(_ok("api", SINCE + i * 60, ms=10.0 + i))
    for i in range(5):
        a.add_sample(_fail("api", SINCE + 600 + i))  # all in slot 1
    a.add_sample(_ok("api", SINCE - 0.001))  # before: left out
    a.add_sample(_ok("api", UNTIL))  # [since, until): the end is out
    a.add_sample(_fail("api", UNTIL + 5))
    t = build_report(a).targets[0]
    assert (t.checks, t.ok, t.failures) == (100, 95, 5)
    assert t.availability_pct == pytest.approx(95.0)
    assert a.outside == 3
    assert sum(s.checks for s in t.slots) == 100
    assert t.slots[0].checks == 10  # SINCE .. SINCE + 599
    assert t.slots[1].checks == 15
    assert t.slots[1].failures == 5
    assert t.slots[1].availability == pytest.approx(10 / 15)
    assert t.slots[0].mean_latency_ms == pytest.approx(sum(10.0 + i for i in range(10)) / 10)
    assert t.slots[47].checks == 0
    assert t.slots[47].availability is None
    assert t.slots[47].mean_latency_ms is None


def test_incidents_clipped_for_downtime_whole_for_longest_and_mttr():
    a = Aggregator(SINCE, UNTIL)
    a.add_incident(Incident("api", SINCE - 1000, SINCE + 500, "timeout"))  # straddles since
    a.add_incident(Incident("api", SINCE + 2000, SINCE + 2600, "connect"))
    a.add_incident(Incident("api", UNTIL - 300, None, "dns"))  # open: ongoing
    a.add_incident(Incident("api", SINCE - 900, SINCE - 100, "dns"))  # ended before: out
    a.add_incident(Incident("api", SINCE - 900, SINCE, "dns"))  # ended at since: out
    a.add_incident(Incident("api", UNTIL, None, "dns"))  # starts at until: out
    t = build_report(a).targets[0]
    assert [(i.start, i.end) for i in t.incidents] == [
        (SINCE - 1000, SINCE + 500),
        (SINCE + 2000, SINCE + 2600),
        (UNTIL - 300, None),
    ]
    assert [i.in_range_s for i in t.incidents] == [500, 600, 300]
    assert [i.duration_s for i in t.incidents] == [1500, 600, 300]
    assert t.downtime_s == 500 + 600 + 300
    assert t.longest_outage_s == 1500  # the whole outage, though it began before the range
    assert t.mttr_s == (1500 + 600) / 2  # closed incidents only
    assert t.ongoing == 1
    assert [i.ongoing for i in t.incidents] == [False, False, True]


def test_open_incident_that_straddles_the_whole_range():
    a = Aggregator(SINCE, UNTIL)
    a.add_incident(Incident("api", SINCE - 3600, None, "timeout"))
    t = build_report(a).targets[0]
    assert t.downtime_s == UNTIL - SINCE
    assert t.longest_outage_s == UNTIL - SINCE + 3600
    assert t.mttr_s is None  # nothing recovered yet


def test_overlapping_incidents_are_not_counted_twice_as_downtime():
    a = Aggregator(SINCE, UNTIL)
    a.add_incident(Incident("web", SINCE + 100, SINCE + 400, "status"))
    a.add_incident(Incident("web", SINCE + 300, SINCE + 700, "status"))
    a.add_incident(Incident("web", SINCE + 1000, SINCE + 1100, "status"))
    t = build_report(a).targets[0]
    assert t.downtime_s == 600 + 100
    assert t.longest_outage_s == 400


def test_no_checks_means_no_availability_and_no_percentiles():
    a = Aggregator(SINCE, UNTIL)
    a.target("quiet")
    t = build_report(a).targets[0]
    assert (t.checks, t.availability_pct, t.p50, t.p95, t.p99) == (0, None, None, None, None)
    assert (t.downtime_s, t.longest_outage_s, t.mttr_s) == (0, None, None)


def test_content_changes_in_range_and_target_filter():
    a = Aggregator(SINCE, UNTIL, only=["api"])
    for ts in (SINCE - 1, SINCE, SINCE + 50, UNTIL):
        a.add_change(ContentChange("api", ts, "sha256:a", "sha256:b"))
    a.add_change(ContentChange("web", SINCE + 5, None, "sha256:c"))
    a.add_sample(_ok("web", SINCE + 5))
    a.add_incident(Incident("web", SINCE, None, "dns"))
    report = build_report(a)
    assert [t.target for t in report.targets] == ["api"]
    assert report.targets[0].content_changes == 2


def test_summary_and_slowest():
    a = Aggregator(SINCE, UNTIL)
    for n, (name, ms) in enumerate((("a", 5.0), ("b", 50.0), ("c", 500.0))):
        for i in range(10):
            a.add_sample(_ok(name, SINCE + i, ms))
        a.add_sample(_fail(name, SINCE + 20))
        a.add_incident(Incident(name, SINCE + 100 * n, SINCE + 100 * n + 60, "timeout"))
    a.target("idle")
    report = build_report(a)
    assert report.checks == 33
    assert report.ok == 30
    assert report.availability_pct == pytest.approx(100 * 30 / 33)
    assert [t.target for t in report.slowest(2)] == ["c", "b"]
    assert [t.target for t in report.slowest(10)] == ["c", "b", "a"]  # "idle" has no p95
    assert len(report.incidents) == 3


# --- the store source, with a fake HistoryReader ----------------------------------------


@attrs.define
class FakeReader:
    """HistoryReader's interface over lists, with its range rules: samples, changes in
    [since, until); rollups of the hours that start in it; incidents overlapping it."""

    raw: dict[str, list[Sample]] = attrs.Factory(dict)
    hours: dict[str, list[HourRollup]] = attrs.Factory(dict)
    incident_rows: list[Incident] = attrs.Factory(list)
    change_rows: list[ContentChange] = attrs.Factory(list)
    cert_rows: list[Certificate] = attrs.Factory(list)
    warning_rows: list = attrs.Factory(list)
    not_stored: int = 0
    silence_rows: list = attrs.Factory(list)
    calls: list[tuple] = attrs.Factory(list)
    closed: bool = False

    def targets(self) -> list[str]:
        return sorted({*self.raw, *self.hours})

    def samples(self, target, since, until):
        self.calls.append(("samples", target, since, until))
        return iter([s for s in self.raw.get(target, []) if since <= s.ts < until])

    def rollups(self, target, since, until):
        self.calls.append(("rollups", target, since, until))
        return iter([r for r in self.hours.get(target, []) if since <= r.hour < until])

    def snapshot(self):
        return _Snapshot(self)

    def incidents(self, since, until, target=None):
        self.calls.append(("incidents", target))
        return [
            i
            for i in self.incident_rows
            if (target is None or i.target == target)
            and i.start < until
            and (i.end is None or i.end > since)
        ]

    def changes(self, since, until, target=None):
        self.calls.append(("changes", target))
        return [
            c
            for c in self.change_rows
            if (target is None or c.target == target) and since <= c.ts < until
        ]

    def certificates(self, target=None):
        return [c for c in self.cert_rows if target is None or c.target == target]

    def warnings(self, since, until, target=None):
        return [
            w
            for w in self.warning_rows
            if (target is None or w.target == target) and since <= w.ts < until
        ]

    def unstored(self) -> int:
        return self.not_stored

    def silences(self, since, until):
        return [s for s in self.silence_rows if s.start < until and s.until > since]

    def close(self) -> None:
        self.closed = True


@attrs.define
class _Snapshot:
    reader: FakeReader

    def __enter__(self):
        self.reader.calls.append(("begin",))

    def __exit__(self, *exc):
        self.reader.calls.append(("end",))


def _six_hours(target: str, seed: int) -> list[Sample]:
    """One probe a minute for 6 hours from T0: some failures, log-normal latencies."""
    rng = random.Random(seed)
    rows = []
    for i in range(6 * 60):
        ts = T0 + i * 60 + rng.uniform(0, 59)
        if rng.random() < 0.03:
            rows.append(_fail(target, ts, "timeout"))
        else:
            ms = 12 + rng.lognormvariate(math.log(30), 0.6)
            rows.append(_ok(target, ts, ms, _fresh(ms) if rng.random() < 0.8 else None))
    return rows


def _pruned(rows: list[Sample], hours: int) -> tuple[list[HourRollup], list[Sample]]:
    """What the store keeps after pruning the first `hours` hours into rollups."""
    cut = T0 + hours * 3600
    rollups = [
        rollup(
            rows[0].target,
            int(T0 + h * 3600),
            [s for s in rows if s.ts // 3600 * 3600 == T0 + h * 3600],
        )
        for h in range(hours)
    ]
    return rollups, [s for s in rows if s.ts >= cut]


def test_store_rollups_plus_samples_equal_the_raw_report():
    since, until = T0, T0 + 6 * 3600  # 12 slots of 30 minutes
    rows = {"api": _six_hours("api", 1), "web": _six_hours("web", 2)}
    raw = FakeReader(raw=rows)
    mixed = FakeReader()
    for name, samples in rows.items():
        mixed.hours[name], mixed.raw[name] = _pruned(samples, 3)
    reports = []
    for reader in (raw, mixed):
        a = Aggregator(since, until, slots=12)
        source = feed_store(a, reader)
        assert source == {"kind": "store", "unstored": 0}
        reports.append(build_report(a))
    want, got = reports
    assert mixed.hours["api"]
    assert len(mixed.raw["api"]) < len(rows["api"])
    for w, g in zip(want.targets, got.targets, strict=True):
        assert (g.target, g.checks, g.ok) == (w.target, w.checks, w.ok)
        assert (g.p50, g.p95, g.p99) == (w.p50, w.p95, w.p99)  # same buckets, merged
        assert g.phases == w.phases
        assert g.phases["tls"].count > 100
        assert g.mean_ms == pytest.approx(w.mean_ms)
        assert (g.min_ms, g.max_ms) == (w.min_ms, w.max_ms)
        # a rollup hour is spread evenly over its two 30-minute slots: checks per slot
        # match (one probe a minute), failures per hour match
        assert [s.checks for s in g.slots] == pytest.approx([s.checks for s in w.slots])
        for h in range(6):
            pair = slice(2 * h, 2 * h + 2)
            assert sum(s.failures for s in g.slots[pair]) == pytest.approx(
                sum(s.failures for s in w.slots[pair])
            )
        assert sum(s.checks for s in g.slots) == pytest.approx(g.checks)


def test_rollup_at_the_range_edge_counts_if_its_middle_is_inside():
    hist = Histogram.empty()
    hist.add(20.0, 50)
    hour0 = HourRollup("api", int(T0), 60, 10, 1000.0, 20.0, 20.0, hist)
    hour1 = HourRollup("api", int(T0 + 3600), 60, 0, 1000.0, 20.0, 20.0, hist)
    # since 20 minutes into hour 0: its middle (30 min) is inside, the whole hour counts;
    # until 40 minutes into hour 1: its middle is inside too
    a = Aggregator(T0 + 1200, T0 + 3600 + 2400, slots=4)  # 4 slots of 20 minutes
    a.add_rollup(hour0)
    a.add_rollup(hour1)
    t = build_report(a).targets[0]
    assert (t.checks, t.failures) == (120, 10)
    # hour 0's in-range part (40 min) is slots 0-1; hour 1's (40 min) slots 2-3
    assert [s.checks for s in t.slots] == pytest.approx([30, 30, 30, 30])
    assert [s.failures for s in t.slots] == pytest.approx([5, 5, 0, 0])
    # a range that holds less than half of an hour leaves the hour out
    b = Aggregator(T0 + 2000, T0 + 3600 + 1700, slots=4)
    b.add_rollup(hour0)
    b.add_rollup(hour1)
    assert build_report(b).targets == ()
    # through a reader that returns only hours *starting* in the range it is asked for:
    # hour 0 starts before `since` but still counts
    c = Aggregator(T0 + 1200, T0 + 3600 + 2400, slots=4)
    feed_store(c, FakeReader(hours={"api": [hour0, hour1]}))
    assert build_report(c).targets[0].checks == 120


def test_feed_store_asks_for_the_range_and_passes_incidents_and_changes():
    reader = FakeReader(
        raw={"api": [_ok("api", T0 + 5)], "web": [_fail("web", T0 + 5)]},
        incident_rows=[
            Incident("api", T0 - 60, T0 + 60, "connect"),
            Incident("web", T0 + 100, None, "tls"),
        ],
        change_rows=[ContentChange("api", T0 + 10, "sha256:a", "sha256:b")],
        not_stored=7,
    )
    a = Aggregator(T0, T0 + 3600, only=["api"])
    source = feed_store(a, reader, known=["new"], urls={"api": "https://api.example/"})
    assert source == {"kind": "store", "unstored": 7}
    assert ("samples", "api", T0, T0 + 3600) in reader.calls
    assert ("rollups", "api", T0 - 1800, T0 + 3600) in reader.calls  # hours whose middle is in
    assert not any(c[1] == "web" for c in reader.calls if c[0] in ("samples", "rollups"))
    assert ("incidents", "api") in reader.calls  # one target: the store filters
    assert reader.calls[0] == ("begin",)  # everything read in one snapshot
    assert reader.calls[-1] == ("end",)
    report = build_report(a)
    (t,) = report.targets
    assert (t.target, t.url, t.checks, t.content_changes) == ("api", "https://api.example/", 1, 1)
    assert [(i.start, i.end, i.error) for i in t.incidents] == [(T0 - 60, T0 + 60, "connect")]
    # all targets, and a configured one without history is listed without data
    b = Aggregator(T0, T0 + 3600)
    feed_store(b, reader, known=["new"])
    assert [t.target for t in build_report(b).targets] == ["api", "new", "web"]
    assert build_report(b).targets[2].ongoing == 1


async def _stored(tmp_path: Path, records: list) -> StoreStats:
    """`records` written to tmp_path/history.db by the history writer."""
    send, receive = trio.open_memory_channel(math.inf)
    for record in records:
        send.send_nowait(record)
    send.close()
    stats = StoreStats()
    await StoreWriter(str(tmp_path / "history.db"), StorageSection(), stats).serve(receive)
    return stats


def _reports(tmp_path: Path, capsys, names: tuple[str, ...], until: float) -> tuple:
    """`report` from T0 to `until` over tmp_path/history.db for these HTTPS targets:
    (the JSON, the text, the HTML)."""
    targets = ({"name": n, "url": f"https://{n}.example/"} for n in names)
    cfg = write_config(
        tmp_path, config_doc(*targets, storage={"path": "history.db"}), name="monitor.toml"
    )
    window = ["-c", str(cfg), "--since", rfc3339(T0), "--until", rfc3339(until)]
    outputs = []
    for form in ("json", "text", "html"):
        assert main(["report", *window, "--format", form]) == 0
        outputs.append(capsys.readouterr().out)
    return json.loads(outputs[0]), outputs[1], outputs[2]


def _config(tmp_path: Path, *, storage: dict | None = None) -> Path:
    data = config_doc(
        {"name": "api", "url": "http://127.0.0.1:9/health"},
        {"name": "web", "url": "http://127.0.0.1:9/"},
        storage=storage if storage is not None else {"path": "history.db"},
    )
    return write_config(tmp_path, data, name="monitor.toml")


def _inject(monkeypatch, reader: FakeReader, seen: list[str]) -> None:
    @contextmanager
    def fake_open(path):
        seen.append(path)
        try:
            yield reader
        finally:
            reader.close()

    monkeypatch.setattr(report_cli, "open_history", fake_open)


def test_report_command_reads_the_configured_store(tmp_path, monkeypatch, capsys):
    reader = FakeReader(
        raw={"api": [_ok("api", T0 + i * 60, 12.5) for i in range(30)]},
        incident_rows=[Incident("api", T0 + 100, T0 + 400, "connect")],
        not_stored=2,
    )
    seen: list[str] = []
    _inject(monkeypatch, reader, seen)
    cfg = _config(tmp_path)
    window = ["--since", rfc3339(T0), "--until", rfc3339(T0 + 3600)]
    code = main(["report", "-c", str(cfg), *window, "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 0
    assert seen == [str(tmp_path / "history.db")]
    assert reader.closed
    data = json.loads(out)
    assert data["source"] == {"kind": "store", "unstored": 2, "path": seen[0]}
    assert "2 probe results were not stored" in err
    api, web = data["targets"]
    assert (api["target"], api["checks"], api["availability_pct"]) == ("api", 30, 100.0)
    assert api["url"] == "http://127.0.0.1:9/health"
    assert api["incidents"][0]["duration_s"] == 300
    assert (web["target"], web["checks"], web["availability_pct"]) == ("web", 0, None)

    code = main(["report", "-c", str(cfg), *window, "--target", "nope"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.splitlines() == [
        f"trio-monitor: unknown target 'nope' in {cfg} (known: api, web)",
    ]


def test_exclude_maintenance_leaves_held_probes_out_of_availability(tmp_path, monkeypatch, capsys):
    from trio_monitor.policy import Silence

    # a probe a minute for 30 minutes; down in the window (minutes 10-19) and in a
    # silence (minutes 25-26)
    raw = [(_fail if 10 <= i < 20 or 25 <= i < 27 else _ok)("api", T0 + i * 60) for i in range(30)]
    reader = FakeReader(
        raw={"api": raw}, silence_rows=[Silence("s1", T0 + 1500, T0 + 1620, targets=("api",))]
    )
    _inject(monkeypatch, reader, [])
    data = config_doc(
        {"name": "api", "url": "http://127.0.0.1:9/health"},
        {"name": "web", "url": "http://127.0.0.1:9/"},
        storage={"path": "history.db"},
    )
    data["maintenance"] = [
        {"name": "w", "targets": ["api"], "start": rfc3339(T0 + 600), "end": rfc3339(T0 + 1200)}
    ]
    cfg = write_config(tmp_path, data, name="monitor.toml")
    window = ["--since", rfc3339(T0), "--until", rfc3339(T0 + 3600), "--format", "json"]
    assert main(["report", "-c", str(cfg), *window]) == 0
    plain = json.loads(capsys.readouterr().out)["targets"][0]
    assert (plain["checks"], plain["held_checks"], plain["availability_pct"]) == (30, 0, 60.0)
    assert main(["report", "-c", str(cfg), *window, "--exclude-maintenance"]) == 0
    held = json.loads(capsys.readouterr().out)["targets"][0]
    assert (held["checks"], held["held_checks"], held["availability_pct"]) == (18, 12, 100.0)
    code = main(["report", "--jsonl", "-", "--exclude-maintenance"])
    assert code == 2
    assert "use -c, not --jsonl" in capsys.readouterr().err


async def test_time_nobody_probed_is_no_data_not_downtime(tmp_path, capsys):
    """The monitor stopped at minute 40 while "api" was down; the report runs over three
    hours: its outage counts up to the last probe plus one interval, the rest is a gap
    ("no data"), not downtime, and the incident says so instead of "ongoing"."""
    records: list = []
    for minute in range(41):
        down = minute >= 30
        records.append(_probe("api", minute, ok=not down))
        records.append(_probe("web", minute))
        if minute == 31:
            records.append(_alert("api", 31, "down", 30))
    await _stored(tmp_path, records)
    cfg = write_config(
        tmp_path,
        config_doc(
            {"name": "api", "url": "https://api.example/"},
            {"name": "web", "url": "https://web.example/"},
            monitor={"interval": "60s"},
            storage={"path": "history.db"},
        ),
        name="monitor.toml",
    )
    window = ["--since", rfc3339(T0), "--until", rfc3339(T0 + 3 * 3600)]
    assert main(["report", "-c", str(cfg), *window, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    api = data["targets"][0]
    (incident,) = api["incidents"]
    assert incident["end"] is None
    assert (incident["ongoing"], incident["unobserved"]) == (False, True)
    assert incident["last_seen"] == rfc3339(T0 + 40 * 60)
    assert incident["duration_s"] == 11 * 60  # minute 30 to the last probe + 1 interval
    assert api["downtime_s"] == 11 * 60  # not the 2.5 hours since
    assert api["availability_pct"] == pytest.approx(100 * 30 / 41, abs=1e-3)
    assert (data["summary"]["ongoing"], data["summary"]["unobserved"]) == (0, 1)
    slots = api["slots"]["checks"]
    assert slots[-1] == 0  # the last slot: nobody probed, no data
    assert main(["report", "-c", str(cfg), *window]) == 0
    text = capsys.readouterr().out
    assert "(0 ongoing, 1 without data)" in text
    assert f"no data: api down since {rfc3339(T0 + 30 * 60)}" in text
    assert main(["report", "-c", str(cfg), *window, "--format", "html"]) == 0
    assert f"no data since {rfc3339(T0 + 40 * 60)}" in capsys.readouterr().out


def test_jsonl_open_outage_stops_at_the_last_probe_line():
    lines = [to_line(_probe("api", m, ok=m < 5)) for m in range(10)]
    lines.insert(7, to_line(_alert("api", 6, "down", 5)))
    a = Aggregator(T0, T0 + 3600)
    feed_jsonl(a, _bytes_io("\n".join(lines)), "x", warn=lambda _: None)
    (t,) = build_report(a).targets
    (incident,) = t.incidents
    assert incident.unobserved
    assert incident.last_seen == T0 + 9 * 60
    assert t.downtime_s == 5 * 60  # minute 5 to 9, plus one interval (the lines' cadence)


def test_report_command_history_disabled(tmp_path, capsys):
    cfg = _config(tmp_path, storage={"enabled": False})
    assert main(["report", "-c", str(cfg)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"trio-monitor: history is disabled in {cfg}\n"


# --- the JSON lines source, through the real console script ------------------------------


def _probe(target: str, minute: float, ok: bool = True, ms: float | None = 20.0, **extra):
    return probe_result(
        target,
        ts=T0 + minute * 60,
        url=f"https://{target}.example/",
        ok=ok,
        status=200 if ok and extra.get("kind", "http") == "http" else None,
        latency_ms=ms if ok else None,
        error=None if ok else "connect",
        round=int(minute),
        **extra,
    )


def _alert(target: str, minute: float, event: str, since_minute: float) -> AlertEvent:
    return alert_event(
        event,
        target,
        ts=T0 + minute * 60,
        url=f"https://{target}.example/",
        reason="connect" if event == "down" else None,
        since=T0 + since_minute * 60,
        downtime_s=(minute - since_minute) * 60 if event == "up" else None,
    )


@attrs.frozen
class Log:
    text: str
    latencies: dict[str, list[float]]  # ok latencies inside [T0, T0 + 2h)


def _made_up_log() -> Log:
    """Two hours of a monitor's output (and some before and after): `api` has a closed
    outage (minutes 30-44), `web` one that is still open (from minute 108); `web`'s
    content changed twice; one garbage line and one line of an unknown type."""
    rng = random.Random(5)
    lines: list[str] = []
    latencies: dict[str, list[float]] = {"api": [], "web": []}
    for minute in range(-10, 130):
        inside = 0 <= minute < 120
        for target in ("api", "web"):
            down = (target == "api" and 30 <= minute < 45) or (target == "web" and minute >= 108)
            ms = round(rng.lognormvariate(math.log(25 if target == "api" else 80), 0.5), 3)
            changed = target == "web" and minute in (10, 70)
            lines.append(to_line(_probe(target, minute, not down, ms, content_changed=changed)))
            if inside and not down:
                latencies[target].append(ms)
        summary = round_summary(
            ts=T0 + minute * 60, round=minute, targets=2, ok=1, failed=1, duration_ms=12.0
        )
        lines.append(to_line(summary))
        if minute == 32:
            lines.append(to_line(_alert("api", 32, "down", 30)))
        if minute == 45:
            lines.append(to_line(_alert("api", 45, "up", 30)))
        if minute == 110:
            lines.append(to_line(_alert("web", 110, "down", 108)))
        if minute == 50:
            lines.append("this is not JSON {")
            lines.append(json.dumps({"schema": 1, "type": "heartbeat", "ts": rfc3339(T0)}))
            lines.append("")
    return Log("\n".join(lines) + "\n", latencies)


WINDOW = ["--since", rfc3339(T0), "--until", rfc3339(T0 + 7200)]


def _cli(*args: str, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    """Run the real console script; nothing it prints may be a traceback."""
    if not EXE.is_file():
        pytest.fail(f"the trio-monitor console script is not installed beside {sys.executable}")
    proc = subprocess.run(
        [str(EXE), "report", *args],
        cwd=cwd,
        input=stdin.decode(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    return proc


def _check_log_report(data: dict, log: Log) -> None:
    assert (data["since"], data["until"]) == (rfc3339(T0), rfc3339(T0 + 7200))
    api, web = data["targets"]
    assert (api["target"], api["checks"], api["ok"]) == ("api", 120, 105)
    assert api["availability_pct"] == pytest.approx(100 * 105 / 120, abs=1e-4)
    assert api["incidents"] == [
        {
            "start": rfc3339(T0 + 1800),
            "end": rfc3339(T0 + 2700),
            "duration_s": 900.0,
            "in_range_s": 900.0,
            "error": "connect",
            "ongoing": False,
            "end_reason": "up",
            "last_seen": None,
            "unobserved": False,
        }
    ]
    assert (api["downtime_s"], api["longest_outage_s"], api["mttr_s"]) == (900, 900, 900)
    assert (web["checks"], web["ok"], web["content_changes"]) == (120, 108, 2)
    (open_one,) = web["incidents"]
    assert (open_one["start"], open_one["end"], open_one["ongoing"]) == (
        rfc3339(T0 + 108 * 60),
        None,
        True,
    )
    assert web["downtime_s"] == 12 * 60
    assert web["mttr_s"] is None
    for t in (api, web):
        values = log.latencies[t["target"]]
        for p in (50, 95, 99):
            exact = _exact(values, p)
            assert abs(t["latency_ms"][f"p{p}"] - exact) / exact <= ERROR_BOUND + 1e-4
    assert data["summary"] == {
        "targets": 2,
        "checks": 240,
        "ok": 213,
        "availability_pct": round(100 * 213 / 240, 4),
        "incidents": 2,
        "ongoing": 1,
        "unobserved": 0,
        "downtime_s": 900 + 720,
        "content_changes": 2,
    }
    assert [s["target"] for s in data["slowest"]] == ["web", "api"]


@pytest.mark.subprocess
def test_jsonl_file_end_to_end(tmp_path):
    log = _made_up_log()
    (tmp_path / "monitor.jsonl").write_text(log.text, encoding="utf-8")
    proc = _cli("--jsonl", "monitor.jsonl", *WINDOW, "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    _check_log_report(data, log)
    assert data["source"] == {
        "kind": "jsonl",
        "path": "monitor.jsonl",
        "lines": 140 * 3 + 5,  # blank lines are not counted
        "probes": 280,
        "alerts": 3,
        "rounds": 140,
        "removed": 0,
        "other_types": 1,
        "bad": 1,
        "outside_range": 40,
    }
    notes = proc.stderr.splitlines()
    assert "trio-monitor: monitor.jsonl: skipped 1 unparseable line (first on line " in notes[0]
    assert notes[1] == "trio-monitor: monitor.jsonl: skipped 1 line of unknown types"
    assert "40 probe lines outside" in notes[2]
    assert len(notes) == 3


@pytest.mark.subprocess
def test_jsonl_from_stdin_end_to_end(tmp_path):
    log = _made_up_log()
    proc = _cli("--jsonl", "-", *WINDOW, "--format", "json", cwd=tmp_path, stdin=log.text.encode())
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    _check_log_report(data, log)
    assert data["source"]["path"] == "<stdin>"
    assert "<stdin>: skipped 1 unparseable line" in proc.stderr
    # the text table of the same log
    text = _cli("--jsonl", "-", *WINDOW, cwd=tmp_path, stdin=log.text.encode())
    assert text.returncode == 0
    rows = {line.split()[0]: line.split() for line in text.stdout.splitlines() if line}
    assert rows["api"][1:4] == ["http", "120", "87.50"]
    assert rows["web"][1:4] == ["http", "120", "90.00"]
    assert rows["web"][7] == "1!"


def test_jsonl_down_before_the_file_and_up_inside(tmp_path):
    # the file starts mid-outage: the up line alone makes the incident, from its `since`
    lines = [
        to_line(_probe("api", 1, ok=False)),
        to_line(_alert("api", 5, "up", -20)),
        to_line(_alert("api", 6, "slow", 6)),  # a known event the report does not need
    ]
    a = Aggregator(T0, T0 + 3600)
    notes: list[str] = []
    source = feed_jsonl(a, _bytes_io("\n".join(lines)), "x.jsonl", warn=notes.append)
    (t,) = build_report(a, source).targets
    assert [(i.start, i.end, i.error) for i in t.incidents] == [(T0 - 1200, T0 + 300, "unknown")]
    assert (t.downtime_s, t.longest_outage_s) == (300, 1500)
    assert notes == []
    assert source["bad"] == 0


def test_jsonl_repeated_down_keeps_the_first_start():
    lines = [
        to_line(_alert("api", 3, "down", 1)),
        to_line(_alert("api", 9, "down", 8)),  # the monitor restarted while it was down
        to_line(_alert("api", 12, "up", 8)),
    ]
    a = Aggregator(T0, T0 + 3600)
    feed_jsonl(a, _bytes_io("\n".join(lines)), "x", warn=lambda _: None)
    (t,) = build_report(a).targets
    assert [(i.start, i.end) for i in t.incidents] == [(T0 + 60, T0 + 720)]


def test_a_removed_target_is_not_down_after_its_removal():
    """A `removed` line ends the open outage: the report says "removed", not "ongoing",
    and the time after it is not downtime, in every format."""
    lines = [
        to_line(_probe("api", 1, ok=False)),
        to_line(_alert("api", 3, "down", 1)),
        to_line(TargetRemoved(T0 + 600, "api", "https://api.example/", T0 + 60)),
    ]
    a = Aggregator(T0, T0 + 3600)
    source = feed_jsonl(a, _bytes_io("\n".join(lines)), "x", warn=lambda _: None)
    assert source["removed"] == 1
    report = build_report(a)
    (t,) = report.targets
    (incident,) = t.incidents
    assert (incident.end, incident.end_reason, incident.ongoing) == (T0 + 600, "removed", False)
    assert t.downtime_s == 540.0
    (data,) = json.loads(render_json(report))["targets"][0]["incidents"]
    assert (data["ongoing"], data["end_reason"]) == (False, "removed")
    text = render_text(report)
    assert "(0 ongoing)" in text
    assert f"removed: api down since {rfc3339(T0 + 60)}" in text
    assert '<span class="badge">removed</span>' in render_html(report)
    assert '<span class="badge">ongoing</span>' not in render_html(report)


def test_jsonl_malformed_records_after_the_first_are_skipped():
    good = to_line(_probe("api", 1))
    bad = [
        '{"schema":1,"type":"probe","ts":"yesterday","target":"api","ok":true}',
        '{"schema":1,"type":"probe","ts":"2026-05-28T20:00:00Z","target":"api","ok":"yes"}',
        '{"schema":1,"type":"probe","ts":"2026-05-28T20:00:00Z","target":7,"ok":true}',
        '{"schema":1,"type":"alert","ts":"2026-05-28T20:00:00Z"}',
        "[1, 2, 3]",
        '"\xff\xfe"',
    ]
    a = Aggregator(T0, T0 + 3600)
    notes: list[str] = []
    data = ("\n".join([good, *bad, good]) + "\n").encode("utf-8") + b"\xff\xfe not utf-8\n"
    source = feed_jsonl(a, _bytes_io(data), "x", warn=notes.append)
    assert (source["probes"], source["bad"]) == (5, 7)
    assert build_report(a).targets[0].checks == 2
    assert notes == ["x: skipped 7 unparseable lines (first on line 2)"]


def test_jsonl_probe_lines_of_any_kind_are_samples():
    # a kind without an HTTP status (tcp, dns, ...) writes "status": null
    lines = [
        to_line(_probe("api", 1)),
        to_line(_probe("db", 2, ms=3.5, kind="tcp")),
        to_line(_probe("dns", 3, ok=False, kind="dns")),
        to_line(_probe("dns", 4, ms=1.25, kind="dns")),
    ]
    assert '"status":null' in lines[1]
    assert '"kind":"tcp"' in lines[1]
    a = Aggregator(T0, T0 + 3600)
    notes: list[str] = []
    source = feed_jsonl(a, _bytes_io("\n".join(lines)), "x", warn=notes.append)
    assert (source["probes"], source["bad"], source["other_types"]) == (4, 0, 0)
    assert notes == []
    api, db, dns = build_report(a).targets
    assert (api.checks, db.checks, dns.checks) == (1, 1, 2)
    assert (db.ok, db.min_ms, dns.ok, dns.failures) == (1, 3.5, 1, 1)


def _with_phases(probe, phases) -> str:
    """A probe line whose phases_ms is `phases`, whatever it is."""
    return json.dumps(json.loads(to_line(probe)) | {"phases_ms": phases})


def test_jsonl_phases_make_the_phases_table():
    fresh = {"dns": 0.5, "connect": 1.0, "tls": 8.0, "ttfb": 40.0, "transfer": 3.0}
    reused = {"dns": None, "connect": None, "tls": None, "ttfb": 20.0, "transfer": 1.0}
    lines = [
        to_line(_probe("api", 1, phases_ms=fresh)),
        to_line(_probe("api", 2, phases_ms=reused)),
        to_line(_probe("api", 3, ok=False, phases_ms=fresh)),  # a failure: not counted
        to_line(_probe("api", 4, phases_ms=None)),
        to_line(_probe("api", 5, phases_ms={"ttfb": 5.0})),  # phases it lacks: none
        _with_phases(_probe("api", 6), {**fresh, "tls": "8"}),
        _with_phases(_probe("api", 7), [0.5, 1.0]),
    ]
    a = Aggregator(T0, T0 + 3600)
    notes: list[str] = []
    source = feed_jsonl(a, _bytes_io("\n".join(lines)), "x", warn=notes.append)
    assert (source["probes"], source["bad"]) == (7, 2)  # the last two: not numbers, not an object
    (api,) = build_report(a).targets
    assert api.checks == 5
    phases = api.phases
    assert (phases["dns"].count, phases["tls"].count, phases["ttfb"].count) == (1, 1, 3)
    assert phases["tls"].p50 == pytest.approx(8.0, rel=ERROR_BOUND)
    assert phases["ttfb"].p50 == pytest.approx(20.0, rel=ERROR_BOUND)
    assert phases["ttfb"].p95 == pytest.approx(40.0, rel=ERROR_BOUND)


def _bytes_io(data: str | bytes):
    import io

    return io.BytesIO(data.encode("utf-8") if isinstance(data, str) else data)


def test_default_range_is_the_last_24_hours(monkeypatch):
    now = T0 + 30 * 3600
    args = argparse.Namespace(
        since="24h",
        until=None,
        slowest=5,
        target=None,
        jsonl="-",
        config=None,
        exclude_maintenance=False,
    )
    lines = "\n".join(
        to_line(_probe("api", m)) for m in (5 * 60, 6 * 60 - 1, 6 * 60, 29 * 60, 30 * 60)
    )
    stdin = argparse.Namespace(buffer=_bytes_io(lines))
    notes: list[str] = []
    monkeypatch.setattr(sys, "stdin", stdin)
    report = make_report(args, now, warn=notes.append)
    assert (report.since, report.until) == (now - 86400, now)
    assert report.targets[0].checks == 2  # minutes 360 and 1740; 1800 is `now`: out
    assert len(notes) == 1
    assert "3 probe lines outside" in notes[0]


def test_parse_time():
    now = 1_800_000_000.0
    assert parse_time("24h", now) == now - 86400
    assert parse_time("7d", now) == now - 7 * 86400
    assert parse_time("1h30m", now) == now - 5400
    assert parse_time("0s", now) == now
    assert parse_time("2026-11-27T00:00:00Z", now) == 1_795_737_600.0
    assert parse_time("2026-11-27T01:00:00+01:00", now) == 1_795_737_600.0
    assert parse_time("2026-11-27T00:00:00", now) == 1_795_737_600.0  # no offset: UTC
    assert parse_time("2026-11-27", now) == 1_795_737_600.0
    with pytest.raises(UsageError, match=r"invalid --until 'yesterday' \(use a duration"):
        parse_time("yesterday", now, option="--until")


def test_human_duration_and_percent():
    assert [human_duration(s) for s in (0, 12.4, 130, 7260, 93600, None)] == [
        "0s",
        "12s",
        "2m10s",
        "2h01m",
        "1d02h",
        "-",
    ]
    assert fmt_pct(99.9999) == "99.99"  # never rounded up to a perfect 100
    assert fmt_pct(100.0) == "100.00"
    assert fmt_pct(None) == "-"


# --- formats ---------------------------------------------------------------------------


def _sample_report(**names):
    """A small report: `api` with an outage and an open incident, `web` clean, `idle`."""
    a = Aggregator(SINCE, UNTIL)
    api, web = names.get("api", "api"), names.get("web", "web")
    for i in range(480):
        ts = SINCE + i * 60
        a.add_sample(_fail(api, ts) if 100 <= i < 110 else _ok(api, ts, 20 + i % 7))
        a.add_sample(_ok(web, ts, 200 + i % 13, _fresh(200 + i % 13, tls=None if i % 2 else 8.0)))
    a.target(api, names.get("url", "https://api.example/health"))
    a.add_incident(Incident(api, SINCE + 6000, SINCE + 6600, names.get("error", "connect")))
    a.add_incident(Incident(api, UNTIL - 120, None, "timeout"))
    a.add_change(ContentChange(web, SINCE + 60, "sha256:a", "sha256:b"))
    a.target("idle")
    return build_report(a, {"kind": "test"})


def test_json_contract():
    """The JSON shape is a contract: these names and types stay (fields may be added)."""
    data = json.loads(render_json(_sample_report(), slowest=2))
    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
    assert {"since", "until", "targets", "summary", "slowest"} <= data.keys()
    assert stamp.fullmatch(data["since"])
    assert stamp.fullmatch(data["until"])
    summary = data["summary"]
    assert {"targets", "checks", "availability_pct", "incidents"} <= summary.keys()
    assert isinstance(summary["targets"], int)
    assert isinstance(summary["checks"], int)
    assert isinstance(summary["availability_pct"], float)
    assert summary["incidents"] == 2
    assert summary["ongoing"] == 1
    assert [s["target"] for s in data["slowest"]] == ["web", "api"]
    assert all({"target", "p95"} <= s.keys() for s in data["slowest"])
    assert [t["target"] for t in data["targets"]] == ["api", "idle", "web"]
    for t in data["targets"]:
        assert {
            "target",
            "checks",
            "ok",
            "availability_pct",
            "latency_ms",
            "incidents",
            "downtime_s",
            "longest_outage_s",
            "mttr_s",
            "content_changes",
        } <= t.keys()
        assert isinstance(t["target"], str)
        assert isinstance(t["checks"], int)
        assert isinstance(t["ok"], int)
        # a float, or null only when there were no checks
        assert isinstance(t["availability_pct"], float) or (
            t["availability_pct"] is None and t["checks"] == 0
        )
        assert {"p50", "p95", "p99"} <= t["latency_ms"].keys()
        for p in ("p50", "p95", "p99"):
            assert t["latency_ms"][p] is None or isinstance(t["latency_ms"][p], float)
        assert isinstance(t["downtime_s"], float | int)
        for inc in t["incidents"]:
            assert {"start", "end", "duration_s", "error"} <= inc.keys()
            assert stamp.fullmatch(inc["start"])
            assert inc["end"] is None or stamp.fullmatch(inc["end"])
            assert isinstance(inc["duration_s"], float | int)
            assert isinstance(inc["error"], str)
    api = data["targets"][0]
    assert api["checks"] == 480
    assert api["ok"] == 470
    assert api["availability_pct"] == pytest.approx(100 * 470 / 480, abs=1e-4)
    assert [i["end"] for i in api["incidents"]] == [rfc3339(SINCE + 6600), None]
    assert api["latency_ms"]["p50"] == pytest.approx(23, rel=ERROR_BOUND)
    assert data["targets"][1]["latency_ms"] == {
        "p50": None,
        "p95": None,
        "p99": None,
        "mean": None,
        "min": None,
        "max": None,
        "error_bound": round(ERROR_BOUND, 4),
    }
    assert len(api["slots"]["checks"]) == 48
    assert sum(api["slots"]["checks"]) == 480
    assert api["phases_ms"] == dict.fromkeys(PHASES)  # no phases: every one null
    web = data["targets"][2]
    assert list(web["phases_ms"]) == list(PHASES)
    for phase, spread in web["phases_ms"].items():
        assert spread.keys() == {"p50", "p95", "count"}, phase
        assert isinstance(spread["p50"], float)
        assert isinstance(spread["p95"], float)
    assert web["phases_ms"]["tls"]["count"] == 240  # every other probe: the rest are http
    assert web["phases_ms"]["dns"]["count"] == 480
    assert web["phases_ms"]["tls"]["p95"] == pytest.approx(8.0, rel=ERROR_BOUND)
    assert web["phases_ms"]["ttfb"]["p50"] == pytest.approx(0.9 * (206 - 1.5 - 8), rel=0.1)


def test_text_table_fits_80_columns_and_aligns():
    long_name = "a-very-long-target-name-that-goes-on-and-on.example.com/health"
    report = _sample_report(api=long_name)
    text = render_text(report, slowest=3)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    header = next(i for i, line in enumerate(lines) if line.startswith("TARGET"))
    assert lines[header].split() == [
        "TARGET",
        "KIND",
        "CHECKS",
        "AVAIL%",
        "P50ms",
        "P95ms",
        "P99ms",
        "INC",
        "DOWN",
    ]
    rows = lines[header + 1 : header + 4]
    assert len({len(line) for line in [lines[header], *rows]}) == 1  # right-aligned columns
    truncated = rows[0]
    assert truncated.startswith(long_name[:20])
    assert "\u2026" in truncated
    cells = truncated.split("\u2026")[1].split()
    assert cells[:3] == ["-", "480", "97.92"]  # no kind known (no config, no JSON lines)
    assert cells[6:] == ["2!", "12m00s"]  # 2 incidents, one ongoing; 10 + 2 minutes down
    assert lines[header + 2].split()[1:] == ["-", "0", "-", "-", "-", "-", "0", "-"]  # idle
    assert "\n3 targets, 960 checks, availability 98.958%\n2 incidents (1 ongoing), " in text
    assert "slowest by p95 (+/-4.9%):" in text
    phases = lines.index("phases, p50/p95 ms over ok probes (+/-4.9%; - did not happen):")
    assert lines[phases + 1].split() == ["TARGET", "DNS", "CONNECT", "TLS", "TTFB", "TRANSFER"]
    assert len(lines[phases + 2]) == len(lines[phases + 1])  # right-aligned columns
    web = lines[phases + 2].split()
    assert web[0] == "web"  # the only target with phases
    assert web[1:4] == ["0.5/0.5", "1.0/1.0", "7.6/7.6"]  # 8 ms: its bucket's middle
    assert lines[phases + 3] == ""
    assert re.search(r"^\s+1\. web\s+p95\s+2\d\d\.\d ms", text, re.M)
    assert re.search(r"ongoing: a-very-long.* down since .* \(timeout\)", text)


def test_html_is_self_contained_and_escapes_everything():
    evil = "<script>alert(1)</script>"
    report = _sample_report(
        api=evil,
        web='web" onmouseover="alert(2)',
        url="https://x.example/?a=<b>&c='d'",
        error="<img src=x onerror=alert(3)>",
    )
    page = render_html(report)
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'web" onmouseover' not in page
    assert "web&quot; onmouseover=&quot;" in page
    assert "<img" not in page
    assert "&lt;img src=x onerror=alert(3)&gt;" in page
    assert "https://x.example/?a=&lt;b&gt;&amp;c=&#x27;d&#x27;" in page
    # nothing is fetched: no external resources of any kind
    for tag in re.findall(r"<[a-zA-Z][^>]*>", page):
        tag = re.sub(r'"[^"]*"', '""', tag)  # values are escaped: no quote breaks out
        assert not re.search(r"\s(src|href|xlink:href|action|srcset|on\w+)\s*=", tag, re.I), tag
    assert "url(" not in page
    assert "@import" not in page
    assert "@font-face" not in page
    assert "content=\"default-src 'none'; style-src 'unsafe-inline'\"" in page
    # per target: an uptime bar of 48 slots and a latency chart
    assert page.count('<svg class="uptime"') == 3
    assert page.count('<svg class="latency-chart"') == 3
    bars = re.findall(r'<svg class="uptime".*?</svg>', page, re.S)
    api_fills = re.findall(r'<rect [^>]*fill="(#[0-9a-f]{6})"', bars[0])
    # 10 failures in minutes 100-109: slot 10 (minutes 100-109) is all failed
    assert len(api_fills) == 48
    assert api_fills[10] == COLORS["bad"]
    assert api_fills.count(COLORS["bad"]) == 1
    assert api_fills.count(COLORS["ok"]) == 47
    idle_fills = re.findall(r'<rect [^>]*fill="(#[0-9a-f]{6})"', bars[1])
    assert idle_fills == [COLORS["nodata"]] * 48
    assert "no latency data" in page  # idle's chart
    # api's line breaks at slot 10, where no probe was ok; web's is one line
    assert page.count("<polyline") == 3
    # the phases table: only web has phases, its name escaped there too
    table = re.search(r"<h2>Phases .*?</table>", page, re.S).group(0)
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", table)
    assert heads == ["target", *PHASES]
    (row,) = re.findall(r"<tr><td.*?</tr>", table)
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
    assert cells[0] == "web&quot; onmouseover=&quot;alert(2)"
    assert cells[1:4] == ["0.5/0.5", "1.0/1.0", "7.6/7.6"]


def test_html_colours_and_figures_use_the_palette_thresholds():
    # slots of 1000 checks at the palette's edges: 99.9% ok, 95% warn, 94.9% bad, no data
    a = Aggregator(T0, T0 + 4 * 60, slots=4)
    for slot, failures in enumerate((1, 50, 51)):
        for i in range(1000):
            ts = T0 + slot * 60 + i * 0.05
            a.add_sample(_fail("api", ts) if i < failures else _ok("api", ts))
    page = render_html(build_report(a))
    bar = re.search(r'<svg class="uptime".*?</svg>', page, re.S)
    assert bar is not None
    fills = re.findall(r'<rect [^>]*fill="(#[0-9a-f]{6})"', bar.group())
    assert fills == [COLORS["ok"], COLORS["warn"], COLORS["bad"], COLORS["nodata"]]
    # 2898 of 3000 ok: 96.6%, a "warn" figure in the summary card and the table
    assert '<b class="warn">96.600%</b>' in page
    assert '<td class="warn">96.60%</td>' in page
    legend = f"&ge; {OK_FROM:g}%", f"&ge; {WARN_FROM:g}%", f"&lt; {WARN_FROM:g}%"
    assert all(edge in page for edge in legend)
    assert "&ge; 99.9%" in page  # the scale the README states


def test_html_inlines_the_packaged_stylesheet():
    css = resources.files("trio_monitor.report").joinpath("static/report.css").read_text("utf-8")
    assert "</style" not in css.lower()  # it is inlined in a <style> element
    page = render_html(build_report(Aggregator(T0, T0 + 3600)))
    assert f"<style>\n{css}</style>" in page
    assert "<link" not in page


@pytest.mark.subprocess
def test_wheel_ships_the_report_stylesheet(tmp_path):
    # a copy of the project, so the build leaves nothing behind in the checkout
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "trio_monitor",
        src / "trio_monitor",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    out = tmp_path / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = out.glob("trio_monitor-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = zf.read("trio_monitor/report/static/report.css").decode("utf-8")
    assert shipped == (ROOT / "trio_monitor/report/static/report.css").read_text("utf-8")


@pytest.mark.subprocess
def test_output_file_and_text_default(tmp_path):
    log = _made_up_log()
    (tmp_path / "log.jsonl").write_text(log.text, encoding="utf-8")
    proc = _cli("--jsonl", "log.jsonl", *WINDOW, "--format", "html", "-o", "r.html", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stdout == ""
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")
    assert "https://web.example/" in page


# --- error paths -------------------------------------------------------------------------


def _one_error(proc: subprocess.CompletedProcess[str], *parts: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("trio-monitor: ") or ": " in lines[0]
    for part in parts:
        assert part in lines[0], lines[0]


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"hello world\n" + to_line(_probe("api", 1)).encode(), "line 1 is not a trio-monitor"),
        (b'{\n  "schema": 1,\n  "type": "probe"\n}\n', "line 1 is not a trio-monitor"),
        (b'{"level": "info", "msg": "hi"}\n', "no schema and type"),
        (bytes(range(256)) * 64, "line 1 is not a trio-monitor"),
        (b"\n\n[1,2]\n", "line 3 is not a trio-monitor"),
    ],
)
def test_not_json_lines_is_one_line_error(tmp_path, content, why):
    (tmp_path / "x.log").write_bytes(content)
    _one_error(_cli("--jsonl", "x.log", cwd=tmp_path), "x.log: ", why)


@pytest.mark.subprocess
def test_cli_error_paths(tmp_path):
    clean = "".join(to_line(_probe(t, m)) + "\n" for m in range(10) for t in ("api", "web"))
    (tmp_path / "m.jsonl").write_text(clean, encoding="utf-8")
    _one_error(
        _cli("--jsonl", "m.jsonl", *WINDOW, "--target", "nope", cwd=tmp_path),
        "unknown target 'nope' in m.jsonl (known: api, web)",
    )
    _one_error(_cli("--jsonl", "missing.jsonl", cwd=tmp_path), "cannot read missing.jsonl")
    _one_error(_cli("--jsonl", "m.jsonl", "--since", "last week", cwd=tmp_path), "--since")
    _one_error(
        _cli("--jsonl", "m.jsonl", "--since", "1h", "--until", "2h", cwd=tmp_path), "empty range"
    )
    _one_error(_cli("--jsonl", "m.jsonl", "--format", "xml", cwd=tmp_path), "invalid choice")
    _one_error(_cli("--jsonl", "m.jsonl", "--slowest", "-1", cwd=tmp_path), "--slowest")
    _one_error(_cli("--jsonl", "m.jsonl", "-c", "x.toml", cwd=tmp_path), "not allowed with")
    _one_error(
        _cli("--jsonl", "m.jsonl", *WINDOW, "-o", "no/such/dir/r.txt", cwd=tmp_path),
        "cannot write",
    )
    _one_error(_cli("-c", "absent.toml", cwd=tmp_path), "absent.toml: file not found")
    cfg = _config(tmp_path)
    _one_error(_cli("-c", str(cfg), cwd=tmp_path), "no history at", "history.db")
    disabled = tmp_path / "off"
    disabled.mkdir()
    _one_error(
        _cli("-c", str(_config(disabled, storage={"enabled": False})), cwd=tmp_path),
        "history is disabled in",
    )


@pytest.mark.subprocess
def test_empty_jsonl_is_an_empty_report(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    proc = _cli("--jsonl", "empty.jsonl", cwd=tmp_path)
    assert proc.returncode == 0
    assert proc.stderr == ""
    assert "(no targets)" in proc.stdout


# --- the HTML page in real headless Chromium ---------------------------------------------


def _rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


BAR_COLORS = {
    "ok": _rgb(COLORS["ok"]),
    "warn": _rgb(COLORS["warn"]),
    "bad": _rgb(COLORS["bad"]),
    "none": _rgb(COLORS["nodata"]),
}


def _bar_runs(row: bytearray, bpp: int, width: int) -> list[str]:
    """The row as a list of runs (>= 3 px) of exact uptime-bar colours, left to right."""
    runs: list[str] = []
    current, length = None, 0
    for x in range(width + 1):
        px = tuple(row[x * bpp : x * bpp + 3]) if x < width else None
        name = next((k for k, v in BAR_COLORS.items() if v == px), None)
        if name == current and name is not None:
            length += 1
            continue
        if current is not None and length >= 3:
            runs.append(current)
        current, length = name, 1
    return runs


def _chromium_report():
    """`alpha`: no data, ok, a bad stretch, a degraded one, ok again, and a latency spike in
    slot 40; `<script>beta</script>`: ok everywhere at a flat latency."""
    a = Aggregator(SINCE, UNTIL)  # 48 slots of 10 minutes
    alpha, beta = "alpha", "<script>beta</script>"
    for slot in range(48):
        for k in range(30):  # one probe every 20 s
            ts = SINCE + slot * 600 + k * 20
            a.add_sample(_ok(beta, ts, 100.0))
            if slot < 10:
                continue
            failed = (30 <= slot < 34 and k % 2 == 0) or (34 <= slot < 36 and k == 0)
            ms = 400.0 if slot == 40 else 50.0
            a.add_sample(_fail(alpha, ts) if failed else _ok(alpha, ts, ms))
    a.add_incident(Incident(alpha, SINCE + 30 * 600, SINCE + 34 * 600, "status"))
    a.target(alpha, "https://alpha.example/health")
    expected_alpha = ["none"] * 10 + ["ok"] * 20 + ["bad"] * 4 + ["warn"] * 2 + ["ok"] * 12
    return build_report(a, {"kind": "test"}), expected_alpha


@pytest.mark.browser
def test_html_report_in_headless_chromium(browser, tmp_path):
    report, expected_alpha = _chromium_report()
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    shot = tmp_path / "report.png"
    set_viewport(browser, 1200, 900)
    browser.get(page.as_uri())
    shot.write_bytes(browser.get_screenshot_as_png())
    width, height, bpp, rows = read_png(shot.read_bytes())
    assert (width, height) == (1200, 900)

    # uptime bars: rows whose bar-coloured runs are exactly the slots' classes, in order
    patterns = [_bar_runs(row, bpp, width) for row in rows]
    alpha_rows = [y for y, runs in enumerate(patterns) if runs == expected_alpha]
    beta_rows = [y for y, runs in enumerate(patterns) if runs == ["ok"] * 48]
    assert len(alpha_rows) >= 20, "alpha's uptime bar (grey, green, red, amber) not drawn"
    assert len(beta_rows) >= 20, "beta's all-green uptime bar not drawn"
    assert max(beta_rows) < min(alpha_rows)  # targets in name order: "<" sorts before "a"

    # latency lines: pixels of the line colour (anti-aliased), one cluster per chart
    line = _rgb(COLORS["line"])
    blue = [
        (x, y)
        for y, row in enumerate(rows)
        for x in range(width)
        if all(abs(row[x * bpp + c] - line[c]) <= 40 for c in range(3))
    ]
    assert len(blue) > 300, "no latency line drawn"
    blue.sort(key=lambda p: p[1])
    charts: list[list[tuple[int, int]]] = [[blue[0]]]
    for p in blue[1:]:
        if p[1] - charts[-1][-1][1] > 30:
            charts.append([])
        charts[-1].append(p)
    assert len(charts) == 2, [(c[0][1], c[-1][1]) for c in charts]
    beta_line, alpha_line = charts
    assert alpha_line[0][1] > max(beta_rows)  # alpha's chart sits in alpha's card
    # alpha: data in slots 10..47, the spike at slot 40, far above the rest
    xs = [x for x, _ in alpha_line]
    left, right = min(xs), max(xs)
    top_x, top_y = min(alpha_line, key=lambda p: p[1])
    spike_x = left + (40 - 10) / (47 - 10) * (right - left)
    assert abs(top_x - spike_x) <= 6, (top_x, spike_x)
    base_y = sorted(y for _, y in alpha_line)[len(alpha_line) // 2]
    assert base_y - top_y > 60  # 400 ms against 50 ms on a 0-500 ms axis
    # beta: flat across the whole plot
    bxs = [x for x, _ in beta_line]
    assert max(bxs) - min(bxs) > 400
    assert max(y for _, y in beta_line) - min(y for _, y in beta_line) <= 4


DAY = 86400.0


async def test_certificates_expiring_within_30_days(tmp_path, capsys):
    """History keeps each target's latest certificate, written when it changes (not per
    probe); the report lists those expiring within 30 days of its end, soonest first."""
    until = T0 + 3600
    soon, renewed = until + 10 * DAY, until + 80 * DAY
    records = []
    for minute in range(40):
        api_cert = tls_details(soon if minute < 30 else renewed, subject="CN=api.example")
        records.append(_probe("api", minute, tls=api_cert))
        records.append(_probe("web", minute, tls=tls_details(until + 60 * DAY)))
        chain = tls_details(until + 90 * DAY, earliest_not_after=until + 5 * DAY)
        records.append(_probe("chain", minute, tls=attrs.evolve(chain, earliest_subject="CN=I")))
        records.append(_probe("old", minute, tls=tls_details(until - 2 * DAY, subject="CN=old")))
    stats = await _stored(tmp_path, records)
    # one row per sample, plus one per certificate seen: api's two, one each for the others
    assert stats.stored == len(records) + 5
    data, text, html = _reports(tmp_path, capsys, ("api", "web", "chain", "old"), until)
    listed = data["certificates_expiring"]
    assert [(c["target"], c["days_left"]) for c in listed] == [("old", -2.0), ("chain", 5.0)]
    assert listed[1]["earliest_subject"] == "CN=I"
    assert listed[1]["not_after"] == rfc3339(until + 90 * DAY)

    section = text[text.index("certificates expiring within 30d:") :].splitlines()
    assert section[1:3] == [
        "  old: CN=old " + "expired on " + _day(until - 2 * DAY) + " (2 days ago)",
        "  chain: CN=site chain (CN=I) expires on " + _day(until + 5 * DAY) + " (in 5 days)",
    ]
    assert "api" not in "\n".join(section[:3])  # renewed: 80 days left

    assert "<h2>Certificates expiring within 30d</h2>" in html
    assert "chain (CN=I) expires on" in html


def _day(ts: float) -> str:
    return rfc3339(ts)[:10]


async def test_targets_that_warned_and_whether_an_outage_followed(tmp_path, capsys):
    """`degrading` alerts are kept in history; the report lists them with the outage
    (an incident of the target beginning within 6 hours) that followed, if one did."""
    until = T0 + 3600

    def warning(target: str, minute: int) -> AlertEvent:
        return alert_event(
            "degrading", target=target, ts=T0 + minute * 60, signal="latency", baseline=90.0,
            current=400.0, score=1.2, detail=f"latency 400 ms vs 90 ms baseline ({target})",
        )  # fmt: skip

    records = [
        _probe("api", 0),
        _probe("web", 0),
        warning("api", 10),
        alert_event("down", target="api", ts=T0 + 25 * 60, since=T0 + 24 * 60, reason="timeout"),
        warning("web", 30),
    ]
    await _stored(tmp_path, records)
    data, text, html = _reports(tmp_path, capsys, ("api", "web"), until)
    assert [(w["target"], w["signal"], w["lead_s"]) for w in data["warnings"]] == [
        ("api", "latency", 14 * 60.0),
        ("web", "latency", None),
    ]
    assert data["warnings"][0]["outage_start"] == rfc3339(T0 + 24 * 60)

    section = text[text.index("early warnings (degrading)") :].splitlines()
    assert section[1].startswith(f"  api at {rfc3339(T0 + 600)}: outage 14m00s later: latency")
    assert section[2].startswith(f"  web at {rfc3339(T0 + 1800)}: no outage followed: latency")

    assert "<h2>Early warnings" in html
    assert "14m00s later" in html


def test_jsonl_probe_lines_give_the_latest_certificate():
    until = T0 + 3600
    lines = [
        to_line(_probe("api", 0, tls=tls_details(until + 3 * DAY))),
        to_line(_probe("api", 1, tls=tls_details(until + 90 * DAY))),
        to_line(_probe("web", 1, tls=tls_details(until + 20 * DAY, subject="CN=web"))),
    ]
    a = Aggregator(T0, until)
    feed_jsonl(a, _bytes_io("\n".join(lines)), "x", warn=lambda _: None)
    report = build_report(a)
    assert [(c.target, c.subject) for c in report.expiring()] == [("web", "CN=web")]
    assert (
        report.expiry(report.expiring()[0]) == f"expires on {_day(until + 20 * DAY)} (in 20 days)"
    )
