"""Chromium's CPU share (probes/browser/cgroup.py): the cgroup v1 and v2 set-ups on
fake hierarchies, the reasons it cannot be made, and a real Chromium in a real group
where this machine allows one (CI runs as root on cgroup v1)."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import pytest
import trio
from test_browser import APP, WAIT, browser_test, config, load, page_target

from trio_monitor.probes.browser import chromium as chromium_module
from trio_monitor.probes.browser import open_browser_prober
from trio_monitor.probes.browser.cgroup import PREFIX, Unavailable, open_cpu_share


def own(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "self-cgroup"
    path.write_text(text)
    return path


def test_v1_a_group_of_our_own_with_the_monitor_and_the_browser_inside(tmp_path):
    root = tmp_path / "fs"
    parent = root / "cpu,cpuacct" / "svc"
    (parent / f"{PREFIX}999999999" / "browser").mkdir(parents=True)  # a killed monitor's
    (parent / f"{PREFIX}{os.getppid()}").mkdir()  # a live process's: kept
    share = open_cpu_share(10, root=root, own=own(tmp_path, "3:cpu,cpuacct:/svc\n0::/svc\n"))
    group = parent / f"{PREFIX}{os.getpid()}"
    assert share.path == group / "browser"
    assert (share.path / "cpu.shares").read_text() == "102"
    assert (group / "monitor" / "cgroup.procs").read_text() == str(os.getpid())
    assert sorted(p.name for p in parent.iterdir()) == sorted(
        [f"{PREFIX}{os.getppid()}", f"{PREFIX}{os.getpid()}"]
    )
    share.set_weight(50)
    assert (share.path / "cpu.shares").read_text() == "512"
    argv = share.argv(["chromium", "--headless"])
    assert argv[:2] == ["/bin/sh", "-c"]
    assert argv[3:] == [str(share.path / "cgroup.procs"), "chromium", "--headless"]
    for file in (share.path / "cpu.shares", group / "monitor" / "cgroup.procs"):
        file.unlink()  # cgroupfs has no files to remove: a plain directory does
    share.remove()
    assert not group.exists()
    assert (parent / "cgroup.procs").read_text() == str(os.getpid())  # moved back


def test_v2_moves_the_monitor_to_a_leaf_and_gives_the_browser_a_weight(tmp_path):
    root = tmp_path / "fs"
    svc = root / "system.slice" / "trio-monitor.service"
    svc.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu io memory pids\n")
    (svc / "cgroup.controllers").write_text("cpu memory pids\n")
    (svc / "cgroup.subtree_control").write_text("\n")
    (svc / "cgroup.procs").write_text("4242\n")
    share = open_cpu_share(
        10, root=root, own=own(tmp_path, "0::/system.slice/trio-monitor.service\n")
    )
    assert share.path == svc / "browser"
    assert (svc / "monitor" / "cgroup.procs").read_text() == "4242"
    assert (svc / "cgroup.subtree_control").read_text() == "+cpu"
    assert (share.path / "cpu.weight").read_text() == "10"


def test_why_no_share_can_be_made(tmp_path):
    root = tmp_path / "fs"
    (root / "svc").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu io\n")
    (root / "svc" / "cgroup.controllers").write_text("io memory\n")
    with pytest.raises(Unavailable, match=r"not delegated to .*svc \(systemd: Delegate=cpu\)"):
        open_cpu_share(10, root=root, own=own(tmp_path, "0::/svc\n"))
    with pytest.raises(Unavailable, match="cpu controller is not mounted"):
        open_cpu_share(10, root=tmp_path / "none", own=own(tmp_path, "2:cpu:/\n"))
    (root / "cpu").write_text("not a directory")
    (root / "cpu,cpuacct").mkdir()
    (root / "cpu,cpuacct" / "x").write_text("a file where our group's parent should be")
    with pytest.raises(Unavailable, match="Not a directory"):
        open_cpu_share(10, root=root, own=own(tmp_path, "2:cpu:/x\n"))
    with pytest.raises(Unavailable, match="cannot read"):
        open_cpu_share(10, root=root, own=tmp_path / "missing")


def cgroup_of(pid: str) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


def ended(pid: str) -> bool:
    """A zombie (a renderer that ended, not reaped yet) is listed as the group's but
    reports the root group."""
    return not Path(f"/proc/{pid}/cmdline").read_bytes()


def _share_here() -> str | None:
    """Why this machine cannot give Chromium a share (None: it can)."""
    try:
        open_cpu_share(10).remove()
    except Unavailable as exc:
        return str(exc)
    return None


@browser_test
async def test_a_real_chromium_runs_in_its_share_and_the_group_goes_with_it(server):
    if (why := _share_here()) is not None:
        pytest.skip(f"no cgroup can be made here: {why}")
    server.pages["app"] = APP
    async with open_browser_prober(config()) as prober:  # type: ignore[arg-type]
        result = await load(prober, page_target(server, "app", contains="Dashboard ready"))
        assert result.ok, result
        share, chromium = prober.cpu_share, prober.running
        assert share is not None
        assert chromium is not None
        group = f"/{PREFIX}{os.getpid()}/browser"
        assert f"/{PREFIX}{os.getpid()}/monitor" in cgroup_of("self")
        members = set((share.path / "cgroup.procs").read_text().split())
        assert str(chromium.pid) in members
        assert len(members) > 2  # the browser, its zygotes, a renderer: all inside
        assert all(group in cgroup_of(pid) for pid in members if not ended(pid))
        assert (share.path / "cpu.shares").read_text().strip() == "102"
    assert not share.path.parent.exists()
    assert PREFIX not in cgroup_of("self")  # the monitor moved back


def policies(group: int) -> dict[int, tuple[bytes, list[int]]]:
    """Each process of process group `group`: pid -> (command line, its threads' policies)."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
            if int(stat[stat.rindex(b")") + 2 :].split()[2]) == group:
                tids = os.listdir(f"/proc/{pid}/task")
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
                found[int(pid)] = (command, [os.sched_getscheduler(int(t)) for t in tids])
        except OSError:  # gone meanwhile
            continue
    return found


@browser_test
@pytest.mark.parametrize(("weight", "policy"), [(10, os.SCHED_IDLE), (0, os.SCHED_OTHER)])
async def test_chromium_runs_under_sched_idle_with_a_weight(server, weight, policy):
    """Every thread of every Chromium process, the renderer showing a page included,
    under SCHED_IDLE: a monitor thread that wakes preempts any of them at once."""
    if not chromium_module.IDLE:
        pytest.skip("no chrt (util-linux) here")
    server.pages["app"] = APP
    waiting = page_target(server, "app", wait_for="selector:#never", timeout="20s")
    found: dict[int, tuple[bytes, list[int]]] = {}
    opened = open_browser_prober(config(browser_cpu_weight=weight))  # type: ignore[arg-type]
    async with opened as prober, trio.open_nursery() as nursery:
        nursery.start_soon(partial(load, prober, waiting, browser_cpu_weight=weight))
        with trio.fail_after(WAIT):  # the page shown, its renderer running
            while not any(b"--type=renderer" in c for c, _ in found.values()):
                await trio.sleep(0.05)
                running = prober.running
                found = {} if running is None else policies(running.pid)  # type: ignore[arg-type]
        nursery.cancel_scope.cancel()
    assert {p for _, threads in found.values() for p in threads} == {policy}
    assert sum(len(threads) for _, threads in found.values()) > 20


@browser_test
async def test_weight_zero_makes_no_group(server):
    server.pages["app"] = APP
    async with open_browser_prober(config(browser_cpu_weight=0)) as prober:  # type: ignore[arg-type]
        result = await load(prober, page_target(server, "app"), browser_cpu_weight=0)
        assert result.ok, result.error_detail
        assert prober.cpu_share is None
