"""Maintenance windows and silences end to end, through the real console script: a
target down inside a window pages no loopback webhook, one `down` goes out at the
window's end; `trio-monitor silence add|list|expire` against the running monitor, a
silence surviving a restart; the command's JSON shape and its errors."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime

import pytest
from factories import write_config
from servers import closed_port
from test_cli import assert_no_traceback, cli_config, run_cli, start_monitor

pytestmark = pytest.mark.subprocess

TOKEN = "a-token-for-the-silences-test"
SILENCE_KEYS = {"id", "start", "until", "active", "match", "targets", "comment", "author"}


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def is_alert(event: str, **fields) -> object:
    def matches(record: dict) -> bool:
        return (
            record["type"] == "alert"
            and record["event"] == event
            and all(record.get(k) == v for k, v in fields.items())
        )

    return matches


def hooked(server) -> list[dict]:
    return [json.loads(body) for body in server.received]


def monitored(server, tmp_path, *, maintenance=(), port=None, name="svc"):
    """A config probing /body/svc (404, so DOWN, until server.bodies["svc"] is set) every
    200 ms, paging a loopback webhook at once (failure_threshold 1, no grouping window:
    a lone target has nothing to group with, and 10 s of waiting per page would only
    stretch these tests)."""
    doc = cli_config(
        {"name": name, "url": server.url(f"/body/{name}"), "labels": {"team": "pay"}},
        alerts={
            "failure_threshold": 1,
            "group_window": "0s",
            "webhook": [{"url": server.url("/hook"), "retries": 0, "timeout": "5s"}],
        },
    )
    doc["storage"] = {"path": str(tmp_path / "history.db")}
    if maintenance:
        doc["maintenance"] = list(maintenance)
    if port is not None:
        doc["server"] = {"listen": f"127.0.0.1:{port}", "token": TOKEN}
    return write_config(tmp_path, doc)


async def test_a_target_down_in_a_window_pages_once_at_its_end(server, tmp_path):
    now = time.time()
    window = {
        "name": "deploy",
        "match": {"team": "pay"},
        "start": _rfc3339(now - 60),
        "end": _rfc3339(now + 3600),
    }
    config = monitored(server, tmp_path, maintenance=[window])
    async with start_monitor(config) as monitor:
        i, held = await monitor.wait_record(is_alert("down", held_by="maintenance:deploy"))
        assert server.received == []  # held: no page
        # the window is cut short to end 2 s from now (a reload: however long start-up
        # took on a loaded machine, the down came inside the window)
        end = round(time.time() + 2, 3)  # whole ms: JSON lines give times to the ms
        monitored(server, tmp_path, maintenance=[{**window, "end": _rfc3339(end)}])
        monitor.send(signal.SIGHUP)
        await monitor.wait_log("reloaded")  # (on a slow machine the 2 s may be over by now)
        j, late = await monitor.wait_record(is_alert("down", held_by=None), i + 1)
        assert late["since"] == held["since"]
        assert datetime.fromisoformat(late["ts"].replace("Z", "+00:00")).timestamp() >= end
        assert "held by maintenance:deploy" in late["detail"]
        await server.wait_received(1)
        (paged,) = hooked(server)
        assert (paged["event"], paged["target"]) == ("down", "svc")
        server.bodies["svc"] = b"back"
        await monitor.wait_record(is_alert("up", held_by=None), j + 1)
        await server.wait_received(2)
        monitor.send(signal.SIGTERM)
        assert await monitor.wait_exit() == 0
    assert [a["event"] for a in hooked(server)] == ["down", "up"]  # exactly one down


async def silence(tmp_path, config, *args):
    done = await run_cli("silence", *args[:1], "-c", str(config), *args[1:], cwd=tmp_path)
    assert_no_traceback(done.stdout, done.stderr)
    return done


async def test_a_silence_from_the_cli_holds_survives_a_restart_and_expire_ends_it(server, tmp_path):
    server.bodies["svc"] = b"fine"
    port = closed_port()
    config = monitored(server, tmp_path, port=port)
    async with start_monitor(config) as monitor:
        await monitor.wait_log("serving HTTP on")
        added = await silence(
            tmp_path, config, "add", "--target", "svc", "-d", "1h", "--comment", "db upgrade",
            "--author", "ops", "--format", "json",
        )  # fmt: skip
        assert added.code == 0, added.stderr
        body = json.loads(added.stdout)
        assert set(body) == SILENCE_KEYS
        assert (body["targets"], body["comment"], body["author"], body["active"]) == (
            ["svc"], "db upgrade", "ops", True,
        )  # fmt: skip
        sid = body["id"]
        del server.bodies["svc"]
        await monitor.wait_record(is_alert("down", held_by=f"silence:{sid}"))
        monitor.send(signal.SIGTERM)
        assert await monitor.wait_exit() == 0
    assert server.received == []

    async with start_monitor(config) as monitor:
        await monitor.wait_log("serving HTTP on")
        listed = await silence(tmp_path, config, "list", "--format", "json")
        assert listed.code == 0, listed.stderr
        (kept,) = json.loads(listed.stdout)["silences"]
        assert kept["id"] == sid
        text = await silence(tmp_path, config, "list")
        assert text.stdout.startswith(f"{sid}  until ")
        assert "svc (ops: db upgrade)" in text.stdout
        # still down after the restart: the silence holds on; expire pages it once
        expired = await silence(tmp_path, config, "expire", sid)
        assert expired.code == 0, expired.stderr
        assert expired.stdout.startswith(f"expired {sid} at ")
        await monitor.wait_record(is_alert("down", held_by=None))
        await server.wait_received(1)
        again = await silence(tmp_path, config, "expire", sid)
        assert (again.code, again.stdout) == (1, "")
        assert "no silence" in again.stderr
        assert (await silence(tmp_path, config, "list")).stdout == "no silences\n"
        monitor.send(signal.SIGTERM)
        assert await monitor.wait_exit() == 0
    assert [a["event"] for a in hooked(server)] == ["down"]


async def test_silence_errors_are_one_line(server, tmp_path):
    port = closed_port()
    config = monitored(server, tmp_path, port=port)
    nowhere = await silence(tmp_path, config, "list")
    assert nowhere.code == 1
    assert nowhere.stderr.startswith(f"trio-monitor: http://127.0.0.1:{port}/api/v1/silences: ")
    assert nowhere.stderr.count("\n") == 1
    usage = await silence(tmp_path, config, "add", "-d", "1h")
    assert usage.code == 2
    assert "name targets (--target) or labels (--match)" in usage.stderr
    bad = await silence(tmp_path, config, "add", "--match", "team", "-d", "1h")
    assert (bad.code, bad.stderr) == (
        2,
        "trio-monitor: --match: expected LABEL=VALUE, got 'team'\n",
    )
    no_server = monitored(server, tmp_path / "plain")
    plain = await silence(tmp_path, no_server, "list")
    assert plain.code == 2
    assert "no [server] section" in plain.stderr
    async with start_monitor(config) as monitor:
        await monitor.wait_log("serving HTTP on")
        refused = await silence(tmp_path, config, "add", "-t", "nope", "-d", "1h")
        assert refused.code == 1
        assert refused.stderr == (
            f"trio-monitor: POST http://127.0.0.1:{port}/api/v1/silences:"
            " targets: no target named 'nope'\n"
        )
        monitor.send(signal.SIGTERM)
        assert await monitor.wait_exit() == 0
