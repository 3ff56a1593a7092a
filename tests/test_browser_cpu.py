"""What Chromium costs the monitor's CPU (probes/browser/chromium.py): every process and
thread of it under SCHED_IDLE (or the normal policy, `browser_cpu = "equal"`), in the
monitor's session (its scheduling group) but a process group of its own, and no
renderer built for window chrome a headless page never shows."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import pytest
import trio
from test_browser import APP, WAIT, browser_test, config, load, page_target

from trio_monitor.probes.browser import chromium as chromium_module
from trio_monitor.probes.browser import open_browser_prober
from trio_monitor.probes.browser.cdp import BrowserTrouble


def stat_fields(pid: int | str) -> list[bytes]:
    """/proc/PID/stat after the command name in parentheses: state ppid pgrp session ..."""
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return stat[stat.rindex(b")") + 2 :].split()


def policies(group: int) -> dict[int, tuple[bytes, list[int]]]:
    """Each process of process group `group`: pid -> (command line, its threads' policies)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(stat_fields(pid)[2]) == group:
                tids = os.listdir(f"/proc/{pid}/task")
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
                found[int(pid)] = (command, [os.sched_getscheduler(int(t)) for t in tids])
        except OSError:  # gone meanwhile
            continue
    return found


@browser_test
@pytest.mark.parametrize(("cpu", "policy"), [("idle", os.SCHED_IDLE), ("equal", os.SCHED_OTHER)])
async def test_chromium_runs_under_sched_idle_unless_equal(server, cpu, policy):
    """Every thread of every Chromium process, the renderer showing a page included,
    under SCHED_IDLE: a monitor thread that wakes preempts any of them at once."""
    if not chromium_module.IDLE:
        pytest.skip("no chrt (util-linux) here")
    server.pages["app"] = APP
    waiting = page_target(server, "app", wait_for="selector:#never", timeout="20s")
    found: dict[int, tuple[bytes, list[int]]] = {}
    opened = open_browser_prober(config(browser_cpu=cpu))  # type: ignore[arg-type]
    async with opened as prober, trio.open_nursery() as nursery:
        nursery.start_soon(partial(load, prober, waiting, browser_cpu=cpu))
        with trio.fail_after(WAIT):  # the page shown, its renderer running
            while not any(b"--type=renderer" in c for c, _ in found.values()):
                await trio.sleep(0.05)
                running = prober.running
                found = {} if running is None else policies(running.pid)  # type: ignore[arg-type]
        nursery.cancel_scope.cancel()
    assert {p for _, threads in found.values() for p in threads} == {policy}
    assert sum(len(threads) for _, threads in found.values()) > 20


@browser_test
async def test_chromium_shares_the_monitors_session_in_a_process_group_of_its_own(server):
    """The monitor's session, so its scheduling group (the kernel's autogroup: a new
    session would compete with the monitor as an equal, SCHED_IDLE or not); a process
    group of its own, so it is killed as one."""
    server.pages["app"] = APP
    async with open_browser_prober(config()) as prober:  # type: ignore[arg-type]
        assert (await load(prober, page_target(server, "app"))).ok
        running = prober.running
        assert running is not None
        assert running.pid is not None
        ppid, group, session = (int(f) for f in stat_fields(running.pid)[1:4])
    own = stat_fields("self")
    assert session == int(own[3])
    assert group == running.pid != int(own[2])
    assert ppid == os.getpid()  # no shell or chrt left between us: they exec'd it


@browser_test
async def test_no_renderer_is_built_for_window_chrome(server):
    """Each probe's context opens a headless window; Chromium would build two WebUI
    renderers per window for the omnibox popups (targets of type `browser_ui`), which
    cost more CPU than the page itself."""
    server.pages["app"] = APP
    async with open_browser_prober(config()) as prober:  # type: ignore[arg-type]
        assert (await load(prober, page_target(server, "app"))).ok
        running = prober.running
        assert running is not None
        page = await running.open_page()
        try:
            await page.send("Page.navigate", {"url": server.url("/page/app")})
            targets = await running.connection.send("Target.getTargets", {"filter": [{}]})
        finally:
            await running.close_page(page)
    kinds = sorted(t["type"] for t in targets["targetInfos"])
    assert "page" in kinds
    assert "browser_ui" not in kinds, targets


async def test_without_chrt_one_warning_says_chromium_runs_at_the_normal_policy(
    tmp_path, monkeypatch, caplog
):
    """A `chromium` that exits at once: each start is tried, one line says why it
    cannot be idle."""
    (tmp_path / "chromium").write_text("#!/bin/sh\n")
    (tmp_path / "chromium").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(chromium_module, "IDLE", ())
    target = {"name": "b", "kind": "browser", "url": "http://127.0.0.1:1/"}
    async with open_browser_prober(config(target)) as prober:  # type: ignore[arg-type]
        for _ in range(2):
            with pytest.raises(BrowserTrouble, match="did not start"):
                await prober.chromium()
    assert caplog.text.count("no chrt on PATH (util-linux)") == 1
