"""The history store inside a running monitor: written by default, outages resumed across
restarts, bad files refused, unwritable files survived, and reports over what was kept."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio
from factories import config_doc, write_config
from fakes import running
from servers import closed_port
from test_cli import run_cli as cli
from test_cli import start_monitor
from test_lifecycle import LineSink

from trio_monitor import load_config, run_monitor
from trio_monitor._errors import StoreError
from trio_monitor.store import HistoryReader

CLI = [sys.executable, "-m", "trio_monitor"]


def run_config(targets: list[dict], **sections) -> dict:
    monitor = {"interval": "100ms", "timeout": "2s", "stagger": "0s", "retries": 0}
    return config_doc(*targets, monitor=monitor, **sections)


def history(path: Path) -> HistoryReader:
    return HistoryReader(str(path))


async def run_once(config_path: Path) -> tuple[int, LineSink]:
    out = LineSink()
    code = await run_monitor(load_config(config_path), once=True, out=out, handle_signals=False)
    return code, out


async def test_results_are_kept_beside_the_config_by_default(server, tmp_path):
    config = write_config(tmp_path, run_config([{"name": "web", "url": server.url("/ok")}]))
    code, _ = await run_once(config)
    assert code == 0
    with history(tmp_path / "m.db") as reader:
        (sample,) = reader.samples("web", 0, 2e9)
    assert sample.ok
    assert sample.status == 200


async def test_disabled_storage_writes_nothing(server, tmp_path):
    config = write_config(
        tmp_path, run_config([{"url": server.url("/ok")}], storage={"enabled": False})
    )
    await run_once(config)
    assert not (tmp_path / "m.db").exists()


async def test_an_outage_survives_a_restart(server, tmp_path):
    """Down before the restart: no second page while still down, and the recovery reports
    the whole outage, from its first failure before the restart."""
    server.bodies.pop("page", None)  # /body/page answers 404 until it is set
    target = {"name": "site", "url": server.url("/body/page")}
    config = write_config(tmp_path, run_config([target], alerts={"failure_threshold": 1}))

    _, first = await run_once(config)
    assert [a["event"] for a in first.of_type("alert")] == ["down"]
    down_since = first.of_type("alert")[0]["since"]

    _, second = await run_once(config)  # still down: already paged, so no alert
    assert second.of_type("alert") == []

    server.bodies["page"] = b"back"
    _, third = await run_once(config)
    (up,) = third.of_type("alert")
    assert up["event"] == "up"
    assert up["since"] == down_since
    with history(tmp_path / "m.db") as reader:
        (incident,) = reader.incidents(0, 2e9)
    assert incident.end is not None
    assert up["downtime_s"] >= incident.end - incident.start - 0.01


async def test_unwritable_history_never_stops_probing(server, tmp_path, caplog):
    (tmp_path / "not-a-dir").write_text("a file where a directory should be")
    config = write_config(
        tmp_path, run_config([{"url": server.url("/ok")}], storage={"path": "not-a-dir/history.db"})
    )
    code, out = await run_once(config)
    assert code == 0
    assert [p["ok"] for p in out.of_type("probe")] == [True]
    assert "probing goes on" in caplog.text


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.subprocess
def test_a_foreign_file_stops_start_up_with_one_line(tmp_path):
    (tmp_path / "m.db").write_bytes(b"this is no database\n" * 100)
    write_config(tmp_path, run_config([{"url": f"http://127.0.0.1:{closed_port()}/"}]))
    done = run_cli("run", "--once", "-c", "m.toml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()[-1:]
    assert "not a trio-monitor history database" in line
    assert "Traceback" not in done.stderr


@pytest.mark.subprocess
async def test_report_over_what_a_run_kept(server, tmp_path):
    config = write_config(
        tmp_path,
        run_config(
            [
                {"name": "up", "url": server.url("/ok")},
                {"name": "down", "url": server.url("/status/500")},
            ]
        ),
    )
    for _ in range(3):
        await run_once(config)
    done = await trio.to_thread.run_sync(
        lambda: run_cli("report", "-c", "m.toml", "--format", "json", cwd=tmp_path)
    )
    assert done.returncode == 0, done.stderr
    report = {t["target"]: t for t in json.loads(done.stdout)["targets"]}
    assert (report["up"]["checks"], report["up"]["availability_pct"]) == (3, 100.0)
    assert (report["down"]["checks"], report["down"]["ok"]) == (3, 0)
    assert report["up"]["latency_ms"]["p50"] is not None


async def test_a_target_removed_by_a_reload_ends_its_outage(server, tmp_path):
    """Removed while DOWN: its incident ends at the reload with reason `removed`, one
    `removed` line says so (no alert), and adding it back later starts afresh."""
    down = {"name": "gone", "url": server.url("/status/500")}
    fine = {"name": "fine", "url": server.url("/ok")}
    alerts = {"failure_threshold": 1, "group_window": "0s"}  # its down at once
    path = write_config(tmp_path, run_config([down, fine], alerts=alerts))
    out = LineSink()
    async with trio.open_nursery() as nursery:
        monitor = await running(nursery, load_config(path), out=out, config_path=str(path))
        await out.wait_for(lambda o: any(a["event"] == "down" for a in o.of_type("alert")))
        write_config(tmp_path, run_config([fine], alerts=alerts))
        assert await monitor.reload()
        await out.wait_for(lambda o: o.of_type("removed"))
        monitor.stop()
    (removed,) = out.of_type("removed")
    (down_alert,) = out.of_type("alert")
    assert removed["target"] == "gone"
    assert removed["url"] == down["url"]
    assert removed["since"] == down_alert["since"]
    with history(tmp_path / "m.db") as reader:
        (incident,) = reader.incidents(0, 2e9)
        last_probe = reader.recent("gone", 1)[0].ts
    assert incident.end_reason == "removed"
    assert incident.end is not None
    assert last_probe <= incident.end < last_probe + 1.0  # the reload, not "ongoing"

    # added back: a new outage of its own, not the old one resumed
    write_config(tmp_path, run_config([down, fine], alerts=alerts))
    _, again = await run_once(path)
    assert [a["event"] for a in again.of_type("alert")] == ["down"]
    with history(tmp_path / "m.db") as reader:
        old, new = reader.incidents(0, 2e9)
    assert (old.end_reason, new.end, new.end_reason) == ("removed", None, None)
    assert new.start > old.end


async def test_an_outage_of_a_target_removed_while_stopped_ends_at_its_last_probe(server, tmp_path):
    """Removed from the file while the monitor was stopped: at start-up its open incident
    ends at its last stored probe (nothing watched it after), reason `removed`."""
    down = {"name": "gone", "url": server.url("/status/500")}
    fine = {"name": "fine", "url": server.url("/ok")}
    alerts = {"failure_threshold": 1}
    path = write_config(tmp_path, run_config([down, fine], alerts=alerts))
    await run_once(path)
    with history(tmp_path / "m.db") as reader:
        last_probe = reader.recent("gone", 1)[0].ts
        (incident,) = reader.incidents(0, 2e9)
    assert incident.last_seen == last_probe  # open: what the target was last seen at

    write_config(tmp_path, run_config([fine], alerts=alerts))
    _, out = await run_once(path)
    (removed,) = out.of_type("removed")
    assert removed["target"] == "gone"
    assert removed["url"] is None
    assert out.of_type("alert") == []  # no notifier hears of it
    with history(tmp_path / "m.db") as reader:
        (incident,) = reader.incidents(0, 2e9)
    assert (incident.end, incident.end_reason) == (last_probe, "removed")


async def test_a_second_monitor_on_one_history_is_refused(server, tmp_path):
    """One history file, one monitor: the second would store every sample and page every
    outage twice. Readers still read while the first runs; after it, the file is free."""
    config = write_config(tmp_path, run_config([{"name": "web", "url": server.url("/ok")}]))
    out = LineSink()
    async with trio.open_nursery() as nursery:
        first = await running(nursery, load_config(config), out=out)
        await out.wait_for(lambda o: o.of_type("round"))
        with pytest.raises(StoreError) as refused:
            await run_once(config)
        assert str(refused.value) == (
            f"{tmp_path / 'm.db'}: in use by another monitor (pid {os.getpid()} on "
            f"{socket.gethostname()}, lock {tmp_path / 'm.db.lock'}); "
            "one history file takes one monitor"
        )
        with history(tmp_path / "m.db") as reader:  # readers take no lock
            assert set(reader.targets()) <= {"web"}  # (what the writer has committed yet)
        first.stop()
    code, _ = await run_once(config)  # released when the first ended
    assert code == 0


@pytest.mark.subprocess
async def test_a_second_monitor_process_exits_2_naming_the_first(server, tmp_path):
    config = write_config(tmp_path, run_config([{"name": "web", "url": server.url("/ok")}]))
    async with start_monitor(config) as first:
        await first.wait_record(lambda r: r["type"] == "round")
        second = await cli("run", "--once", "-c", "m.toml", cwd=tmp_path)
        assert (second.code, second.stdout) == (2, "")
        (line,) = second.stderr.splitlines()
        assert line.startswith("trio-monitor: m.db: in use by another monitor")
        assert f"(pid {first.process.pid} on " in line
        report = await cli("report", "-c", "m.toml", "--format", "json", cwd=tmp_path)
        assert report.code == 0, report.stderr
        first.send(signal.SIGTERM)
        assert await first.wait_exit() == 0
    again = await cli("run", "--once", "-c", "m.toml", cwd=tmp_path)
    assert again.code == 0, again.stderr


async def test_early_warning_baselines_survive_a_restart(server, tmp_path):
    """Each run learns from its probe and saves the baselines at its end; the next run
    starts from them (not from nothing): the count goes on."""
    config = write_config(tmp_path, run_config([{"name": "web", "url": server.url("/ok")}]))
    for _ in range(3):
        code, _ = await run_once(config)
        assert code == 0
    with history(tmp_path / "m.db") as reader:
        ((name, text),) = reader.baselines()
    assert name == "web"
    assert json.loads(text)["latency"][0] == 3  # three probes, one a run
