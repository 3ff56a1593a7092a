"""One headless Chromium process: started, connected, watched, killed.

`Chromium.run` (a task of the prober's nursery) starts Debian's chromium in a process
group of its own (in the monitor's session: see below) with a private profile
directory, reads the DevTools port from the profile's DevToolsActivePort file, connects
one WebSocket (`cdp.Connection`) and reads it; beside it a task waits for the process
to exit and a watchdog sums the process tree's memory (PSS, from /proc) against
`browser_memory`.

Any trouble (the process exited, the connection closed, a browser-level command went
unanswered, the memory cap) is `fail(reason)`: the reason is kept, every probe inside
`guard()` is cancelled (it reports error kind `browser` with the reason), and the run
ends, killing the whole process group (SIGKILL: a throwaway profile needs no clean
exit), the crash handlers it started, and removing the profile. The prober starts a
new one for the next probe. A cancelled run (the prober closing, a hard stop) kills the
same way; a monitor killed outright takes Chromium with it (its parent-death signal).

With `idle` (browser_cpu = "idle") Chromium runs under SCHED_IDLE: util-linux's
`chrt --idle 0` sets it and execs Chromium, whose every process and thread inherits it
(Chromium changes its threads' nice values, never their policy). The kernel then lets
any task of the normal policy that wakes up, a monitor thread with a socket ready,
preempt a running Chromium thread at once, and sends wakeups to CPUs that run only idle
tasks. That holds only between tasks of one scheduling group, so Chromium stays in the
monitor's: its session, not a new one (with autogroup, /proc/sys/kernel/
sched_autogroup_enabled, each session is a group of its own that competes with the
monitor's as an equal, SCHED_IDLE inside it or not: 2,000 HTTP probes' p99 latency went
from 1.5 to 4 ms beside 20 browser targets), and no cgroup of its own (one more level
where Chromium's group is a normal entity that finishes its slice before a woken monitor
thread runs: p99 2.8 ms at a weight of 10). Under systemd or Docker the monitor's group
is its service's cgroup, Chromium's too.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import trio
import trio_websocket

from .cdp import Connection, PageSession

START_TIMEOUT = 30.0  # seconds Chromium has to write its DevTools port and accept us
# seconds Chromium has to answer a browser-level command (contexts, targets): the
# browser process answers these itself, so a longer silence means it hangs
BROWSER_BOUND = 10.0
KILL_WAIT = 5.0  # seconds to wait for the killed process to be reaped
MEMORY_EVERY = 2.0  # seconds between two looks at the process tree's memory
MAX_MESSAGE = 64 << 20  # a DevTools message (a page's text, later a screenshot)

# headless, quiet: nothing fetched or started that a check did not ask for (the tests'
# selenium Chromium runs with these too)
QUIET = (
    "--headless=new",
    "--no-sandbox",  # a monitor's service user; the pages are the operator's own targets
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
    "--window-size=1280,1000",
    # every browser context (a probe's) opens a headless window, for which Chromium 156
    # builds two WebUI renderers of top chrome (the omnibox popups: targets of type
    # browser_ui) that no one ever sees: without them a probe costs Chromium 0.25
    # CPU-seconds instead of 0.64 (bench/browser.py's page, measured)
    "--disable-features=WebUIOmniboxPopup,WebUIOmniboxAimPopup",
)
FLAGS = (
    *QUIET,
    "--remote-debugging-port=0",  # a free port, written to DevToolsActivePort
    "--remote-allow-origins=*",
    "--disable-breakpad",
    "--mute-audio",
    "about:blank",
)


# Chromium is killed with us even when we cannot do it (SIGKILL, the OOM killer): the
# kernel sends it SIGKILL when we die (prctl PR_SET_PDEATHSIG, set by util-linux's
# setpriv, which then execs it). Its own children end with it. The kernel sends it when
# the *thread* that forked it ends, so that thread stays until Chromium exits (_spawn).
_SETPRIV = shutil.which("setpriv")
_DIE_WITH_US = (_SETPRIV, "--pdeathsig", "KILL", "--") if _SETPRIV else ()
# SCHED_IDLE for Chromium and everything it forks (util-linux's chrt, in every Debian)
_CHRT = shutil.which("chrt")
IDLE = (_CHRT, "--idle", "0") if _CHRT else ()


# why a Chromium was killed (trio_monitor_browser_restarts_total's `reason`)
CRASH, HANG, MEMORY, RELOAD = "crash", "hang", "memory", "reload"


class Chromium:
    """One Chromium process and its DevTools connection, for as long as it is healthy."""

    def __init__(
        self,
        executable: str,
        memory_cap: int,
        restarts: dict[str, int] | None = None,
        idle: bool = False,
    ) -> None:
        self.executable = executable
        self.memory_cap = memory_cap
        self.idle = idle  # under SCHED_IDLE (where chrt is)
        # the prober's counts of failures by cause (its restarts: metrics)
        self._restarts = {} if restarts is None else restarts
        self.trouble: str | None = None  # why it was (or is being) killed
        self.pid: int | None = None
        self.profile: Path | None = None
        self._connection: Connection | None = None
        self._scope = trio.CancelScope()
        self._guards: set[trio.CancelScope] = set()
        self.ended = trio.Event()  # its processes are killed, its profile removed

    @property
    def connection(self) -> Connection:
        assert self._connection is not None, "Chromium.run has started it"
        return self._connection

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Start Chromium, report started, and watch it until it fails or is cancelled."""
        profile = Path(tempfile.mkdtemp(prefix="trio-monitor-chromium-"))
        self.profile = profile
        process: _Process | None = None
        stream: trio.SocketStream | None = None
        try:
            with self._scope:
                argv = [
                    *_DIE_WITH_US,
                    *(IDLE if self.idle else ()),
                    self.executable,
                    *FLAGS,
                    f"--user-data-dir={profile}",
                ]
                process = await _spawn(argv, {**os.environ, "HOME": str(profile)})
                self.pid = process.pid
                async with trio.open_nursery() as nursery:
                    with trio.fail_after(START_TIMEOUT):
                        port, path = await _devtools_port(profile, process)
                        # our own connection, closed by us whatever trio-websocket did
                        stream = await trio.open_tcp_stream("127.0.0.1", port)
                        ws = await trio_websocket.wrap_client_stream(
                            nursery,
                            stream,
                            f"127.0.0.1:{port}",
                            path,
                            message_queue_size=256,
                            max_message_size=MAX_MESSAGE,
                        )
                    self._connection = Connection(ws)
                    self._connection.on_hang = lambda reason: self.fail(reason, HANG)
                    nursery.start_soon(self._read, process)
                    nursery.start_soon(self._exit, process)
                    nursery.start_soon(self._watch_memory)
                    task_status.started()
        finally:
            if self.trouble is None:
                self.trouble = "Chromium was stopped"
            if self._connection is not None:
                self._connection.broken(self.trouble)
            for guard in self._guards:
                guard.cancel()
            # shielded (a cancelled prober still kills), bounded by KILL_WAIT
            with trio.CancelScope(shield=True):
                if stream is not None:
                    await trio.aclose_forcefully(stream)  # closed now, without a goodbye
                # what reads all of /proc and what removes a directory tree go to a
                # thread: tens of milliseconds the probes beside it would wait for
                if process is not None:
                    await trio.to_thread.run_sync(_kill, process, profile)
                    with trio.move_on_after(KILL_WAIT):
                        await process.wait()
                await trio.to_thread.run_sync(partial(shutil.rmtree, profile, ignore_errors=True))
            self.ended.set()

    def fail(self, reason: str, cause: str) -> None:
        """Kill it: probes inside `guard()` are cut short and report `reason`; the first
        failure's `cause` (CRASH, HANG, MEMORY, RELOAD) is counted."""
        if self.trouble is None:
            self.trouble = reason
            self._restarts[cause] = self._restarts.get(cause, 0) + 1
        if self._connection is not None:
            self._connection.broken(self.trouble)
        for guard in self._guards:
            guard.cancel()
        self._scope.cancel()

    @contextmanager
    def guard(self) -> Iterator[trio.CancelScope]:
        """A scope cancelled if this Chromium fails while it is open (check `trouble`)."""
        scope = trio.CancelScope()
        if self.trouble is not None:
            scope.cancel()
        self._guards.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._guards.discard(scope)

    async def open_page(self) -> PageSession:
        """A new page in a browser context of its own (cookies, cache, storage: none
        shared), attached as a flattened session. `close_page` disposes of both."""
        connection = self.connection
        context = await connection.send("Target.createBrowserContext", bound=BROWSER_BOUND)
        context_id = context["browserContextId"]
        try:
            target = await connection.send(
                "Target.createTarget",
                {"url": "", "browserContextId": context_id},
                bound=BROWSER_BOUND,
            )
            attached = await connection.send(
                "Target.attachToTarget",
                {"targetId": target["targetId"], "flatten": True},
                bound=BROWSER_BOUND,
            )
        except BaseException:
            await self._dispose(context_id)
            raise
        page = PageSession(connection, attached["sessionId"], target["targetId"], context_id)
        connection.attach(page)
        return page

    async def close_page(self, page: PageSession) -> None:
        """Dispose of the page's context (and the page): shielded, bounded."""
        self.connection.detach(page)
        await self._dispose(page.context_id)

    async def _dispose(self, context_id: str) -> None:
        with trio.CancelScope(shield=True):
            if self.connection.trouble is None:
                await self.connection.send(
                    "Target.disposeBrowserContext",
                    {"browserContextId": context_id},
                    bound=BROWSER_BOUND,
                )

    async def _read(self, process: _Process) -> None:
        await self.connection.read()
        # the connection closes when the process dies: say how it died if it did
        with trio.move_on_after(1.0):
            await process.wait()
        self.fail(
            _exited(process.returncode)
            if process.returncode is not None
            else "the DevTools connection closed",
            CRASH,
        )

    async def _exit(self, process: _Process) -> None:
        await process.wait()
        self.fail(_exited(process.returncode), CRASH)

    async def _watch_memory(self) -> None:
        assert self.pid is not None
        while True:
            await trio.sleep(MEMORY_EVERY)
            used = await trio.to_thread.run_sync(tree_pss, self.pid)
            if used > self.memory_cap:
                self.fail(
                    f"Chromium used {used / 2**20:.0f} MiB, over browser_memory "
                    f"({self.memory_cap / 2**20:.0f} MiB): restarted",
                    MEMORY,
                )


class _Process:
    """Chromium's process, as `_spawn` started it: its pid, and its exit once the thread
    that forked it has reaped it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None  # set when it has exited
        self._exited = trio.Event()

    def exited(self, code: int) -> None:
        self.returncode = code
        self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode


async def _spawn(argv: list[str], env: dict[str, str]) -> _Process:
    """Start `argv` from a thread that then waits for it to exit.

    Not trio.lowlevel.open_process: it forks from a worker thread that goes back to
    trio's thread cache, and a cached thread ends after 10 s without work. The kernel
    sends the parent-death signal when the thread that forked ends, not its process: a
    healthy Chromium was SIGKILLed whenever its thread retired (under load, every few
    minutes). Here that thread lives exactly as long as Chromium."""
    token = trio.lowlevel.current_trio_token()
    started: trio.MemorySendChannel[_Process | BaseException]
    started, receive = trio.open_memory_channel(1)

    def fork_and_wait() -> None:
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                # its own process group (killed as one), the monitor's session (its
                # scheduling group: SCHED_IDLE ranks Chromium below us there)
                process_group=0,
                env=env,
            )
        except BaseException as exc:  # no such file, no memory: the caller's error
            token.run_sync_soon(started.send_nowait, exc)
            return
        process = _Process(popen.pid)
        token.run_sync_soon(started.send_nowait, process)
        code = popen.wait()
        with contextlib.suppress(trio.RunFinishedError):  # the monitor has ended meanwhile
            token.run_sync_soon(process.exited, code)

    trio.lowlevel.start_thread_soon(fork_and_wait, lambda _: None)
    with trio.CancelScope(shield=True):  # a fork, quick; once started, it is ours to kill
        outcome = await receive.receive()
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _exited(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"Chromium was killed ({name})"
    return f"Chromium exited (code {code})"


def _kill(process: _Process, profile: Path) -> None:
    """SIGKILL to its whole process group (the browser, its zygotes and renderers), and
    to the crash handlers it started (they leave the group, and would only end once they
    notice the browser is gone): those that name its profile, their HOME."""
    with contextlib.suppress(ProcessLookupError):  # already gone, with its group
        os.killpg(process.pid, signal.SIGKILL)
    for pid in _naming(str(profile).encode()):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _naming(text: bytes) -> list[int]:
    """The processes whose command line contains `text`."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if text in Path(entry.path, "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


async def _devtools_port(profile: Path, process: _Process) -> tuple[int, str]:
    """The DevTools port and path (/devtools/browser/ID), once Chromium has written them."""
    port_file = profile / "DevToolsActivePort"
    while True:
        if process.returncode is not None:
            raise OSError(_exited(process.returncode))
        try:
            lines = port_file.read_text().split("\n")
        except FileNotFoundError:
            lines = []
        if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].strip():
            return int(lines[0]), lines[1].strip()
        await trio.sleep(0.02)  # Chromium says nothing else when it is ready


def tree_pss(group: int) -> int:
    """Bytes of memory the processes of process group `group` use (PSS: shared pages
    counted once across them, unlike a sum of RSS, which would double Chromium's)."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_bytes()
            # after the command name in parentheses: state ppid pgrp ...
            if int(stat[stat.rindex(b")") + 2 :].split()[2]) != group:
                continue
            for line in Path(entry.path, "smaps_rollup").read_bytes().splitlines():
                if line.startswith(b"Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError, IndexError):  # gone meanwhile, or not ours to read
            continue
    return total
