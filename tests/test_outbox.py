"""The alert outbox: alerts committed to the history file before a notifier gets them,
marked delivered or given up, kept pending over a stop and sent again (same key) after
a restart, given up when their notifier is gone, pruned with the rollups."""

from __future__ import annotations

import math
import signal
import sqlite3
from contextlib import closing
from pathlib import Path

import memory_notifier
import pytest
import trio
from factories import alert_event, config_doc, write_config
from test_cli import cli_config, run_cli, start_monitor
from test_lifecycle import LineSink

from trio_monitor import load_config, parse_config, run_monitor
from trio_monitor._config import StorageSection
from trio_monitor.alerts.base import identity
from trio_monitor.store import StoreStats, open_store
from trio_monitor.store.maintenance import StoreMaintenance
from trio_monitor.store.outbox import GAVE_UP, REMOVED, alert_json

T0 = 1_800_000_000.0
DAY = 86400.0


def outbox(path: Path) -> list[tuple]:
    """(key, notifier, status, reason) of every row, oldest first."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        return conn.execute(
            "SELECT key, notifier, status, reason FROM outbox ORDER BY created, notifier"
        ).fetchall()


def down_config(server, *, webhook: dict | None = None, **alerts) -> dict:
    """One target that is down from its first probe, and these notifiers."""
    monitor = {"interval": "100ms", "timeout": "2s", "stagger": "0s", "retries": 0}
    monitor["grace"] = "100ms"
    alerts = {"failure_threshold": 1, **alerts}
    if webhook is not None:
        alerts["webhook"] = [{"retries": 0, "timeout": "1h", **webhook}]
    return config_doc(
        {"name": "site", "url": server.url("/status/500")}, monitor=monitor, alerts=alerts
    )


async def start(nursery: trio.Nursery, path: Path, out: LineSink):
    return await nursery.start(
        lambda task_status: run_monitor(
            load_config(path), out=out, handle_signals=False, task_status=task_status
        )
    )


def test_a_notifier_is_its_channel_and_destination():
    def hook(**table):
        (config,) = parse_config({"alerts": {"webhook": [table]}}).alerts.channels("webhook")
        return identity("webhook", config)

    url = "http://127.0.0.1:9/hook"
    same = hook(url=url)
    assert same.startswith("webhook:")
    # a rotated secret, other events or timeouts: still the same notifier
    assert hook(url=url, headers={"X-Token": "new"}, events=["down"], timeout="1s") == same
    assert hook(url=url + "2") != same
    (command,) = parse_config({"alerts": {"exec": [{"command": ["page", "me"]}]}}).alerts.channels(
        "exec"
    )
    assert identity("exec", command).startswith("exec:")


async def test_an_alert_is_in_the_outbox_before_the_webhook_has_it(server, tmp_path):
    path = write_config(tmp_path, down_config(server, webhook={"url": server.url("/gate")}))
    out = LineSink()
    async with trio.open_nursery() as nursery:
        monitor = await start(nursery, path, out)
        await server.wait_hits("/gate", 1)  # the webhook's request waits at the gate
        ((key, notifier, status, _),) = outbox(tmp_path / "m.db")
        assert status == "pending"
        assert server.requests[-1]["headers"]["idempotency-key"] == key
        server.gate.set()
        monitor.stop()  # the notifier finishes its delivery on the way out
    ((down,),) = [out.of_type("alert")]
    assert outbox(tmp_path / "m.db") == [(key, notifier, "delivered", None)]
    assert notifier == identity("webhook", load_config(path).alerts.channels("webhook")[0])
    assert down["event"] == "down"


async def test_undelivered_alerts_of_a_removed_notifier_are_given_up_in_one_line(
    server, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr("trio_monitor._lifecycle.MIN_DRAIN", 0.2)
    path = write_config(tmp_path, down_config(server, webhook={"url": server.url("/hang")}))
    async with trio.open_nursery() as nursery:
        monitor = await start(nursery, path, LineSink())
        await server.wait_hits("/hang", 1)
        monitor.stop()
    assert (
        "alert outbox: 1 alerts not delivered yet: will retry after restart: down site"
        in caplog.text
    )
    ((key, notifier, status, _),) = outbox(tmp_path / "m.db")
    assert status == "pending"

    caplog.clear()
    write_config(tmp_path, down_config(server))  # the webhook is gone
    out = LineSink()
    await run_monitor(load_config(path), once=True, out=out, handle_signals=False)
    # (the test's own directory name has "undelivered" in it: match the message's start)
    lines = [m for r in caplog.records if (m := r.getMessage()).startswith("alert outbox: giving")]
    assert lines == [
        f"alert outbox: giving up on 1 undelivered alerts ({notifier}: {REMOVED}): down site"
    ]
    assert outbox(tmp_path / "m.db") == [(key, notifier, "given_up", REMOVED)]
    (round_line,) = out.of_type("round")
    assert round_line["given_up"] == {notifier: 1}  # and so in the metrics
    assert "will retry after restart" not in caplog.text


async def test_a_given_up_alert_is_marked_so(memory_channel, server, tmp_path):
    path = write_config(tmp_path, down_config(server, memory=[{"name": "pager", "fail": True}]))
    out = LineSink()
    await run_monitor(load_config(path), once=True, out=out, handle_signals=False)
    ((_, notifier, status, reason),) = outbox(tmp_path / "m.db")
    assert (notifier.startswith("memory:"), status, reason) == (True, "given_up", GAVE_UP)


async def test_an_unwritable_outbox_still_delivers(memory_channel, server, tmp_path, caplog):
    (tmp_path / "not-a-dir").write_text("a file where a directory should be")
    doc = down_config(server, memory=[{"name": "pager"}])
    path = write_config(tmp_path, {**doc, "storage": {"path": "not-a-dir/history.db"}})
    await run_monitor(load_config(path), once=True, out=LineSink(), handle_signals=False)
    assert [a.event for a in memory_notifier.DELIVERED["pager"]] == ["down"]
    assert f"alert outbox {tmp_path / 'not-a-dir/history.db'}: cannot read" in caplog.text


async def test_without_history_alerts_are_not_durable_and_it_says_so(
    memory_channel, server, tmp_path, caplog
):
    doc = down_config(server, memory=[{"name": "pager"}])
    path = write_config(tmp_path, {**doc, "storage": {"enabled": False}})
    await run_monitor(load_config(path), once=True, out=LineSink(), handle_signals=False)
    assert [a.event for a in memory_notifier.DELIVERED["pager"]] == ["down"]
    assert "alerts are not durable" in caplog.text
    assert not (tmp_path / "m.db").exists()


async def test_finished_rows_are_pruned_with_the_rollups(tmp_path):
    path = str(tmp_path / "history.db")
    rows = [
        ("old-done", "delivered", T0),
        ("old-gone", "given_up", T0),
        ("old-pending", "pending", None),  # still owed: kept whatever its age
        ("new-done", "delivered", T0 + 9.5 * DAY),
    ]
    with closing(open_store(path)) as conn:
        for key, status, done in rows:
            conn.execute(
                "INSERT INTO outbox VALUES (?, 'webhook:x', ?, ?, ?, ?, NULL)",
                (key, alert_json(alert_event(ts=T0)), T0, status, done),
            )
    storage = StorageSection(raw_retention=7 * DAY, rollup_retention=9 * DAY)
    maintenance = StoreMaintenance(path, storage, StoreStats(), now=lambda: T0 + 10 * DAY)
    assert await maintenance.run_once()
    await maintenance.aclose()
    assert sorted(key for key, *_ in outbox(Path(path))) == ["new-done", "old-pending"]


@pytest.mark.subprocess
async def test_sigterm_keeps_alerts_and_a_restart_sends_them_once_with_their_key(server, tmp_path):
    hook = {"url": server.url("/gate"), "retries": 0, "timeout": "1h"}
    target = {"name": "site", "url": server.url("/status/500")}
    write_config(
        tmp_path,
        cli_config(target, alerts={"failure_threshold": 1, "webhook": [hook]}, grace="100ms"),
    )
    async with start_monitor(tmp_path / "m.toml") as monitor:
        await server.wait_hits("/gate", 1)  # the receiver hangs
        monitor.send(signal.SIGTERM)
        assert await monitor.wait_exit() == 0
    assert any(
        "alert outbox: 1 alerts not delivered yet: will retry after restart" in line
        for line in monitor.err.lines
    )
    ((key, notifier, status, _),) = outbox(tmp_path / "m.db")
    assert status == "pending"

    server.gate.set()  # the receiver works again
    again = await run_cli("run", "--once", "-c", "m.toml", cwd=tmp_path)
    assert "sending 1 alerts again" in again.stderr
    assert "not delivered yet" not in again.stderr
    sent = [r for r in server.requests if r["path"] == "/gate"]
    assert [r["headers"]["idempotency-key"] for r in sent] == [key, key]
    assert sent[0]["body"] == sent[1]["body"]
    assert outbox(tmp_path / "m.db") == [(key, notifier, "delivered", None)]

    third = await run_cli("run", "--once", "-c", "m.toml", cwd=tmp_path)
    assert "again" not in third.stderr
    assert server.hits["/gate"] == 2


def test_alerts_read_back_keep_their_key():
    from trio_monitor.store.outbox import alert_from_json

    alert = alert_event(ts=T0 + 0.123456789, since=T0 - 1 / 3, reason="timeout")
    assert alert_from_json(alert_json(alert)) == alert
    assert alert_from_json(alert_json(alert)).key == alert.key
    assert math.isfinite(alert.ts)
