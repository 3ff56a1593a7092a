"""A CPU share of its own for Chromium: a cgroup with a low weight.

Loading a page costs a fresh renderer half a CPU-second; 20 browser targets on a
2-core machine took a core and pushed 2,000 HTTP probes' p99 latency from 1.8 to 18 ms
and the event loop's lag from 25 to 82 ms. `nice` cannot help: Chromium resets its
threads' priorities. A cgroup can: the kernel gives Chromium's whole process tree
`browser_cpu_weight` against the monitor's 100 when both want the CPU, and all of it
when the monitor does not, so pages still load as fast on an idle machine.

Chromium is put in the group before it runs (a shell writes its own pid into the
group, then execs it), so every process it forks starts inside. Which hierarchy:

- cgroup v1 (a `cpu` controller mounted under /sys/fs/cgroup): a group of our own
  under our `cpu` cgroup, with two children: `monitor` (this process moves there, at
  the default 1024 shares) and `browser` (1024 * weight / 100). The group as a whole
  competes with the machine's other processes like the monitor alone did (a lone
  `browser` group beside them would get a tenth of what each of them gets, and starve
  on a busy machine); when it is removed, the monitor moves back.
- cgroup v2: our own cgroup must have the `cpu` controller (systemd: `Delegate=cpu`).
  A cgroup with processes cannot also have children with controllers, so the monitor
  first moves its processes into a `monitor` leaf, then the `browser` leaf gets
  `cpu.weight` = weight (the monitor's leaf keeps the default 100).

Where neither works (not root and nothing delegated, a read-only /sys/fs/cgroup in a
container) Chromium runs as before, and one log line says why.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from pathlib import Path

log = logging.getLogger("trio_monitor")

PREFIX = "trio-monitor-browser-"  # v1: one group per monitor process, named by its pid
V1_SHARES = 1024  # cpu.shares of a group (or task) at the default weight


class Unavailable(Exception):
    """No CPU share can be set up here; the message says why, for the log."""


class CpuShare:
    """Chromium's cgroup: `argv` puts a command into it, `remove` removes it."""

    def __init__(self, path: Path, v1: bool) -> None:
        self.path = path  # the browser's group
        self._v1 = v1

    def set_weight(self, weight: int) -> None:
        """Chromium's share of the CPU against the monitor's 100 (1-100); at once."""
        if self._v1:
            (self.path / "cpu.shares").write_text(str(max(2, V1_SHARES * weight // 100)))
        else:
            (self.path / "cpu.weight").write_text(str(weight))

    def argv(self, command: list[str]) -> list[str]:
        """`command`, started inside the group: everything it forks stays there."""
        # a group removed meanwhile only costs the share, never the browser
        enter = 'echo $$ 2>/dev/null > "$0"; exec "$@"'
        return ["/bin/sh", "-c", enter, str(self.path / "cgroup.procs"), *command]

    def remove(self) -> bool:
        """Remove the browser's group, and on v1 the monitor's and theirs, the monitor
        moving back first. -> gone? Not while a killed Chromium process is still
        leaving it (SIGKILL takes effect a moment later): try again."""
        with contextlib.suppress(OSError):
            self.path.rmdir()
        if not self._v1:
            return not self.path.exists()
        group = self.path.parent
        with contextlib.suppress(OSError):
            (group.parent / "cgroup.procs").write_text(str(os.getpid()))
        _remove_v1(group)
        return not group.exists()


def open_cpu_share(
    weight: int,
    *,
    root: Path = Path("/sys/fs/cgroup"),
    own: Path = Path("/proc/self/cgroup"),
) -> CpuShare:
    """Set up Chromium's group with `weight` (1-100 against the monitor's 100).
    Unavailable when it cannot be done here."""
    try:
        lines = own.read_text().splitlines()
    except OSError as exc:
        raise Unavailable(f"cannot read {own}: {exc.strerror}") from None
    memberships = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            memberships[controller] = path
    try:
        if "cpu" in memberships:
            return _v1(root, memberships["cpu"], weight)
        if "" in memberships and (root / "cgroup.controllers").exists():
            return _v2(root / memberships[""].lstrip("/"), weight)
    except PermissionError as exc:
        raise Unavailable(f"no permission to write {exc.filename}") from None
    except OSError as exc:
        if exc.errno == errno.EROFS:
            raise Unavailable(f"{root} is read-only") from None
        raise Unavailable(f"{exc.filename or root}: {exc.strerror}") from None
    raise Unavailable(f"no cpu controller in {own}")


def _v1(root: Path, own: str, weight: int) -> CpuShare:
    mount = next((m for m in (root / "cpu", root / "cpu,cpuacct") if m.is_dir()), None)
    if mount is None:
        raise Unavailable(f"the cpu controller is not mounted under {root}")
    parent = mount / own.lstrip("/")
    for stale in parent.glob(PREFIX + "*"):
        if not _alive(stale.name.removeprefix(PREFIX)):  # left by a monitor that was killed
            _remove_v1(stale)
    group = parent / f"{PREFIX}{os.getpid()}"
    for leaf in ("monitor", "browser"):
        (group / leaf).mkdir(parents=True, exist_ok=True)
    share = CpuShare(group / "browser", v1=True)
    share.set_weight(weight)
    (group / "monitor" / "cgroup.procs").write_text(str(os.getpid()))  # all its threads
    return share


def _remove_v1(group: Path) -> None:
    for path in (group / "browser", group / "monitor", group):
        with contextlib.suppress(OSError):
            path.rmdir()


def _alive(pid: str) -> bool:
    return pid.isdigit() and Path("/proc", pid).exists()


def _v2(own: Path, weight: int) -> CpuShare:
    if "cpu" not in (own / "cgroup.controllers").read_text().split():
        raise Unavailable(f"the cpu controller is not delegated to {own} (systemd: Delegate=cpu)")
    if "cpu" not in (own / "cgroup.subtree_control").read_text().split():
        # processes may not stay in a cgroup whose children get controllers: ours
        # (the monitor, its threads' process, commands it started) move to a leaf
        monitor = own / "monitor"
        monitor.mkdir(exist_ok=True)
        for pid in (own / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                (monitor / "cgroup.procs").write_text(pid)
        (own / "cgroup.subtree_control").write_text("+cpu")
    browser = own / "browser"
    browser.mkdir(exist_ok=True)
    share = CpuShare(browser, v1=False)
    share.set_weight(weight)
    return share
