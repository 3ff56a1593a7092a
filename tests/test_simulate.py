"""`trio-monitor simulate` (trio_monitor/replay/, cli/simulate.py): a replay of what the
live monitor recorded sends what the live monitor sent; time to alert per outage; the
history source (raw rows, the outbox, raw_retention); the JSON shape; bad input files
are one line and exit 2."""

from __future__ import annotations

import io
import json
import math
import sqlite3
from contextlib import closing
from types import SimpleNamespace

import memory_notifier
import pytest
import trio
from factories import alert_event, probe_result, write_config
from test_cli import assert_no_traceback, run_cli

from trio_monitor import parse_config
from trio_monitor._config import StorageSection
from trio_monitor._records import rfc3339, to_line
from trio_monitor.alerts.base import Notifiers, identity
from trio_monitor.early import EarlyWarning
from trio_monitor.engine import dispatch
from trio_monitor.engine.dispatch import Dispatcher
from trio_monitor.engine.state import MemoryStateStore
from trio_monitor.policy import Policy
from trio_monitor.replay import HistoryRecording, JsonlRecording, Sent, simulate
from trio_monitor.replay.render import _side_by_side
from trio_monitor.store import StoreStats, StoreWriter, open_store
from trio_monitor.store._sql import RAW_FLOOR, set_meta
from trio_monitor.store.outbox import alert_json

WALL0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
DAY = 86400.0

FLEET = {
    "alerts": {
        "failure_threshold": 2,
        "flap_threshold": 3,
        "flap_window": "10m",
        "memory": [
            {"name": "ops", "repeat": "45s"},
            {"name": "payments", "match": {"team": "payments"}, "events": ["down", "up"]},
        ],
    },
    # kept's outage begins inside a window and outlasts it: one down at the window's end
    "maintenance": [
        {
            "name": "upgrade",
            "targets": ["kept"],
            "start": rfc3339(WALL0 + 100),
            "end": rfc3339(WALL0 + 200),
        }
    ],
    "targets": [
        {"name": "pay", "url": "http://127.0.0.1/p", "labels": {"team": "payments"}},
        {"name": "web", "url": "http://127.0.0.1/w", "labels": {"team": "web"}},
        *[{"name": f"s{i}", "url": f"http://127.0.0.1/s{i}"} for i in range(1, 5)],
        {"name": "child", "url": "http://127.0.0.2/c", "depends_on": ["pay"]},
        {"name": "kept", "url": "http://127.0.0.3/k"},
        {
            "name": "db",
            "url": "http://127.0.0.1/d",
            "labels": {"team": "payments"},
            "alerts": {"failure_threshold": 1, "notify": ["ops"]},
        },
    ],
}

# (seconds from the start, target, ok): outages, a one-probe blip, a flapping target
SCRIPT = [
    *[(t, "pay", t not in (60, 90, 120)) for t in range(0, 300, 30)],
    *[(t + 5, "web", t not in (30, 60, 90, 120, 210, 240, 330, 360, 450)) for t in range(0, 600, 30)],
    *[(t + 10, "db", t != 150) for t in range(0, 300, 30)],
    *[(t + 20, "kept", not 120 <= t <= 240) for t in range(0, 330, 30)],
    # a child fails while its parent is down, and for a while after
    *[(t + 15, "child", not 60 <= t <= 180) for t in range(0, 300, 30)],
    # a storm: four targets on one address fail together (one group_down, one group_up)
    *[(t + i, f"s{i}", not 400 <= t <= 520) for t in range(0, 660, 30) for i in range(1, 5)],
]  # fmt: skip
SCRIPT.sort()


async def live_run(config, script, monkeypatch):
    """The live path: Dispatcher + Policy (its real stages) + early warning + running
    notifiers, as _lifecycle.Monitor builds them, on
    trio's clock; -> (the JSON lines it wrote, per notifier what it delivered)."""
    state = MemoryStateStore(config.alerts)
    early = EarlyWarning.for_config(config, state)
    dispatcher = Dispatcher(state, Policy(config, state), early)
    lines: list[str] = []
    dispatcher.add_observer(lambda record: lines.append(to_line(record)))
    targets = {t.name: t for t in config.targets}
    start = trio.current_time()
    # the wall clock the dispatcher stamps a due time's alerts with, in step with trio's
    # (as the real one is, give or take a probe's duration)
    wall = SimpleNamespace(time=lambda: WALL0 + trio.current_time() - start)
    monkeypatch.setattr(dispatch, "time", wall)
    async with trio.open_nursery() as nursery:
        notifiers = Notifiers(dispatcher, nursery, client=None)
        notifiers.configure(config)
        nursery.start_soon(dispatcher.run_policy)
        for at, name, ok in script:
            await trio.sleep_until(start + at)
            result = probe_result(name, ts=WALL0 + at, ok=ok)
            dispatcher.probed(targets[name], result, trio.current_time(), current=True)
        await trio.testing.wait_all_tasks_blocked()
        dispatcher.close()
        notifiers.close()
    return lines, dict(memory_notifier.DELIVERED)


def replay_lines(config, lines, **options):
    stream = io.BytesIO("".join(line + "\n" for line in lines).encode())
    return simulate(config, JsonlRecording(stream, "rec.jsonl", None, None, **options))


@pytest.mark.usefixtures("memory_channel")
async def test_a_replay_of_the_live_monitors_lines_sends_what_it_sent(autojump_clock, monkeypatch):
    config = parse_config(FLEET, env={})
    lines, delivered = await live_run(config, SCRIPT, monkeypatch)
    assert {"ops", "payments"} <= delivered.keys()
    events = {a.event for a in delivered["ops"]}
    assert {"down", "up", "flapping", "group_down", "group_up", "reminder"} <= events
    assert any(a.target == "child" and a.event == "down" for a in delivered["ops"])  # released
    kept = [
        (a.event, a.ts) for a in delivered["ops"] if a.target == "kept" and a.event != "reminder"
    ]
    assert kept == [
        ("down", WALL0 + 200),  # held, then sent at the window's end
        ("up", WALL0 + 290),
    ]
    doc = replay_lines(config, lines)
    for n in doc["notifiers"]:
        # listed by time (an alert a stage held back keeps its ts but is delivered later)
        would = [(e["ts"], e["target"], e["event"]) for e in n["alerts"] if e["would"]]
        sent = sorted((rfc3339(a.ts), a.target, a.event) for a in delivered[n["name"]])
        assert would == sent, n["name"]
        assert all(e["would"] and e["were"] for e in n["alerts"])  # matched to the ms
        assert n["would_send"] == n["were_sent"] == len(delivered[n["name"]])


@pytest.mark.usefixtures("memory_channel")
async def test_a_replay_with_another_threshold_differs_where_it_should(autojump_clock, monkeypatch):
    config = parse_config(FLEET, env={})
    lines, delivered = await live_run(config, SCRIPT, monkeypatch)
    stricter = parse_config({**FLEET, "alerts": {**FLEET["alerts"], "failure_threshold": 4}})
    doc = replay_lines(stricter, lines)
    payments, ops = (
        next(n for n in doc["notifiers"] if n["name"] == name) for name in ("payments", "ops")
    )
    # pay's 3-probe outage no longer pages; db (its own threshold 1, notify ops) still does
    assert payments["would_send"] == 0 < payments["were_sent"] == len(delivered["payments"])
    would = {(e["target"], e["event"]) for e in ops["alerts"] if e["would"]}
    assert {("db", "down"), ("db", "up")} <= would
    assert not any(t == "pay" for t, _ in would)


def test_time_to_alert_per_outage_next_to_the_recorded_one():
    """a fails from 60 s on: with failure_threshold 2 the candidate pages at 90 s (30 s
    after the outage began); the recording paged at 120 s (60 s); b's outage had no
    page in the recording."""
    config = parse_config(
        {
            "alerts": {"failure_threshold": 2, "webhook": [{"url": "http://127.0.0.1:9/"}]},
            "targets": [
                {"name": "a", "url": "http://127.0.0.1/a"},
                {"name": "b", "url": "http://127.0.0.1/b"},
            ],
        },
        env={},
    )
    lines = [
        to_line(probe_result("a", ts=WALL0 + t, ok=t not in (60, 90, 120)))
        for t in range(0, 240, 30)
    ]
    lines += [to_line(probe_result("b", ts=WALL0 + 1 + t, ok=t < 150)) for t in range(0, 240, 30)]
    lines.append(to_line(alert_event("down", "a", ts=WALL0 + 120, since=WALL0 + 60)))
    doc = replay_lines(config, sorted(lines, key=lambda line: json.loads(line)["ts"]))
    a, b = doc["outages"]
    assert (a["target"], a["start"], a["end"]) == (
        "a",
        "2027-01-15T08:01:00.000Z",
        "2027-01-15T08:02:30.000Z",
    )
    assert (a["time_to_alert_s"], a["recorded_time_to_alert_s"]) == (30.0, 60.0)
    assert (b["target"], b["end"], b["time_to_alert_s"], b["recorded_time_to_alert_s"]) == (
        "b",
        None,
        30.0,
        None,
    )
    assert doc["totals"]["time_to_alert_s"] == {"median": 30.0, "p90": 30.0, "max": 30.0}
    assert doc["totals"]["recorded_paged"] == 1  # fmt: skip


def test_targets_only_on_one_side_are_listed_and_skipped():
    config = parse_config({"targets": [{"name": "a", "url": "http://127.0.0.1/a"}, {"name": "new", "url": "http://127.0.0.1/n"}]})  # fmt: skip
    lines = [to_line(probe_result(name, ts=WALL0 + i)) for i, name in enumerate(["a", "gone", "a"])]
    doc = replay_lines(config, lines)
    assert doc["targets"] == {
        "replayed": 1,
        "only_in_recording": ["gone"],
        "only_in_candidate": ["new"],
    }
    assert doc["source"]["probes"] == 2  # fmt: skip


def test_lines_out_of_order_across_targets_are_replayed_in_time_order():
    """A line is written when its probe ends but carries its start: a slow probe's line
    comes after a later-started fast one's."""
    config = parse_config({"alerts": {"failure_threshold": 1, "webhook": [{"url": "http://127.0.0.1:9/"}]}, "targets": [{"name": "slow", "url": "http://127.0.0.1/s"}, {"name": "fast", "url": "http://127.0.0.1/f"}]})  # fmt: skip
    lines = [
        to_line(probe_result("fast", ts=WALL0 + 5, ok=False)),
        to_line(probe_result("slow", ts=WALL0, ok=False)),
    ]
    doc = replay_lines(config, lines)
    assert [o["target"] for o in doc["outages"]] == ["slow", "fast"]


JSON_KEYS = {
    "schema": None,
    "source": {"kind", "path", "since", "until", "first", "last", "probes", "notes"},
    "targets": {"replayed", "only_in_recording", "only_in_candidate"},
    "notifiers": {"name", "identity", "would_send", "were_sent", "by_event", "alerts"},
    "recorded_elsewhere": {"identity", "were_sent", "by_event"},
    "outages": {
        "target",
        "start",
        "end",
        "first_page",
        "time_to_alert_s",
        "recorded_first_page",
        "recorded_time_to_alert_s",
        "not_paged",
    },
    "totals": {
        "would_send",
        "were_sent",
        "alerts_made",
        "outages",
        "paged",
        "recorded_paged",
        "time_to_alert_s",
        "recorded_time_to_alert_s",
    },
}
ALERT_KEYS = {"ts", "event", "target", "detail", "would", "were"}  # + members, status


def history(tmp_path, results, outbox=()):
    """A real history file: the store's writer for the results, outbox rows as the
    outbox writes them."""
    path = tmp_path / "h.db"
    writer = StoreWriter(str(path), StorageSection(), StoreStats())
    send, receive = trio.open_memory_channel(math.inf)
    for r in results:
        send.send_nowait(r)
    send.close()
    trio.run(writer.serve, receive)
    with closing(open_store(str(path))) as conn:
        conn.executemany(
            "INSERT INTO outbox VALUES (?, ?, ?, ?, ?, ?, NULL)",
            [(a.key, who, alert_json(a), a.ts, status, a.ts) for who, a, status in outbox],
        )
    return path


def test_history_replays_raw_rows_and_reads_what_the_outbox_sent(tmp_path):
    config = parse_config({"alerts": {"failure_threshold": 2, "webhook": [{"name": "pager", "url": "http://127.0.0.1:9/"}]}, "targets": [{"name": "a", "url": "http://127.0.0.1/a"}]})  # fmt: skip
    pager = identity("webhook", config.alerts.channels("webhook")[0])
    down = alert_event("down", "a", ts=WALL0 + 90, since=WALL0 + 60)
    old = alert_event("down", "a", ts=WALL0 + 95, since=WALL0 + 60)
    path = history(
        tmp_path,
        [probe_result("a", ts=WALL0 + t, ok=t not in (60, 90)) for t in range(0, 180, 30)],
        [(pager, down, "delivered"), ("exec:0123456789abcdef", old, "given_up")],
    )
    rec = HistoryRecording(str(path), None, None)
    try:
        doc = simulate(config, rec)
    finally:
        rec.close()
    (n,) = doc["notifiers"]
    assert [(e["event"], e["would"], e["were"], e.get("status")) for e in n["alerts"]] == [
        ("down", True, True, "delivered"),
        ("up", True, False, None),
    ]
    assert doc["recorded_elsewhere"] == [
        {
            "identity": "exec:0123456789abcdef",
            "were_sent": 1,
            "by_event": {"down": {"would": 0, "were": 1}},
        }
    ]
    assert doc["outages"][0]["time_to_alert_s"] == doc["outages"][0]["recorded_time_to_alert_s"] == 30.0  # fmt: skip


@pytest.mark.parametrize("pruned", [False, True])
def test_since_before_the_raw_rows_says_why(tmp_path, pruned):
    config = parse_config({"targets": [{"name": "a", "url": "http://127.0.0.1/a"}]})
    path = history(tmp_path, [probe_result("a", ts=WALL0 + t) for t in range(0, 120, 30)])
    if pruned:  # as the store's maintenance marks it once raw_retention pruned rows
        with closing(open_store(str(path))) as conn:
            set_meta(conn, RAW_FLOOR, WALL0)
    rec = HistoryRecording(str(path), WALL0 - 30 * DAY, None)
    try:
        doc = simulate(config, rec)
    finally:
        rec.close()
    (note,) = doc["source"]["notes"]
    assert note.startswith("--since asks for 2026-12-16T08:00:00.000Z, but ")
    assert note.endswith(": replaying from there")
    if pruned:
        assert "keeps raw probe rows only from 2027-01-15T08:00:00.000Z" in note
        assert "pruned: [storage] raw_retention" in note
    else:
        assert "raw probe rows begin at 2027-01-15T08:00:00.000Z (nothing older" in note
    assert doc["source"]["probes"] == 4


@pytest.mark.subprocess
async def test_cli_json_shape(tmp_path):
    config = write_config(tmp_path, {"storage": {"enabled": False}, "alerts": {"webhook": [{"name": "pager", "url": "http://127.0.0.1:9/"}]}, "targets": [{"name": "a", "url": "http://127.0.0.1/a"}]})  # fmt: skip
    lines = [to_line(probe_result("a", ts=WALL0 + t, ok=t < 60)) for t in range(0, 240, 30)]
    lines.append(to_line(alert_event("down", "a", ts=WALL0 + 120, since=WALL0 + 60)))
    (tmp_path / "r.jsonl").write_text("\n".join(lines) + "\n")
    done = await run_cli("simulate", "-c", str(config), "--jsonl", "r.jsonl", "--format", "json", cwd=tmp_path)  # fmt: skip
    assert done.code == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc.keys() == JSON_KEYS.keys()
    assert doc["schema"] == 1
    for key, keys in JSON_KEYS.items():
        if keys is None:
            continue
        items = doc[key] if isinstance(doc[key], list) else [doc[key]]
        for item in items:
            assert item.keys() == keys, key
    (n,) = doc["notifiers"]
    assert {k for e in n["alerts"] for k in e} == ALERT_KEYS | {"status"}
    assert n["by_event"] == {"down": {"would": 1, "were": 1}}
    text = await run_cli("simulate", "-c", str(config), "--jsonl", "r.jsonl", cwd=tmp_path)
    assert text.code == 0, text.stderr
    assert "pager" in text.stdout
    assert "paged after 1m00s (recorded: 1m00s)" in text.stdout


GOOD = to_line(probe_result("a", ts=WALL0))


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (GOOD + "\n" + GOOD[:40] + "\n" + GOOD + "\n", "r.jsonl: line 2 is not a well-formed"),
        ('{"schema": 1, "type": "probe", "ts": "x"}\n', "r.jsonl: line 1 is not a well-formed"),
        ("hello\n", "r.jsonl: line 1 is not a well-formed trio-monitor JSON line"),
    ],
)
async def test_a_bad_jsonl_file_is_one_line_and_exit_2(tmp_path, content, message):
    config = write_config(tmp_path, {"storage": {"enabled": False}, "targets": [{"name": "a", "url": "http://127.0.0.1/a"}]})  # fmt: skip
    (tmp_path / "r.jsonl").write_text(content)
    done = await run_cli("simulate", "-c", str(config), "--jsonl", "r.jsonl", cwd=tmp_path)
    assert done.code == 2
    assert_no_traceback(done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr


@pytest.mark.subprocess
async def test_a_last_line_still_being_written_is_left_out_with_a_note(tmp_path):
    config = write_config(tmp_path, {"storage": {"enabled": False}, "targets": [{"name": "a", "url": "http://127.0.0.1/a"}]})  # fmt: skip
    (tmp_path / "r.jsonl").write_text(GOOD + "\n" + GOOD[:40])
    done = await run_cli("simulate", "-c", str(config), "--jsonl", "r.jsonl", cwd=tmp_path)
    assert done.code == 0, done.stderr
    assert "line 2 is incomplete (still being written?): left out" in done.stderr
    assert "Replayed 1 probe result of 1 target" in done.stdout


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a database" * 100, "h.db: not a trio-monitor history database"),
        (None, "h.db: no such history file"),
    ],
)
async def test_a_bad_history_file_is_one_line_and_exit_2(tmp_path, content, message):
    config = write_config(tmp_path, {"storage": {"enabled": False}, "targets": [{"name": "a", "url": "http://127.0.0.1/a"}]})  # fmt: skip
    if content is not None:
        (tmp_path / "h.db").write_bytes(content)
    done = await run_cli("simulate", "-c", str(config), "--history", "h.db", cwd=tmp_path)
    assert done.code == 2
    assert_no_traceback(done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr


def test_a_history_file_another_application_wrote_is_refused(tmp_path):
    with closing(sqlite3.connect(tmp_path / "h.db")) as conn:
        conn.execute("CREATE TABLE x (y)")
    with pytest.raises(Exception, match="not a trio-monitor history database"):
        HistoryRecording(str(tmp_path / "h.db"), None, None)


def test_a_due_times_alert_matches_its_recorded_twin_within_a_minute():
    """The monitor stamps a window's end with its tick's wall clock, the replay with the
    due time: seconds apart, the same alert; minutes apart, two."""
    would = [
        alert_event("group_down", "group-1", ts=WALL0 + 10),
        alert_event("down", "a", ts=WALL0),
    ]
    were = [
        Sent(alert_event("group_down", "group-1", ts=WALL0 + 13), None, "recorded"),
        Sent(alert_event("down", "a", ts=WALL0 + 120), None, "recorded"),
    ]
    rows = [(e["event"], e["ts"][11:19], e["would"], e["were"]) for e in _side_by_side(would, were)]
    assert rows == [
        ("down", "08:00:00", True, False),
        ("group_down", "08:00:10", True, True),
        ("down", "08:02:00", False, True),
    ]
